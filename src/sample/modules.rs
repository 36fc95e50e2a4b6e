//! Cold side: the list of loaded ELF modules, read with `dl_iterate_phdr`, with what the
//! unwinder needs (`.eh_frame_hdr`/`.eh_frame`) and what pprof mappings need (path,
//! executable range, file offset, GNU build id).
//!
//! The signal handler must never read unmapped memory, and `dlclose` unmaps a module. The
//! modules loaded at start-up — the program, the preloaded libraries and their dependencies —
//! are never unloaded (glibc unloads only objects that `dlopen` loaded; musl unloads nothing):
//! their unwind data is read in place, as the loader mapped it. Of the others, the sections
//! are read from a mapping of the module's file made here, which a `dlclose` leaves alone
//! (copied where that cannot be made). Neither copies every byte (1.7 MiB in a Flask worker),
//! and only the pages the unwinder reads become resident.

use std::ffi::CStr;
use std::ops::{Deref, Range};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The bytes of an unwind section: the loaded module's own mapping, a mapping of the module's
/// file of our own, or a private copy.
#[derive(Clone)]
pub enum SectionBytes {
    /// Only for modules loaded at start-up, which stay mapped until the process ends.
    InPlace(&'static [u8]),
    /// A module `dlopen` loaded: its file mapped again, read-only, by us; the mapping stays
    /// valid after a `dlclose` unmaps the module, until the last snapshot using it is freed.
    /// Only the pages the unwinder reads become resident.
    Mapped { map: Arc<FileMapping>, start: usize, len: usize },
    /// Where the file could not be mapped, or is not the one loaded (replaced on disk).
    Copied(Arc<[u8]>),
}

/// A private read-only mapping of part of a file, unmapped when dropped.
#[derive(Debug)]
pub struct FileMapping {
    addr: usize,
    len: usize,
}

impl Drop for FileMapping {
    fn drop(&mut self) {
        // SAFETY: addr/len are exactly a mapping made by `map_file_range` and owned by self;
        // nothing borrows it any more (the last SectionBytes holding it is being dropped).
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

impl std::fmt::Debug for SectionBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            SectionBytes::InPlace(_) => "in place",
            SectionBytes::Mapped { .. } => "mapped from its file",
            SectionBytes::Copied(_) => "copied",
        };
        write!(f, "{} bytes {kind}", self.len())
    }
}

impl Default for SectionBytes {
    fn default() -> Self {
        SectionBytes::InPlace(&[])
    }
}

impl Deref for SectionBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SectionBytes::InPlace(bytes) => bytes,
            // SAFETY: start + len lies inside the mapping (checked when it was made), which
            // lives as long as the Arc we hold.
            SectionBytes::Mapped { map, start, len } => unsafe { std::slice::from_raw_parts((map.addr + start) as *const u8, *len) },
            SectionBytes::Copied(bytes) => bytes,
        }
    }
}

/// How many entries at the head of the `dl_iterate_phdr` list were loaded at start-up (0 when
/// unknown). The list is in load order and start-up modules are never unloaded, so these stay
/// the first entries for the life of the process (and of its forked children).
static STARTUP_MODULES: AtomicUsize = AtomicUsize::new(0);

/// Called from the load-time constructor: when the library was preloaded (so the constructor
/// runs before any `dlopen` of the program), every module loaded now is a start-up module.
/// Loaded by `dlopen` instead, the list may hold modules that a `dlclose` can unload: none is
/// read in place. Preloaded means: `LD_PRELOAD` names the library, and the library is among
/// the first entries of the list (the program, the vdso, the preloaded libraries), where a
/// `dlopen` never puts it. A walk of the list (a few microseconds).
pub fn note_startup_modules() {
    let Some(preload) = std::env::var_os("LD_PRELOAD") else { return };
    let preload = preload.to_string_lossy();
    if !preload.contains("libddprof") {
        return;
    }
    let preloads = preload.split([' ', ':']).filter(|p| !p.is_empty()).count();
    let (modules, own_index) = walk_for_own_index();
    if own_index.is_some_and(|i| i <= 1 + 1 + preloads) {
        STARTUP_MODULES.store(modules, Ordering::Relaxed);
        crate::log_debug!("unwind data of the {modules} modules loaded at start-up read in place");
    }
}

