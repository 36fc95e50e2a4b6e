//! Lock-contention sampling (hot side, called from the lock hooks in `hooks/lock.rs`).
//!
//! Two independent measurements, each sampled so that its totals are unbiased:
//!
//! **Waits** (`lock-acquire`, `lock-acquire-wait`). A blocking acquire first tries the real
//! try-variant; when that succeeds nothing is measured (no clock is read). Only when the lock
//! is taken does the hook read `CLOCK_MONOTONIC` around the real blocking call. Waited time is
//! sampled like allocated bytes are: each thread counts down waited nanoseconds, the distance
//! between two sample points being exponential with mean T (`DD_PROFILING_LOCK_SAMPLE_NS`), so
//! a wait of `w` ns is sampled with probability `p = 1 − exp(−w/T)`. The cold side weighs a
//! sample by `1/p` (count) and `w/p` (time). `lock-acquire` therefore counts the acquisitions
//! that had to wait (including timed waits that gave up with ETIMEDOUT), not every
//! acquisition: an acquisition that got the lock at once costs nothing and is not counted.
//!
//! **Holds** (`lock-release`, `lock-release-hold`). A fixed fraction of all acquisitions of
//! mutexes and rwlocks, contended or not, is followed until its release: each thread counts
//! down acquisitions, the gaps being geometric with mean N
//! (`DD_PROFILING_LOCK_HOLD_SAMPLE_EVERY`), so each acquisition is followed with probability
//! 1/N independently of the others. A followed acquisition stores (lock address, start time)
//! in a small per-thread array; the release finds it there. Capturing a stack costs
//! microseconds, far more than a short critical section, so a followed hold of `h` ns is then
//! recorded with probability `p = 1 − exp(−h/T)` (a second per-thread countdown, over held
//! time, with the same T as waits), and weighs `N/p` releases and `h·N/p` held ns: both
//! estimates stay unbiased, long holds are recorded almost surely, and the uncontended
//! lock/unlock pair stays within a few nanoseconds. The hold is recorded with the releasing
//! stack after the real unlock (so the recording never lengthens the hold others wait for).
//! Semaphores have no owner and are not followed.
//!
//! **Condition variables.** `pthread_cond_wait` releases its mutex and takes it again inside
//! glibc, where no hook sees it. The cond hooks therefore end an open hold sample of the mutex
//! before waiting (recorded with the waiting stack, as a release) and start it again when the
//! wait returns: hold times never include the time spent waiting for the condition, and each
//! condition wait counts as one release. The wait for the mutex inside the condition wait is
//! not measured (it cannot be told apart from the wait for the signal).
//!
//! The fast paths are a global flag and a TLS decrement and compare (acquire), and one
//! global load (release: the number of holds followed in the whole process, nearly always 0);
//! threads inside the profiler pass straight through. The acquisition countdown is the one
//! per-thread word touched on every acquisition: it lives in its own initial-exec TLS slot
//! (one `fs:`-relative instruction) rather than in `thread::ThreadState`, whose access from a
//! shared library goes through `__tls_get_addr` and would cost more than the rest of the
//! hook. Initial-exec TLS is what a preloaded library gets anyway (static TLS block).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::collect::ring::{Header, Kind};
use crate::sample::{draw, stack};
use crate::thread::{self, LOCK_HELD_MAX};

/// Lock profiling is on (set at start-up; until then every hook passes straight through).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Order of the Python lock creations recorded: the ring does not keep the order in which
/// threads wrote their records, and a lock freed and another made at its address within one
/// drain must leave the newer one's name.
static CREATION_SEQUENCE: AtomicU64 = AtomicU64::new(1);
/// Mean waited nanoseconds between two wait samples (T).
static WAIT_INTERVAL_NS: AtomicU64 = AtomicU64::new(100_000);
/// One acquisition in N is followed until its release.
static HOLD_EVERY: AtomicU64 = AtomicU64::new(100);
/// ln(1 − 1/N) as f64 bits, for the geometric draws.
static HOLD_LN_KEEP: AtomicU64 = AtomicU64::new(0);
/// Holds being followed in the process (entries of every thread's array). While it is 0, a
/// release needs no look at its thread's state. Entries of threads that exit holding a lock
/// stay counted: releases then merely take the slower path.
static OPEN_HOLDS: AtomicUsize = AtomicUsize::new(0);

