//! Work that must run inside the interpreter, under its GIL: installing the Python allocator
//! hook (`allocator.rs`), reading `threading` thread names (`thread_names.rs`) and registering
//! the drain before finalization (`exit_drain.rs`).
//!
//! The exporter thread never takes the GIL (a foreign thread that does becomes a Python
//! thread, can wait behind a long C call, and is killed if the interpreter is finalizing).
//! Instead it asks CPython to run a callback with `Py_AddPendingCall`, which is documented as
//! callable from any thread without the GIL: the main thread runs the callback at its next
//! "eval breaker" check, between two bytecodes, holding the GIL — the same place where Python
//! runs signal handlers. If the main thread never runs Python code again, the tasks never run,
//! which costs nothing. (On 3.8 the call is appended to the queue by `queue_3_8`, because 3.8's
//! `Py_AddPendingCall` is unsafe from a foreign thread during shutdown.)

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};

use libc::{c_int, c_void};

use crate::python::c_api::{Api, Object};
use crate::python::discover::Target;
use crate::python::layout::ABSENT;
use crate::python::memory;

pub const INSTALL_ALLOCATOR: u8 = 1;
pub const READ_THREAD_NAMES: u8 = 2;
pub const REGISTER_EXIT_DRAIN: u8 = 4;
pub const REGISTER_EXCEPTIONS: u8 = 8;
pub const NAME_EXCEPTION_TYPES: u8 = 16;

/// Tasks asked for and not yet run.
static REQUESTED: AtomicU8 = AtomicU8::new(0);
/// A callback is queued in the interpreter (at most one at a time).
static QUEUED: AtomicBool = AtomicBool::new(false);

/// Whether tasks can run in this interpreter. On 3.8 only through `queue_3_8`, which needs the
/// generated queue layout and the lock functions.
pub fn supported(t: &Target) -> bool {
    t.version.1 >= 9
        || (t.layout.runtime_pending_lock != ABSENT
            && t.api.is_some_and(|a| a.thread_acquire_lock.is_some() && a.thread_release_lock.is_some()))
}

/// Cold side: asks for `tasks` to run under the GIL soon.
pub fn request(t: &Target, api: &Api, tasks: u8) {
    if !supported(t) {
        return;
    }
    REQUESTED.fetch_or(tasks, Ordering::AcqRel);
    if QUEUED.load(Ordering::Acquire) {
        return report_if_stuck();
    }
    if !main_thread_runs(t) || QUEUED.swap(true, Ordering::AcqRel) {
        return;
    }
    if queue(t, api) {
        QUEUED_AT_NS.store(crate::sample::wall::monotonic_ns(), Ordering::Release);
        wake_main_thread(t, api);
    } else {
        // Not running yet, shutting down, or the queue (32 entries) is full: ask again later.
        QUEUED.store(false, Ordering::Release);
    }
}

fn queue(t: &Target, api: &Api) -> bool {
    // SAFETY: both are documented as callable from any thread without the GIL.
    let running = unsafe { (api.is_initialized)() != 0 && !api.is_finalizing.is_some_and(|f| f() != 0) };
    if !running {
        return false;
    }
    if t.layout.runtime_pending_lock != ABSENT {
        return queue_3_8(t, api);
    }
    // SAFETY: documented as callable from any thread without the GIL (3.9+).
    unsafe { (api.add_pending_call)(run_under_gil, std::ptr::null_mut()) == 0 }
}

