//! The next allocator (`dlsym(RTLD_NEXT)`), found without recursing.
//!
//! The malloc hooks must forward to whatever allocator comes next (glibc's, or jemalloc /
//! tcmalloc preloaded after us). `dlsym` itself allocates, so while the symbols are being
//! resolved, allocations made on the resolving thread are served from a small static arena;
//! `free`/`realloc` recognise arena pointers by address. Other threads wait for resolution to
//! finish (it happens once, at the first allocation, normally before `main`).
//!
//! The four hot functions (malloc, free, calloc, realloc) are also reachable through `HOT`,
//! one cache line of function pointers that start out pointing at bootstrap functions and are
//! overwritten with the real ones once resolved: the hooks' fast path is then a load and a
//! jump, with no "resolved yet?" test (the bootstrap functions do that test, only at start-up).

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

pub type MallocFn = unsafe extern "C" fn(usize) -> *mut libc::c_void;
pub type FreeFn = unsafe extern "C" fn(*mut libc::c_void);
pub type CallocFn = unsafe extern "C" fn(usize, usize) -> *mut libc::c_void;
pub type ReallocFn = unsafe extern "C" fn(*mut libc::c_void, usize) -> *mut libc::c_void;
pub type PosixMemalignFn = unsafe extern "C" fn(*mut *mut libc::c_void, usize, usize) -> libc::c_int;
pub type AlignedFn = unsafe extern "C" fn(usize, usize) -> *mut libc::c_void;

/// The resolved functions. Optional ones may be missing in exotic allocators.
pub struct Allocator {
    pub malloc: MallocFn,
    pub free: FreeFn,
    pub calloc: CallocFn,
    pub realloc: ReallocFn,
    pub posix_memalign: PosixMemalignFn,
    pub aligned_alloc: Option<AlignedFn>,
    pub memalign: Option<AlignedFn>,
    pub valloc: Option<MallocFn>,
    pub pvalloc: Option<MallocFn>,
    pub reallocarray: Option<unsafe extern "C" fn(*mut libc::c_void, usize, usize) -> *mut libc::c_void>,
    pub malloc_usable_size: Option<unsafe extern "C" fn(*mut libc::c_void) -> usize>,
}

const UNRESOLVED: u8 = 0;
const RESOLVING: u8 = 1;
const RESOLVED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNRESOLVED);
static mut ALLOCATOR: Option<Allocator> = None;

thread_local! {
    static RESOLVING_HERE: Cell<bool> = const { Cell::new(false) };
}

/// The next allocator, or None while this very thread is resolving it (the caller must then
/// use the bootstrap arena).
#[inline(always)]
pub fn next() -> Option<&'static Allocator> {
    if STATE.load(Ordering::Acquire) == RESOLVED {
        // SAFETY: ALLOCATOR is written once before STATE becomes RESOLVED (Release) and never
        // again; readers synchronise through the Acquire load above.
        return unsafe { (*std::ptr::addr_of!(ALLOCATOR)).as_ref() };
    }
    resolve_slow()
}

#[cold]
fn resolve_slow() -> Option<&'static Allocator> {
    if RESOLVING_HERE.with(|r| r.get()) {
        return None;
    }
    match STATE.compare_exchange(UNRESOLVED, RESOLVING, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            RESOLVING_HERE.with(|r| r.set(true));
            let resolved = lookup_all();
            // SAFETY: only this thread writes, once, before publishing with Release.
            unsafe { *std::ptr::addr_of_mut!(ALLOCATOR) = resolved };
            RESOLVING_HERE.with(|r| r.set(false));
            STATE.store(RESOLVED, Ordering::Release);
            // SAFETY: ALLOCATOR was just written and is never written again.
            if let Some(a) = unsafe { (*std::ptr::addr_of!(ALLOCATOR)).as_ref() } {
                HOT.malloc.store(a.malloc as *mut (), Ordering::Release);
                HOT.free.store(a.free as *mut (), Ordering::Release);
                HOT.calloc.store(a.calloc as *mut (), Ordering::Release);
                HOT.realloc.store(a.realloc as *mut (), Ordering::Release);
            }
        }
        Err(_) => {
            while STATE.load(Ordering::Acquire) != RESOLVED {
                std::hint::spin_loop();
            }
        }
    }
    // SAFETY: as in `next`.
    unsafe { (*std::ptr::addr_of!(ALLOCATOR)).as_ref() }
}

// ---------------------------------------------------------------- hot function pointers

/// The functions the hooks jump to, alone in their cache line (read on every call, written
/// once): a bootstrap function until the next allocator is resolved, then the real one.
#[repr(C, align(64))]
struct Hot {
    malloc: AtomicPtr<()>,
    free: AtomicPtr<()>,
    calloc: AtomicPtr<()>,
    realloc: AtomicPtr<()>,
}