/// What a blocking call ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// The lock is now held.
    Acquired,
    /// A timed wait gave up: the time was waited but nothing was acquired.
    TimedOut,
    /// Anything else (EINTR, EDEADLK, EINVAL…): not a wait worth reporting.
    Failed,
}

/// Called once at start-up (before the library is active) with the validated configuration.
pub fn configure(enabled: bool, wait_interval_ns: u64, hold_every: u64) {
    WAIT_INTERVAL_NS.store(wait_interval_ns.max(1), Ordering::Relaxed);
    HOLD_EVERY.store(hold_every.max(1), Ordering::Relaxed);
    HOLD_LN_KEEP.store(draw::ln_keep(hold_every).to_bits(), Ordering::Relaxed);
    if enabled {
        crate::real_lock::resolve_all();
    }
    ENABLED.store(enabled, Ordering::Release);
}

/// Stops recording (process exit: the final profile has been requested).
pub fn stop() {
    ENABLED.store(false, Ordering::Release);
}

/// Mean waited nanoseconds between wait samples (T), for the cold side's weights.
pub fn wait_interval() -> u64 {
    WAIT_INTERVAL_NS.load(Ordering::Relaxed)
}

#[inline(always)]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Called after every successful acquisition of a mutex or rwlock (when enabled).
#[inline(always)]
pub fn on_acquired(lock: usize) {
    if countdown::subtract_crosses(1) {
        on_hold_sample_point(lock);
    }
}

/// The per-thread acquisition countdown, in initial-exec TLS (see tls_counter.rs).
use crate::tls_counter::lock_acquisitions_left as countdown;

/// False when this thread surely follows no hold: the release needs nothing else. Also false
/// whenever lock profiling never started.
#[inline(always)]
pub fn holds_sampled() -> bool {
    OPEN_HOLDS.load(Ordering::Relaxed) != 0 && this_thread_holds()
}

/// Out of line, so that the compiler cannot hoist the TLS access above the global test.
#[inline(never)]
fn this_thread_holds() -> bool {
    thread::with(|s| s.lock_held_count.get() != 0)
}

/// A blocking acquire whose try-variant failed: times `block` and samples the wait. With
/// `track_hold`, a successful acquisition is then counted for hold sampling.
#[cold]
#[inline(never)]
pub fn contended(lock: usize, track_hold: bool, block: impl FnOnce() -> (libc::c_int, Waited)) -> libc::c_int {
    if thread::with(|s| s.in_profiler.get()) {
        return block().0;
    }
    let start = now_ns();
    let (rc, outcome) = block();
    let waited = now_ns().saturating_sub(start);
    if outcome != Waited::Failed {
        on_waited(lock, waited);
    }
    // After the wait record, so the time spent recording is not part of the hold.
    if outcome == Waited::Acquired && track_hold {
        on_acquired(lock);
    }
    rc
}

/// A release on a thread that follows some hold: closes the one of `lock`, if any, around the
/// real `unlock`.
#[cold]
#[inline(never)]
pub fn release(lock: usize, unlock: impl FnOnce() -> libc::c_int) -> libc::c_int {
    let Some(since) = take_hold(lock) else { return unlock() };
    let held = now_ns().saturating_sub(since);
    let rc = unlock();
    if rc == 0 {
        on_held(lock, held);
    }
    rc
}

/// Before a condition wait releases `mutex`: ends its open hold sample, if any, and records
/// it. Returns whether there was one (then `cond_resume` must follow the wait).
#[cold]
#[inline(never)]
pub fn cond_suspend(mutex: usize) -> bool {
    let Some(since) = take_hold(mutex) else { return false };
    let held = now_ns().saturating_sub(since);
    on_held(mutex, held);
    true
}

/// After the condition wait took `mutex` again: the hold sample goes on from now.
#[cold]
#[inline(never)]
pub fn cond_resume(mutex: usize) {
    open_hold(mutex);
}

// ---------------------------------------------------------------- sampling decisions

