//! Cold-side symbolization of code addresses of the current process, with a per-address cache.
//!
//! Backed by `blazesym`: process maps → ELF file → DWARF when the file has it, ELF symbol
//! tables otherwise. A library whose debug info lives in a separate file (`/usr/lib/debug`) is
//! named from that file's symbol table (see debug_file.rs), or, with
//! `DD_PROFILING_SEPARATE_DEBUG_INFO=full`, from its DWARF too (blazesym follows debuglink and
//! build id). Inlined functions and file:line are reported when DWARF has them; names are
//! demangled.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use blazesym::symbolize::source::{Elf, Process, Source};
use blazesym::symbolize::{
    CodeInfo, Input, Symbolized as BzSymbolized, Symbolizer as BzSymbolizer,
};
use blazesym::Pid;

use super::plt::PltTable;
use crate::config::SeparateDebugInfo;
use crate::sample::unwind::Mapping;

/// One (possibly inlined) function at an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub function: String,
    /// Full path where debug info gives one; "" if unknown.
    pub file: String,
    /// 0 if unknown.
    pub line: u32,
}

/// What an address resolved to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Symbolized {
    /// Innermost inlined function first, the physical function last; empty if unknown.
    pub frames: Vec<Frame>,
}

/// Past this many cached addresses the cache is dropped and rebuilt on demand, so a process that
/// keeps generating code (JITs) cannot grow it without bound.
const MAX_CACHED: usize = 1 << 20;

/// Long-lived symbolizer for the own process; owned by the exporter thread.
pub struct Symbolizer {
    cache: HashMap<u64, Arc<Symbolized>>,
    unknown: Arc<Symbolized>,
    separate_debug_info: SeparateDebugInfo,
    /// Per module path: the separate debug file whose symbol table names it (None: blazesym's
    /// own lookup through the process's maps).
    symbol_files: HashMap<String, Option<PathBuf>>,
    /// Per module path: its PLT stubs (see plt.rs).
    plt_tables: HashMap<String, Option<Arc<PltTable>>>,
}

// SAFETY: blazesym's `Symbolizer` is `!Send` only because it keeps `Rc`/`RefCell` handles to its
// own internal caches. None of them ever leaves the object (results are converted to owned data
// before `resolve` returns and nothing borrowing it is handed out), so moving the whole object to
// another thread moves every clone of each `Rc` together, which is sound. `Symbolizer` is not
// `Sync`.
unsafe impl Send for Symbolizer {}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbolizer {
    pub fn new() -> Self {
        Symbolizer {
            cache: HashMap::new(),
            unknown: Arc::new(Symbolized::default()),
            separate_debug_info: SeparateDebugInfo::Symbols,
            symbol_files: HashMap::new(),
            plt_tables: HashMap::new(),
        }
    }

    pub fn set_separate_debug_info(&mut self, mode: SeparateDebugInfo) {
        if mode != self.separate_debug_info {
            self.separate_debug_info = mode;
            self.symbol_files.clear();
            self.clear();
        }
    }

