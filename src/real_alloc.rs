//! The next allocator (`dlsym(RTLD_NEXT)`), found without recursing.
//!
//! The malloc hooks must forward to whatever allocator comes next (glibc's, or jemalloc /
//! tcmalloc preloaded after us). `dlsym` itself allocates, so while the symbols are being
//! resolved, allocations made on the resolving thread are served from a small static arena;
//! `free`/`realloc` recognise arena pointers by address. Other threads wait for resolution to
//! finish (it happens once, at the first allocation, normally before `main`).

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

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
    })
}

/// Base address of the loaded object that contains `addr` (0 if unknown).
fn object_of(addr: usize) -> usize {
    // SAFETY: dladdr only reads loader data; info is a valid out-pointer.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(addr as *const libc::c_void, &mut info) } == 0 {
        return 0;
    }
    info.dli_fbase as usize
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
pub fn in_arena(ptr: *mut libc::c_void) -> bool {
    let p = ptr as usize;
    p >= arena_base() && p < arena_base() + ARENA_SIZE
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