/// The executable segments of a module: actual address range and file offset of each.
///
/// # Safety
/// `info` must come from dl_iterate_phdr, inside its callback.
unsafe fn executable_segments(info: &libc::dl_phdr_info) -> impl Iterator<Item = (Range<u64>, u64)> + '_ {
    // SAFETY: dlpi_phdr points at dlpi_phnum program headers (the caller's contract).
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    phdrs
        .iter()
        .filter(|p| p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_X != 0)
        .map(|p| (info.dlpi_addr + p.p_vaddr..info.dlpi_addr + p.p_vaddr + p.p_memsz, p.p_offset))
}

/// The number of modules loaded, and the position among them of the one holding this code.
fn walk_for_own_index() -> (usize, Option<usize>) {
    struct Walk {
        count: usize,
        own: Option<usize>,
        here: u64,
    }
    unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: valid for the callback's duration; data is our Walk.
        let (info, walk) = unsafe { (&*info, &mut *(data as *mut Walk)) };
        // SAFETY: inside dl_iterate_phdr's callback.
        if unsafe { executable_segments(info) }.any(|(range, _)| range.contains(&walk.here)) {
            walk.own = Some(walk.count);
        }
        walk.count += 1;
        0
    }
    let mut walk = Walk { count: 0, own: None, here: walk_for_own_index as *const () as u64 };
    // SAFETY: the callback only touches the Walk we pass, during the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut walk as *mut Walk).cast()) };
    (walk.count, walk.own)
}

#[derive(Clone, Debug)]
pub struct ModuleInfo {
    pub path: String,
    /// Load bias: actual address minus the address stated in the ELF file.
    pub bias: u64,
    /// Address range of the executable segment(s), actual addresses.
    pub text_avma: Range<u64>,
    /// File offset of the first executable segment (for pprof mappings).
    pub text_file_offset: u64,
    pub build_id: String,
    /// Stated (file) address ranges and the bytes of the unwind sections.
    pub eh_frame_hdr: Option<(Range<u64>, SectionBytes)>,
    pub eh_frame: Option<(Range<u64>, SectionBytes)>,
}

/// glibc's counters of loads and unloads; when they have not moved, the module list has not
/// changed and need not be read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LoadGeneration {
    adds: u64,
    subs: u64,
}

pub fn current_generation() -> LoadGeneration {
    unsafe extern "C" fn first_only(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info pointer; data is our LoadGeneration.
        let (info, generation) = unsafe { (&*info, &mut *(data as *mut LoadGeneration)) };
        generation.adds = info.dlpi_adds;
        generation.subs = info.dlpi_subs;
        1 // stop after the first entry
    }
    let mut generation = LoadGeneration::default();
    // SAFETY: the callback only writes through the pointer we pass, during the call.
    unsafe { libc::dl_iterate_phdr(Some(first_only), (&mut generation as *mut LoadGeneration).cast()) };
    generation
}

/// Reads every loaded module. Takes the loader lock (inside dl_iterate_phdr): cold side only.
pub fn read_all() -> Vec<ModuleInfo> {
    unsafe extern "C" fn collect(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: valid for the duration of the callback; data is our Walk.
        let (info, walk) = unsafe { (&*info, &mut *(data as *mut Walk)) };
        let source = if walk.index < walk.startup { Source::InPlace } else { Source::File(&walk.files) };
        walk.index += 1;
        // SAFETY: the loader guarantees the program headers and mapped segments are valid while
        // the callback runs, and for the first `startup` entries until the process ends.
        if let Some(module) = unsafe { read_module(info, source) } {
            walk.modules.push(module);
        }
        0
    }
    struct Walk {
        modules: Vec<ModuleInfo>,
        index: usize,
        startup: usize,
        files: Vec<MappedFile>,
    }
    let mut walk = Walk { modules: Vec::new(), index: 0, startup: STARTUP_MODULES.load(Ordering::Relaxed), files: mapped_files().unwrap_or_default() };
    // SAFETY: the callback only touches the Walk we pass, during the call.
    unsafe { libc::dl_iterate_phdr(Some(collect), (&mut walk as *mut Walk).cast()) };
    walk.modules
}

