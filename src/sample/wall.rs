//! Wall-time sampling: where every thread spends its time, running or blocked.
//!
//! A sampler thread wakes every `DD_PROFILING_WALL_INTERVAL_MS` (with ±50 % jitter, so it
//! never locks onto the program's own period) and looks at a bounded number of registered
//! threads, round-robin. For each it reads the thread's CPU clock (one syscall):
//! - the thread ran since it was last looked at (or was never sampled): it is sent SIGPROF
//!   with the elapsed wall time as payload; the handler captures its stack (kind Wall);
//! - it did not run (blocked in `poll`, `nanosleep`, a lock, `pthread_join`…): no signal. The
//!   elapsed time is attributed to the stack captured last time (a "reuse" record). A signal
//!   would make `poll`, `nanosleep`, `sem_timedwait`… return EINTR, so a thread blocked in one
//!   long call is interrupted at most once per blocking episode.
//!
//! "Did not run" means: since its last capture it used less than `IDLE_CPU_NS` of CPU (the end
//! of our signal handler and the program's EINTR retry), and it is blocked in a system call at
//! the very user pc and sp it was captured at (`/proc/self/task/<tid>/syscall`). CPU alone is
//! not enough: a thread captured as it resumed from preemption can leave a loop and block
//! elsewhere within a microsecond of CPU.
//!
//! Each look accounts the wall time elapsed since the previous look at that thread, so the
//! per-thread totals are exact whatever the number of threads; with more threads than
//! `MAX_LOOKS_PER_TICK`, each one is simply looked at less often (coarser, still unbiased).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::collect::ring::{Header, Kind};
use crate::thread;

/// Looks per tick: bounds the sampler's cost with hundreds of idle threads (each look is a
/// clock read and, for a thread that looks idle, a small /proc read).
const MAX_LOOKS_PER_TICK: usize = 16;
/// CPU a thread may use between two looks and still count as not having run.
const IDLE_CPU_NS: u64 = 200_000;
/// How long a sent signal may stay unhandled before the sampler takes its time back and
/// accounts it itself, at once (to the thread's last stack). A signal can be lost outright: SIGPROF
/// is a standard signal, so one sent while a CPU-timer SIGPROF is pending is merged into it,
/// and a thread that blocks SIGPROF never handles it.
const UNHANDLED_SIGNAL_NS: u64 = 200_000_000;
/// Marks the signal payload as a wall sample (the top byte). The weight itself travels in
/// the thread's `wall_pending_ns`, not in the signal, so that it is accounted exactly once.
pub const WALL_SIGNAL_TAG: u64 = 0x57 << 56;
const TAG_MASK: u64 = 0xff << 56;

/// Wall sampling wanted (cleared at exit, or when the program takes SIGPROF).
pub static WALL_SAMPLING: AtomicBool = AtomicBool::new(false);

/// The counters a watched thread shares with the sampler, in its TLS (which lives until it
/// unregisters, and the registry is only read under its lock).
#[derive(Clone, Copy)]
struct Shared {
    /// Captures done, and the thread's CPU time, pc and sp at the last one.
    captures: &'static AtomicU64,
    capture_cpu_ns: &'static AtomicU64,
    capture_pc: &'static AtomicU64,
    capture_sp: &'static AtomicU64,
    /// Weight handed to the next signal (see `ThreadState::wall_pending_ns`).
    pending_ns: &'static AtomicU64,
}

#[derive(Clone, Copy)]
struct Watched {
    tid: i32,
    shared: Shared,
    /// When the last signal was sent, while its weight may still be pending.
    sent_at: Option<u64>,
    /// Monotonic time up to which its wall time has been accounted (or handed to a signal).
    accounted_until: u64,
    /// The thread's CPU time when it was last found blocked where it was captured: while its
    /// CPU clock still reads exactly this, it has not run at all, and the /proc check is skipped.
    confirmed_idle_cpu: Option<u64>,
    /// Top of the thread's stack (0 if unknown), for captures made from the sampler thread.
    stack_hi: u64,
    /// Its last capture was made from the sampler thread: native frames only.
    captured_remotely: bool,
}

