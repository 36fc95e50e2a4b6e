//! The profiler's own threads (exporter, wall sampler): when they start.
//!
//! A new process (the library's constructor) starts the exporter thread only; the exporter
//! waits a few milliseconds before its start-up work and then starts the wall sampler
//! (`start_threads`, exporter.rs): a helper exec'd by a shell that lives a millisecond pays
//! for one thread and none of the start-up work (bench `exec` row). The sampling itself
//! needs no thread: CPU samples go to the ring, wall time is counted from each thread's
//! registration, so neither loses anything by the wait.
//!
//! A forked child of a fork-heavy program starts them late, or never.
//! The children of fork-heavy programs mostly live for a few milliseconds: a shell's
//! subshell, a `fork` + `_exit`, a worker that answers one request. Starting two threads at
//! the fork, handing the final export to one of them at exit and having the kernel tear them
//! down again cost a child far more than its profile does (≈ 1.5 ms against ≈ 0.2 ms for the
//! bare fork + wait on this machine). So when the parent forked less than `BURST_GAP_NS`
//! before (the child's threads start at once otherwise), the child keeps
//! its CPU timer (its samples go to the ring, which needs no thread) and defers the threads:
//! - the child exits first: its final export runs right on the exiting thread
//!   (`take_for_exit`), and no thread was ever started;
//! - it creates a thread of its own: ours start first (`start_now`, from the
//!   `pthread_create` hook, an ordinary calling context);
//! - it records an allocation or lock sample after living `MIN_AGE_NS`, or while the ring is
//!   filling up (`start_if_due`, from `collect::claim_patiently`), or makes a Python lock at
//!   a site not seen before (`collect::drain_soon`: module-level code, whose code object is
//!   freed once its import ends, must be read at once to name the lock).
//!
//! Until then periodic exports wait, and so do wall samples: a deferred child that does
//! nothing the hooks see (no sampled allocation, lock or thread), e.g. one that sleeps, has
//! no wall samples (a signal could reach it, but the wall sampler never interrupts a blocked
//! thread's system call, and a signal handler cannot start a thread). The triggers
//! run on the program's own thread, never in a signal handler; before the threads exist the
//! child has a single thread, so any lock `pthread_create` takes is either free or held by
//! this very thread, and glibc's loader locks are recursive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;

/// This module's state, on one page: a forked child writes it, and every page a child
/// writes costs it a page fault.
struct State {
    /// Set in a forked child until its threads start (or its final export took over).
    deferred: AtomicBool,
    /// Whether the fork in progress follows the previous one within `BURST_GAP_NS`. glibc runs
    /// the prepare and child handlers of one fork under its atfork lock, so one flag suffices.
    in_burst: AtomicBool,
    /// When the child was forked (monotonic ns).
    forked_at_ns: AtomicU64,
    /// What the deferred start needs; set before `deferred`, read after it.
    wall_interval_ns: AtomicU64,
    /// When this process last forked (monotonic ns; 0 = never).
    last_fork_ns: AtomicU64,
}

static STATE: State = State {
    deferred: AtomicBool::new(false),
    in_burst: AtomicBool::new(false),
    forked_at_ns: AtomicU64::new(0),
    wall_interval_ns: AtomicU64::new(0),
    last_fork_ns: AtomicU64::new(0),
};

/// Past this age a child counts as long-lived: one exporter drain interval.
const MIN_AGE_NS: u64 = 100_000_000;

/// A fork this soon after the previous one (more than 10 forks a second) is part of a burst.
const BURST_GAP_NS: u64 = 100_000_000;

/// In the parent's prepare handler.
pub fn before_fork() {
    let now = crate::sample::wall::monotonic_ns();
    let last = STATE.last_fork_ns.swap(now, Ordering::Relaxed);
    STATE.in_burst.store(last != 0 && now.saturating_sub(last) < BURST_GAP_NS, Ordering::Relaxed);
}

/// In a forked child, before `after_fork_in_child`: when the fork happened (monotonic ns), as
/// read by the parent's prepare handler a moment before (the child need not read the clock).
pub fn forked_at_ns() -> u64 {
    STATE.last_fork_ns.load(Ordering::Relaxed)
}

/// In a forked child: whether its threads wait (the fork was part of a burst).
pub fn fork_was_in_burst() -> bool {
    STATE.in_burst.load(Ordering::Relaxed)
}

/// In the child's fork handler: start the threads now, or, in a fork burst, later.
pub fn after_fork_in_child(config: &Arc<Config>, forked_at: u64) {
    // The child's own forks are counted from its own first one.
    STATE.last_fork_ns.store(0, Ordering::Relaxed);
    if STATE.in_burst.load(Ordering::Relaxed) {
        defer(config.wall_interval, forked_at);
    } else {
        start_threads(config.clone(), config.wall_interval);
    }
}

fn defer(wall_interval: Duration, forked_at: u64) {
    STATE.wall_interval_ns.store(wall_interval.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    STATE.forked_at_ns.store(forked_at, Ordering::Relaxed);
    STATE.deferred.store(true, Ordering::Release);
}

/// Whether the threads are still waiting to be started.
#[inline]
pub fn deferred() -> bool {
    STATE.deferred.load(Ordering::Relaxed)
}

/// From the sample hooks: start the threads once the child has lived long enough, or at
/// once when the ring is filling up and nobody would drain it. Cheap when nothing is deferred.
#[inline]
pub fn start_if_due(now: bool) {
    if !deferred() {
        return;
    }
    let forked_at = STATE.forked_at_ns.load(Ordering::Relaxed);
    if now || crate::sample::wall::monotonic_ns().saturating_sub(forked_at) >= MIN_AGE_NS {
        start_now();
    }
}

/// From the pthread_create hook. A program that creates a thread lives on, and the new
/// thread may sample at once: a forked child's deferred threads start now, and a new
/// process's exporter ends its start-up grace, so the module list is read while the thread
/// starts rather than when its first sample waits for it (that wait, inside a lock hook,
/// lengthened the program's own measured lock waits; tests/lock.rs).
pub fn program_creates_thread() {
    start_now();
    if !crate::sample::unwind::modules_known() {
        crate::collect::wake_exporter();
    }
}

/// Starts the deferred threads now (only once, and only in the process that deferred them).
pub fn start_now() {
    if !deferred() || !crate::status::is_owner_process() {
        // A vfork/posix_spawn child of a child shares its memory: it must start nothing.
        return;
    }
    if !STATE.deferred.swap(false, Ordering::AcqRel) {
        return;
    }
    let Some(config) = crate::status::config().cloned() else { return };
    // Until now the child had one thread, this one, and it was not watched (see runtime.rs):
    // its wall time counts from the fork.
    let tid = crate::thread::with(|s| s.tid.get());
    crate::sample::wall::register_forked_main(tid, STATE.forked_at_ns.load(Ordering::Relaxed));
    start_threads(config, Duration::from_nanos(STATE.wall_interval_ns.load(Ordering::Relaxed)));
}

/// Starts the exporter thread; the wall sampler thread is started by it, once the start-up
/// grace is over (exporter.rs): a helper process that lives a millisecond (`/bin/true` run
/// by a shell) then pays for one thread, not two.
pub fn start_threads(config: Arc<Config>, wall_interval: Duration) {
    crate::export::exporter::start(config, Box::new(move || crate::sample::wall::start_sampler(wall_interval)));
}

/// At exit: true if the threads were never started, so the caller exports inline. Later
/// triggers start nothing.
pub fn take_for_exit() -> bool {
    STATE.deferred.swap(false, Ordering::AcqRel)
}
