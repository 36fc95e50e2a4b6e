//! Hot side, CPython 3.8–3.11: the type of the exception a thread is handling, read at each
//! CPU sample — what `sys.exc_info()` would return on that thread.
//!
//! These versions have no hook that sees raises and costs nothing when unused (3.12+ has
//! `sys.monitoring`, see `python_gil/exceptions.rs`), so, as Datadog's Python profiler does
//! there, exceptions are seen through the samples: a CPU sample taken while the thread runs an
//! `except` block (or code it calls) also counts one exception sample of that type. The counts
//! measure time spent handling each type, not the number of raises (documented).

use super::discover::Target;
use super::layout::ABSENT;
use super::memory;

/// How many `_PyErr_StackItem`s are followed: a generator pushes its own item, which may be
/// empty while an outer one holds the exception (`_PyErr_GetTopmostException` skips those).
const MAX_ITEMS: usize = 8;

/// The type object of the exception the calling thread handles, or 0. For 3.8–3.11 only;
/// needs the thread state found by the capture just made. Async-signal-safe (fault-proof
/// reads only).
pub fn handled_type(t: &Target) -> u64 {
    let l = t.layout;
    if t.version.1 >= 12 || l.tstate_exc_info == ABSENT || l.exc_item_value == ABSENT || l.exc_item_previous == ABSENT {
        return 0;
    }
    let tstate = super::walk::current_thread_state();
    if tstate == 0 {
        return 0;
    }
    let Some(mut item) = memory::read_u64(tstate + l.tstate_exc_info as u64) else { return 0 };
    for _ in 0..MAX_ITEMS {
        if item == 0 {
            return 0;
        }
        let ty = if l.exc_item_type != ABSENT {
            memory::read_u64(item + l.exc_item_type as u64).unwrap_or(0)
        } else {
            match memory::read_u64(item + l.exc_item_value as u64) {
                Some(value) if value != 0 && value != t.none => memory::read_u64(value + l.object_type as u64).unwrap_or(0),
                _ => 0,
            }
        };
        if ty != 0 && ty != t.none {
            return ty;
        }
        let Some(next) = memory::read_u64(item + l.exc_item_previous as u64) else { return 0 };
        item = next;
    }
    0
}
