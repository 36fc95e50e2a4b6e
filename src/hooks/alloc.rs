//! The malloc family. Each hook forwards to the next allocator and tells the sampler about
//! the block: frees are reported *before* the real free (the address could be reused by
//! another thread right after), allocations after the real allocation succeeded.
//! `malloc_usable_size` is interposed only to answer for the library's own blocks (own_heap.rs)
//! and bootstrap-arena blocks; every other block is the next allocator's, and so is the answer.

use crate::collect::live_heap;
use crate::own_heap;
use crate::real_alloc::{self, arena_alloc, in_arena};
use crate::sample::alloc::{on_alloc, on_free, on_sample_point, reaches_sample_point};

use libc::{c_int, c_void, size_t};

// malloc, calloc, realloc and free are the hot ones. Their fast path counts the bytes first
// (see `reaches_sample_point`) and then *jumps* to the next allocator: no stack frame, no
// "resolved yet?" test (real_alloc's function pointers start out at bootstrap functions), and
// the next allocator returns straight to our caller. Only a sample point, an arena block or a
// maybe-tracked free takes the out-of-line path; those functions are `extern "C"` (they
// cannot unwind), so calling them needs no landing pad and stays a tail jump too.

#[inline(always)]
fn sampled(ptr: *mut c_void, size: usize) -> *mut c_void {
    if !ptr.is_null() {
        on_alloc(ptr, size);
    }
    ptr
}

/// The bytes of this allocation reached the sample point (counted already): record the block.
#[inline(always)]
fn at_sample_point(ptr: *mut c_void, size: usize) -> *mut c_void {
    // Arena blocks exist only on the thread resolving the next allocator, before profiling
    // starts; the counter stays crossed, so that thread's first real block places the point.
    if !in_arena(ptr) {
        on_sample_point(ptr, size);
    }
    ptr
}

#[no_mangle]
pub unsafe extern "C" fn malloc(size: size_t) -> *mut c_void {
    if reaches_sample_point(size) {
        return malloc_at_sample_point(size);
    }
    // SAFETY: forwarding to the next allocator (or its bootstrap stand-in) with the caller's argument.
    unsafe { real_alloc::malloc_fn()(size) }
}

#[cold]
#[inline(never)]
extern "C" fn malloc_at_sample_point(size: size_t) -> *mut c_void {
    // The library's own threads always come here (their countdown is kept far below zero).
    if own_heap::on_own_thread() {
        if let Some(block) = own_heap::c_malloc(size) {
            return block;
        }
        // SAFETY: as in `malloc` (too big for the own heap's classes).
        return unsafe { real_alloc::malloc_fn()(size) };
    }
    // SAFETY: as in `malloc`.
    at_sample_point(unsafe { real_alloc::malloc_fn()(size) }, size)
}

#[no_mangle]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    // Arena blocks are pinned in the filter (see real_alloc::arena_alloc): one test catches
    // sampled blocks and arena blocks alike.
    if live_heap::maybe_tracked(ptr as u64) {
        return free_slow(ptr);
    }
    // SAFETY: ptr came from the next allocator (arena blocks are pinned, so they took the
    // branch above) or is null, which free accepts.
    unsafe { real_alloc::free_fn()(ptr) }
}

#[cold]
#[inline(never)]
extern "C" fn free_slow(ptr: *mut c_void) {
    if ptr.is_null() || in_arena(ptr) {
        return;
    }
    if own_heap::owns(ptr) {
        // SAFETY: a C block of the library's heap (pinned in the filter, so it came here),
        // which the caller frees.
        return unsafe { own_heap::c_free(ptr) };
    }
    on_free(ptr);
    // SAFETY: as in `free`.
    unsafe { real_alloc::free_fn()(ptr) }
}

#[no_mangle]
pub unsafe extern "C" fn calloc(count: size_t, size: size_t) -> *mut c_void {
    if reaches_sample_point(count.wrapping_mul(size)) {
        return calloc_at_sample_point(count, size);
    }
    // SAFETY: forwarding; the next calloc checks the multiplication itself.
    unsafe { real_alloc::calloc_fn()(count, size) }
}

