//! Cold side: names for addresses inside PLT stubs (`.plt`, `.plt.sec`, `.plt.got`).
//!
//! A CPU sample often lands in the 16-byte stub through which a library calls another one
//! (`jmp *GOT[slot]`). Symbol tables have nothing there, so symbolizers name it after the
//! nearest symbol before it — usually `_init` — which reads like a real hot function (2 % of
//! the CPU samples of `make demo`'s Python service were "`_init`"). Like objdump, each stub is
//! named after the function it jumps to, `PyLong_FromLong@plt`: the stub's `jmp` names its GOT
//! slot, and the slot's relocation (`R_X86_64_JUMP_SLOT` in `.rela.plt`, `R_X86_64_GLOB_DAT`
//! in `.rela.dyn`) names the symbol. The stub before all others (lazy binding's resolver entry)
//! is `[plt]`.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use super::elf_sections::{u32_at, u64_at, Sections};

const PLT_SECTIONS: [&str; 3] = [".plt", ".plt.sec", ".plt.got"];
const MAX_SECTION_BYTES: u64 = 4 << 20;

/// The PLT stubs of one file, by their stated (file) addresses.
#[derive(Debug, Default)]
pub struct PltTable {
    /// (address range, entry size) of each PLT section.
    sections: Vec<(Range<u64>, u64)>,
    /// Start address of a stub → the function it jumps to.
    names: HashMap<u64, String>,
}

impl PltTable {
    /// Reads `path`'s PLT sections; None when it has none (or is not a readable ELF file).
    pub fn read(path: &Path) -> Option<PltTable> {
        let elf = Sections::read(path)?;
        let slots = got_slot_names(&elf);
        let mut table = PltTable::default();
        for name in PLT_SECTIONS {
            let Some(section) = elf.find(name) else { continue };
            let Some(code) = elf.contents_of(section, MAX_SECTION_BYTES) else { continue };
            let entry = if section.entsize == 8 || section.entsize == 16 { section.entsize } else { 16 };
            let Some(end) = section.addr.checked_add(section.size) else { continue };
            table.sections.push((section.addr..end, entry));
            for (i, stub) in code.chunks(entry as usize).enumerate() {
                let start = section.addr.wrapping_add(i as u64 * entry);
                if let Some(name) = jump_slot(stub, start).and_then(|slot| slots.get(&slot)) {
                    table.names.insert(start, name.clone());
                }
            }
        }
        (!table.sections.is_empty()).then_some(table)
    }

    /// The name for stated address `addr`, if it lies in a PLT section.
    pub fn name(&self, addr: u64) -> Option<String> {
        let (range, entry) = self.sections.iter().find(|(r, _)| r.contains(&addr))?;
        let start = range.start + (addr - range.start) / entry * entry;
        Some(match self.names.get(&start) {
            Some(name) => format!("{name}@plt"),
            None => "[plt]".to_string(),
        })
    }
}

/// The GOT slot a stub jumps through: the `jmp *disp32(%rip)` (`ff 25`) it starts with,
/// possibly after an `endbr64` (4 bytes) and a `bnd` prefix (1 byte) — where the linkers put
/// it; other positions could be inside another instruction's bytes.
fn jump_slot(stub: &[u8], stub_addr: u64) -> Option<u64> {
    let at = [0usize, 1, 4, 5].into_iter().find(|&at| stub.get(at..at + 2) == Some(&[0xff, 0x25][..]))?;
    let disp = i32::from_le_bytes(stub.get(at + 2..at + 6)?.try_into().ok()?);
    let next_insn = stub_addr.wrapping_add(at as u64 + 6);
    Some(next_insn.wrapping_add(disp as i64 as u64))
}

/// GOT slot address → symbol name, from the dynamic relocations that fill the slots.
fn got_slot_names(elf: &Sections) -> HashMap<u64, String> {
    const R_X86_64_GLOB_DAT: u32 = 6;
    const R_X86_64_JUMP_SLOT: u32 = 7;
    let mut names = HashMap::new();
    let (Some(dynsym), Some(dynstr)) = (elf.find(".dynsym"), elf.find(".dynstr")) else { return names };
    let (Some(symbols), Some(strings)) = (elf.contents_of(dynsym, MAX_SECTION_BYTES), elf.contents_of(dynstr, MAX_SECTION_BYTES)) else {
        return names;
    };
    let symbol_name = |index: usize| -> Option<String> {
        let entry = symbols.get(index * 24..index * 24 + 24)?;
        let at = u32_at(entry, 0) as usize;
        let rest = strings.get(at..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        (end > 0).then(|| String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    for rela in [".rela.plt", ".rela.dyn"] {
        let Some(bytes) = elf.find(rela).and_then(|s| elf.contents_of(s, MAX_SECTION_BYTES)) else { continue };
        for r in bytes.chunks_exact(24) {
            let (slot, info) = (u64_at(r, 0), u64_at(r, 8));
            let (kind, symbol) = (info as u32, (info >> 32) as usize);
            if matches!(kind, R_X86_64_JUMP_SLOT | R_X86_64_GLOB_DAT) && symbol != 0 {
                if let Some(name) = symbol_name(symbol) {
                    names.insert(slot, name);
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against objdump's own `<name@plt>` labels, on a program built here.
    #[test]
    fn stubs_are_named_as_objdump_names_them() {
        let dir = std::env::temp_dir().join(format!("ddprof-plt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("p.c");
        let program = dir.join("p");
        std::fs::write(&source, "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\nint main(int c, char **v) { char *p = malloc(64); strcpy(p, v[0]); puts(p); free(p); return c > 5 ? abs(c) : 0; }\n").unwrap();
        let built = std::process::Command::new("cc").args(["-O1", "-o"]).arg(&program).arg(&source).status();
        let objdump = std::process::Command::new("objdump").arg("-d").arg(&program).output();
        let (Ok(built), Ok(objdump)) = (built, objdump) else {
            eprintln!("skipped: cc or objdump is not installed");
            return;
        };
        assert!(built.success());
        let table = PltTable::read(&program).expect("a dynamically linked program has a PLT");
        let text = String::from_utf8_lossy(&objdump.stdout);
        let mut checked = 0;
        for line in text.lines() {
            // "0000000000001030 <malloc@plt>:"
            let Some((addr, rest)) = line.split_once(" <") else { continue };
            let Some(label) = rest.strip_suffix(">:") else { continue };
            if !label.ends_with("@plt") {
                continue;
            }
            let addr = u64::from_str_radix(addr.trim(), 16).unwrap();
            assert_eq!(table.name(addr + 3).as_deref(), Some(label), "at {addr:#x}");
            checked += 1;
        }
        assert!(checked >= 4, "objdump showed {checked} stubs:\n{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_plt_no_table() {
        assert!(PltTable::read(Path::new("/nonexistent")).is_none());
        let table = PltTable { sections: vec![(0x1000..0x1040, 16)], names: HashMap::from([(0x1010, "puts".to_string())]) };
        assert_eq!(table.name(0x1000).as_deref(), Some("[plt]"));
        assert_eq!(table.name(0x101f).as_deref(), Some("puts@plt"));
        assert_eq!(table.name(0x1040), None);
    }
}