static HOT: Hot = Hot {
    malloc: AtomicPtr::new(bootstrap_malloc as MallocFn as *mut ()),
    free: AtomicPtr::new(bootstrap_free as FreeFn as *mut ()),
    calloc: AtomicPtr::new(bootstrap_calloc as CallocFn as *mut ()),
    realloc: AtomicPtr::new(bootstrap_realloc as ReallocFn as *mut ()),
};

macro_rules! hot_getter {
    ($name:ident, $field:ident, $offset:literal, $ty:ty) => {
        /// The function to forward to (possibly a bootstrap function: same contract).
        #[inline(always)]
        pub fn $name() -> $ty {
            const _: () = assert!(std::mem::offset_of!(Hot, $field) == $offset);
            let f: *mut ();
            // A plain `HOT.x.load()` goes through a GOT slot holding HOT's address (rustc
            // treats the static as preemptible): one more dependent load on every call.
            // HOT is local to this library (not exported), so a PC-relative load reaches it.
            // SAFETY: reads 8 aligned bytes of HOT; an aligned 8-byte mov is atomic on
            // x86-64 and, like any x86 load, has Acquire semantics (pairs with the Release
            // store made after resolution). The pointer is always a function of this exact
            // type: the bootstrap one, later the one dlsym found under the C name.
            unsafe {
                std::arch::asm!(
                    concat!("mov {f}, qword ptr [rip + {hot} + ", $offset, "]"),
                    hot = sym HOT,
                    f = out(reg) f,
                    options(nostack, readonly, preserves_flags),
                );
                std::mem::transmute::<*mut (), $ty>(f)
            }
        }
    };
}
hot_getter!(malloc_fn, malloc, 0, MallocFn);
hot_getter!(free_fn, free, 8, FreeFn);
hot_getter!(calloc_fn, calloc, 16, CallocFn);
hot_getter!(realloc_fn, realloc, 24, ReallocFn);

// The bootstrap functions: the first calls (and any made while resolution runs on another
// thread) land here; they resolve, or serve the resolving thread from the arena.

unsafe extern "C" fn bootstrap_malloc(size: usize) -> *mut libc::c_void {
    match next() {
        // SAFETY: forwarding to the next allocator.
        Some(next) => unsafe { (next.malloc)(size) },
        None => arena_alloc(size, 16),
    }
}

unsafe extern "C" fn bootstrap_free(ptr: *mut libc::c_void) {
    if in_arena(ptr) {
        return;
    }
    if let Some(next) = next() {
        // SAFETY: not an arena pointer, so it came from the next allocator (or is null).
        unsafe { (next.free)(ptr) }
    }
}

unsafe extern "C" fn bootstrap_calloc(count: usize, size: usize) -> *mut libc::c_void {
    match next() {
        // SAFETY: forwarding; the next calloc checks the multiplication itself.
        Some(next) => unsafe { (next.calloc)(count, size) },
        // The arena is static and never reused, hence already zeroed.
        None => match count.checked_mul(size) {
            Some(total) => arena_alloc(total, 16),
            None => std::ptr::null_mut(),
        },
    }
}

unsafe extern "C" fn bootstrap_realloc(ptr: *mut libc::c_void, size: usize) -> *mut libc::c_void {
    match next() {
        // SAFETY: forwarding; the hooks never pass arena blocks to a real realloc.
        Some(next) => unsafe { (next.realloc)(ptr, size) },
        None => arena_realloc(ptr, size),
    }
}

/// realloc while the next allocator is still being resolved: only arena blocks exist.
pub fn arena_realloc(ptr: *mut libc::c_void, size: usize) -> *mut libc::c_void {
    let new = arena_alloc(size, 16);
    if !ptr.is_null() && !new.is_null() && in_arena(ptr) {
        let old = arena_size(ptr).min(size);
        // SAFETY: both blocks are inside the arena and at least `old` bytes long.
        unsafe { std::ptr::copy_nonoverlapping(ptr as *const u8, new as *mut u8, old) };
    }
    new
}