#[cold]
#[inline(never)]
fn on_hold_sample_point(lock: usize) {
    let (started, inside) = thread::with(|s| (s.lock_hold_started.replace(true), s.in_profiler.get()));
    let gap = draw_gap();
    if !started {
        // First acquisition on this thread: it is acquisition 1 of the first gap.
        if gap > 1 {
            countdown::set(gap - 1);
            return;
        }
        countdown::set(draw_gap());
    } else {
        countdown::set(gap);
    }
    if enabled() && !inside {
        open_hold(lock);
    }
}

/// Acquisitions until the next followed one: geometric on {1, 2, …} with mean N, i.e. every
/// acquisition is followed with probability 1/N, independently.
fn draw_gap() -> i64 {
    draw::geometric(f64::from_bits(HOLD_LN_KEEP.load(Ordering::Relaxed)))
}

/// Nanoseconds until the next sample point: exponential with mean T.
fn draw_time_interval() -> i64 {
    let mean = WAIT_INTERVAL_NS.load(Ordering::Relaxed) as f64;
    (draw::exponential(mean) as i64).max(1)
}

/// Counts `ns` down a per-thread exponential countdown (`left`, `started`); true when it
/// crossed a sample point, which happens with probability 1 − exp(−ns/T) whatever came before.
fn crosses(ns: u64, field: impl Fn(&thread::ThreadState) -> (&std::cell::Cell<i64>, &std::cell::Cell<bool>)) -> bool {
    thread::with(|s| {
        let (left, started) = field(s);
        if !started.replace(true) {
            left.set(draw_time_interval());
        }
        let rest = left.get() - ns.min(i64::MAX as u64) as i64;
        if rest > 0 {
            left.set(rest);
            return false;
        }
        left.set(draw_time_interval());
        true
    })
}

fn on_waited(lock: usize, waited: u64) {
    if crosses(waited, |s| (&s.lock_wait_left, &s.lock_wait_started)) {
        record(lock, waited, 0);
    }
}

/// A followed hold ended after `held` ns.
fn on_held(lock: usize, held: u64) {
    if crosses(held, |s| (&s.lock_hold_left, &s.lock_hold_time_started)) {
        record(lock, held, HOLD_EVERY.load(Ordering::Relaxed));
    }
}

// ---------------------------------------------------------------- open hold samples

/// Starts following a hold of `lock` from now. When the array is full (stale entries: a lock
/// released where no hook sees it, or deep nesting), the oldest entry makes room.
fn open_hold(lock: usize) {
    let since = now_ns();
    thread::with(|s| {
        let mut n = s.lock_held_count.get() as usize;
        if n >= LOCK_HELD_MAX {
            for i in 1..LOCK_HELD_MAX {
                s.lock_held_addr[i - 1].set(s.lock_held_addr[i].get());
                s.lock_held_since[i - 1].set(s.lock_held_since[i].get());
            }
            n = LOCK_HELD_MAX - 1;
        } else {
            OPEN_HOLDS.fetch_add(1, Ordering::Relaxed);
        }
        s.lock_held_addr[n].set(lock as u64);
        s.lock_held_since[n].set(since);
        s.lock_held_count.set(n as u8 + 1);
    });
}

/// Removes the newest open hold of `lock` (locks are mostly released in reverse order, and a
/// recursive mutex may appear twice) and returns its start time.
fn take_hold(lock: usize) -> Option<u64> {
    thread::with(|s| {
        if s.in_profiler.get() {
            return None;
        }
        let n = (s.lock_held_count.get() as usize).min(LOCK_HELD_MAX);
        let i = (0..n).rev().find(|&i| s.lock_held_addr[i].get() == lock as u64)?;
        let since = s.lock_held_since[i].get();
        for j in i + 1..n {
            s.lock_held_addr[j - 1].set(s.lock_held_addr[j].get());
            s.lock_held_since[j - 1].set(s.lock_held_since[j].get());
        }
        s.lock_held_count.set(n as u8 - 1);
        OPEN_HOLDS.fetch_sub(1, Ordering::Relaxed);
        Some(since)
    })
}

// ---------------------------------------------------------------- records

/// One lock record: values [ns waited or held, N for a release / 0 for an acquire],
/// extra[0] = the lock's address (the cold side derives p from ns and T). errno is kept as
/// the program left it.
fn record(lock: usize, ns: u64, every: u64) {
    if enabled() {
        stack::record_here(Kind::Lock, [ns.min(i64::MAX as u64) as i64, every as i64], lock as u64);
    }
}