    /// Resolves code addresses of this process (pid = getpid() now), in the order given.
    /// Cached addresses are not looked up again; the others go to blazesym, one batch for the
    /// addresses of each library named from an ELF symbol table alone (a separate debug
    /// file's, found through `mappings`, or, for the modules containing a range of
    /// `names_only`, the module's own) and one for the rest, named from DWARF where the file
    /// has it. Unknown addresses give empty `frames`.
    pub fn resolve(&mut self, addrs: &[u64], mappings: &[Mapping], names_only: &[Range<u64>]) -> Vec<Arc<Symbolized>> {
        let mut todo: Vec<u64> = addrs
            .iter()
            .copied()
            .filter(|a| !self.cache.contains_key(a))
            .collect();
        if !todo.is_empty() {
            todo.sort_unstable();
            todo.dedup();
            if self.cache.len() + todo.len() > MAX_CACHED {
                self.cache.clear();
                todo = addrs.to_vec();
                todo.sort_unstable();
                todo.dedup();
            }
            self.name_plt_stubs(&mut todo, mappings);
            let by_symbol_file = self.split_by_symbol_file(&mut todo, mappings, names_only);
            // SAFETY: getpid has no preconditions.
            let pid = Pid::from(unsafe { libc::getpid() } as u32);
            let mut out: Vec<(u64, Option<Symbolized>)> = Vec::with_capacity(todo.len());
            // One blazesym instance per file, dropped before the next: the files it maps and
            // the symbol tables and DWARF it parses are released at once, so at most one
            // module's are resident, and none between exports. Addresses already named are
            // cached here: a file is read again only for addresses never seen before.
            for ((file, bias), addrs) in by_symbol_file {
                lookup_in_symbol_table(&new_blazesym(), &file, &addrs, bias, &mut out);
            }
            for group in by_module(&todo, mappings) {
                lookup(&new_blazesym(), pid, &group, &mut out);
            }
            for (addr, sym) in out {
                let v = match sym {
                    Some(s) if !s.frames.is_empty() => Arc::new(s),
                    // A failed batch (whole-call error) is not cached: it may be transient.
                    None => continue,
                    Some(_) => self.unknown.clone(),
                };
                self.cache.insert(addr, v);
            }
        }
        addrs
            .iter()
            .map(|a| {
                self.cache
                    .get(a)
                    .cloned()
                    .unwrap_or_else(|| self.unknown.clone())
            })
            .collect()
    }

    /// Names (and caches, and moves out of `todo`) the addresses that lie in PLT stubs.
    fn name_plt_stubs(&mut self, todo: &mut Vec<u64>, mappings: &[Mapping]) {
        let (tables, cache) = (&mut self.plt_tables, &mut self.cache);
        todo.retain(|&addr| {
            let Some(m) = mapping_at(mappings, addr) else { return true };
            let table = tables.entry(m.path.clone()).or_insert_with(|| PltTable::read(Path::new(&m.path)).map(Arc::new));
            let Some(name) = table.as_ref().and_then(|t| t.name(addr.wrapping_sub(m.bias))) else { return true };
            let frame = Frame { function: name, file: String::new(), line: 0 };
            cache.insert(addr, Arc::new(Symbolized { frames: vec![frame] }));
            false
        });
    }

    /// Moves out of `todo` the addresses to be named from an ELF symbol table alone, grouped by
    /// that file, with the library's load bias: the modules whose code contains a range of
    /// `names_only` (from their separate debug file's symbol table if they have one, else
    /// their own), and, unless `DD_PROFILING_SEPARATE_DEBUG_INFO=full`, the libraries whose
    /// debug info lives in a separate debug file.
    fn split_by_symbol_file(&mut self, todo: &mut Vec<u64>, mappings: &[Mapping], names_only: &[Range<u64>]) -> HashMap<(PathBuf, u64), Vec<u64>> {
        // Keyed by file and bias: two copies of one library (dlmopen) sit at different places.
        let mut groups: HashMap<(PathBuf, u64), Vec<u64>> = HashMap::new();
        let full = self.separate_debug_info == SeparateDebugInfo::Full;
        todo.retain(|&addr| {
            let Some(m) = mapping_at(mappings, addr) else { return true };
            let symbols_only = names_only.iter().any(|r| m.text_avma.contains(&r.start));
            if full && !symbols_only {
                return true;
            }
            let file = self
                .symbol_files
                .entry(m.path.clone())
                .or_insert_with(|| super::debug_file::symbols_file(&m.path, &m.build_id));
            match (file, symbols_only) {
                (Some(file), _) => groups.entry((file.clone(), m.bias)).or_default().push(addr),
                (None, true) => groups.entry((PathBuf::from(&m.path), m.bias)).or_default().push(addr),
                (None, false) => return true,
            }
            false
        });
        groups
    }

