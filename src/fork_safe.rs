//! Cold-side state that a forked child may keep.
//!
//! Some caches are worth inheriting (symbols, unwind tables, live sampled blocks), so they
//! live in globals behind spin locks rather than on the exporter thread. In the child only the
//! forking thread exists: a lock that was free at the fork means the state is consistent; a
//! lock held by the parent's exporter means it may be half updated, and it is dropped (leaked,
//! never walked).

/// Keeps `state` in a forked child if it was consistent at the fork; otherwise resets it to
/// `None`. Returns whether it was kept. Call only from the child's fork handler.
pub fn keep_if_consistent<T>(state: &crate::yield_lock::Lock<Option<T>>) -> bool {
    // Only read: a lock word written here would cost the child a page copy.
    if !state.is_locked() {
        return true;
    }
    // SAFETY: the lock's holder was a parent thread, which does not exist in the child.
    unsafe { state.force_unlock() };
    std::mem::forget(state.lock().take());
    false
}

/// Empties `state` in a forked child, whatever it held: its lock is released if a parent
/// thread held it at the fork, and the parent's contents are leaked (never walked or freed:
/// they may be half updated, and the allocator state behind them is the parent's).
pub fn forget_contents<T: Default>(state: &crate::yield_lock::Lock<T>) {
    // SAFETY: only the forking thread exists in the child; a holder of the lock at the fork
    // was another thread of the parent, gone here.
    unsafe { state.force_unlock() };
    std::mem::forget(std::mem::take(&mut *state.lock()));
}

/// Empties the vector `state` in a forked child. If it was consistent at the fork (its lock
/// free), its buffer is kept: the child's next push writes one page of it instead of making
/// a new allocation (several pages of allocator state, each a page fault in a fork-heavy
/// program). Otherwise as [`forget_contents`]. For plain-data elements (nothing to drop).
pub fn empty_keeping_capacity<T: Copy>(state: &crate::yield_lock::Lock<Vec<T>>) {
    if state.is_locked() {
        return forget_contents(state);
    }
    let mut v = state.lock();
    if !v.is_empty() {
        v.clear();
    }
}

/// Keeps `state` in a forked child unless a vanished parent thread held it at the fork (then
/// as [`forget_contents`]). Only reads when it is kept: no page written.
pub fn forget_if_locked<T: Default>(state: &crate::yield_lock::Lock<T>) {
    if state.is_locked() {
        forget_contents(state);
    }
}

/// The dynamic loader's own lock (taken by `dl_iterate_phdr`, `dlopen`, `dladdr`) is not
/// reset in a forked child: a fork while one of the library's threads is inside the loader
/// leaves the child a lock nobody will release, and its first `dlopen` (CPython importing an
/// extension module) hangs for good. So the library's threads use the loader only inside
/// `with_loader`, and the fork prepare handler waits until none is inside
/// (`hold_loader_for_fork`), released again on both sides after the fork.
static LOADER_IN_USE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn take_loader() {
    use std::sync::atomic::Ordering;
    while LOADER_IN_USE.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}

/// Runs `f`, which calls into the dynamic loader, where no fork can happen. Not nested.
pub fn with_loader<R>(f: impl FnOnce() -> R) -> R {
    take_loader();
    let result = f();
    LOADER_IN_USE.store(false, std::sync::atomic::Ordering::Release);
    result
}

/// In the fork prepare handler: waits until no library thread is inside the loader, and keeps
/// them out until `release_loader_after_fork`.
pub fn hold_loader_for_fork() {
    take_loader();
}

/// In the parent and child fork handlers.
pub fn release_loader_after_fork() {
    LOADER_IN_USE.store(false, std::sync::atomic::Ordering::Release);
}
