//! Mutexes, rwlocks, semaphores and condition waits. Each hook forwards to the next
//! definition (glibc's) and tells the lock sampler (`sample/lock.rs`) what happened.
//!
//! A blocking acquire first calls the real try-variant: when the lock is free, that is all
//! (plus one TLS countdown for hold sampling); only when it is taken is the real blocking
//! function called and timed. Return values and errno are exactly the real functions':
//! arguments the real function would reject before even trying the lock (an invalid clock or
//! timeout) go straight to it, and semaphore waits act on a pending cancellation first, as
//! glibc's do.
//!
//! Not seen: locks taken inside glibc without the PLT (the re-lock inside
//! `pthread_cond_wait`, see `sample/lock.rs`), statically linked programs, and locks that do
//! not use these functions (futex-based locks of other runtimes: Rust's std, Go, …).
//!
//! Each hook has exactly the contract (`# Safety`) of the C function it replaces.
#![allow(clippy::missing_safety_doc)]

use libc::{c_int, clockid_t, pthread_cond_t, pthread_mutex_t, pthread_rwlock_t, sem_t, timespec};

use crate::real_lock;
use crate::sample::lock::{self, Waited};

extern "C" {
    fn pthread_testcancel();
}

fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn set_errno(value: c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = value };
}

/// What glibc accepts as an absolute timeout before it looks at the lock.
///
/// # Safety
/// `t` must be null or point at a readable timespec.
unsafe fn valid_abstime(t: *const timespec) -> bool {
    // SAFETY: non-null pointers come from the caller, who passes them to glibc as well.
    !t.is_null() && (0..1_000_000_000).contains(&unsafe { (*t).tv_nsec })
}

fn valid_clock(clock: clockid_t) -> bool {
    clock == libc::CLOCK_REALTIME || clock == libc::CLOCK_MONOTONIC
}

fn mutex_outcome(rc: c_int) -> Waited {
    match rc {
        0 | libc::EOWNERDEAD => Waited::Acquired,
        libc::ETIMEDOUT => Waited::TimedOut,
        _ => Waited::Failed,
    }
}

fn rwlock_outcome(rc: c_int) -> Waited {
    match rc {
        0 => Waited::Acquired,
        libc::ETIMEDOUT => Waited::TimedOut,
        _ => Waited::Failed,
    }
}

/// For `-1`/errno functions; called right after the real call, before errno can change.
fn sem_outcome(rc: c_int) -> Waited {
    if rc == 0 {
        Waited::Acquired
    } else if errno() == libc::ETIMEDOUT {
        Waited::TimedOut
    } else {
        Waited::Failed
    }
}

// ---------------------------------------------------------------- mutexes
//
// The hot hooks are written so that their fast path holds no closure: `move` closures are
// built only on the cold paths.

/// Calls the next definition, or returns EINVAL when there is none (never with glibc).
macro_rules! forward {
    ($next:expr, $($arg:expr),*) => {
        match $next.get() {
            Some(real) => {
                // SAFETY: forwarding the caller's arguments unchanged.
                #[allow(unused_unsafe)]
                let rc = unsafe { real($($arg),*) };
                rc
            }
            None => libc::EINVAL,
        }
    };
}

/// The common shape of the blocking mutex acquires: try first; when the mutex was free,
/// count the acquisition and return. Otherwise see `mutex_after_try`.
///
/// # Safety
/// `mutex` is the caller's; `block` forwards to the real blocking function.
#[inline(always)]
unsafe fn acquire_mutex(mutex: *mut pthread_mutex_t, block: impl FnOnce() -> c_int) -> c_int {
    let Some(trylock) = real_lock::MUTEX_TRYLOCK.get() else { return block() };
    // SAFETY: forwarding the caller's mutex.
    let tried = unsafe { trylock(mutex) };
    if tried == 0 {
        lock::on_acquired(mutex as usize);
        return 0;
    }
    mutex_after_try(mutex, tried, block)
}