    /// Forgets every cached address (after dlclose, or in a forked child).
    pub fn clear(&mut self) {
        self.cache.clear();
        self.cache.shrink_to_fit();
    }

    /// Number of cached addresses.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

fn new_blazesym() -> BzSymbolizer {
    BzSymbolizer::builder()
        .enable_code_info(true)
        .enable_inlined_fns(true)
        .enable_demangling(true)
        .enable_auto_reload(true)
        .build()
}

fn process_source(pid: Pid) -> Source<'static> {
    let mut p = Process::new(pid);
    p.debug_syms = true;
    // `/proc/<pid>/map_files/*` can only be opened with CAP_SYS_ADMIN (or
    // CAP_CHECKPOINT_RESTORE), even for the own process; use the paths from `maps` instead.
    p.map_files = false;
    p.perf_map = true;
    p.vdso = true;
    Source::Process(p)
}

/// Symbolizes sorted, deduplicated `addrs` into `out`. blazesym fails a whole batch when a single
/// file cannot be read or parsed; then the addresses are grouped by the file mapped at them and
/// each group is retried alone, so only the culprit file's addresses end up unknown. `None` marks
/// addresses whose lookup failed for reasons that may be transient (not to be cached).
fn lookup(bz: &BzSymbolizer, pid: Pid, addrs: &[u64], out: &mut Vec<(u64, Option<Symbolized>)>) {
    let src = process_source(pid);
    if let Ok(results) = bz.symbolize(&src, Input::AbsAddr(addrs)) {
        for (&addr, r) in addrs.iter().zip(results) {
            out.push((addr, Some(convert(&r))));
        }
        return;
    }
    let Some(groups) = group_by_file(addrs) else {
        out.extend(addrs.iter().map(|&a| (a, None)));
        return;
    };
    for group in groups {
        match bz.symbolize(&src, Input::AbsAddr(&group)) {
            Ok(results) => {
                for (&addr, r) in group.iter().zip(results) {
                    out.push((addr, Some(convert(&r))));
                }
            }
            Err(_) => out.extend(group.iter().map(|&a| (a, Some(Symbolized::default())))),
        }
    }
}

/// Sorted `addrs` split by the module whose code contains them (one group for those in none).
fn by_module(addrs: &[u64], mappings: &[Mapping]) -> Vec<Vec<u64>> {
    let mut groups: HashMap<Option<&str>, Vec<u64>> = HashMap::new();
    for &addr in addrs {
        groups.entry(mapping_at(mappings, addr).map(|m| m.path.as_str())).or_default().push(addr);
    }
    groups.into_values().collect()
}

/// The module whose code contains `addr`.
fn mapping_at(mappings: &[Mapping], addr: u64) -> Option<&Mapping> {
    mappings.iter().find(|m| m.text_avma.contains(&addr))
}

/// Names `addrs` (absolute, of a library loaded with `bias`) from the symbol table of its
/// separate debug `file`, which states the library's own (virtual) addresses. A failure leaves
/// them unknown for now (not cached).
fn lookup_in_symbol_table(bz: &BzSymbolizer, file: &Path, addrs: &[u64], bias: u64, out: &mut Vec<(u64, Option<Symbolized>)>) {
    let mut elf = Elf::new(file);
    elf.debug_syms = false;
    let src = Source::Elf(elf);
    let offsets: Vec<u64> = addrs.iter().map(|a| a.wrapping_sub(bias)).collect();
    match bz.symbolize(&src, Input::VirtOffset(&offsets)) {
        Ok(results) => out.extend(addrs.iter().zip(results).map(|(&addr, r)| (addr, Some(convert(&r))))),
        Err(_) => out.extend(addrs.iter().map(|&a| (a, None))),
    }
}

