//! Native stack capture from a signal handler or hook, with `framehop` and the `.eh_frame`
//! rules of every loaded module, prepared ahead of time on the cold side.
//!
//! Publication: the cold side builds an immutable `Snapshot` (unwinder + module list) and
//! swaps it in through an atomic pointer. Readers announce themselves in `READERS` before
//! loading the pointer; the cold side frees a replaced snapshot only once `READERS` has been
//! seen at zero after the swap. (`arc-swap` is avoided: its first load allocates.)
//!
//! Caches: framehop's cache needs `&mut`; a fixed pool of caches is claimed with a try-lock,
//! so a handler never waits: with no free cache it records only the interrupted address.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, MustNotAllocateDuringUnwind, Unwinder};

use super::modules::{self, LoadGeneration, ModuleInfo, SectionBytes};

type NativeUnwinder = UnwinderX86_64<SectionBytes, MustNotAllocateDuringUnwind>;
type NativeCache = CacheX86_64<MustNotAllocateDuringUnwind>;
type NativeModule = framehop::Module<SectionBytes>;

/// Registers at the moment of interruption.
#[derive(Clone, Copy, Debug)]
pub struct Registers {
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
}

/// What the cold side knows about a module for pprof mappings (no unwind data).
#[derive(Clone, Debug)]
pub struct Mapping {
    pub path: String,
    /// Load bias: actual address minus the address stated in the ELF file.
    pub bias: u64,
    pub text_avma: Range<u64>,
    pub text_file_offset: u64,
    pub build_id: String,
}

struct Snapshot {
    unwinder: NativeUnwinder,
    generation: LoadGeneration,
}

static CURRENT: AtomicPtr<Snapshot> = AtomicPtr::new(std::ptr::null_mut());

/// Whether a module list was published (at start-up it is read by the exporter thread).
pub fn modules_known() -> bool {
    !CURRENT.load(Ordering::Acquire).is_null()
}

