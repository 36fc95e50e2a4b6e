//! Python's small allocations. CPython serves every request of up to 512 bytes
//! (`SMALL_REQUEST_THRESHOLD`, 3.8–3.15) from its own pymalloc arenas, which the malloc hooks
//! never see: without this hook, a program's tuples, ints and small dicts would be missing
//! from the allocation profile.
//!
//! Once the interpreter runs, a task under the GIL (`gil_tasks.rs`) wraps the allocators of the
//! `PYMEM_DOMAIN_MEM` and `PYMEM_DOMAIN_OBJ` domains with `PyMem_SetAllocator`, the way
//! `tracemalloc` does: each hook forwards to the allocator it replaced and feeds the same
//! byte countdown as the malloc hooks, so Python and C allocations form one Poisson process
//! with one mean. Requests above 512 bytes are *not* counted here: pymalloc passes them to
//! `malloc`, whose hook counts them (counting both would count them twice). Frees and
//! reallocs report the old block like the malloc hooks do, so live heap works for Python
//! objects too.
//!
//! Not installed when pymalloc is not in use (`PYTHONMALLOC` other than `pymalloc`): with
//! `malloc` every Python allocation already goes through `malloc`; `mimalloc` and the debug
//! variants do not split requests at 512 bytes the way this hook relies on. Cost: one indirect call and the
//! countdown per Python allocation, one filter load per free.
//!
//! `realloc` of a block pymalloc does not own (bytes and strings resized after a read, lists
//! shrinking) goes to `realloc`, whose hook counts it: the Python hook then sees the countdown
//! moved and does not count it again. Known imprecision: with CPython's debug hooks (`-X dev`)
//! a request just under 512 bytes grows past 512 and is counted by both hooks; after
//! `tracemalloc.stop()` (if tracemalloc was started before the hook went in) the hook is gone.

use std::sync::atomic::{AtomicBool, Ordering};

use libc::c_void;

use crate::python::c_api::{Api, MemAllocator, DOMAIN_MEM, DOMAIN_OBJ, DOMAIN_RAW};
use crate::collect::live_heap;
use crate::sample::alloc::{on_alloc, on_free, on_sample_point, reaches_sample_point};
use crate::tls_counter::alloc_bytes_left as countdown;

/// pymalloc's `SMALL_REQUEST_THRESHOLD` in CPython 3.8–3.15.
const SMALL_REQUEST: usize = 512;

/// Set once the hooks are in place (kept by forked children, which inherit them).
static INSTALLED: AtomicBool = AtomicBool::new(false);

pub fn installed() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

/// Under the GIL (from `gil_tasks`): wraps the MEM and OBJ domains.
pub fn install(api: &Api) {
    if INSTALLED.load(Ordering::Acquire) {
        return;
    }
    if let Some(why) = pymalloc_absent(api) {
        crate::log_debug!("Python allocations: not hooked ({why}); they reach the malloc hooks");
        INSTALLED.store(true, Ordering::Release);
        return;
    }
    for domain in [DOMAIN_MEM, DOMAIN_OBJ] {
        let next = current(api, domain);
        // The replaced allocator lives as long as the process: hooks may run at any time
        // after this, on any thread.
        let next: &'static MemAllocator = Box::leak(Box::new(next));
        let mut hook = MemAllocator {
            ctx: next as *const MemAllocator as *mut c_void,
            malloc: hooked_malloc,
            calloc: hooked_calloc,
            realloc: hooked_realloc,
            free: hooked_free,
        };
        // SAFETY: called under the GIL, which every MEM/OBJ allocation holds, so no call into
        // the domain is in flight while it is replaced; CPython copies the struct.
        unsafe { (api.mem_set_allocator)(domain, &mut hook) };
    }
    INSTALLED.store(true, Ordering::Release);
    crate::log_debug!("Python allocations: pymalloc domains hooked");
}

fn current(api: &Api, domain: libc::c_int) -> MemAllocator {
    let mut out = std::mem::MaybeUninit::<MemAllocator>::uninit();
    // SAFETY: PyMem_GetAllocator fills the whole struct; it only reads a global.
    unsafe {
        (api.mem_get_allocator)(domain, out.as_mut_ptr());
        out.assume_init()
    }
}