/// Splits sorted `addrs` into groups, one per file mapped at them (plus one for the rest), using
/// `/proc/self/maps`. `None` if the maps cannot be read.
fn group_by_file(addrs: &[u64]) -> Option<Vec<Vec<u64>>> {
    let files = crate::sample::modules::mapped_files()?;
    let mut groups: HashMap<&str, Vec<u64>> = HashMap::new();
    for &addr in addrs {
        let i = files.partition_point(|f| f.range.start <= addr);
        let path = match i.checked_sub(1).map(|i| &files[i]) {
            Some(f) if addr < f.range.end => f.path.as_str(),
            _ => "",
        };
        groups.entry(path).or_default().push(addr);
    }
    Some(groups.into_values().collect())
}

fn convert(r: &BzSymbolized<'_>) -> Symbolized {
    let sym = match r {
        BzSymbolized::Sym(sym) => sym,
        BzSymbolized::Unknown(_) => return Symbolized::default(),
    };
    // blazesym lists inlined calls outermost first; `sym.code_info` is the line in the physical
    // function, each inlined entry's code info is the line inside that inlined function.
    let mut frames = Vec::with_capacity(sym.inlined.len() + 1);
    for f in sym.inlined.iter().rev() {
        let (file, line) = code_location(f.code_info.as_ref());
        frames.push(Frame {
            function: f.name.to_string(),
            file,
            line,
        });
    }
    let (file, line) = code_location(sym.code_info.as_deref());
    frames.push(Frame {
        function: sym.name.to_string(),
        file,
        line,
    });
    Symbolized { frames }
}

fn code_location(ci: Option<&CodeInfo<'_>>) -> (String, u32) {
    match ci {
        None => (String::new(), 0),
        Some(ci) => {
            let path = match &ci.dir {
                Some(dir) if !dir.as_os_str().is_empty() => dir.join(Path::new(&ci.file)),
                _ => Path::new(&ci.file).to_path_buf(),
            };
            (normalize(&path), ci.line.unwrap_or(0))
        }
    }
}