fn lookup_all() -> Option<Allocator> {
    fn find(name: &[u8]) -> usize {
        // SAFETY: NUL-terminated name; RTLD_NEXT is valid in a shared object.
        unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) as usize }
    }
    macro_rules! required {
        ($name:literal) => {{
            let addr = find(concat!($name, "\0").as_bytes());
            if addr == 0 {
                return None;
            }
            // SAFETY: dlsym found the C function of this name, which has this signature.
            unsafe { std::mem::transmute::<usize, _>(addr) }
        }};
    }
    let malloc: MallocFn = required!("malloc");
    let provider = object_of(malloc as usize);
    // An optional function counts only if the object providing malloc provides it too: a
    // preloaded jemalloc lacks pvalloc, and glibc's pvalloc would hand out a block jemalloc
    // does not own. Missing ones are emulated with the provider's aligned allocation.
    macro_rules! optional {
        ($name:literal) => {{
            let addr = find(concat!($name, "\0").as_bytes());
            // SAFETY: as above.
            (addr != 0 && object_of(addr) == provider).then(|| unsafe { std::mem::transmute::<usize, _>(addr) })
        }};
    }
    Some(Allocator {
        malloc,
        free: required!("free"),
        calloc: required!("calloc"),
        realloc: required!("realloc"),
        posix_memalign: required!("posix_memalign"),
        aligned_alloc: optional!("aligned_alloc"),
        memalign: optional!("memalign"),
        valloc: optional!("valloc"),
        pvalloc: optional!("pvalloc"),
        reallocarray: optional!("reallocarray"),
        malloc_usable_size: optional!("malloc_usable_size"),
    })
}

/// Load bias of the loaded object one of whose segments contains `addr` (a non-PIE program's
/// is 0).
/// Found from the program headers, not with `dladdr`: `dladdr` also looks for the nearest
/// symbol by scanning the whole dynamic symbol table (libc's has ~3000 entries), and this
/// runs six times in every process at its first allocation (measured with perf: 4 % of an
/// exec'd `/bin/true`'s time under the library).
fn object_of(addr: usize) -> Option<usize> {
    struct Search {
        addr: usize,
        bias: Option<usize>,
    }
    unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _: libc::size_t, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: both pointers are valid for the callback's duration; data is our Search.
        let (info, search) = unsafe { (&*info, &mut *(data as *mut Search)) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let bias = info.dlpi_addr as usize;
        let contains = |p: &libc::Elf64_Phdr| {
            let start = bias.wrapping_add(p.p_vaddr as usize);
            p.p_type == libc::PT_LOAD && (start..start.wrapping_add(p.p_memsz as usize)).contains(&search.addr)
        };
        if phdrs.iter().any(contains) {
            search.bias = Some(bias);
            return 1;
        }
        0
    }
    let mut search = Search { addr, bias: None };
    // SAFETY: the callback only writes through the pointer we pass; dl_iterate_phdr does not
    // allocate, so it is safe while the allocator is being resolved.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut search as *mut Search).cast()) };
    search.bias
}

// ---------------------------------------------------------------- bootstrap arena

const ARENA_SIZE: usize = 256 * 1024;
/// 16-byte header before each block holds its size, for realloc.
const HEADER: usize = 16;

#[repr(C, align(16))]
struct Arena([u8; ARENA_SIZE]);

static mut ARENA: Arena = Arena([0; ARENA_SIZE]);
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

fn arena_base() -> usize {
    std::ptr::addr_of!(ARENA) as usize
}

/// True for pointers handed out by the bootstrap arena (never passed to the real free).
/// One subtraction and one unsigned compare (null and pointers below the arena wrap around).
#[inline(always)]
pub fn in_arena(ptr: *mut libc::c_void) -> bool {
    (ptr as usize).wrapping_sub(arena_base()) < ARENA_SIZE
}

/// Zeroed memory from the static arena (never reused: only dlsym's few allocations land here).
pub fn arena_alloc(size: usize, align: usize) -> *mut libc::c_void {
    let align = align.max(16);
    let mut used = ARENA_USED.load(Ordering::Relaxed);
    loop {
        let start = (arena_base() + used + HEADER).next_multiple_of(align) - arena_base();
        let end = start + size;
        if end > ARENA_SIZE {
            return std::ptr::null_mut();
        }
        match ARENA_USED.compare_exchange(used, end, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => {
                let block = (arena_base() + start) as *mut u8;
                // SAFETY: [start-HEADER, end) lies inside the arena and was claimed by the CAS.
                unsafe { (block.sub(HEADER) as *mut usize).write(size) };
                // Its free and realloc must take the hooks' slow path, which knows the arena:
                // pinned before anyone can see the block.
                crate::collect::live_heap::pin(block as u64);
                return block.cast();
            }
            Err(now) => used = now,
        }
    }
}

/// Size recorded for an arena block.
pub fn arena_size(ptr: *mut libc::c_void) -> usize {
    // SAFETY: arena blocks carry their size in the header just before them.
    unsafe { ((ptr as *mut u8).sub(HEADER) as *const usize).read() }
}