/// What a look needs, copied out of the registry.
struct Look {
    tid: i32,
    captures: u64,
    capture_cpu_ns: u64,
    capture_pc: u64,
    capture_sp: u64,
    /// Set when the last signal's weight is still waiting for the handler.
    unhandled_since: Option<u64>,
    accounted_until: u64,
    confirmed_idle_cpu: Option<u64>,
    stack_hi: u64,
    captured_remotely: bool,
}

static WATCHED: crate::yield_lock::Lock<Vec<Watched>> = crate::yield_lock::Lock::new(Vec::new());
/// Where the next round-robin batch starts (only the sampler thread moves it).
static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Adds the calling thread (called on the thread itself, at its start).
pub fn register_current(tid: i32) {
    register_current_since(tid, monotonic_ns());
}

/// Adds the calling thread, its wall time counted from `since` (monotonic ns).
fn register_current_since(tid: i32, since: u64) {
    let shared = thread::with(|s| {
        s.wall_pending_ns.store(0, Ordering::Release);
        // SAFETY: the thread's TLS outlives its registration: it unregisters in its pthread
        // key destructor, before its TLS is freed, and the registry is only read under its lock.
        unsafe {
            Shared {
                captures: &*(&s.wall_captures as *const AtomicU64),
                capture_cpu_ns: &*(&s.wall_capture_cpu_ns as *const AtomicU64),
                capture_pc: &*(&s.wall_capture_pc as *const AtomicU64),
                capture_sp: &*(&s.wall_capture_sp as *const AtomicU64),
                pending_ns: &*(&s.wall_pending_ns as *const AtomicU64),
            }
        }
    });
    let entry = Watched {
        tid,
        shared,
        sent_at: None,
        accounted_until: since,
        confirmed_idle_cpu: None,
        stack_hi: thread::with(|s| s.stack_hi.get() as u64),
        captured_remotely: false,
    };
    let mut watched = WATCHED.lock();
    watched.retain(|w| w.tid != tid);
    watched.push(entry);
}

/// Removes a thread at its exit, accounting its time since the last look to its last
/// captured stack (else a thread looked at every few hundred ms would lose its tail),
/// together with the weight of a signal it will now never handle.
pub fn unregister(tid: i32) {
    let now = monotonic_ns();
    let tail = {
        let mut watched = WATCHED.lock();
        let tail = watched.iter().find(|w| w.tid == tid).map(|w| {
            // Taken under the lock, so the sampler cannot hand out a new weight meanwhile.
            now.saturating_sub(w.accounted_until) + w.shared.pending_ns.swap(0, Ordering::AcqRel)
        });
        watched.retain(|w| w.tid != tid);
        tail
    };
    if let Some(elapsed) = tail.filter(|_| WALL_SAMPLING.load(Ordering::Acquire)) {
        push_reuse(tid, elapsed, now);
    }
}

/// Turns wall sampling on: threads starting from now on are watched. The sampler thread
/// itself is started later (`start_sampler`), once the process has lived a few milliseconds
/// (profiler_threads.rs); each look accounts the time since the previous one, so none is lost.
pub fn enable() {
    WALL_SAMPLING.store(true, Ordering::Release);
}

/// Starts the sampler thread (wall sampling must be enabled).
pub fn start_sampler(interval: Duration) {
    if !WALL_SAMPLING.load(Ordering::Acquire) {
        return;
    }
    let spawned = thread::spawn_internal("ddprof-wall", move || {
        while WALL_SAMPLING.load(Ordering::Acquire) {
            std::thread::sleep(jittered(interval));
            tick();
        }
    });
    if let Err(e) = spawned {
        crate::log_warn!("could not start the wall-time sampler thread ({e}); wall profiling is off");
    }
}