/// # Safety
/// `info` must come from dl_iterate_phdr, inside its callback; `Source::InPlace` only for a
/// module that stays loaded until the process ends.
unsafe fn read_module(info: &libc::dl_phdr_info, source: Source) -> Option<ModuleInfo> {
    let bias = info.dlpi_addr;
    // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    // SAFETY: forwarded from our caller's contract.
    let (text_avma, text_file_offset) = unsafe { executable_segments(info) }
        .reduce(|(all, offset), (range, _)| (all.start.min(range.start)..all.end.max(range.end), offset))?;
    let path = module_path(info);
    // SAFETY: forwarded from our caller's contract.
    let build_id = unsafe { read_build_id(bias, phdrs) }.unwrap_or_default();
    let file = match source {
        Source::InPlace => None,
        // By address: the loader's name and the kernel's may differ (`/lib/…` and `/usr/lib/…`
        // through a symbolic link); the kernel's is the file itself.
        Source::File(files) => Some(files.iter().find(|f| f.range.contains(&text_avma.start))),
    };
    // SAFETY: forwarded from our caller's contract (in place only for a start-up module).
    let (eh_frame_hdr, eh_frame) = unsafe { read_unwind_sections(bias, phdrs, file) };
    Some(ModuleInfo { path, bias, text_avma, text_file_offset, build_id, eh_frame_hdr, eh_frame })
}

fn module_path(info: &libc::dl_phdr_info) -> String {
    let name = if info.dlpi_name.is_null() {
        String::new()
    } else {
        // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
        unsafe { CStr::from_ptr(info.dlpi_name) }.to_string_lossy().into_owned()
    };
    if !name.is_empty() {
        return name;
    }
    // The main program has an empty name; the vdso has none either but no PT_INTERP check is
    // needed: the first entry is always the main program.
    std::fs::read_link("/proc/self/exe")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "[main]".to_string())
}

/// Finds the NT_GNU_BUILD_ID note in the loaded PT_NOTE segments and hex-encodes it.
///
/// # Safety
/// The segments described by `phdrs` must be mapped at `bias + p_vaddr`.
unsafe fn read_build_id(bias: u64, phdrs: &[libc::Elf64_Phdr]) -> Option<String> {
    const NT_GNU_BUILD_ID: u32 = 3;
    for ph in phdrs.iter().filter(|p| p.p_type == libc::PT_NOTE) {
        // SAFETY: PT_NOTE segments are inside loaded PT_LOAD segments.
        let notes = unsafe { std::slice::from_raw_parts((bias + ph.p_vaddr) as *const u8, ph.p_memsz as usize) };
        let mut at = 0usize;
        while at + 12 <= notes.len() {
            let word = |i: usize| u32::from_ne_bytes(notes[i..i + 4].try_into().unwrap());
            let (namesz, descsz, kind) = (word(at) as usize, word(at + 4) as usize, word(at + 8));
            let name_at = at + 12;
            let desc_at = name_at + namesz.div_ceil(4) * 4;
            let next = desc_at + descsz.div_ceil(4) * 4;
            if next > notes.len() {
                break;
            }
            if kind == NT_GNU_BUILD_ID && &notes[name_at..name_at + namesz] == b"GNU\0" {
                let desc = &notes[desc_at..desc_at + descsz];
                return Some(desc.iter().map(|b| format!("{b:02x}")).collect());
            }
            at = next;
        }
    }
    None
}

