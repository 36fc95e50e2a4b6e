//! The next definitions of the symbols this library interposes (`dlsym(RTLD_NEXT)`), looked
//! up once and cached. Looking up lazily on first call keeps load order irrelevant; `dlsym`
//! may allocate, which is harmless for the symbols here (none of them is an allocator).

use std::sync::atomic::{AtomicUsize, Ordering};

/// A lazily resolved pointer to the next definition of one C symbol.
pub struct NextSymbol {
    name: &'static [u8], // NUL-terminated
    addr: AtomicUsize,
}

impl NextSymbol {
    pub const fn new(name: &'static [u8]) -> Self {
        NextSymbol { name, addr: AtomicUsize::new(0) }
    }

    /// The address of the next definition, or 0 if there is none.
    pub fn get(&self) -> usize {
        let cached = self.addr.load(Ordering::Acquire);
        if cached != 0 {
            return cached;
        }
        debug_assert_eq!(self.name.last(), Some(&0));
        // SAFETY: `name` is a NUL-terminated static string; RTLD_NEXT is valid in a shared object.
        let found = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr().cast()) } as usize;
        self.addr.store(found, Ordering::Release);
        found
    }
}

pub static PTHREAD_CREATE: NextSymbol = NextSymbol::new(b"pthread_create\0");
pub static EXIT_UNDERSCORE: NextSymbol = NextSymbol::new(b"_exit\0");
pub static EXIT_CAPITAL: NextSymbol = NextSymbol::new(b"_Exit\0");
pub static SIGACTION: NextSymbol = NextSymbol::new(b"sigaction\0");
pub static SIGNAL: NextSymbol = NextSymbol::new(b"signal\0");
pub static EXECVE: NextSymbol = NextSymbol::new(b"execve\0");
pub static EXECV: NextSymbol = NextSymbol::new(b"execv\0");
pub static EXECVP: NextSymbol = NextSymbol::new(b"execvp\0");
pub static EXECVPE: NextSymbol = NextSymbol::new(b"execvpe\0");
pub static FEXECVE: NextSymbol = NextSymbol::new(b"fexecve\0");
pub static EXECVEAT: NextSymbol = NextSymbol::new(b"execveat\0");
/// libstdc++'s (or libc++abi's) `__cxa_throw`, which the exception hook forwards to.
pub static CXA_THROW: NextSymbol = NextSymbol::new(b"__cxa_throw\0");

/// Looks the next exec functions up ahead of time (at start-up, on the main thread): a
/// vfork child calling one of them must not be the first to run `dlsym`, which allocates
/// in memory it shares with its parent.
pub fn resolve_next_symbols() {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    for symbol in [&EXECVE, &EXECV, &EXECVP, &EXECVPE, &FEXECVE, &EXECVEAT, &EXIT_UNDERSCORE, &EXIT_CAPITAL, &SIGACTION, &SIGNAL] {
        symbol.get();
    }
}


pub type PthreadCreateFn = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    extern "C" fn(*mut libc::c_void) -> *mut libc::c_void,
    *mut libc::c_void,
) -> libc::c_int;
pub type ExitFn = unsafe extern "C" fn(libc::c_int) -> !;
pub type SigactionFn =
    unsafe extern "C" fn(libc::c_int, *const libc::sigaction, *mut libc::sigaction) -> libc::c_int;
pub type SignalFn = unsafe extern "C" fn(libc::c_int, libc::sighandler_t) -> libc::sighandler_t;
pub type ExecveFn = unsafe extern "C" fn(
    *const libc::c_char,
    *const *const libc::c_char,
    *const *const libc::c_char,
) -> libc::c_int;

/// Calls the real `sigaction` (used by the library itself to install its own handler, which
/// must not go through the application-facing hook).
pub fn sigaction(sig: libc::c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> libc::c_int {
    let addr = SIGACTION.get();
    if addr == 0 {
        // No next definition (cannot happen with glibc). `libc::sigaction` would resolve to our
        // own hook and recurse, so report the failure instead.
        // SAFETY: errno location is valid for this thread.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        return -1;
    }
    // SAFETY: the address was found by dlsym for a symbol with this C signature.
    unsafe { std::mem::transmute::<usize, SigactionFn>(addr)(sig, act, old) }
}
