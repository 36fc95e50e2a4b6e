//! `sigaction` and `signal`: the program's own SIGPROF handler always wins. When the program
//! installs one (or resets SIGPROF), CPU sampling stops first, with one warning, and the
//! program's request is carried out unchanged. SIGTERM, SIGINT and SIGHUP go through
//! `termination` first (the library holds them while they are at SIG_DFL).

use crate::real::{self, SignalFn};

#[no_mangle]
pub unsafe extern "C" fn sigaction(
    signal: libc::c_int,
    action: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> libc::c_int {
    if signal == crate::sample::signal::CPU_SIGNAL && !action.is_null() {
        // SAFETY: the caller passes a valid sigaction when the pointer is non-null.
        let handler = unsafe { (*action).sa_sigaction };
        if !crate::sample::signal::is_our_handler(handler) {
            crate::runtime::yield_cpu_signal();
        }
    }
    if let Some(rc) = crate::termination::sigaction_for_program(signal, action, old) {
        return rc;
    }
    real::sigaction(signal, action, old)
}

#[no_mangle]
pub unsafe extern "C" fn signal(signal: libc::c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if signal == crate::sample::signal::CPU_SIGNAL {
        crate::runtime::yield_cpu_signal();
    }
    if crate::thread::TERMINATION_SIGNALS.contains(&signal) {
        // `signal` is `sigaction` with BSD semantics (glibc): the same rule applies.
        // SAFETY: a zeroed sigaction is valid; handler and flags are set below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        if let Some(rc) = crate::termination::sigaction_for_program(signal, &action, &mut old) {
            return if rc == 0 { old.sa_sigaction } else { libc::SIG_ERR };
        }
    }
    let next = real::SIGNAL.get();
    if next == 0 {
        return libc::SIG_ERR;
    }
    // SAFETY: the next `signal`, with the caller's arguments.
    unsafe { std::mem::transmute::<usize, SignalFn>(next)(signal, handler) }
}
