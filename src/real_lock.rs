//! The next definitions (normally glibc's) of the lock functions the library interposes.
//!
//! Each is looked up once with `dlsym(RTLD_NEXT)` and cached; the hot path is one load and a
//! compare. `runtime::start` resolves them all eagerly (through `sample::lock::configure`), so
//! a lookup on a program thread happens only for calls made before the library started.
//! None of glibc's lookup code calls these functions through the PLT, so the lookup cannot
//! recurse into the hooks.
//!
//! `dlsym` returns the default version of a versioned symbol: `pthread_cond_wait@@GLIBC_2.3.2`
//! (the current condition variables), not the 2.2.5 compatibility one. A program linked
//! against the 2.2.5 ABI (built before 2003) would be handed the current implementation; such
//! binaries are not supported.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use libc::{c_int, clockid_t, pthread_cond_t, pthread_mutex_t, pthread_rwlock_t, sem_t, timespec};

/// A lazily resolved, typed pointer to the next definition of one C function.
pub struct Next<F> {
    name: &'static [u8], // NUL-terminated
    addr: AtomicUsize,
    _f: PhantomData<F>,
}

// SAFETY: only an atomic address is shared; `F` is a plain function pointer type.
unsafe impl<F> Sync for Next<F> {}

impl<F: Copy> Next<F> {
    pub const fn new(name: &'static [u8]) -> Self {
        Next { name, addr: AtomicUsize::new(0), _f: PhantomData }
    }

    /// The next definition, or None when there is none (never with glibc).
    #[inline(always)]
    pub fn get(&self) -> Option<F> {
        let addr = self.addr.load(Ordering::Acquire);
        if addr != 0 {
            // SAFETY: `addr` was found by dlsym for a C function whose signature is `F` (each
            // static below is declared with the matching type); F is pointer-sized.
            return Some(unsafe { std::mem::transmute_copy::<usize, F>(&addr) });
        }
        self.resolve()
    }

    #[cold]
    #[inline(never)]
    fn resolve(&self) -> Option<F> {
        const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<usize>()) };
        debug_assert_eq!(self.name.last(), Some(&0));
        // SAFETY: `name` is a NUL-terminated static string; RTLD_NEXT is valid in a shared object.
        let addr = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr().cast()) } as usize;
        if addr == 0 {
            return None;
        }
        self.addr.store(addr, Ordering::Release);
        // SAFETY: as in `get`.
        Some(unsafe { std::mem::transmute_copy::<usize, F>(&addr) })
    }
}

pub type MutexFn = unsafe extern "C" fn(*mut pthread_mutex_t) -> c_int;
pub type MutexTimedFn = unsafe extern "C" fn(*mut pthread_mutex_t, *const timespec) -> c_int;
pub type MutexClockFn = unsafe extern "C" fn(*mut pthread_mutex_t, clockid_t, *const timespec) -> c_int;
pub type RwlockFn = unsafe extern "C" fn(*mut pthread_rwlock_t) -> c_int;
pub type RwlockTimedFn = unsafe extern "C" fn(*mut pthread_rwlock_t, *const timespec) -> c_int;
pub type RwlockClockFn = unsafe extern "C" fn(*mut pthread_rwlock_t, clockid_t, *const timespec) -> c_int;
pub type SemFn = unsafe extern "C" fn(*mut sem_t) -> c_int;
pub type SemTimedFn = unsafe extern "C" fn(*mut sem_t, *const timespec) -> c_int;
pub type SemInitFn = unsafe extern "C" fn(*mut sem_t, c_int, libc::c_uint) -> c_int;
pub type SemClockFn = unsafe extern "C" fn(*mut sem_t, clockid_t, *const timespec) -> c_int;
pub type CondWaitFn = unsafe extern "C" fn(*mut pthread_cond_t, *mut pthread_mutex_t) -> c_int;
pub type CondTimedFn = unsafe extern "C" fn(*mut pthread_cond_t, *mut pthread_mutex_t, *const timespec) -> c_int;
pub type CondClockFn =
    unsafe extern "C" fn(*mut pthread_cond_t, *mut pthread_mutex_t, clockid_t, *const timespec) -> c_int;