/// `.eh_frame_hdr` (the PT_GNU_EH_FRAME segment) and the `.eh_frame` section it points to:
/// in place (`file` None), else from a mapping of the module's `file` of our own (when it is
/// the file the module was loaded from), else copied. `.eh_frame` is given up to the end of
/// its segment: the unwinder finds its entries through the header's table and stops at the
/// section's zero terminator, so its exact length is not needed, and finding it would read
/// (and make resident) every page of it.
///
/// # Safety
/// The segments described by `phdrs` must be mapped at `bias + p_vaddr`; in place, until the
/// process ends.
#[allow(clippy::type_complexity)]
unsafe fn read_unwind_sections(
    bias: u64,
    phdrs: &[libc::Elf64_Phdr],
    file: Option<Option<&MappedFile>>,
) -> (Option<(Range<u64>, SectionBytes)>, Option<(Range<u64>, SectionBytes)>) {
    let Some(hdr_ph) = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME) else {
        return (None, None);
    };
    let hdr_svma = hdr_ph.p_vaddr..hdr_ph.p_vaddr + hdr_ph.p_memsz;
    // SAFETY: PT_GNU_EH_FRAME lies in a loaded, readable segment. The 'static lifetime is
    // only kept for a module that is never unmapped (in place); otherwise the slice is read
    // before this returns (its first bytes, or a copy), while the loader keeps it mapped.
    let hdr: &'static [u8] = unsafe { std::slice::from_raw_parts((bias + hdr_svma.start) as *const u8, hdr_ph.p_memsz as usize) };
    let Some(start_svma) = eh_frame_start(hdr, hdr_svma.start) else {
        return (None, None);
    };
    let Some(segment) = phdrs.iter().find(|p| p.p_type == libc::PT_LOAD && p.p_vaddr <= start_svma && start_svma < p.p_vaddr + p.p_filesz) else {
        return (None, None);
    };
    let eh_svma = start_svma..segment.p_vaddr + segment.p_filesz;
    // SAFETY: inside the loaded segment's file-backed part; 'static as above.
    let eh: &'static [u8] = unsafe { std::slice::from_raw_parts((bias + start_svma) as *const u8, (eh_svma.end - eh_svma.start) as usize) };
    let hdr_file = hdr_ph.p_offset..hdr_ph.p_offset + hdr_ph.p_filesz;
    let eh_file = segment.p_offset + (start_svma - segment.p_vaddr)..segment.p_offset + segment.p_filesz;
    let (hdr_bytes, eh_bytes) = match file {
        None => (SectionBytes::InPlace(hdr), SectionBytes::InPlace(eh)),
        Some(file) => match file.and_then(|f| map_sections(f, hdr_file, eh_file, hdr)) {
            Some(mapped) => mapped,
            None => (SectionBytes::Copied(hdr.into()), SectionBytes::Copied(eh[..eh_frame_length(eh)].into())),
        },
    };
    let eh_svma = eh_svma.start..eh_svma.start + eh_bytes.len() as u64;
    (Some((hdr_svma, hdr_bytes)), Some((eh_svma, eh_bytes)))
}

/// Where a module reads its sections from (see `read_unwind_sections`).
#[derive(Clone, Copy)]
enum Source<'a> {
    InPlace,
    File(&'a [MappedFile]),
}

/// A mapping of this process with a name, as /proc/self/maps lists it: where, and which file
/// (device and inode; 0 for `[heap]`, `[vdso]`…).
pub struct MappedFile {
    pub path: String,
    pub range: Range<u64>,
    dev: (u32, u32),
    inode: u64,
}

/// The named mappings of this process, in address order; None if /proc/self/maps cannot be
/// read.
pub fn mapped_files() -> Option<Vec<MappedFile>> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let files = maps
        .lines()
        .filter_map(|line| {
            let mut it = line.split_ascii_whitespace();
            let (range, _perms, _offset, dev, inode) = (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
            let path = it.next()?;
            let (a, b) = range.split_once('-')?;
            let (major, minor) = dev.split_once(':')?;
            Some(MappedFile {
                path: path.to_string(),
                range: u64::from_str_radix(a, 16).ok()?..u64::from_str_radix(b, 16).ok()?,
                dev: (u32::from_str_radix(major, 16).ok()?, u32::from_str_radix(minor, 16).ok()?),
                inode: inode.parse().ok()?,
            })
        })
        .collect();
    Some(files)
}

