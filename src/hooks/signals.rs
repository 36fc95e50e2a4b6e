//! `sigaction` and `signal`: the program's own SIGPROF handler always wins. When the program
//! installs one (or resets SIGPROF), CPU sampling stops first, with one warning, and the
//! program's request is carried out unchanged.

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
    real::sigaction(signal, action, old)
}

#[no_mangle]
pub unsafe extern "C" fn signal(signal: libc::c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if signal == crate::sample::signal::CPU_SIGNAL {
        crate::runtime::yield_cpu_signal();
    }
    let next = real::SIGNAL.get();
    if next == 0 {
        return libc::SIG_ERR;
    }
    // SAFETY: the next `signal`, with the caller's arguments.
    unsafe { std::mem::transmute::<usize, SignalFn>(next)(signal, handler) }
}