#[cold]
#[inline(never)]
extern "C" fn calloc_at_sample_point(count: size_t, size: size_t) -> *mut c_void {
    if own_heap::on_own_thread() {
        if let Some(block) = count.checked_mul(size).and_then(own_heap::c_malloc) {
            if !block.is_null() {
                // SAFETY: the block has at least count * size bytes.
                unsafe { std::ptr::write_bytes(block.cast::<u8>(), 0, count * size) };
            }
            return block;
        }
    }
    // SAFETY: as in `calloc`.
    at_sample_point(unsafe { real_alloc::calloc_fn()(count, size) }, count.wrapping_mul(size))
}

#[no_mangle]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: size_t) -> *mut c_void {
    // As in `free`: one filter test catches sampled and arena blocks.
    if live_heap::maybe_tracked(ptr as u64) {
        return realloc_slow(ptr, size);
    }
    if reaches_sample_point(size) {
        return realloc_at_sample_point(ptr, size);
    }
    // SAFETY: forwarding to the next allocator; ptr is not an arena block (those are pinned).
    unsafe { real_alloc::realloc_fn()(ptr, size) }
}

#[cold]
#[inline(never)]
extern "C" fn realloc_slow(ptr: *mut c_void, size: size_t) -> *mut c_void {
    if in_arena(ptr) {
        return realloc_arena_block(ptr, size);
    }
    if own_heap::owns(ptr) {
        return realloc_own_block(ptr, size);
    }
    if !ptr.is_null() {
        // The old block is gone after a successful realloc; if it fails the block stays but
        // is no longer tracked, which only under-counts the live heap.
        on_free(ptr);
    }
    if reaches_sample_point(size) {
        return realloc_at_sample_point(ptr, size);
    }
    // SAFETY: forwarding to the next allocator; ptr is not an arena block.
    unsafe { real_alloc::realloc_fn()(ptr, size) }
}

#[cold]
#[inline(never)]
extern "C" fn realloc_at_sample_point(ptr: *mut c_void, size: size_t) -> *mut c_void {
    if ptr.is_null() && own_heap::on_own_thread() {
        return malloc_at_sample_point(size);
    }
    // SAFETY: as in `realloc`.
    at_sample_point(unsafe { real_alloc::realloc_fn()(ptr, size) }, size)
}

/// realloc of a C block of the library's own heap (made on one of its threads): moved to a new
/// block of the right size; `realloc(p, 0)` frees it and returns null, as glibc does.
fn realloc_own_block(ptr: *mut c_void, size: size_t) -> *mut c_void {
    if size == 0 {
        // SAFETY: ptr is a live own block, which realloc(p, 0) frees.
        unsafe { own_heap::c_free(ptr) };
        return std::ptr::null_mut();
    }
    // On a program thread (a block made by one of ours, handed over) the new block is the
    // program's: through the hook, so that it is sampled like any other.
    let own = if own_heap::on_own_thread() { own_heap::c_malloc(size) } else { None };
    let moved = match own {
        Some(block) => block,
        // SAFETY: malloc's contract; the hook forwards to the next allocator.
        None => unsafe { malloc(size) },
    };
    if !moved.is_null() {
        // SAFETY: ptr is live with `c_usable_size` bytes; moved has at least `size`.
        unsafe {
            let keep = own_heap::c_usable_size(ptr).min(size);
            std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), moved.cast::<u8>(), keep);
            own_heap::c_free(ptr);
        }
    }
    moved
}

/// realloc of a bootstrap-arena block: copied into a real block once the next allocator is
/// known, into another arena block while it is still being resolved on this thread.
fn realloc_arena_block(ptr: *mut c_void, size: size_t) -> *mut c_void {
    match real_alloc::next() {
        Some(next) => move_out_of_arena(next, ptr, size),
        None => real_alloc::arena_realloc(ptr, size),
    }
}