/// Stops sampling and accounts every thread's time up to now, so short programs and the
/// final export are complete.
pub fn stop_and_account() {
    if !WALL_SAMPLING.swap(false, Ordering::AcqRel) {
        return;
    }
    let now = monotonic_ns();
    let pending: Vec<(i32, u64)> = WATCHED
        .lock()
        .iter_mut()
        .filter_map(|w| {
            let revoked = w.shared.pending_ns.swap(0, Ordering::AcqRel);
            let elapsed = now.saturating_sub(std::mem::replace(&mut w.accounted_until, now)) + revoked;
            (w.shared.captures.load(Ordering::Acquire) > 0 || revoked > 0).then_some((w.tid, elapsed))
        })
        .collect();
    for (tid, elapsed) in pending {
        push_reuse(tid, elapsed, now);
    }
}

/// In a forked child only the calling thread exists: it is watched from now on, and the
/// sampler thread is started again later (profiler_threads.rs), if the child lives on. A weight
/// the parent's sampler handed to this thread belongs to the parent's profile, and so do its
/// captures: the child's time is attributed from the child's first capture on (the parent's
/// last stack is not in the child's profile, so reusing it gave `[no stack]` samples).
///
/// `watch_since`: when the child's wall time starts (its fork), or None when its watching waits
/// for its deferred threads (profiler_threads.rs; `register_forked_main`).
pub fn after_fork_in_child(tid: i32, watch_since: Option<u64>) {
    crate::fork_safe::empty_keeping_capacity(&WATCHED);
    thread::with(|s| {
        s.wall_pending_ns.store(0, Ordering::Release);
        s.wall_captures.store(0, Ordering::Release);
    });
    if let Some(since) = watch_since {
        register_forked_main(tid, since);
    }
}

/// Watches a forked child's main thread from `forked_at` (monotonic ns).
pub fn register_forked_main(tid: i32, forked_at: u64) {
    if WALL_SAMPLING.load(Ordering::Acquire) {
        register_current_since(tid, forked_at);
    }
}

fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.5 + thread::uniform())
}

/// One round: look at up to MAX_LOOKS_PER_TICK threads.
fn tick() {
    let now = monotonic_ns();
    for look in next_batch() {
        if let Some(sent_at) = look.unhandled_since {
            if now.saturating_sub(sent_at) < UNHANDLED_SIGNAL_NS {
                continue; // give the signal time to arrive; account this time next round
            }
            // Never handled: take the weight back (if the handler has not just taken it) and
            // account it now, to the thread's last stack. Handing it to the next signal instead
            // would let a thread that blocks SIGPROF pile up its whole life's time.
            match revoke(look.tid) {
                Some(weight) => push_reuse(look.tid, weight, sent_at),
                None => continue, // the thread has exited: its exit accounted everything
            }
        }
        let Some(cpu) = thread_cpu_of(look.tid) else { continue };
        let elapsed = now.saturating_sub(look.accounted_until);
        // Ran since its last capture? Then its stack may have changed: capture it again.
        // Otherwise it is exactly where it was captured (blocked, or waiting for a CPU).
        let unchanged = look.captures > 0 && look.confirmed_idle_cpu == Some(cpu);
        // A capture made from here has no Python frames: once the interpreter is known, a
        // thread still blocked where it was taken (a Python thread asleep since before the
        // interpreter was found) is captured again, by a signal, rather than reused for good.
        let without_python_frames = look.captured_remotely && crate::python::active();
        let ran = without_python_frames
            || (!unchanged
                && (look.captures == 0
                    || cpu.saturating_sub(look.capture_cpu_ns) >= IDLE_CPU_NS
                    || !blocked_at(look.tid).is_some_and(|at| same_place(at, (look.capture_pc, look.capture_sp)))));
        // The registry entry is updated before anything is published, and nothing is
        // published when the thread has unregistered meanwhile (its exit accounted its tail):
        // the same time is never counted twice, nor lost.
        if ran && !crate::python::active() && capture_blocked_thread(&look, now, cpu, elapsed) {
            continue;
        }
        if ran {
            if hand_to_signal(&look, now, elapsed) {
                send_wall_signal(look.tid);
            }
        } else if mark_accounted(&look, now, Some(cpu)) {
            push_reuse(look.tid, elapsed, now);
        }
    }
}

