//! Work done inside the interpreter, under its GIL (cold side: requested by the exporter,
//! run by the interpreter's main thread between two bytecodes):
//! - `gil_tasks`: queuing the work with `Py_AddPendingCall` and running it;
//! - `allocator`: the pymalloc hook that makes small Python allocations visible (installed
//!   under the GIL; its hook functions then run on the program's threads, hot side);
//! - `thread_names`: `threading.Thread` names for the `thread name` label;
//! - `exit_drain`: an `atexit` callback that has the exporter drain before finalization.

mod allocator;
pub mod exceptions;
mod exit_drain;
mod gil_tasks;
mod thread_names;

use crate::python::discover::Target;

pub use exit_drain::set_drain;

/// Cold side, every drain: find or confirm the interpreter, then ask for what must run
/// inside it.
pub fn refresh() {
    if let Some(t) = crate::python::target::refresh() {
        request_gil_tasks(t);
    }
}

/// True while the interpreter's allocator hook is wanted and not in place yet (the first
/// seconds after the interpreter was found): the exporter then looks every few milliseconds.
pub fn starting() -> bool {
    let Some(t) = crate::python::target() else { return false };
    t.api.is_some()
        && gil_tasks::supported(t)
        && crate::sample::alloc::recording()
        && !allocator::installed()
        && t.found_at.elapsed() < std::time::Duration::from_secs(5)
}

/// Asks for what must run inside the interpreter (once it is known to run).
fn request_gil_tasks(t: &Target) {
    let Some(api) = t.api.as_ref() else { return };
    let mut tasks = 0;
    if crate::sample::alloc::recording() && !allocator::installed() {
        tasks |= gil_tasks::INSTALL_ALLOCATOR;
    }
    if thread_names::read_due() {
        tasks |= gil_tasks::READ_THREAD_NAMES;
    }
    if exit_drain::wanted(api) {
        tasks |= gil_tasks::REGISTER_EXIT_DRAIN;
    }
    if exceptions::wanted(t.version, api) {
        tasks |= gil_tasks::REGISTER_EXCEPTIONS;
    }
    if exceptions::names_wanted() {
        tasks |= gil_tasks::NAME_EXCEPTION_TYPES;
    }
    if tasks != 0 {
        gil_tasks::request(t, api, tasks);
    }
}

/// Cold side: the `threading` name of thread `tid`. A thread not known yet makes a later
/// refresh read the names again (they arrive a little later, from the interpreter).
pub fn thread_name(tid: i32) -> Option<String> {
    if !crate::python::active() {
        return None;
    }
    let name = thread_names::lookup(tid);
    if name.is_none() {
        thread_names::want(tid);
    }
    name
}

/// Cold side: drops the names of threads for which `gone(tid)` holds.
pub fn forget_thread_names(gone: impl Fn(i32) -> bool) {
    thread_names::forget(gone);
}

/// In a forked child: locks the parent's exporter may have held are reset.
pub fn after_fork_in_child() {
    gil_tasks::after_fork_in_child();
    thread_names::after_fork_in_child();
    exceptions::after_fork_in_child();
}