pub static MUTEX_LOCK: Next<MutexFn> = Next::new(b"pthread_mutex_lock\0");
pub static MUTEX_TRYLOCK: Next<MutexFn> = Next::new(b"pthread_mutex_trylock\0");
pub static MUTEX_TIMEDLOCK: Next<MutexTimedFn> = Next::new(b"pthread_mutex_timedlock\0");
pub static MUTEX_CLOCKLOCK: Next<MutexClockFn> = Next::new(b"pthread_mutex_clocklock\0");
pub static MUTEX_UNLOCK: Next<MutexFn> = Next::new(b"pthread_mutex_unlock\0");

pub static RWLOCK_RDLOCK: Next<RwlockFn> = Next::new(b"pthread_rwlock_rdlock\0");
pub static RWLOCK_WRLOCK: Next<RwlockFn> = Next::new(b"pthread_rwlock_wrlock\0");
pub static RWLOCK_TRYRDLOCK: Next<RwlockFn> = Next::new(b"pthread_rwlock_tryrdlock\0");
pub static RWLOCK_TRYWRLOCK: Next<RwlockFn> = Next::new(b"pthread_rwlock_trywrlock\0");
pub static RWLOCK_TIMEDRDLOCK: Next<RwlockTimedFn> = Next::new(b"pthread_rwlock_timedrdlock\0");
pub static RWLOCK_TIMEDWRLOCK: Next<RwlockTimedFn> = Next::new(b"pthread_rwlock_timedwrlock\0");
pub static RWLOCK_CLOCKRDLOCK: Next<RwlockClockFn> = Next::new(b"pthread_rwlock_clockrdlock\0");
pub static RWLOCK_CLOCKWRLOCK: Next<RwlockClockFn> = Next::new(b"pthread_rwlock_clockwrlock\0");
pub static RWLOCK_UNLOCK: Next<RwlockFn> = Next::new(b"pthread_rwlock_unlock\0");

pub static SEM_INIT: Next<SemInitFn> = Next::new(b"sem_init\0");
pub static SEM_WAIT: Next<SemFn> = Next::new(b"sem_wait\0");
pub static SEM_TRYWAIT: Next<SemFn> = Next::new(b"sem_trywait\0");
pub static SEM_TIMEDWAIT: Next<SemTimedFn> = Next::new(b"sem_timedwait\0");
pub static SEM_CLOCKWAIT: Next<SemClockFn> = Next::new(b"sem_clockwait\0");

pub static COND_WAIT: Next<CondWaitFn> = Next::new(b"pthread_cond_wait\0");
pub static COND_TIMEDWAIT: Next<CondTimedFn> = Next::new(b"pthread_cond_timedwait\0");
pub static COND_CLOCKWAIT: Next<CondClockFn> = Next::new(b"pthread_cond_clockwait\0");

/// Looks every function up now (at start-up, before the program's threads need them).
pub fn resolve_all() {
    let _ = (MUTEX_LOCK.get(), MUTEX_TRYLOCK.get(), MUTEX_TIMEDLOCK.get(), MUTEX_CLOCKLOCK.get(), MUTEX_UNLOCK.get());
    let _ = (RWLOCK_RDLOCK.get(), RWLOCK_WRLOCK.get(), RWLOCK_TRYRDLOCK.get(), RWLOCK_TRYWRLOCK.get());
    let _ = (RWLOCK_TIMEDRDLOCK.get(), RWLOCK_TIMEDWRLOCK.get(), RWLOCK_CLOCKRDLOCK.get(), RWLOCK_CLOCKWRLOCK.get());
    let _ = RWLOCK_UNLOCK.get();
    let _ = SEM_INIT.get();
    let _ = (SEM_WAIT.get(), SEM_TRYWAIT.get(), SEM_TIMEDWAIT.get(), SEM_CLOCKWAIT.get());
    let _ = (COND_WAIT.get(), COND_TIMEDWAIT.get(), COND_CLOCKWAIT.get());
}