/// The next threads to look at, round-robin, copied out so no lock is held during syscalls.
fn next_batch() -> Vec<Look> {
    let watched = WATCHED.lock();
    if watched.is_empty() {
        return Vec::new();
    }
    let next = NEXT_INDEX.load(Ordering::Relaxed);
    let n = watched.len().min(MAX_LOOKS_PER_TICK);
    let batch = (0..n)
        .map(|i| &watched[(next + i) % watched.len()])
        .map(|w| Look {
            tid: w.tid,
            captures: w.shared.captures.load(Ordering::Acquire),
            capture_cpu_ns: w.shared.capture_cpu_ns.load(Ordering::Acquire),
            capture_pc: w.shared.capture_pc.load(Ordering::Acquire),
            capture_sp: w.shared.capture_sp.load(Ordering::Acquire),
            unhandled_since: w.sent_at.filter(|_| w.shared.pending_ns.load(Ordering::Acquire) != 0),
            accounted_until: w.accounted_until,
            confirmed_idle_cpu: w.confirmed_idle_cpu,
            stack_hi: w.stack_hi,
            captured_remotely: w.captured_remotely,
        })
        .collect();
    NEXT_INDEX.store((next + n) % watched.len(), Ordering::Relaxed);
    batch
}

/// Runs `f` on the entry `look` was copied from, if nothing accounted its time since: not its
/// exit (it unregistered), not the stop at exit (which accounts every thread up to then).
fn with_looked_entry<R>(look: &Look, f: impl FnOnce(&mut Watched) -> R) -> Option<R> {
    let mut watched = WATCHED.lock();
    if !WALL_SAMPLING.load(Ordering::Acquire) {
        return None;
    }
    watched.iter_mut().find(|w| w.tid == look.tid && w.accounted_until == look.accounted_until).map(f)
}

/// Takes back the weight of a signal that was never handled (0 if the handler took it).
/// None when the thread has unregistered (its exit accounted it).
fn revoke(tid: i32) -> Option<u64> {
    WATCHED.lock().iter_mut().find(|w| w.tid == tid).map(|w| {
        w.sent_at = None;
        w.shared.pending_ns.swap(0, Ordering::AcqRel)
    })
}

/// Records a look that accounted the time up to `now` itself.
fn mark_accounted(look: &Look, now: u64, confirmed_idle_cpu: Option<u64>) -> bool {
    with_looked_entry(look, |w| {
        w.accounted_until = now;
        w.sent_at = None;
        w.confirmed_idle_cpu = confirmed_idle_cpu;
    })
    .is_some()
}

/// Hands `elapsed` to the thread's next signal handler. Under the registry lock, so the
/// thread's TLS is alive and its exit (which takes the weight back) cannot interleave.
fn hand_to_signal(look: &Look, now: u64, elapsed: u64) -> bool {
    with_looked_entry(look, |w| {
        w.accounted_until = now;
        w.sent_at = Some(now);
        w.confirmed_idle_cpu = None;
        w.captured_remotely = false;
        w.shared.pending_ns.fetch_add(elapsed, Ordering::AcqRel);
    })
    .is_some()
}

/// Called by the signal handler (async-signal-safe: atomics only): the wall time handed to
/// this thread, now taken by it, or 0.
pub fn take_pending() -> u64 {
    thread::with(|s| s.wall_pending_ns.swap(0, Ordering::AcqRel))
}

/// Called by the signal handler after a wall capture (async-signal-safe: atomics only).
pub fn capture_done(pc: u64, sp: u64) {
    thread::with(|s| {
        s.wall_capture_pc.store(pc, Ordering::Release);
        s.wall_capture_sp.store(sp, Ordering::Release);
        s.wall_capture_cpu_ns.store(thread::thread_cpu_ns(), Ordering::Release);
        s.wall_captures.fetch_add(1, Ordering::AcqRel);
    });
}

/// Most of a thread's stack that a capture from the sampler thread copies.
const REMOTE_STACK_BYTES: u64 = 64 * 1024;

