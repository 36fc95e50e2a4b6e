//! What the life cycle (runtime.rs) publishes for every layer below it: whether profiling
//! runs, in which process, with which configuration, and whether the profile has ended.
//!
//! Only runtime.rs writes these; hooks, samplers and the hand-off read them (lock-free loads,
//! usable from signal handlers). Keeping them here, below everything that reads them, is what
//! lets the lower layers stay ignorant of the life cycle that drives them.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

use crate::config::Config;

static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();
/// True once profiling runs in this process (false when disabled or not yet started).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The process the profile belongs to; a child made by vfork/clone has another pid and must
/// write nothing.
static OWNER_PID: AtomicI32 = AtomicI32::new(0);
/// Set once the final export has been requested (exit paths can be reached more than once).
static PROFILE_ENDED: AtomicBool = AtomicBool::new(false);

#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

pub(crate) fn set_active() {
    ACTIVE.store(true, Ordering::Release);
}

pub fn config() -> Option<&'static Arc<Config>> {
    CONFIG.get()
}

/// The configuration the process runs with: the first one set wins.
pub(crate) fn set_config(config: Arc<Config>) -> &'static Arc<Config> {
    CONFIG.get_or_init(|| config)
}

pub fn is_owner_process() -> bool {
    // SAFETY: getpid has no preconditions.
    OWNER_PID.load(Ordering::Acquire) == unsafe { libc::getpid() }
}

pub(crate) fn set_owner_pid(pid: i32) {
    OWNER_PID.store(pid, Ordering::Release);
}

/// True once the final export ran or was requested: nothing drains the ring any more.
#[inline]
pub fn profile_ended() -> bool {
    PROFILE_ENDED.load(Ordering::Relaxed)
}

/// Marks the profile ended; false if it already was (so exactly one caller ends it).
pub(crate) fn end_profile() -> bool {
    !PROFILE_ENDED.swap(true, Ordering::AcqRel)
}

/// A failed exec, or a forked child: the profile goes on.
pub(crate) fn reopen_profile() {
    PROFILE_ENDED.store(false, Ordering::Release);
}