/// The try-variant failed with `tried`: EBUSY means a wait, timed around `block`; an owner
/// that died left the mutex acquired (EOWNERDEAD, as the blocking call would say); anything
/// else goes to `block` untimed, which reports it as the real function does.
#[cold]
#[inline(never)]
fn mutex_after_try(mutex: *mut pthread_mutex_t, tried: c_int, block: impl FnOnce() -> c_int) -> c_int {
    match tried {
        libc::EOWNERDEAD => {
            lock::on_acquired(mutex as usize);
            tried
        }
        libc::EBUSY => lock::contended(mutex as usize, true, move || {
            let rc = block();
            (rc, mutex_outcome(rc))
        }),
        _ => block(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn pthread_mutex_lock(mutex: *mut pthread_mutex_t) -> c_int {
    if lock::enabled() {
        // SAFETY: forwarding.
        return unsafe { acquire_mutex(mutex, move || forward!(real_lock::MUTEX_LOCK, mutex)) };
    }
    forward!(real_lock::MUTEX_LOCK, mutex)
}

#[no_mangle]
pub unsafe extern "C" fn pthread_mutex_timedlock(mutex: *mut pthread_mutex_t, abstime: *const timespec) -> c_int {
    if lock::enabled() {
        // SAFETY: forwarding.
        return unsafe { acquire_mutex(mutex, move || forward!(real_lock::MUTEX_TIMEDLOCK, mutex, abstime)) };
    }
    forward!(real_lock::MUTEX_TIMEDLOCK, mutex, abstime)
}

#[no_mangle]
pub unsafe extern "C" fn pthread_mutex_clocklock(mutex: *mut pthread_mutex_t, clock: clockid_t, abstime: *const timespec) -> c_int {
    // glibc rejects other clocks before trying the mutex.
    if lock::enabled() && valid_clock(clock) {
        // SAFETY: forwarding.
        return unsafe { acquire_mutex(mutex, move || forward!(real_lock::MUTEX_CLOCKLOCK, mutex, clock, abstime)) };
    }
    forward!(real_lock::MUTEX_CLOCKLOCK, mutex, clock, abstime)
}

#[no_mangle]
pub unsafe extern "C" fn pthread_mutex_trylock(mutex: *mut pthread_mutex_t) -> c_int {
    let rc = forward!(real_lock::MUTEX_TRYLOCK, mutex);
    if (rc == 0 || rc == libc::EOWNERDEAD) && lock::enabled() {
        lock::on_acquired(mutex as usize);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn pthread_mutex_unlock(mutex: *mut pthread_mutex_t) -> c_int {
    if lock::holds_sampled() {
        return lock::release(mutex as usize, move || forward!(real_lock::MUTEX_UNLOCK, mutex));
    }
    forward!(real_lock::MUTEX_UNLOCK, mutex)
}

// ---------------------------------------------------------------- rwlocks

/// As `acquire_mutex`, with the read or write try-variant.
///
/// # Safety
/// `rwlock` is the caller's; `block` forwards to the real blocking function.
#[inline(always)]
unsafe fn acquire_rwlock(
    rwlock: *mut pthread_rwlock_t,
    trylock: Option<real_lock::RwlockFn>,
    block: impl FnOnce() -> c_int,
) -> c_int {
    let Some(trylock) = trylock else { return block() };
    // SAFETY: forwarding the caller's rwlock.
    let tried = unsafe { trylock(rwlock) };
    if tried == 0 {
        lock::on_acquired(rwlock as usize);
        return 0;
    }
    rwlock_after_try(rwlock, tried, block)
}

#[cold]
#[inline(never)]
fn rwlock_after_try(rwlock: *mut pthread_rwlock_t, tried: c_int, block: impl FnOnce() -> c_int) -> c_int {
    match tried {
        libc::EBUSY => lock::contended(rwlock as usize, true, move || {
            let rc = block();
            (rc, rwlock_outcome(rc))
        }),
        _ => block(),
    }
}

/// glibc checks a given timeout (and clock) of rwlock waits before looking at the lock.
///
/// # Safety
/// `abstime` is null or the caller's timespec.
unsafe fn rwlock_args_ok(clock: clockid_t, abstime: *const timespec) -> bool {
    // SAFETY: as documented.
    abstime.is_null() || (valid_clock(clock) && unsafe { valid_abstime(abstime) })
}

#[no_mangle]
pub unsafe extern "C" fn pthread_rwlock_rdlock(rwlock: *mut pthread_rwlock_t) -> c_int {
    if lock::enabled() {
        // SAFETY: forwarding.
        return unsafe {
            acquire_rwlock(rwlock, real_lock::RWLOCK_TRYRDLOCK.get(), move || forward!(real_lock::RWLOCK_RDLOCK, rwlock))
        };
    }
    forward!(real_lock::RWLOCK_RDLOCK, rwlock)
}

#[no_mangle]
pub unsafe extern "C" fn pthread_rwlock_wrlock(rwlock: *mut pthread_rwlock_t) -> c_int {
    if lock::enabled() {
        // SAFETY: forwarding.
        return unsafe {
            acquire_rwlock(rwlock, real_lock::RWLOCK_TRYWRLOCK.get(), move || forward!(real_lock::RWLOCK_WRLOCK, rwlock))
        };
    }
    forward!(real_lock::RWLOCK_WRLOCK, rwlock)
}

#[no_mangle]
pub unsafe extern "C" fn pthread_rwlock_timedrdlock(rwlock: *mut pthread_rwlock_t, abstime: *const timespec) -> c_int {
    // SAFETY: abstime is the caller's, passed to glibc as well.
    if lock::enabled() && unsafe { rwlock_args_ok(libc::CLOCK_REALTIME, abstime) } {
        // SAFETY: forwarding.
        return unsafe {
            acquire_rwlock(rwlock, real_lock::RWLOCK_TRYRDLOCK.get(), move || {
                forward!(real_lock::RWLOCK_TIMEDRDLOCK, rwlock, abstime)
            })
        };
    }
    forward!(real_lock::RWLOCK_TIMEDRDLOCK, rwlock, abstime)
}

#[no_mangle]
pub unsafe extern "C" fn pthread_rwlock_timedwrlock(rwlock: *mut pthread_rwlock_t, abstime: *const timespec) -> c_int {
    // SAFETY: abstime is the caller's, passed to glibc as well.
    if lock::enabled() && unsafe { rwlock_args_ok(libc::CLOCK_REALTIME, abstime) } {
        // SAFETY: forwarding.
        return unsafe {
            acquire_rwlock(rwlock, real_lock::RWLOCK_TRYWRLOCK.get(), move || {
                forward!(real_lock::RWLOCK_TIMEDWRLOCK, rwlock, abstime)
            })
        };
    }
    forward!(real_lock::RWLOCK_TIMEDWRLOCK, rwlock, abstime)
}

#[no_mangle]
pub unsafe extern "C" fn pthread_rwlock_clockrdlock(rwlock: *mut pthread_rwlock_t, clock: clockid_t, abstime: *const timespec) -> c_int {
    // SAFETY: abstime is the caller's, passed to glibc as well.
    if lock::enabled() && unsafe { rwlock_args_ok(clock, abstime) } {
        // SAFETY: forwarding.
        return unsafe {
            acquire_rwlock(rwlock, real_lock::RWLOCK_TRYRDLOCK.get(), move || {
                forward!(real_lock::RWLOCK_CLOCKRDLOCK, rwlock, clock, abstime)
            })
        };
    }
    forward!(real_lock::RWLOCK_CLOCKRDLOCK, rwlock, clock, abstime)
}

#[no_mangle]
pub unsafe extern "C" fn pthread_rwlock_clockwrlock(rwlock: *mut pthread_rwlock_t, clock: clockid_t, abstime: *const timespec) -> c_int {
    // SAFETY: abstime is the caller's, passed to glibc as well.
    if lock::enabled() && unsafe { rwlock_args_ok(clock, abstime) } {
        // SAFETY: forwarding.
        return unsafe {
            acquire_rwlock(rwlock, real_lock::RWLOCK_TRYWRLOCK.get(), move || {
                forward!(real_lock::RWLOCK_CLOCKWRLOCK, rwlock, clock, abstime)
            })
        };
    }
    forward!(real_lock::RWLOCK_CLOCKWRLOCK, rwlock, clock, abstime)
}

#[no_mangle]
pub unsafe extern "C" fn pthread_rwlock_tryrdlock(rwlock: *mut pthread_rwlock_t) -> c_int {
    let rc = forward!(real_lock::RWLOCK_TRYRDLOCK, rwlock);
    if rc == 0 && lock::enabled() {
        lock::on_acquired(rwlock as usize);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn pthread_rwlock_trywrlock(rwlock: *mut pthread_rwlock_t) -> c_int {
    let rc = forward!(real_lock::RWLOCK_TRYWRLOCK, rwlock);
    if rc == 0 && lock::enabled() {
        lock::on_acquired(rwlock as usize);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn pthread_rwlock_unlock(rwlock: *mut pthread_rwlock_t) -> c_int {
    if lock::holds_sampled() {
        return lock::release(rwlock as usize, move || forward!(real_lock::RWLOCK_UNLOCK, rwlock));
    }
    forward!(real_lock::RWLOCK_UNLOCK, rwlock)
}

// ---------------------------------------------------------------- semaphores

/// Semaphore waits: try first (keeping errno as it was when that fails), time `block`
/// otherwise. Semaphores have no owner, so only waits are sampled.
///
/// # Safety
/// `sem` is the caller's; `block` forwards to the real function.
#[inline(always)]
unsafe fn acquire_sem(sem: *mut sem_t, block: impl FnOnce() -> c_int) -> c_int {
    let Some(trywait) = real_lock::SEM_TRYWAIT.get() else { return block() };
    let saved = errno();
    // SAFETY: forwarding the caller's semaphore.
    if unsafe { trywait(sem) } == 0 {
        return 0;
    }
    set_errno(saved);
    lock::contended(sem as usize, false, || {
        let rc = block();
        (rc, sem_outcome(rc))
    })
}

/// CPython's locks are semaphores: the Python stack at their creation names them (see
/// `lock::on_created`).
#[no_mangle]
pub unsafe extern "C" fn sem_init(sem: *mut sem_t, pshared: c_int, value: libc::c_uint) -> c_int {
    let Some(real) = real_lock::SEM_INIT.get() else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    // SAFETY: forwarding the caller's arguments.
    let rc = unsafe { real(sem, pshared, value) };
    if rc == 0 && lock::enabled() {
        lock::on_created(sem as usize);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn sem_wait(sem: *mut sem_t) -> c_int {
    let Some(real) = real_lock::SEM_WAIT.get() else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    if !lock::enabled() {
        // SAFETY: forwarding.
        return restart_after_wall_signal(|| unsafe { real(sem) });
    }
    // sem_wait is a cancellation point even when it need not block.
    // SAFETY: no preconditions.
    unsafe { pthread_testcancel() };
    // SAFETY: forwarding.
    unsafe { acquire_sem(sem, || restart_after_wall_signal(|| real(sem))) }
}

#[no_mangle]
pub unsafe extern "C" fn sem_timedwait(sem: *mut sem_t, abstime: *const timespec) -> c_int {
    let Some(real) = real_lock::SEM_TIMEDWAIT.get() else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    // SAFETY: abstime is the caller's, passed to glibc as well.
    if !lock::enabled() || !unsafe { valid_abstime(abstime) } {
        // SAFETY: forwarding.
        return restart_after_wall_signal(|| unsafe { real(sem, abstime) });
    }
    // SAFETY: no preconditions (glibc's sem_timedwait tests for cancellation first too).
    unsafe { pthread_testcancel() };
    // SAFETY: forwarding.
    unsafe { acquire_sem(sem, || restart_after_wall_signal(|| real(sem, abstime))) }
}

#[no_mangle]
pub unsafe extern "C" fn sem_clockwait(sem: *mut sem_t, clock: clockid_t, abstime: *const timespec) -> c_int {
    let Some(real) = real_lock::SEM_CLOCKWAIT.get() else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    // SAFETY: abstime is the caller's, passed to glibc as well.
    if !lock::enabled() || !valid_clock(clock) || !unsafe { valid_abstime(abstime) } {
        // SAFETY: forwarding.
        return restart_after_wall_signal(|| unsafe { real(sem, clock, abstime) });
    }
    // SAFETY: forwarding.
    unsafe { acquire_sem(sem, || restart_after_wall_signal(|| real(sem, clock, abstime))) }
}

/// glibc never restarts semaphore waits after a signal. When the EINTR came from the wall
/// sampler's own signal (this thread captured a wall stack during the wait), the wait is
/// resumed here, so the program never sees an interruption it did not cause. The deadline of
/// the timed variants is absolute, so resuming keeps it exact. (If one of the program's own
/// signals arrived during the same wait, its EINTR is absorbed too; its handler still ran.)
fn restart_after_wall_signal(mut wait: impl FnMut() -> c_int) -> c_int {
    loop {
        let captures = crate::thread::with(|s| s.wall_captures.load(std::sync::atomic::Ordering::Acquire));
        let rc = wait();
        // SAFETY: errno location is valid for this thread.
        let interrupted = rc == -1 && unsafe { *libc::__errno_location() } == libc::EINTR;
        let ours = crate::thread::with(|s| s.wall_captures.load(std::sync::atomic::Ordering::Acquire)) != captures;
        if !(interrupted && ours) {
            return rc;
        }
    }
}

// ---------------------------------------------------------------- condition waits

/// Around a condition wait on a thread that follows some hold: the hold of `mutex` (if
/// followed) ends before the wait and starts again after it.
#[cold]
#[inline(never)]
fn around_cond_wait(mutex: *mut pthread_mutex_t, wait: impl FnOnce() -> c_int) -> c_int {
    let followed = lock::cond_suspend(mutex as usize);
    let rc = wait();
    if followed {
        lock::cond_resume(mutex as usize);
    }
    rc
}

#[no_mangle]
pub unsafe extern "C" fn pthread_cond_wait(cond: *mut pthread_cond_t, mutex: *mut pthread_mutex_t) -> c_int {
    let Some(real) = real_lock::COND_WAIT.get() else { return libc::EINVAL };
    if !lock::holds_sampled() {
        // SAFETY: forwarding.
        return unsafe { real(cond, mutex) };
    }
    // SAFETY: forwarding.
    around_cond_wait(mutex, || unsafe { real(cond, mutex) })
}

#[no_mangle]
pub unsafe extern "C" fn pthread_cond_timedwait(
    cond: *mut pthread_cond_t,
    mutex: *mut pthread_mutex_t,
    abstime: *const timespec,
) -> c_int {
    let Some(real) = real_lock::COND_TIMEDWAIT.get() else { return libc::EINVAL };
    // An invalid timeout is rejected before the mutex is released: nothing to split.
    // SAFETY: abstime is the caller's, passed to glibc as well.
    if !lock::holds_sampled() || !unsafe { valid_abstime(abstime) } {
        // SAFETY: forwarding.
        return unsafe { real(cond, mutex, abstime) };
    }
    // SAFETY: forwarding.
    around_cond_wait(mutex, || unsafe { real(cond, mutex, abstime) })
}

#[no_mangle]
pub unsafe extern "C" fn pthread_cond_clockwait(
    cond: *mut pthread_cond_t,
    mutex: *mut pthread_mutex_t,
    clock: clockid_t,
    abstime: *const timespec,
) -> c_int {
    let Some(real) = real_lock::COND_CLOCKWAIT.get() else { return libc::EINVAL };
    // SAFETY: as in timedwait.
    if !lock::holds_sampled() || !valid_clock(clock) || !unsafe { valid_abstime(abstime) } {
        // SAFETY: forwarding.
        return unsafe { real(cond, mutex, clock, abstime) };
    }
    // SAFETY: forwarding.
    around_cond_wait(mutex, || unsafe { real(cond, mutex, clock, abstime) })
}
