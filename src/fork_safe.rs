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