/// Lexically drops `.` components and folds `dir/..`, so that e.g. glibc's
/// `./string/../sysdeps/x86_64/strcmp.S` reads `sysdeps/x86_64/strcmp.S`. (Debian builds record
/// directories relative to a build tree that no longer exists; nothing better is known.)
fn normalize(path: &Path) -> String {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    let p: std::path::PathBuf = out.iter().collect();
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[inline(never)]
    fn known_target_function(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_mul(31).rotate_left(7)
    }

    #[test]
    fn resolves_own_function_libc_and_garbage() {
        assert_eq!(known_target_function(1), 31u64.rotate_left(7));
        let own = known_target_function as *const () as usize as u64 + 4;
        let getpid = libc::getpid as *const () as usize as u64 + 1;
        let mut s = Symbolizer::new();
        let t = Instant::now();
        let r = s.resolve(&[own, getpid, 0x10, own], &[], &[]);
        let first = t.elapsed();
        assert_eq!(r.len(), 4);

        let f = r[0].frames.last().expect("own function resolved");
        assert!(f.function.contains("known_target_function"), "{:?}", r[0]);
        assert!(f.line > 0, "{:?}", r[0]);
        assert!(f.file.ends_with("symbolize.rs"), "{:?}", r[0]);
        assert!(f.file.starts_with('/'), "full path expected: {:?}", r[0]);
        assert!(Arc::ptr_eq(&r[0], &r[3]));

        let g = r[1].frames.last().expect("getpid resolved");
        assert!(g.function.contains("getpid"), "{:?}", r[1]);

        assert!(r[2].frames.is_empty(), "{:?}", r[2]);

        let t = Instant::now();
        let r2 = s.resolve(&[own, getpid, 0x10], &[], &[]);
        let cached = t.elapsed();
        assert!(Arc::ptr_eq(&r[0], &r2[0]));
        assert_eq!(s.cached(), 3);
        eprintln!("first {first:?}, cached {cached:?}");

        s.clear();
        assert_eq!(s.cached(), 0);
        let r3 = s.resolve(&[own], &[], &[]);
        assert_eq!(r3[0].frames, r[0].frames);
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(
            normalize(Path::new(
                "./string/../sysdeps/x86_64/multiarch/../multiarch/strcmp.S"
            )),
            "sysdeps/x86_64/multiarch/strcmp.S"
        );
        assert_eq!(normalize(Path::new("/a/./b/../c.rs")), "/a/c.rs");
        assert_eq!(normalize(Path::new("/../x.c")), "/x.c");
        assert_eq!(normalize(Path::new("../x.c")), "../x.c");
        assert_eq!(normalize(Path::new("x.c")), "x.c");
        assert_eq!(normalize(Path::new("")), "");
    }

    #[test]
    fn groups_addresses_by_file() {
        let own = known_target_function as *const () as usize as u64;
        let getpid = libc::getpid as *const () as usize as u64;
        let mut addrs = vec![0x10, own, own + 1, getpid];
        addrs.sort_unstable();
        let mut groups = group_by_file(&addrs).unwrap();
        groups.iter_mut().for_each(|g| g.sort_unstable());
        groups.sort();
        assert_eq!(groups.len(), 3, "{groups:x?}");
        assert!(groups.contains(&vec![0x10]));
        assert!(groups.contains(&vec![own, own + 1]));
        assert!(groups.contains(&vec![getpid]));
    }

    #[test]
    fn symbolizer_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Symbolizer>();
        let mut s = Symbolizer::new();
        let own = known_target_function as *const () as usize as u64;
        std::thread::spawn(move || {
            let r = s.resolve(&[own], &[], &[]);
            assert!(!r[0].frames.is_empty());
        })
        .join()
        .unwrap();
    }

    /// Timing over many addresses spread across every executable mapping of the test process.
    #[test]
    fn bulk_timing() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mut addrs = Vec::new();
        let mut files = std::collections::HashSet::new();
        for line in maps.lines() {
            let mut it = line.split_whitespace();
            let (range, perms) = (it.next().unwrap(), it.next().unwrap());
            let path = it.nth(3).unwrap_or("");
            if !perms.contains('x') || !path.starts_with('/') {
                continue;
            }
            files.insert(path.to_string());
            let (a, b) = range.split_once('-').unwrap();
            let (a, b) = (
                u64::from_str_radix(a, 16).unwrap(),
                u64::from_str_radix(b, 16).unwrap(),
            );
            let step = ((b - a) / 1000).max(1);
            let mut x = a;
            while x < b && addrs.len() < 20_000 {
                addrs.push(x);
                x += step;
            }
        }
        let mut s = Symbolizer::new();
        let t = Instant::now();
        let r = s.resolve(&addrs, &[], &[]);
        let first = t.elapsed();
        let t = Instant::now();
        let _ = s.resolve(&addrs, &[], &[]);
        let cached = t.elapsed();
        let known = r.iter().filter(|x| !x.frames.is_empty()).count();
        eprintln!(
            "{} addrs over {} files: first {first:?}, cached {cached:?}, {known} resolved",
            addrs.len(),
            files.len()
        );
        assert!(known > 0);
    }
}

/// The process's symbolizer, kept in a global (cold side only) rather than on the exporter
/// thread, so a forked child inherits its cache: a child's first export then resolves the
/// parent's addresses without reading any debug info again. A spin lock, so the child can
/// tell whether the parent's exporter held it at the fork.
static SHARED: crate::yield_lock::Lock<Option<Symbolizer>> = crate::yield_lock::Lock::new(None);

/// Runs `f` with the shared symbolizer.
pub fn with_shared<R>(f: impl FnOnce(&mut Symbolizer) -> R) -> R {
    let mut guard = SHARED.lock();
    f(guard.get_or_insert_with(Symbolizer::new))
}

/// In a forked child: keep the parent's cache unless it was in use at the fork (then it may
/// be half updated, and is leaked).
pub fn after_fork_in_child() {
    crate::fork_safe::keep_if_consistent(&SHARED);
}
