//! The library's own locks: spin locks that yield the CPU while they wait.
//!
//! They guard cold-side state and the thread registries touched at thread start and exit,
//! never anything a signal handler needs. A plain spin lock is dangerous in someone else's
//! process: when its holder is preempted, every waiter burns whole time slices (seen here as
//! hundreds of milliseconds lost by a program starting 500 threads on 2 cores). Yielding
//! lets the holder run. They stay spin locks (not futex mutexes) because a forked child must
//! be able to release a lock its parent's vanished thread held (see fork_safe.rs).

/// Waits by giving the CPU away, so a preempted holder can finish.
pub struct YieldToHolder;

impl spin::relax::RelaxStrategy for YieldToHolder {
    #[inline]
    fn relax() {
        // SAFETY: sched_yield has no preconditions and is async-signal-safe.
        unsafe { libc::sched_yield() };
    }
}

pub type Lock<T> = spin::mutex::Mutex<T, YieldToHolder>;
pub type LockGuard<'a, T> = spin::mutex::MutexGuard<'a, T, YieldToHolder>;
