//! State shared by a process and every child it forks (and their children): one anonymous
//! `MAP_SHARED` page, mapped at start-up and inherited by `fork` (an `exec`ed program maps its
//! own).
//!
//! It carries what one process learned that all of them should know, so that a program which
//! forks 500 workers behaves like one program: the first upload warning is printed once for
//! the whole family, not once per worker. Only atomics live here: several processes update
//! the page at once, and none may ever wait for another.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// The shared page's layout. Zeroed by the kernel, so every field starts false.
#[repr(C)]
pub struct Family {
    /// A process of the family printed an upload warning: the others log theirs at debug level.
    pub upload_warned: AtomicBool,
}

static PAGE: AtomicPtr<Family> = AtomicPtr::new(std::ptr::null_mut());

/// Maps the page (once, at start-up, before the program can fork). Without it (mmap failed)
/// every process simply acts alone.
pub fn init() {
    if !PAGE.load(Ordering::Acquire).is_null() {
        return;
    }
    if let Some(p) = map_shared(std::mem::size_of::<Family>()) {
        PAGE.store(p.cast(), Ordering::Release);
    }
}

/// Zero-filled memory of at least `len` bytes, page aligned, that a process shares with the
/// children it forks from now on (`MAP_SHARED`); None if it cannot be mapped.
pub fn map_shared(len: usize) -> Option<*mut u8> {
    // SAFETY: a new anonymous shared mapping; no existing memory is affected.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), len.max(1), libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0)
    };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

/// The family's page, or None if it could not be mapped.
pub fn get() -> Option<&'static Family> {
    let p = PAGE.load(Ordering::Acquire);
    // SAFETY: a non-null PAGE points to a page-sized, zero-initialised mapping that is never
    // unmapped, and `Family` holds only atomics (valid for any bit pattern, zero included).
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Marks `flag` set for the whole family; returns whether it was set already (by this or
/// another process). Without the page, every process counts as the first.
pub fn set_once(flag: impl Fn(&Family) -> &AtomicBool) -> bool {
    get().is_some_and(|f| flag(f).swap(true, Ordering::AcqRel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_set_in_a_forked_child_is_seen_by_its_parent() {
        init();
        let family = get().expect("the family page maps");
        assert!(!family.upload_warned.load(Ordering::Acquire));
        // SAFETY: the child only touches atomics and leaves with _exit (no Rust runtime work).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let first = set_once(|f| &f.upload_warned);
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(if first { 1 } else { 0 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(libc::WEXITSTATUS(status), 0, "the child saw the flag set before it set it");
        assert!(set_once(|f| &f.upload_warned), "the parent does not see the child's flag");
    }
}