/// Maps the file ranges of both sections from the module's file, after checking the file at
/// that path is still the loaded one.
fn map_sections(file: &MappedFile, hdr: Range<u64>, eh: Range<u64>, loaded_hdr: &[u8]) -> Option<(SectionBytes, SectionBytes)> {
    let first = hdr.start.min(eh.start);
    let last = hdr.end.max(eh.end);
    if last - first > 256 << 20 {
        return None;
    }
    let (map, lead) = map_file_range(file, first..last)?;
    let map = Arc::new(map);
    let at = |offset: u64| lead + (offset - first) as usize;
    let hdr_bytes = SectionBytes::Mapped { map: map.clone(), start: at(hdr.start), len: (hdr.end - hdr.start) as usize };
    // The device and inode say it is the same file; its header's first bytes (encodings, the
    // pointer to `.eh_frame`, the table's length) say it was not rewritten in place. (All of
    // it would fault in every page of the loaded header.)
    let head = loaded_hdr.len().min(16);
    if hdr_bytes[..head] != loaded_hdr[..head] {
        return None;
    }
    Some((hdr_bytes, SectionBytes::Mapped { map, start: at(eh.start), len: (eh.end - eh.start) as usize }))
}

/// A read-only private mapping of `range` of `file` (offsets into the file) from the page
/// that holds its start, and where in it the range starts; None if the file cannot be
/// opened, is another file than the one mapped (replaced on disk), or is shorter than the
/// range.
fn map_file_range(file: &MappedFile, range: Range<u64>) -> Option<(FileMapping, usize)> {
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::File::open(&file.path).ok()?;
    let meta = f.metadata().ok()?;
    let dev = meta.dev();
    if (libc::major(dev), libc::minor(dev)) != file.dev || meta.ino() != file.inode || meta.len() < range.end {
        return None;
    }
    let page = 4096u64;
    let offset = range.start / page * page;
    let len = (range.end - offset) as usize;
    // SAFETY: a new private read-only mapping of an open file; no existing memory is affected.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, std::os::fd::AsRawFd::as_raw_fd(&f), offset as libc::off_t) };
    if addr == libc::MAP_FAILED {
        return None;
    }
    Some((FileMapping { addr: addr as usize, len }, (range.start - offset) as usize))
}

/// Decodes `eh_frame_ptr` from an `.eh_frame_hdr` (version 1; the common pcrel sdata4 encoding,
/// plus absolute udata/sdata 4 and 8).
fn eh_frame_start(hdr: &[u8], hdr_svma: u64) -> Option<u64> {
    const DW_EH_PE_UDATA4: u8 = 0x03;
    const DW_EH_PE_SDATA4: u8 = 0x0b;
    const DW_EH_PE_UDATA8: u8 = 0x04;
    const DW_EH_PE_SDATA8: u8 = 0x0c;
    const DW_EH_PE_PCREL: u8 = 0x10;
    const DW_EH_PE_DATAREL: u8 = 0x30;
    if hdr.len() < 8 || hdr[0] != 1 {
        return None;
    }
    let encoding = hdr[1];
    let field_svma = hdr_svma + 4;
    let raw: i64 = match encoding & 0x0f {
        DW_EH_PE_UDATA4 => u32::from_ne_bytes(hdr[4..8].try_into().ok()?) as i64,
        DW_EH_PE_SDATA4 => i32::from_ne_bytes(hdr[4..8].try_into().ok()?) as i64,
        DW_EH_PE_UDATA8 | DW_EH_PE_SDATA8 => i64::from_ne_bytes(hdr.get(4..12)?.try_into().ok()?),
        _ => return None,
    };
    match encoding & 0x70 {
        0 => Some(raw as u64),
        DW_EH_PE_PCREL => Some(field_svma.wrapping_add(raw as u64)),
        DW_EH_PE_DATAREL => Some(hdr_svma.wrapping_add(raw as u64)),
        _ => None,
    }
}

