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
    if thread::with(|s| s.spawning_internal.get()) {
        // A thread of the library's own (`thread::spawn_internal`): marked internal before
        // Rust's thread start runs (it allocates, and glibc registers its thread-local
        // destructors).
        // SAFETY: forwarding the caller's arguments, with `next` the next pthread_create.
        return unsafe { create_through(next, thread_out, attr, internal_trampoline, routine, arg) };
    }
    let pass_through = !crate::status::active() || thread::with(|s| s.in_profiler.get());
    if pass_through {
        // SAFETY: forwarding the caller's arguments unchanged.
        return unsafe { next(thread_out, attr, routine, arg) };
    }
    // A process that creates threads lives on: its profiler threads start (a forked child's)
    // or end their start-up grace (a new process's) first.
    crate::profiler_threads::program_creates_thread();
    // SAFETY: forwarding the caller's arguments, with `next` the next pthread_create.
    unsafe { create_through(next, thread_out, attr, trampoline, routine, arg) }
}

/// Creates the thread with `trampoline` as its start routine, which gets `routine` and `arg`.
///
/// # Safety
/// As `pthread_create`; `next` is the next pthread_create, and `trampoline` takes the
/// `ThreadStart` box it is given (`take_start`).
unsafe fn create_through(
    next: PthreadCreateFn,
    thread_out: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    trampoline: StartRoutine,
    routine: StartRoutine,
    arg: *mut libc::c_void,
) -> libc::c_int {
    let start = Box::into_raw(Box::new(ThreadStart { routine, arg }));
    // SAFETY: the trampoline takes ownership of `start` exactly once if the thread starts.
    let rc = unsafe { next(thread_out, attr, trampoline, start.cast()) };
    if rc != 0 {
        // SAFETY: the thread was not created, so the box is still ours.
        drop(unsafe { Box::from_raw(start) });
    }
    rc
}

/// In a trampoline: the routine and argument `create_through` handed over.
fn take_start(start: *mut libc::c_void) -> ThreadStart {
    // SAFETY: `start` is the Box leaked by create_through, handed to this thread only.
    *unsafe { Box::from_raw(start as *mut ThreadStart) }
}

extern "C" fn internal_trampoline(start: *mut libc::c_void) -> *mut libc::c_void {
    crate::thread::mark_internal();
    let ThreadStart { routine, arg } = take_start(start);
    routine(arg)
}

extern "C" fn trampoline(start: *mut libc::c_void) -> *mut libc::c_void {
    let ThreadStart { routine, arg } = take_start(start);
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

// ---------------------------------------------------------------- exec
//
// glibc's execv, execvp, execvpe, fexecve and execveat reach the kernel through its internal
// __execve, not through the `execve` symbol, so each needs its own hook or the old image's
// samples are lost. The variadic execl, execlp and execle cannot be defined in stable Rust;
// after them the new image still profiles itself, only the old image's last unexported
// samples are lost.


type Argv = *const *const libc::c_char;
type ExecvFn = unsafe extern "C" fn(*const libc::c_char, Argv) -> libc::c_int;
type FexecveFn = unsafe extern "C" fn(libc::c_int, Argv, Argv) -> libc::c_int;
type ExecveatFn = unsafe extern "C" fn(libc::c_int, *const libc::c_char, Argv, Argv, libc::c_int) -> libc::c_int;

/// Writes this image's profile, then runs `call` with the next definition (`next`, 0 when
/// there is none). Returns only when the exec failed, with the exec's errno intact.
fn exec_through(next: usize, call: impl FnOnce(usize) -> libc::c_int) -> libc::c_int {
    // The new image starts its own profile (LD_PRELOAD is inherited); write this one first.
    crate::runtime::before_exec();
    if next == 0 {
        // SAFETY: errno location is valid for this thread.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        return -1;
    }
    let rc = call(next);
    // SAFETY: as above.
    let errno = unsafe { *libc::__errno_location() };
    crate::runtime::after_failed_exec();
    // SAFETY: as above. Callers that search PATH themselves (CPython's os.execvp) look at it.
    unsafe { *libc::__errno_location() = errno };
    rc
}

#[no_mangle]
pub unsafe extern "C" fn execve(path: *const libc::c_char, argv: Argv, envp: Argv) -> libc::c_int {
    // SAFETY: the next execve, called with the caller's arguments.
    exec_through(real::EXECVE.get(), |next| unsafe { std::mem::transmute::<usize, ExecveFn>(next)(path, argv, envp) })
}

#[no_mangle]
pub unsafe extern "C" fn execv(path: *const libc::c_char, argv: Argv) -> libc::c_int {
    // SAFETY: the next execv, called with the caller's arguments.
    exec_through(real::EXECV.get(), |next| unsafe { std::mem::transmute::<usize, ExecvFn>(next)(path, argv) })
}

#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const libc::c_char, argv: Argv) -> libc::c_int {
    // SAFETY: the next execvp, called with the caller's arguments.
    exec_through(real::EXECVP.get(), |next| unsafe { std::mem::transmute::<usize, ExecvFn>(next)(file, argv) })
}

#[no_mangle]
pub unsafe extern "C" fn execvpe(file: *const libc::c_char, argv: Argv, envp: Argv) -> libc::c_int {
    // SAFETY: the next execvpe, called with the caller's arguments.
    exec_through(real::EXECVPE.get(), |next| unsafe { std::mem::transmute::<usize, ExecveFn>(next)(file, argv, envp) })
}

#[no_mangle]
pub unsafe extern "C" fn fexecve(fd: libc::c_int, argv: Argv, envp: Argv) -> libc::c_int {
    // SAFETY: the next fexecve, called with the caller's arguments.
    exec_through(real::FEXECVE.get(), |next| unsafe { std::mem::transmute::<usize, FexecveFn>(next)(fd, argv, envp) })
}

#[no_mangle]
pub unsafe extern "C" fn execveat(
    dirfd: libc::c_int,
    path: *const libc::c_char,
    argv: Argv,
    envp: Argv,
    flags: libc::c_int,
) -> libc::c_int {
    // SAFETY: the next execveat, called with the caller's arguments.
    exec_through(real::EXECVEAT.get(), |next| unsafe {
        std::mem::transmute::<usize, ExecveatFn>(next)(dirfd, path, argv, envp, flags)
    })
}