/// A thread blocked in a system call is captured from here, without a signal: a signal would
/// make `nanosleep`, `poll`, `epoll_wait`, `sem_timedwait`… return EINTR to a program that may
/// not expect it. Its registers at the call are in /proc, its stack cannot change while it
/// sleeps: copy the stack (process_vm_readv: a thread that exits meanwhile is an error, not a
/// fault), check it is still blocked at the same place, and unwind the copy. Native frames only,
/// which is why Python processes are still signalled (CPython retries EINTR everywhere).
/// Returns false when the thread is not blocked in a system call (then it is signalled).
fn capture_blocked_thread(look: &Look, now: u64, cpu: u64, elapsed: u64) -> bool {
    let Some(at) = blocked_in_syscall(look.tid) else { return false };
    let (pc, sp) = at;
    let top = if look.stack_hi > sp { look.stack_hi.min(sp + REMOTE_STACK_BYTES) } else { sp + 64 * 1024 };
    let Some(copy) = copy_stack(sp, (top - sp) as usize) else { return false };
    if blocked_in_syscall(look.tid) != Some(at) {
        return false; // it moved while we copied: let a signal catch it
    }
    let Some(slot) = crate::collect::claim_patiently() else { return false };
    let regs = super::unwind::Registers { pc, sp, bp: 0 };
    let mut frames = super::both_ends::BothEnds::<1>::new(&slot, 0, slot.capacity(), |_| false);
    super::unwind::capture_from_copy(regs, sp, &copy, &mut |w| frames.push(w));
    let n = frames.finish(|omitted, _| [super::both_ends::native_marker(omitted, 0)]);
    if record_remote_capture(look, now, pc, sp, cpu) {
        slot.commit(captured_header(look.tid, elapsed, n), n);
    }
    // Else its exit (or the stop at exit) accounted this time meanwhile; the slot is freed.
    true
}

/// Publishes a capture made from the sampler thread as if the thread had made it, and marks
/// its time accounted up to `now`. False when its time was accounted otherwise meanwhile.
fn record_remote_capture(look: &Look, now: u64, pc: u64, sp: u64, cpu: u64) -> bool {
    with_looked_entry(look, |w| {
        w.shared.capture_pc.store(pc, Ordering::Release);
        w.shared.capture_sp.store(sp, Ordering::Release);
        w.shared.capture_cpu_ns.store(cpu, Ordering::Release);
        w.shared.captures.fetch_add(1, Ordering::AcqRel);
        w.accounted_until = now;
        w.sent_at = None;
        w.confirmed_idle_cpu = Some(cpu);
        w.captured_remotely = true;
    })
    .is_some()
}

/// `len` bytes of this process's memory at `addr`, or None if any of it is unmapped.
fn copy_stack(addr: u64, len: usize) -> Option<Vec<u8>> {
    let mut copy = vec![0u8; len];
    let local = libc::iovec { iov_base: copy.as_mut_ptr().cast(), iov_len: len };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
    // SAFETY: the local buffer is valid for `len` bytes; bad remote addresses only make the
    // call fail (or read less), they cannot fault.
    let read = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if read <= 0 {
        return None;
    }
    copy.truncate(read as usize);
    Some(copy)
}

/// (pc, sp) of a thread blocked in a system call; None when running or not in a call.
fn blocked_in_syscall(tid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    let first = text.split_whitespace().next()?;
    if first == "running" || first.starts_with('-') {
        return None;
    }
    parse_syscall_position(&text)
}

/// Where a thread is blocked: the user (pc, sp) of the system call it sleeps in, from
/// `/proc/self/task/<tid>/syscall` ("nr args… sp pc"); None when it is running or unknown.
fn blocked_at(tid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
    parse_syscall_position(&text)
}

/// Whether a thread blocked at `now` (pc, sp) is where it was captured. A system call that
/// the kernel restarts after our signal (SA_RESTART: futex, read…) was captured with its pc
/// rewound onto the 2-byte `syscall` instruction; blocked again, it reports the pc after it.
fn same_place(now: (u64, u64), captured: (u64, u64)) -> bool {
    const SYSCALL_INSN_LEN: u64 = 2;
    now.1 == captured.1 && (now.0 == captured.0 || now.0 == captured.0 + SYSCALL_INSN_LEN)
}

