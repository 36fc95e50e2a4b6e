//! One CPU-clock timer per thread (`timer_create` on the thread's own CPU clock, delivered
//! with `SIGEV_THREAD_ID` to that very thread), so every thread is sampled in proportion to
//! the CPU it burns. `setitimer(ITIMER_PROF)` would instead hit whichever thread happens to
//! run when the process-wide clock fires, which biases the profile.
//!
//! A registry of live timers lets the library stop them all at once (exit, or when the
//! program takes SIGPROF for itself). It is a spin lock so it can be force-reset in a forked
//! child, where its holder may not exist.

use std::sync::atomic::{AtomicBool, Ordering};

/// A raw `timer_t`, stored as an integer so the registry is `Send`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerId(usize);

#[derive(Clone, Copy)]
struct Entry {
    tid: i32,
    timer: TimerId,
}

static REGISTRY: crate::yield_lock::Lock<Vec<Entry>> = crate::yield_lock::Lock::new(Vec::new());

/// True while CPU sampling is wanted; new threads check it before arming a timer.
pub static CPU_TIMERS_ENABLED: AtomicBool = AtomicBool::new(false);

/// Arms a timer on the calling thread's CPU clock that sends `signal` to this thread every
/// `interval_ns` of its CPU time. Called on the thread itself, never in a signal handler.
pub fn start_for_current_thread(tid: i32, signal: i32, interval_ns: u64) -> Option<TimerId> {
    if !CPU_TIMERS_ENABLED.load(Ordering::Acquire) {
        return None;
    }
    // SAFETY: sigevent is plain data; zeroed is a valid starting value.
    let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
    event.sigev_notify = libc::SIGEV_THREAD_ID;
    event.sigev_signo = signal;
    event.sigev_notify_thread_id = tid;
    let mut timer: libc::timer_t = std::ptr::null_mut();
    // SAFETY: event and timer are valid pointers for the call.
    if unsafe { libc::timer_create(libc::CLOCK_THREAD_CPUTIME_ID, &mut event, &mut timer) } != 0 {
        return None;
    }
    let period = libc::timespec { tv_sec: (interval_ns / 1_000_000_000) as i64, tv_nsec: (interval_ns % 1_000_000_000) as i64 };
    let spec = libc::itimerspec { it_interval: period, it_value: period };
    // SAFETY: timer was just created; spec is valid.
    if unsafe { libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()) } != 0 {
        // SAFETY: timer is ours and not yet shared.
        unsafe { libc::timer_delete(timer) };
        return None;
    }
    let id = TimerId(timer as usize);
    REGISTRY.lock().push(Entry { tid, timer: id });
    Some(id)
}

/// Deletes the timer of thread `tid`, if it has one (thread exit).
pub fn stop_for_thread(tid: i32) {
    let removed = {
        let mut registry = REGISTRY.lock();
        registry.iter().position(|e| e.tid == tid).map(|i| registry.swap_remove(i))
    };
    if let Some(entry) = removed {
        delete(entry.timer);
    }
}

/// Stops every timer and keeps new threads from arming one.
pub fn stop_all() {
    CPU_TIMERS_ENABLED.store(false, Ordering::Release);
    // Drained in place, not taken: freeing the buffer at a forked child's exit would be one
    // more page written (the allocator's), for memory the kernel is about to take back anyway.
    for entry in REGISTRY.lock().drain(..) {
        delete(entry.timer);
    }
}

fn delete(timer: TimerId) {
    // SAFETY: the id came from timer_create and was removed from the registry, so it is
    // deleted exactly once.
    unsafe { libc::timer_delete(timer.0 as libc::timer_t) };
}

/// In a forked child: timers are not inherited, and the registry lock may have been held by
/// a thread that does not exist here. Forget the parent's entries without deleting them
/// (their ids mean nothing in the child).
pub fn reset_after_fork() {
    crate::fork_safe::empty_keeping_capacity(&REGISTRY);
}
