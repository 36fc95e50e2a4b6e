//! Zero-initialised arrays in their own anonymous mapping, marked `MADV_WIPEONFORK`.
//!
//! The sample ring is the largest thing the library maps (4096 slots of ~1 KiB). A forked
//! child drops the parent's unexported samples anyway, so copying the ring's page tables at
//! every fork (and copying pages on write afterwards, in the child and in the parent) is pure
//! cost: a few hundred microseconds a fork. With `MADV_WIPEONFORK` the kernel gives the child
//! the mapping back as fresh zero pages instead, and all-zero is a valid empty ring. Pages
//! are also only backed once written, so an idle ring costs no memory.

use std::marker::PhantomData;
use std::ops::Deref;

/// Types whose all-zero bit pattern is a valid value.
///
/// # Safety
/// Implement only for types where zeroed memory is a valid, initialised value.
pub unsafe trait Zeroable {}
// SAFETY: an atomic integer is a plain integer; zero is a valid value.
unsafe impl Zeroable for std::sync::atomic::AtomicU8 {}
// SAFETY: as above.
unsafe impl Zeroable for std::sync::atomic::AtomicU64 {}

pub struct WipedOnFork<T: Zeroable> {
    ptr: *mut T,
    len: usize,
    /// Whether the kernel accepted `MADV_WIPEONFORK` (Linux ≥ 4.14); if not, a child sees
    /// the parent's contents as with any other memory.
    wiped: bool,
    _owns: PhantomData<T>,
}

// SAFETY: the mapping is owned by this value and only reachable through `&[T]`; `T` values
// are shared across threads only if `T: Sync` (the atomics are).
unsafe impl<T: Zeroable + Sync> Sync for WipedOnFork<T> {}
// SAFETY: nothing ties the mapping to the creating thread.
unsafe impl<T: Zeroable + Send> Send for WipedOnFork<T> {}

impl<T: Zeroable> WipedOnFork<T> {
    /// `len` zeroed values, or None if the mapping could not be made.
    pub fn new(len: usize) -> Option<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?.max(1);
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: ptr/bytes is the mapping just made.
        let wiped = unsafe { libc::madvise(ptr, bytes, libc::MADV_WIPEONFORK) } == 0;
        Some(WipedOnFork { ptr: ptr.cast(), len, wiped, _owns: PhantomData })
    }

    /// Whether a forked child gets this memory back zeroed.
    pub fn wiped_on_fork(&self) -> bool {
        self.wiped
    }
}

impl<T: Zeroable> Deref for WipedOnFork<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the mapping holds `len` values of T, zero-initialised by the kernel (valid
        // by `Zeroable`), page-aligned, and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Zeroable> Drop for WipedOnFork<T> {
    fn drop(&mut self) {
        let bytes = (self.len * std::mem::size_of::<T>()).max(1);
        // SAFETY: unmapping our own mapping; no reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr.cast(), bytes) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn a_forked_child_sees_zeroes() {
        let region = WipedOnFork::<AtomicU64>::new(10_000).unwrap();
        assert!(region.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        region[9_999].store(7, Ordering::Relaxed);
        if !region.wiped_on_fork() {
            return; // old kernel: nothing to check
        }
        // SAFETY: the child only reads memory and calls _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = if region[9_999].load(Ordering::Relaxed) == 0 { 0 } else { 1 };
            // SAFETY: leaving the child without running the test harness's exit code.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child saw the parent's data");
        assert_eq!(region[9_999].load(Ordering::Relaxed), 7, "the parent keeps its data");
    }
}
