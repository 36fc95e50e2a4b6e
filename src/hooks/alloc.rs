//! The malloc family. Each hook forwards to the next allocator and tells the sampler about
//! the block: frees are reported *before* the real free (the address could be reused by
//! another thread right after), allocations after the real allocation succeeded.
//! `malloc_usable_size` is not interposed: blocks are the next allocator's own.

use crate::real_alloc::{self, arena_alloc, in_arena};
use crate::sample::alloc::{on_alloc, on_free};

use libc::{c_int, c_void, size_t};

#[inline(always)]
fn sampled(ptr: *mut c_void, size: usize) -> *mut c_void {
    if !ptr.is_null() {
        on_alloc(ptr, size);
    }
    ptr
}

#[no_mangle]
pub unsafe extern "C" fn malloc(size: size_t) -> *mut c_void {
    let Some(next) = real_alloc::next() else { return arena_alloc(size, 16) };
    // SAFETY: forwarding to the next allocator with the caller's argument.
    sampled(unsafe { (next.malloc)(size) }, size)
}

#[no_mangle]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    if ptr.is_null() || in_arena(ptr) {
        return;
    }
    on_free(ptr);
    if let Some(next) = real_alloc::next() {
        // SAFETY: ptr came from the next allocator (arena pointers were filtered above).
        unsafe { (next.free)(ptr) }
    }
}

#[no_mangle]
pub unsafe extern "C" fn calloc(count: size_t, size: size_t) -> *mut c_void {
    let Some(next) = real_alloc::next() else {
        // The arena is static and never reused, hence already zeroed.
        return match count.checked_mul(size) {
            Some(total) => arena_alloc(total, 16),
            None => std::ptr::null_mut(),
        };
    };
    // SAFETY: forwarding; the next calloc checks the multiplication itself.
    let ptr = unsafe { (next.calloc)(count, size) };
    sampled(ptr, count.wrapping_mul(size))
}

#[no_mangle]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: size_t) -> *mut c_void {
    let Some(next) = real_alloc::next() else { return arena_realloc(ptr, size) };
    if in_arena(ptr) {
        return move_out_of_arena(next, ptr, size);
    }
    if !ptr.is_null() {
        // The old block is gone after a successful realloc; if it fails the block stays but
        // is no longer tracked, which only under-counts the live heap.
        on_free(ptr);
    }
    // SAFETY: forwarding to the next allocator.
    let new = unsafe { (next.realloc)(ptr, size) };
    sampled(new, size)
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

/// realloc while the next allocator is still being resolved: only arena blocks exist.
fn arena_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    let new = arena_alloc(size, 16);
    if !ptr.is_null() && !new.is_null() && in_arena(ptr) {
        let old = real_alloc::arena_size(ptr).min(size);
        // SAFETY: both blocks are inside the arena and at least `old` bytes long.
        unsafe { std::ptr::copy_nonoverlapping(ptr as *const u8, new as *mut u8, old) };
    }
    new
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
