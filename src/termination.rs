//! A process stopped by SIGTERM, SIGINT or SIGHUP whose disposition is the default (a
//! container stop, `timeout 5 prog`, `Pool.terminate()` workers) writes its last profile, then
//! dies of that same signal, so its parent sees the same wait status.
//!
//! At start-up, each of the three signals still at SIG_DFL gets the library's handler. The
//! program never sees it: the `sigaction`/`signal` hooks report SIG_DFL for it, a program that
//! sets SIG_DFL keeps it (the default effect, death, still ends the profile), and a program
//! that installs its own handler or SIG_IGN replaces it for good, unchanged and undelayed. The
//! handler ends the profile as `exit` does (the library's exit path, given by
//! `runtime::start`), resets the signal to SIG_DFL, unblocks it and raises it again. The
//! library's own threads block the three signals, so the kernel hands them to a program
//! thread. A signal that lands in the library's own code on that thread (a hook) is not
//! flushed (the flush could wait for itself): the process dies as it would have.
//!
//! exec resets handlers to SIG_DFL (the new image installs its own); forked children inherit
//! it and end their own profile.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::thread::TERMINATION_SIGNALS as SIGNALS;

/// Our handler is installed for `SIGNALS[i]` (the program believes it is SIG_DFL).
static OURS: [AtomicBool; 3] = [AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false)];
/// What ends the profile (`runtime::on_process_exit`), as a `fn()`.
static END_PROFILE: AtomicUsize = AtomicUsize::new(0);

fn index(signal: libc::c_int) -> Option<usize> {
    SIGNALS.iter().position(|&s| s == signal)
}

/// At start-up: takes the signals that are still at SIG_DFL. `end_profile` is called by the
/// handler.
pub fn install(end_profile: fn()) {
    END_PROFILE.store(end_profile as usize, Ordering::Release);
    for (i, &signal) in SIGNALS.iter().enumerate() {
        // SAFETY: a zeroed sigaction is a valid out-parameter.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        if crate::real::sigaction(signal, std::ptr::null(), &mut current) == 0 && current.sa_sigaction == libc::SIG_DFL {
            take(i);
        }
    }
}

/// Installs our handler for `SIGNALS[i]`.
fn take(i: usize) -> bool {
    // SAFETY: a zeroed sigaction is valid; the mask is filled below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: fills the handler's mask: the three signals wait while one is handled.
    unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        for s in SIGNALS {
            libc::sigaddset(&mut action.sa_mask, s);
        }
    }
    let ok = crate::real::sigaction(SIGNALS[i], &action, std::ptr::null_mut()) == 0;
    OURS[i].store(ok, Ordering::Release);
    ok
}

/// What the program's `sigaction(signal, action, old)` should do, when the library holds the
/// signal for it. Returns None when the call is not ours to change (pass it through).
pub fn sigaction_for_program(signal: libc::c_int, action: *const libc::sigaction, old: *mut libc::sigaction) -> Option<libc::c_int> {
    let i = index(signal)?;
    if !crate::status::active() || !crate::status::is_owner_process() {
        return None;
    }
    // SAFETY: the caller passes a valid sigaction when the pointer is non-null.
    let wants_default = !action.is_null() && unsafe { (*action).sa_sigaction } == libc::SIG_DFL;
    let ours = OURS[i].load(Ordering::Acquire);
    if !ours && !wants_default {
        return None;
    }
    // SAFETY: a zeroed sigaction is a valid out-parameter.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    if !ours {
        crate::real::sigaction(signal, std::ptr::null(), &mut previous);
    }
    let rc = if wants_default {
        // SIG_DFL: ours stays (or comes back); the default effect still happens.
        if ours || take(i) { 0 } else { return None }
    } else if action.is_null() {
        0
    } else {
        // The program's own handler (or SIG_IGN) replaces ours.
        OURS[i].store(false, Ordering::Release);
        crate::real::sigaction(signal, action, std::ptr::null_mut())
    };
    if !old.is_null() && rc == 0 {
        // SAFETY: the caller's out-parameter; `previous` is SIG_DFL (zeroed) when ours was in.
        unsafe { *old = previous };
    }
    Some(rc)
}

extern "C" fn on_signal(signal: libc::c_int, _info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    let end = END_PROFILE.load(Ordering::Acquire);
    if end != 0 && !crate::thread::in_profiler() {
        // SAFETY: END_PROFILE only ever holds a `fn()` (install).
        let end: fn() = unsafe { std::mem::transmute::<usize, fn()>(end) };
        end();
    }
    die_of(signal);
}

/// Resets `signal` to SIG_DFL, unblocks it and raises it: the process dies of it.
fn die_of(signal: libc::c_int) {
    if let Some(i) = index(signal) {
        OURS[i].store(false, Ordering::Release);
    }
    // SAFETY: plain system calls on valid local values.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        crate::real::sigaction(signal, &action, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
}