/// For hooks (never the signal handler): the module list is read by the exporter thread a
/// few milliseconds after start-up; a hook sampling in the first instants of the process
/// wakes it and waits for the list (a millisecond or so, at most `MODULES_WAIT`) rather than
/// record a leaf-only stack.
pub fn wait_for_modules() {
    const MODULES_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
    static WAITED_ENOUGH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !CURRENT.load(Ordering::Acquire).is_null() || WAITED_ENOUGH.load(Ordering::Relaxed) {
        return;
    }
    crate::collect::wake_exporter();
    let start = std::time::Instant::now();
    while CURRENT.load(Ordering::Acquire).is_null() && crate::status::active() {
        if start.elapsed() >= MODULES_WAIT {
            // No exporter reading them (it could not start): never wait again.
            return WAITED_ENOUGH.store(true, Ordering::Relaxed);
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}
static READERS: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------- hot side

/// Captures the stack that `regs` describes, handing each frame to `out` (leaf first; caller
/// frames as "return address − 1" so that they symbolize to the call site) until `out`
/// returns false. Reads stack memory only inside `stack` (the interrupted thread's stack,
/// from its stack pointer up). Returns the number of frames produced.
/// Async-signal-safe: no allocation, no lock, no syscall.
pub fn capture(regs: Registers, stack: Range<u64>, out: &mut dyn FnMut(u64) -> bool) -> usize {
    let mut read_stack = |addr: u64| -> Result<u64, ()> {
        if addr % 8 != 0 || addr < stack.start || addr.saturating_add(8) > stack.end {
            return Err(());
        }
        // SAFETY: addr is aligned and inside the live part of the thread's own stack
        // ([sp, stack top)), which is mapped and readable.
        Ok(unsafe { std::ptr::read_volatile(addr as *const u64) })
    };
    capture_with(regs, &mut read_stack, out)
}

/// Captures the stack of another thread from a copy of its stack taken at `base` (the
/// thread is blocked in a system call, so its registers and stack are still). Cold side.
pub fn capture_from_copy(regs: Registers, base: u64, copy: &[u8], out: &mut dyn FnMut(u64) -> bool) -> usize {
    let mut read_stack = |addr: u64| -> Result<u64, ()> {
        let offset = addr.checked_sub(base).ok_or(())? as usize;
        let bytes = copy.get(offset..offset.checked_add(8).ok_or(())?).ok_or(())?;
        Ok(u64::from_ne_bytes(bytes.try_into().map_err(|_| ())?))
    };
    capture_with(regs, &mut read_stack, out)
}

fn capture_with(regs: Registers, read_stack: &mut dyn FnMut(u64) -> Result<u64, ()>, out: &mut dyn FnMut(u64) -> bool) -> usize {
    READERS.fetch_add(1, Ordering::SeqCst);
    let snapshot = CURRENT.load(Ordering::SeqCst);
    let written = if snapshot.is_null() {
        out(regs.pc) as usize
    } else {
        // SAFETY: a published snapshot is freed only after READERS has been observed at zero
        // following its replacement; we hold READERS above zero until we are done.
        let snapshot = unsafe { &*snapshot };
        match CachePool::claim() {
            Some(cache) => walk(&snapshot.unwinder, cache.get(), regs, read_stack, out),
            None => out(regs.pc) as usize,
        }
    };
    READERS.fetch_sub(1, Ordering::SeqCst);
    written
}

fn walk(
    unwinder: &NativeUnwinder,
    cache: &mut NativeCache,
    regs: Registers,
    read_stack: &mut dyn FnMut(u64) -> Result<u64, ()>,
    out: &mut dyn FnMut(u64) -> bool,
) -> usize {
    let mut read_stack = |addr: u64| read_stack(addr);
    let start = UnwindRegsX86_64::new(regs.pc, regs.sp, regs.bp);
    let mut frames = unwinder.iter_frames(regs.pc, start, cache, &mut read_stack);
    let mut n = 0;
    // Errors end the walk but keep what was found: a partial stack beats none.
    while let Ok(Some(frame)) = frames.next() {
        if !out(frame.address_for_lookup()) {
            break;
        }
        n += 1;
    }
    n
}

const CACHE_POOL_SIZE: usize = 8;

struct CacheSlot {
    busy: AtomicBool,
    cache: std::cell::UnsafeCell<NativeCache>,
}

// SAFETY: the cache inside a slot is only reached by the holder of `busy`.
unsafe impl Sync for CacheSlot {}

struct CachePool;

static POOL: OnceLock<Box<[CacheSlot]>> = OnceLock::new();

struct ClaimedCache(&'static CacheSlot);

impl CachePool {
    /// Created on the cold side before any timer is armed.
    fn init() {
        POOL.get_or_init(|| {
            (0..CACHE_POOL_SIZE)
                .map(|_| CacheSlot { busy: AtomicBool::new(false), cache: std::cell::UnsafeCell::new(NativeCache::new_in()) })
                .collect()
        });
    }

    fn claim() -> Option<ClaimedCache> {
        let pool = POOL.get()?;
        pool.iter()
            .find(|slot| slot.busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok())
            .map(ClaimedCache)
    }
}

impl ClaimedCache {
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut NativeCache {
        // SAFETY: we hold the slot's busy flag, so no one else has a reference.
        unsafe { &mut *self.0.cache.get() }
    }
}

impl Drop for ClaimedCache {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

// ---------------------------------------------------------------- cold side

/// Cold-side owner of the published snapshots: keeps the framehop modules built so far, so a
/// `dlopen` costs only the new module's copy.
pub struct ModuleTracker {
    built: HashMap<(String, u64), NativeModule>,
    all_mappings: Vec<Mapping>,
}

impl ModuleTracker {
    pub fn new() -> Self {
        CachePool::init();
        ModuleTracker { built: HashMap::new(), all_mappings: Vec::new() }
    }

    /// Re-reads the module list when something was loaded or unloaded, and publishes a new
    /// snapshot. Returns true when it did.
    pub fn refresh(&mut self) -> bool {
        let generation = modules::current_generation();
        let current = CURRENT.load(Ordering::SeqCst);
        // SAFETY: only this (cold) side replaces or frees snapshots, so `current` is live.
        if !current.is_null() && unsafe { &*current }.generation == generation {
            return false;
        }
        let infos = modules::read_all();
        let mut unwinder = NativeUnwinder::new();
        let mut still_loaded = HashMap::new();
        for info in infos {
            let key = (info.path.clone(), info.bias);
            let module = match self.built.remove(&key) {
                Some(m) => m,
                None => {
                    self.remember_mapping(&info);
                    build_module(info)
                }
            };
            unwinder.add_module(module.clone());
            still_loaded.insert(key, module);
        }
        self.built = still_loaded;
        publish(Snapshot { unwinder, generation });
        true
    }

    /// Every module seen since start, including unloaded ones, so old addresses still find
    /// their mapping.
    pub fn all_mappings(&self) -> &[Mapping] {
        &self.all_mappings
    }

    fn remember_mapping(&mut self, info: &ModuleInfo) {
        let known = self.all_mappings.iter().any(|m| m.path == info.path && m.text_avma == info.text_avma);
        if !known {
            self.all_mappings.push(Mapping {
                path: info.path.clone(),
                bias: info.bias,
                text_avma: info.text_avma.clone(),
                text_file_offset: info.text_file_offset,
                build_id: info.build_id.clone(),
            });
        }
    }
}

impl Default for ModuleTracker {
    fn default() -> Self {
        Self::new()
    }
}

fn build_module(info: ModuleInfo) -> NativeModule {
    let (eh_frame_hdr_svma, eh_frame_hdr) = split(info.eh_frame_hdr);
    let (eh_frame_svma, eh_frame) = split(info.eh_frame);
    let text_svma = info.text_avma.start - info.bias..info.text_avma.end - info.bias;
    let sections = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: Some(text_svma),
        eh_frame_svma,
        eh_frame,
        eh_frame_hdr_svma,
        eh_frame_hdr,
        ..Default::default()
    };
    framehop::Module::new(info.path, info.text_avma, info.bias, sections)
}

fn split(section: Option<(Range<u64>, SectionBytes)>) -> (Option<Range<u64>>, Option<SectionBytes>) {
    match section {
        Some((range, data)) => (Some(range), Some(data)),
        None => (None, None),
    }
}

fn publish(snapshot: Snapshot) {
    let new = Box::into_raw(Box::new(snapshot));
    let old = CURRENT.swap(new, Ordering::SeqCst);
    if old.is_null() {
        return;
    }
    if !wait_for_readers() {
        return; // leaked on purpose, see wait_for_readers
    }
    // SAFETY: `old` came from Box::into_raw, is no longer reachable through CURRENT, and every
    // reader that could have loaded it has left (READERS was zero after the swap).
    drop(unsafe { Box::from_raw(old) });
}

/// Readers hold READERS for a few microseconds; a reader stuck for longer (a stopped
/// thread) means the old snapshot is leaked rather than freed under it.
/// Returns false after a second of waiting: the caller then leaks the old snapshot, which is
/// bounded by the number of module changes.
fn wait_for_readers() -> bool {
    for _ in 0..10_000 {
        if READERS.load(Ordering::SeqCst) == 0 {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    false
}

/// The module tracker, global (cold side only) so a forked child inherits the modules built
/// so far instead of copying every module's unwind tables again. A spin lock, so the child can
/// tell whether the parent's exporter held it at the fork.
static TRACKER: crate::yield_lock::Lock<Option<ModuleTracker>> = crate::yield_lock::Lock::new(None);

pub fn with_tracker<R>(f: impl FnOnce(&mut ModuleTracker) -> R) -> R {
    let mut guard = TRACKER.lock();
    f(guard.get_or_insert_with(ModuleTracker::new))
}

/// In a forked child: keep the parent's tracker unless it was in use at the fork.
pub fn tracker_after_fork_in_child() {
    crate::fork_safe::keep_if_consistent(&TRACKER);
}

/// In a forked child only the forking thread survives: any reader count or claimed cache
/// that belonged to another thread of the parent is void.
///
/// Written only where a value must change: the child shares the parent's pages until it
/// writes one, and each page written costs a fork-heavy program a copy (the cache slots lie
/// on separate pages).
pub fn reset_after_fork() {
    if READERS.load(Ordering::SeqCst) != 0 {
        READERS.store(0, Ordering::SeqCst);
    }
    if let Some(pool) = POOL.get() {
        for slot in pool.iter().filter(|slot| slot.busy.load(Ordering::SeqCst)) {
            slot.busy.store(false, Ordering::SeqCst);
        }
    }
}