fn parse_syscall_position(text: &str) -> Option<(u64, u64)> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() < 3 || fields[0] == "running" {
        return None;
    }
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let pc = hex(fields[fields.len() - 1])?;
    let sp = hex(fields[fields.len() - 2])?;
    Some((pc, sp))
}

/// CPU time of another thread of this process, from its kernel CPU clock id.
pub fn thread_cpu_of(tid: i32) -> Option<u64> {
    // The kernel's per-thread scheduler clock: ((~tid) << 3) | CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED.
    let clock = ((!tid) << 3) | 4 | 2;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer; an invalid clock id only returns EINVAL.
    (unsafe { libc::clock_gettime(clock, &mut ts) } == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The kernel's siginfo for rt_tgsigqueueinfo with SI_QUEUE: signo, errno, code, then the
/// `_rt` member (pid, uid, value), padded to 128 bytes.
#[repr(C)]
struct QueuedSigInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    pid: i32,
    uid: u32,
    value: u64,
    _rest: [u64; 12],
}

/// Sends the wall signal; its weight is already in the thread's `wall_pending_ns`. When the
/// send fails (the thread is exiting, or the signal queue is full) the weight stays there:
/// the thread's exit, or a later look, accounts it.
fn send_wall_signal(tid: i32) {
    // SAFETY: getpid/getuid have no preconditions.
    let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
    let info = QueuedSigInfo {
        signo: crate::thread::CPU_SIGNAL,
        errno: 0,
        code: libc::SI_QUEUE,
        _pad: 0,
        pid,
        uid,
        value: WALL_SIGNAL_TAG,
        _rest: [0; 12],
    };
    // SAFETY: info is a fully initialised 128-byte siginfo; the kernel copies it.
    unsafe { libc::syscall(libc::SYS_rt_tgsigqueueinfo, pid, tid, crate::thread::CPU_SIGNAL, &info) };
}

/// Whether a SIGPROF is the wall sampler's (then it is not a CPU sample).
pub fn is_wall_signal(code: i32, value: u64) -> bool {
    code == libc::SI_QUEUE && value & TAG_MASK == WALL_SIGNAL_TAG
}

/// "This thread did not run: its time goes to the stack captured last time."
fn push_reuse(tid: i32, elapsed: u64, now: u64) {
    if elapsed == 0 {
        return;
    }
    let Some(slot) = crate::collect::claim_patiently() else { return };
    let header = Header { kind: Kind::Wall, tid, values: [1, elapsed as i64], extra: [now, 0], native_len: 0 };
    slot.commit(header, 0);
}

/// Builds the header of a captured wall sample (the handler fills the stack).
pub fn captured_header(tid: i32, weight: u64, native_len: usize) -> Header {
    Header { kind: Kind::Wall, tid, values: [0, weight as i64], extra: [monotonic_ns(), 0], native_len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_position() {
        let blocked = "230 0x1 0x1 0x7ffd2a9b3f10 0x0 0x0 0x0 0x7ffd2a9b3ef8 0x7f9c5e6ed545\n";
        assert_eq!(parse_syscall_position(blocked), Some((0x7f9c5e6ed545, 0x7ffd2a9b3ef8)));
        assert_eq!(parse_syscall_position("running\n"), None);
        assert_eq!(parse_syscall_position("-1 0x7ffd2a9b3ef8 0x401000\n"), Some((0x401000, 0x7ffd2a9b3ef8)));
    }

    #[test]
    fn restarted_syscall_is_the_same_place() {
        assert!(same_place((0x1002, 0x50), (0x1000, 0x50)));
        assert!(same_place((0x1000, 0x50), (0x1000, 0x50)));
        assert!(!same_place((0x1004, 0x50), (0x1000, 0x50)));
        assert!(!same_place((0x1000, 0x58), (0x1000, 0x50)));
    }
}