/// CPython 3.8's `Py_AddPendingCall`, once `Py_FinalizeEx` has begun (`pending.finishing`,
/// set before the atexit functions run and before `_Py_IsFinalizing` turns true), reports
/// "shutting down" through the GIL holder's thread state — NULL while no thread holds the GIL,
/// a crash. So on 3.8 the library does what `_PyEval_AddPendingCall` does, minus that report:
/// under the queue's own lock, give up if `finishing` is set, else append the call; then set
/// `calls_to_do` and the eval breaker, as `SIGNAL_PENDING_CALLS` does. The lock is created at
/// start-up and never freed during finalization (3.8 frees it only when re-initializing).
fn queue_3_8(t: &Target, api: &Api) -> bool {
    let (Some(acquire), Some(release)) = (api.thread_acquire_lock, api.thread_release_lock) else { return false };
    let l = t.layout;
    let at = |offset: u32| t.runtime + offset as u64;
    let Some(lock) = memory::read_u64(at(l.runtime_pending_lock)).filter(|&p| p != 0) else { return false };
    // SAFETY: `_PyRuntime` is a static of the loaded interpreter and these offsets come from
    // 3.8's own headers; `first`, `last`, `calls` and `finishing` are only touched under `lock`,
    // which we hold (WAIT_LOCK = 1); `calls_to_do` and `eval_breaker` are `_Py_atomic_int`s
    // that CPython stores to from any thread.
    unsafe {
        acquire(lock as *mut c_void, 1);
        let finishing = std::ptr::read_volatile(at(l.runtime_pending_finishing) as *const i32);
        let first = std::ptr::read_volatile(at(l.runtime_pending_first) as *const i32);
        let last = std::ptr::read_volatile(at(l.runtime_pending_last) as *const i32);
        let next = (last + 1) % l.runtime_pending_ncalls as i32;
        let pushed = finishing == 0 && next != first && (0..l.runtime_pending_ncalls as i32).contains(&last);
        if pushed {
            let entry = at(l.runtime_pending_calls) + last as u64 * l.runtime_pending_call_size as u64;
            std::ptr::write_volatile(entry as *mut usize, run_under_gil as *const () as usize);
            std::ptr::write_volatile((entry + 8) as *mut usize, 0);
            std::ptr::write_volatile(at(l.runtime_pending_last) as *mut i32, next);
        }
        release(lock as *mut c_void);
        if pushed {
            (*(at(l.runtime_pending_calls_to_do) as *const AtomicI32)).store(1, Ordering::SeqCst);
            (*(at(l.runtime_eval_breaker) as *const AtomicI32)).store(1, Ordering::SeqCst);
        }
        pushed
    }
}

/// CPython 3.9–3.12 raise the main thread's "eval breaker" for a new pending call only when
/// the caller is the main thread itself (`COMPUTE_EVAL_BREAKER` asks whether the *calling*
/// thread can handle pending calls); from any other thread the call waits until something
/// else trips the breaker, which in a single-threaded program may be never. The exporter
/// raises the flag itself, as CPython's own signal handler would. The main thread recomputes
/// the flag when it runs pending calls; if ours already ran when the flag was raised, the loop
/// queues another call, and `run_under_gil` queues an empty one from the main thread for the
/// case where the flag was raised between CPython's recomputation and our callback. Until the
/// main thread runs them, other threads holding the GIL take the slow "pending" path at each
/// check: hence calls are queued only while the main thread runs (`main_thread_runs`).
fn wake_main_thread(t: &Target, api: &Api) {
    let offset = t.layout.interp_eval_breaker;
    if offset == ABSENT {
        return; // 3.8 and 3.13+ raise it for any caller
    }
    let Some(flag) = main_interpreter(t).map(|interp| interp + offset as u64) else { return };
    let mut probe = [0u8; 4];
    if !memory::read(flag, &mut probe) {
        return;
    }
    for _ in 0..3 {
        // SAFETY: `flag` is the `_Py_atomic_int eval_breaker` of the live main interpreter
        // (layout generated from this version's headers, address readable); CPython itself
        // stores to it from any thread with atomic stores.
        unsafe { (*(flag as *const AtomicI32)).store(1, Ordering::SeqCst) };
        if QUEUED.load(Ordering::Acquire) || !queue(t, api) {
            return;
        }
        QUEUED.store(true, Ordering::Release);
    }
}

/// Before 3.13 the eval breaker is shared by every thread of the interpreter, and a queued
/// call keeps it raised (3.8 raises it in `Py_AddPendingCall`, 3.9–3.12 through
/// `wake_main_thread`) until the main thread runs the call: if the main thread sat blocked in C
/// (in `Thread.join()`, say), every other thread would take the interpreter's slow "handle
/// pending" path at each check meanwhile. So a call is queued only while the main thread is
/// seen running (its CPU clock advances over a millisecond). 3.13+ keep the flag per thread.
fn main_thread_runs(t: &Target) -> bool {
    if t.version.1 >= 13 {
        return true;
    }
    // SAFETY: getpid has no preconditions; the main thread's tid is the pid.
    let pid = unsafe { libc::getpid() };
    let Some(before) = crate::sample::wall::thread_cpu_of(pid) else { return false };
    std::thread::sleep(std::time::Duration::from_millis(1));
    crate::sample::wall::thread_cpu_of(pid).is_some_and(|after| after > before)
}

