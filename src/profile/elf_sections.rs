//! Cold side: the section headers of an ELF file on disk (64-bit, little-endian), with their
//! names: what `debug_file.rs` and `plt.rs` need, read with a few `pread`s.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

const SHT_NOBITS: u32 = 8;

/// One section header.
#[derive(Clone, Debug)]
pub struct Section {
    pub name: String,
    pub kind: u32,
    /// Address stated in the file (the load bias is added at run time).
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub entsize: u64,
}

pub struct Sections {
    file: File,
    file_len: u64,
    pub list: Vec<Section>,
}

impl Sections {
    pub fn read(path: &Path) -> Option<Sections> {
        let file = File::open(path).ok()?;
        let mut header = [0u8; 64];
        file.read_exact_at(&mut header, 0).ok()?;
        if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
            return None;
        }
        let (shoff, shentsize, shnum, shstrndx) =
            (u64_at(&header, 0x28), u16_at(&header, 0x3a) as usize, u16_at(&header, 0x3c) as usize, u16_at(&header, 0x3e) as usize);
        // Everything read is checked against the file's size first: a junk header (the loader
        // ignores section headers, so such files run) must not make us allocate gigabytes.
        let file_len = file.metadata().ok()?.len();
        let table_len = (shentsize as u64).checked_mul(shnum as u64)?;
        if shentsize != 64 || shnum == 0 || shstrndx >= shnum || shoff.checked_add(table_len)? > file_len {
            return None;
        }
        let mut table = vec![0u8; shentsize * shnum];
        file.read_exact_at(&mut table, shoff).ok()?;
        let headers: Vec<&[u8]> = table.chunks_exact(shentsize).collect();
        let names_header = headers[shstrndx];
        let (names_at, names_len) = (u64_at(names_header, 0x18), u64_at(names_header, 0x20));
        if names_len > 1 << 20 || names_at.checked_add(names_len)? > file_len {
            return None;
        }
        let mut names = vec![0u8; names_len as usize];
        file.read_exact_at(&mut names, names_at).ok()?;
        let name_of = |at: u32| {
            let rest = names.get(at as usize..).unwrap_or(&[]);
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).into_owned()
        };
        let list = headers
            .iter()
            .map(|h| Section {
                name: name_of(u32_at(h, 0)),
                kind: u32_at(h, 4),
                addr: u64_at(h, 0x10),
                offset: u64_at(h, 0x18),
                size: u64_at(h, 0x20),
                link: u32_at(h, 0x28),
                entsize: u64_at(h, 0x38),
            })
            .collect();
        Some(Sections { file, file_len, list })
    }

    pub fn find(&self, name: &str) -> Option<&Section> {
        self.list.iter().find(|s| s.name == name)
    }

    /// Whether the file holds the section's bytes (not just a NOBITS placeholder).
    pub fn has_data(&self, name: &str) -> bool {
        self.find(name).is_some_and(|s| s.kind != SHT_NOBITS && s.size > 0)
    }

    /// The bytes of a section of at most `limit` bytes.
    pub fn contents_of(&self, section: &Section, limit: u64) -> Option<Vec<u8>> {
        if section.kind == SHT_NOBITS || section.size > limit || section.offset.checked_add(section.size)? > self.file_len {
            return None;
        }
        let mut bytes = vec![0u8; section.size as usize];
        self.file.read_exact_at(&mut bytes, section.offset).ok()?;
        Some(bytes)
    }

    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        self.contents_of(self.find(name)?, 1 << 16)
    }
}

pub fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

pub fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

pub fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
