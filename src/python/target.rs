//! The interpreter the hot side reads: found after start-up (and after `dlopen`), its
//! layout checked against the running interpreter once it runs, or given up with one warning.
//!
//! The hot side only loads `TARGET` (lock-free). The cold side (exporter thread) calls
//! `refresh` every drain; the layers above decide what to do with a confirmed target.

use std::sync::atomic::{AtomicPtr, Ordering};

use super::discover::{self, Found, Target};
use super::memory;
use crate::sample::modules::{self, LoadGeneration};
use crate::{log_debug, log_info, log_warn};

/// The interpreter the hot side reads; null when there is none or reading was disabled.
/// Targets are leaked, never freed: a signal handler may still be using an old one.
static TARGET: AtomicPtr<Target> = AtomicPtr::new(std::ptr::null_mut());

#[derive(Default)]
struct Control {
    /// The module list last searched for an interpreter.
    searched: Option<LoadGeneration>,
    /// Set once reading is impossible or disabled for good (one warning said why).
    given_up: bool,
    /// The layout has been confirmed on the live interpreter.
    validated: bool,
    failed_checks: u32,
}

/// A spin lock (not std's) so a forked child can reset it when the parent's exporter held it.
static CONTROL: crate::yield_lock::Lock<Control> = crate::yield_lock::Lock::new(Control {
    searched: None,
    given_up: false,
    validated: false,
    failed_checks: 0,
});

fn control() -> crate::yield_lock::LockGuard<'static, Control> {
    CONTROL.lock()
}

/// In a forked child: the parent's exporter may have held the control lock at the fork;
/// its holder does not exist here. State that may be half-updated is dropped.
pub fn after_fork_in_child() {
    if CONTROL.is_locked() {
        // SAFETY: the holder was a parent thread that does not exist in the child.
        unsafe { CONTROL.force_unlock() };
        *CONTROL.lock() = Control { searched: None, given_up: false, validated: false, failed_checks: 0 };
    }
}

/// The interpreter, once found and its layout accepted (a lock-free load: hot side).
pub fn target() -> Option<&'static Target> {
    let p = TARGET.load(Ordering::Acquire);
    // SAFETY: TARGET only ever holds leaked boxes.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Cold side, at start-up (before any timer is armed).
pub fn init() {
    search(&mut control());
}

/// Cold side, every drain: look again after dlopen; validate once the interpreter runs.
/// Returns the interpreter once its layout is confirmed or being confirmed (what runs inside
/// it may be requested then).
pub fn refresh() -> Option<&'static Target> {
    let mut c = control();
    if c.given_up {
        return None;
    }
    match target() {
        None => {
            search(&mut c);
            None
        }
        Some(t) if !c.validated => {
            validate(&mut c, t);
            target()
        }
        Some(t) => Some(t),
    }
}

/// True once the layout was confirmed on the running interpreter.
pub fn confirmed() -> bool {
    target().is_some() && control().validated
}

/// Reading is impossible from now on (one warning says why).
pub fn disable(why: &str) {
    give_up(&mut control(), why);
}

fn search(c: &mut Control) {
    if c.given_up || target().is_some() {
        return;
    }
    let generation = modules::current_generation();
    if c.searched == Some(generation) {
        return;
    }
    c.searched = Some(generation);
    let mut t = match discover::find() {
        Found::Nothing => return,
        Found::Unsupported(why) => return give_up(c, &why),
        Found::Target(t) => t,
    };
    let (major, minor, micro) = t.version;
    let method = match memory::init() {
        Ok(m) => m,
        Err(why) => return give_up(c, &format!("CPython {major}.{minor}.{micro}: {why}")),
    };
    let source = match discover::settle_layout(&mut t) {
        Ok(source) => source,
        Err(why) => {
            return give_up(
                c,
                &format!("CPython {major}.{minor}.{micro} ({}): {why}", t.origin),
            )
        }
    };
    if t.eval.is_empty() {
        log_warn!("Python frames: _PyEval_EvalFrameDefault not found in {}; Python frames go at the root of native stacks", t.origin);
    }
    let message = format!(
        "Python frames: CPython {major}.{minor}.{micro} in {}, layout from {source}, evaluation loop {}, read with {method}",
        t.origin, t.eval
    );
    if t.layout.minor == minor {
        log_debug!("{message}");
    } else {
        // A version the build has no table for: worth saying at the default level once.
        log_info!("{message}");
    }
    TARGET.store(Box::into_raw(Box::new(t)), Ordering::Release);
}

fn give_up(c: &mut Control, why: &str) {
    c.given_up = true;
    TARGET.store(std::ptr::null_mut(), Ordering::Release);
    log_warn!("Python frames are disabled: {why}");
}

fn validate(c: &mut Control, t: &Target) {
    match discover::check_live(t) {
        discover::Live::NotYet => {}
        discover::Live::Confirmed => {
            c.validated = true;
            log_debug!("Python frames: layout confirmed on the running interpreter");
        }
        discover::Live::Mismatch(why) => {
            // One odd reading can be a race with the interpreter; three in a row are not.
            c.failed_checks += 1;
            if c.failed_checks >= 3 {
                let (major, minor, micro) = t.version;
                give_up(c, &format!("the CPython {major}.{minor}.{micro} layout does not match this interpreter ({why})"));
            }
        }
    }
}