/// Why Python allocations already go to malloc, if they do.
fn pymalloc_absent(api: &Api) -> Option<&'static str> {
    // Only pymalloc sends large requests to malloc (counted there) and serves small ones
    // itself (counted here); `malloc`, `mimalloc` (3.13) and the debug variants do not split
    // that way. (`python -E` ignores the variable; such a process is taken as pymalloc.)
    let setting = std::env::var("PYTHONMALLOC").unwrap_or_default();
    if !setting.is_empty() && setting != "pymalloc" {
        return Some("PYTHONMALLOC selects another allocator than pymalloc");
    }
    // Without pymalloc, the object domain uses the raw domain's functions.
    let (obj, raw) = (current(api, DOMAIN_OBJ), current(api, DOMAIN_RAW));
    (obj.malloc as usize == raw.malloc as usize).then_some("pymalloc is not in use")
}

/// # Safety
/// `ctx` is the leaked `MemAllocator` that `install` put there.
#[inline(always)]
unsafe fn next<'a>(ctx: *mut c_void) -> &'a MemAllocator {
    // SAFETY: per the function's contract.
    unsafe { &*(ctx as *const MemAllocator) }
}

// The fast paths count the bytes first and end in a jump to the allocator they wrap (no
// stack frame, nothing to do after it returns); a sample point or a free of a possibly
// sampled block takes the out-of-line path. Counting before allocating keeps sampling
// unbiased (see `sample::alloc::reaches_sample_point`).

unsafe extern "C" fn hooked_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    if size <= SMALL_REQUEST && reaches_sample_point(size) {
        // SAFETY: forwarding our caller's contract.
        return unsafe { malloc_at_sample_point(ctx, size) };
    }
    // SAFETY: ctx is ours (see `next`); forwarding the caller's arguments.
    let next = unsafe { next(ctx) };
    unsafe { (next.malloc)(next.ctx, size) }
}

#[cold]
#[inline(never)]
unsafe extern "C" fn malloc_at_sample_point(ctx: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: as in hooked_malloc.
    let next = unsafe { next(ctx) };
    let ptr = unsafe { (next.malloc)(next.ctx, size) };
    on_sample_point(ptr, size);
    ptr
}

unsafe extern "C" fn hooked_calloc(ctx: *mut c_void, count: usize, size: usize) -> *mut c_void {
    // SAFETY: as in hooked_malloc.
    let next = unsafe { next(ctx) };
    let ptr = unsafe { (next.calloc)(next.ctx, count, size) };
    match count.checked_mul(size) {
        Some(total) if total <= SMALL_REQUEST && !ptr.is_null() => on_alloc(ptr, total),
        _ => {}
    }
    ptr
}

unsafe extern "C" fn hooked_realloc(ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: as in hooked_malloc.
    let next = unsafe { next(ctx) };
    if !ptr.is_null() {
        // Before the call, as for free: the block may be reused as soon as it is released.
        on_free(ptr);
    }
    // A block pymalloc does not own (a malloc block) is reallocated with `realloc`, whose hook
    // counts it; the countdown then moved, and the bytes must not be counted twice.
    let counted_before = countdown::get();
    let new = unsafe { (next.realloc)(next.ctx, ptr, size) };
    if size <= SMALL_REQUEST && !new.is_null() && countdown::get() == counted_before {
        on_alloc(new, size);
    }
    new
}

unsafe extern "C" fn hooked_free(ctx: *mut c_void, ptr: *mut c_void) {
    if live_heap::maybe_tracked(ptr as u64) {
        // SAFETY: forwarding our caller's contract.
        return unsafe { free_maybe_sampled(ctx, ptr) };
    }
    // SAFETY: as in hooked_malloc.
    let next = unsafe { next(ctx) };
    unsafe { (next.free)(next.ctx, ptr) }
}

#[cold]
#[inline(never)]
unsafe extern "C" fn free_maybe_sampled(ctx: *mut c_void, ptr: *mut c_void) {
    if !ptr.is_null() {
        // Before the real free: the block may be reused as soon as it is released.
        on_free(ptr);
    }
    // SAFETY: as in hooked_malloc.
    let next = unsafe { next(ctx) };
    unsafe { (next.free)(next.ctx, ptr) }
}