/// The main interpreter: the last of `_PyRuntime`'s interpreter list (the first created).
fn main_interpreter(t: &Target) -> Option<u64> {
    let mut interp = memory::read_u64(t.runtime + t.layout.runtime_interpreters_head as u64)?;
    for _ in 0..64 {
        if interp == 0 {
            return None;
        }
        match memory::read_u64(interp + t.layout.interp_next as u64)? {
            0 => return Some(interp),
            next => interp = next,
        }
    }
    None
}

/// When the queued callback was queued (monotonic ns), and whether its long wait was reported.
static QUEUED_AT_NS: AtomicU64 = AtomicU64::new(0);
static STUCK_REPORTED: AtomicBool = AtomicBool::new(false);
const STUCK_AFTER_NS: u64 = 10_000_000_000;

/// A callback that has not run for 10 s means the main thread does not run Python code: the
/// allocator hook and thread names wait for it (said once, at info level).
fn report_if_stuck() {
    let waited = crate::sample::wall::monotonic_ns().saturating_sub(QUEUED_AT_NS.load(Ordering::Acquire));
    if waited >= STUCK_AFTER_NS && !STUCK_REPORTED.swap(true, Ordering::AcqRel) {
        crate::log_info!("the Python main thread has not run Python code for 10 s: Python allocations (objects of up to 512 bytes) and threading names are not recorded until it does");
    }
}

/// A forked child: a callback queued by the parent may or may not run in the child.
pub fn after_fork_in_child() {
    // Written only when set: each page a forked child writes costs it a fault.
    if QUEUED.load(Ordering::Acquire) {
        QUEUED.store(false, Ordering::Release);
    }
}

/// Does nothing: queued from the main thread, it only makes CPython recompute the eval breaker.
extern "C" fn recompute_eval_breaker(_: *mut c_void) -> c_int {
    0
}

/// Runs on the interpreter's main thread with the GIL held.
extern "C" fn run_under_gil(_: *mut c_void) -> c_int {
    QUEUED.store(false, Ordering::Release);
    let Some(api) = crate::python::target().and_then(|t| t.api) else { return 0 };
    // SAFETY: `int (void)`, reads a runtime flag. A call queued just before finalization may
    // run during it (`_Py_FinishPendingCalls`): then the interpreter is left alone.
    if api.is_finalizing.is_some_and(|f| unsafe { f() } != 0) {
        return 0;
    }
    let tasks = REQUESTED.swap(0, Ordering::AcqRel);
    crate::log_debug!("Python: running tasks {tasks:#x} under the GIL");
    // The callback must leave the interpreter's error state as it found it.
    let mut saved: [Object; 3] = [std::ptr::null_mut(); 3];
    // SAFETY: GIL held (pending calls run with it); out-pointers are valid.
    unsafe { (api.err_fetch)(&mut saved[0], &mut saved[1], &mut saved[2]) };
    let outcome = std::panic::catch_unwind(|| {
        if tasks & INSTALL_ALLOCATOR != 0 {
            super::allocator::install(&api);
        }
        if tasks & READ_THREAD_NAMES != 0 {
            super::thread_names::read(&api);
        }
        if tasks & REGISTER_EXIT_DRAIN != 0 {
            super::exit_drain::register(&api);
        }
        if tasks & REGISTER_EXCEPTIONS != 0 {
            super::exceptions::register(&api);
        }
        if tasks & NAME_EXCEPTION_TYPES != 0 {
            super::exceptions::name_unnamed(&api);
        }
    });
    // SAFETY: GIL held; clears what our calls may have raised, then restores what was there
    // (PyErr_Restore takes the references PyErr_Fetch gave us).
    unsafe {
        (api.err_clear)();
        (api.err_restore)(saved[0], saved[1], saved[2]);
    }
    if crate::python::target().is_some_and(|t| t.layout.interp_eval_breaker != ABSENT) {
        // The exporter may have raised the eval breaker after CPython recomputed it for this
        // call (`wake_main_thread`): an empty call queued from the main thread makes CPython
        // compute the flag again once it has run, so it cannot stay raised for nothing.
        // SAFETY: main thread, GIL held; the callback is a plain extern "C" function.
        unsafe { (api.add_pending_call)(recompute_eval_breaker, std::ptr::null_mut()) };
    }
    if outcome.is_err() {
        crate::log_warn!("an internal error occurred while running a task inside the Python interpreter; it will not be retried");
    }
    0
}