/// Length of an `.eh_frame` section: records until a zero-length terminator (included) or
/// until the data ends.
fn eh_frame_length(bytes: &[u8]) -> usize {
    let mut at = 0usize;
    while at + 4 <= bytes.len() {
        let len32 = u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        if len32 == 0 {
            return at + 4;
        }
        let record_end = if len32 == u32::MAX {
            let Some(len64) = bytes.get(at + 4..at + 12) else { break };
            (at + 12).checked_add(u64::from_ne_bytes(len64.try_into().unwrap()) as usize)
        } else {
            (at + 4).checked_add(len32 as usize)
        };
        match record_end {
            Some(end) if end <= bytes.len() => at = end,
            _ => break,
        }
    }
    at.min(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_modules_with_unwind_data() {
        let modules = read_all();
        assert!(modules.len() >= 2, "{modules:?}");
        let libc_module = modules.iter().find(|m| m.path.contains("libc.so")).expect("libc loaded");
        assert!(libc_module.eh_frame.as_ref().is_some_and(|(_, d)| d.len() > 1000));
        assert!(libc_module.eh_frame_hdr.is_some());
        assert!(!libc_module.build_id.is_empty());
        let here = reads_this_process_modules_with_unwind_data as *const () as u64;
        assert!(modules.iter().any(|m| m.text_avma.contains(&here)));
    }

    #[test]
    fn modules_not_loaded_at_start_up_read_their_own_file_mapping() {
        // In the test binary the library is not preloaded: no module counts as start-up.
        let modules = read_all();
        let libc_module = modules.iter().find(|m| m.path.contains("libc.so")).expect("libc loaded");
        let (svma, hdr) = libc_module.eh_frame_hdr.as_ref().unwrap();
        assert!(matches!(hdr, SectionBytes::Mapped { .. }), "{hdr:?}");
        // SAFETY: libc stays loaded; its header is mapped at bias + svma.
        let loaded = unsafe { std::slice::from_raw_parts((libc_module.bias + svma.start) as *const u8, hdr.len()) };
        assert_eq!(&hdr[..], loaded);
        let (eh_svma, eh) = libc_module.eh_frame.as_ref().unwrap();
        // SAFETY: as above, and the range ends inside libc's read-only segment.
        let loaded = unsafe { std::slice::from_raw_parts((libc_module.bias + eh_svma.start) as *const u8, eh.len()) };
        assert_eq!(&eh[..], loaded);
    }

    #[test]
    fn eh_frame_length_stops_at_terminator_and_at_end() {
        let mut data = vec![8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 9, 9];
        assert_eq!(eh_frame_length(&data), 16);
        data.truncate(10);
        assert_eq!(eh_frame_length(&data), 0);
    }

    #[test]
    fn generation_is_stable_without_loads() {
        assert_eq!(current_generation(), current_generation());
    }
}

/// The executable address range of the module containing `addr` (cold side).
pub fn text_range_containing(addr: u64) -> Option<Range<u64>> {
    struct Search {
        addr: u64,
        found: Option<Range<u64>>,
    }
    unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _: libc::size_t, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: valid for the callback's duration; data is our Search.
        let (info, search) = unsafe { (&*info, &mut *(data as *mut Search)) };
        // SAFETY: inside dl_iterate_phdr's callback.
        search.found = unsafe { executable_segments(info) }.map(|(range, _)| range).find(|range| range.contains(&search.addr));
        search.found.is_some() as libc::c_int
    }
    let mut search = Search { addr, found: None };
    // SAFETY: the callback only writes through the pointer we pass.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut search as *mut Search).cast()) };
    search.found
}