/// A semaphore was initialised. In a Python process that is mostly a Python lock being
/// created (`threading.Lock`, `RLock`, the locks inside `Condition`, `Semaphore`, `Queue`):
/// its Python stack is recorded, from which the cold side names the lock (`file.py:line variable`).
/// Nothing is recorded outside Python or without Python frames.
pub fn on_created(lock: usize) {
    if !crate::python::active() {
        return;
    }
    let Some(_inside) = thread::ReentrancyGuard::enter() else { return };
    // SAFETY: __errno_location returns this thread's errno slot.
    let errno = unsafe { *libc::__errno_location() };
    if let Some(slot) = crate::collect::claim_patiently() {
        let n = stack::capture_python_only(&slot);
        if n > 0 {
            let tid = thread::with(|s| s.tid.get());
            let tid = if tid == 0 { thread::gettid() } else { tid };
            let site = (slot.frame(0), slot.frame(1));
            let seq = CREATION_SEQUENCE.fetch_add(1, Ordering::Relaxed) as i64;
            let header = Header { kind: Kind::LockInit, tid, values: [seq, 0], extra: [lock as u64, 0], native_len: 0 };
            slot.commit(header, n);
            if first_time_seen(site) {
                // A site not seen before is often module-level code, which runs once and
                // whose code object is freed when the import ends: drained at the next
                // 100 ms tick (or later, in a forked child whose exporter is deferred), its
                // frames could no longer be read and the lock would be named after its
                // importer. The exporter drains it now instead. Sites seen before (a lock
                // made per request) cost nothing more.
                crate::collect::drain_soon();
            }
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Lock-creation sites (innermost Python frame: code object and instruction) seen lately,
/// direct-mapped; a collision only costs one more early drain.
static SITES_SEEN: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

/// True the first time `site` is seen (as far as the table remembers).
fn first_time_seen(site: (u64, u64)) -> bool {
    let key = (site.0 ^ site.1.rotate_left(32)) | 1;
    let entry = &SITES_SEEN[(key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize];
    entry.swap(key, Ordering::Relaxed) != key
}

#[inline]
fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer; CLOCK_MONOTONIC is always available (vDSO).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_geometric_with_the_configured_mean() {
        // Draws with an explicit N (the static is shared with other tests).
        let gap = |every: u64| draw::geometric(draw::ln_keep(every));
        for every in [1u64, 2, 10, 100] {
            let n = 200_000;
            let sum: i64 = (0..n).map(|_| gap(every)).sum();
            let mean = sum as f64 / n as f64;
            assert!((mean - every as f64).abs() <= 0.03 * every as f64, "N={every}: mean gap {mean}");
        }
        assert!((0..1000).all(|_| gap(1) == 1));
    }

    #[test]
    fn countdown_is_per_thread() {
        countdown::set(2);
        std::thread::spawn(|| {
            assert_eq!(countdown::get(), 0, "a new thread starts at 0");
            assert!(countdown::subtract_crosses(1));
            assert_eq!(countdown::get(), -1);
        })
        .join()
        .unwrap();
        assert!(!countdown::subtract_crosses(1));
        assert!(countdown::subtract_crosses(1));
        assert_eq!(countdown::get(), 0);
    }

    #[test]
    fn hold_array_is_lifo_and_evicts_the_oldest() {
        std::thread::spawn(|| {
            for lock in 1..=LOCK_HELD_MAX + 1 {
                open_hold(lock);
            }
            assert_eq!(thread::with(|s| s.lock_held_count.get()) as usize, LOCK_HELD_MAX);
            assert!(take_hold(1).is_none(), "the oldest entry made room");
            assert!(take_hold(LOCK_HELD_MAX + 1).is_some());
            open_hold(7);
            assert!(take_hold(7).is_some());
            assert!(take_hold(7).is_none());
            for lock in 2..=LOCK_HELD_MAX {
                assert!(take_hold(lock).is_some(), "lock {lock}");
            }
            assert!(!holds_sampled());
        })
        .join()
        .unwrap();
    }
}
