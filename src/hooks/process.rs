//! Thread and process life-cycle hooks: `pthread_create` (so every thread gets a CPU timer),
//! `_exit`/`_Exit`/`execve` (so the last profile is written before the process image goes).

use crate::real::{self, ExecveFn, ExitFn, PthreadCreateFn};
use crate::thread;

type StartRoutine = extern "C" fn(*mut libc::c_void) -> *mut libc::c_void;

/// What the trampoline needs to run the program's thread function.
struct ThreadStart {
    routine: StartRoutine,
    arg: *mut libc::c_void,
}

#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread_out: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    routine: StartRoutine,
    arg: *mut libc::c_void,
) -> libc::c_int {
    let next = real::PTHREAD_CREATE.get();
    if next == 0 {
        return libc::EAGAIN;
    }
    // SAFETY: dlsym found the next pthread_create, which has this signature.
    let next: PthreadCreateFn = unsafe { std::mem::transmute(next) };
    let pass_through = !crate::runtime::active() || thread::with(|s| s.in_profiler.get());
    if pass_through {
        // SAFETY: forwarding the caller's arguments unchanged.
        return unsafe { next(thread_out, attr, routine, arg) };
    }
    let start = Box::into_raw(Box::new(ThreadStart { routine, arg }));
    // SAFETY: the trampoline takes ownership of `start` exactly once if the thread starts.
    let rc = unsafe { next(thread_out, attr, trampoline, start.cast()) };
    if rc != 0 {
        // SAFETY: the thread was not created, so the box is still ours.
        drop(unsafe { Box::from_raw(start) });
    }
    rc
}

extern "C" fn trampoline(start: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `start` is the Box leaked by pthread_create above, handed to this thread only.
    let ThreadStart { routine, arg } = *unsafe { Box::from_raw(start as *mut ThreadStart) };
    crate::runtime::on_thread_start();
    routine(arg)
}

#[no_mangle]
pub unsafe extern "C" fn _exit(status: libc::c_int) -> ! {
    crate::runtime::on_process_exit();
    // SAFETY: the next _exit; it does not return.
    unsafe { call_exit(real::EXIT_UNDERSCORE.get(), status) }
}

#[no_mangle]
pub unsafe extern "C" fn _Exit(status: libc::c_int) -> ! {
    crate::runtime::on_process_exit();
    // SAFETY: as above.
    unsafe { call_exit(real::EXIT_CAPITAL.get(), status) }
}

/// # Safety
/// `next` must be 0 or the address of a function with `_exit`'s signature.
unsafe fn call_exit(next: usize, status: libc::c_int) -> ! {
    if next != 0 {
        // SAFETY: guaranteed by the caller.
        unsafe { std::mem::transmute::<usize, ExitFn>(next)(status) }
    }
    // SAFETY: exit_group ends the process; it has no preconditions.
    unsafe { libc::syscall(libc::SYS_exit_group, status) };
    unreachable!("exit_group returned")
}

#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> libc::c_int {
    // The new image starts its own profile (LD_PRELOAD is inherited); write this one first.
    crate::runtime::before_exec();
    let next = real::EXECVE.get();
    if next == 0 {
        // SAFETY: errno location is valid for this thread.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        return -1;
    }
    // SAFETY: the next execve, called with the caller's arguments.
    let rc = unsafe { std::mem::transmute::<usize, ExecveFn>(next)(path, argv, envp) };
    crate::runtime::after_failed_exec();
    rc
}