#[no_mangle]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, count: size_t, size: size_t) -> *mut c_void {
    let Some(total) = count.checked_mul(size) else {
        // SAFETY: errno location is valid for this thread.
        unsafe { *libc::__errno_location() = libc::ENOMEM };
        return std::ptr::null_mut();
    };
    // SAFETY: same contract as realloc.
    unsafe { realloc(ptr, total) }
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: size_t, size: size_t) -> c_int {
    let Some(next) = real_alloc::next() else {
        let ptr = arena_alloc(size, align);
        if ptr.is_null() {
            return libc::ENOMEM;
        }
        // SAFETY: the caller passes a valid out-pointer.
        unsafe { *out = ptr };
        return 0;
    };
    // SAFETY: forwarding; out is the caller's.
    let rc = unsafe { (next.posix_memalign)(out, align, size) };
    if rc == 0 {
        // SAFETY: on success the next allocator wrote a valid pointer to *out.
        sampled(unsafe { *out }, size);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: size_t, size: size_t) -> *mut c_void {
    match real_alloc::next() {
        // SAFETY: forwarding.
        Some(next) => sampled(unsafe { aligned_via(next.aligned_alloc, next, align, size) }, size),
        None => arena_alloc(size, align),
    }
}

#[no_mangle]
pub unsafe extern "C" fn memalign(align: size_t, size: size_t) -> *mut c_void {
    match real_alloc::next() {
        // SAFETY: forwarding.
        Some(next) => sampled(unsafe { aligned_via(next.memalign, next, align, size) }, size),
        None => arena_alloc(size, align),
    }
}

#[no_mangle]
pub unsafe extern "C" fn valloc(size: size_t) -> *mut c_void {
    match real_alloc::next() {
        Some(next) => match next.valloc {
            // SAFETY: forwarding.
            Some(f) => sampled(unsafe { f(size) }, size),
            // SAFETY: same contract, page alignment.
            None => unsafe { memalign(page_size(), size) },
        },
        None => arena_alloc(size, page_size()),
    }
}

#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: size_t) -> *mut c_void {
    let page = page_size();
    match real_alloc::next() {
        Some(next) => match next.pvalloc {
            // SAFETY: forwarding.
            Some(f) => sampled(unsafe { f(size) }, size.next_multiple_of(page)),
            // SAFETY: same contract.
            None => unsafe { memalign(page, size.next_multiple_of(page)) },
        },
        None => arena_alloc(size.next_multiple_of(page), page),
    }
}

/// # Safety
/// Forwards to `f` (or posix_memalign when the next allocator lacks `f`).
unsafe fn aligned_via(f: Option<real_alloc::AlignedFn>, next: &real_alloc::Allocator, align: usize, size: usize) -> *mut c_void {
    if let Some(f) = f {
        // SAFETY: forwarding to the next allocator.
        return unsafe { f(align, size) };
    }
    let mut out = std::ptr::null_mut();
    // SAFETY: out is a valid out-pointer.
    match unsafe { (next.posix_memalign)(&mut out, align, size) } {
        0 => out,
        rc => {
            // SAFETY: errno location is valid for this thread.
            unsafe { *libc::__errno_location() = rc };
            std::ptr::null_mut()
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// realloc of an arena block once the real allocator is known: copy it into a real block.
fn move_out_of_arena(next: &real_alloc::Allocator, ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarding to the next allocator.
    let new = unsafe { (next.malloc)(size) };
    if !new.is_null() {
        let old = real_alloc::arena_size(ptr).min(size);
        // SAFETY: `ptr` is an arena block of at least `old` bytes; `new` has `size` ≥ old.
        unsafe { std::ptr::copy_nonoverlapping(ptr as *const u8, new as *mut u8, old) };
    }
    sampled(new, size)
}

#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> size_t {
    if ptr.is_null() {
        return 0;
    }
    if own_heap::owns(ptr) {
        // SAFETY: a live C block of the library's heap (the caller's contract: ptr is live).
        return unsafe { own_heap::c_usable_size(ptr) };
    }
    if in_arena(ptr) {
        return real_alloc::arena_size(ptr);
    }
    match real_alloc::next().and_then(|next| next.malloc_usable_size) {
        // SAFETY: forwarding; ptr is a block of the next allocator.
        Some(f) => unsafe { f(ptr) },
        None => 0,
    }
}
