//! Per-version memory layouts of the CPython structures the frame reader touches.
//!
//! The numbers are never typed by hand: `scripts/gen-python-offsets.sh` compiles
//! `offsetof()`/`sizeof()` against each version's own headers (internal ones included, with
//! `-DPy_BUILD_CORE`) and writes `layout_table.rs`. On 3.13+ the running interpreter
//! describes most of these offsets itself, in the `_Py_DebugOffsets` at the start of
//! `_PyRuntime`: they are read from there and must agree with the table (`debug_offsets.rs`);
//! a later minor version without a table is read from its `_Py_DebugOffsets` alone.

/// Marks a field the version does not have.
pub const ABSENT: u32 = u32::MAX;

/// One `_Py_DebugOffsets` member (3.13+): its name (`group.member`, as in CPython's
/// `pycore_debug_offsets.h`), where it sits in that struct, and the value the headers give
/// for what it describes.
#[derive(Debug, Clone, Copy)]
pub struct DebugCheck {
    pub what: &'static str,
    pub at: u32,
    pub expect: u32,
}

/// Byte offsets (and a few sizes and constants) for one CPython minor version.
/// See `scripts/gen-python-offsets.c` for what each field is taken from.
#[derive(Debug, Clone)]
pub struct Layout {
    pub major: u32,
    pub minor: u32,

    pub runtime_interpreters_head: u32,
    pub runtime_debug_offsets: u32,
    pub interp_next: u32,
    pub interp_threads_head: u32,
    /// `PyInterpreterState.ceval.eval_breaker` (3.9–3.12).
    pub interp_eval_breaker: u32,
    /// 3.8: `_PyRuntime.ceval.pending` (lock, finishing, calls_to_do, calls[], the size of one
    /// call entry, their number, first, last) and `_PyRuntime.ceval.eval_breaker`.
    pub runtime_pending_lock: u32,
    pub runtime_pending_finishing: u32,
    pub runtime_pending_calls_to_do: u32,
    pub runtime_pending_calls: u32,
    pub runtime_pending_call_size: u32,
    pub runtime_pending_ncalls: u32,
    pub runtime_pending_first: u32,
    pub runtime_pending_last: u32,
    pub runtime_eval_breaker: u32,
    pub tstate_prev: u32,
    pub tstate_next: u32,
    pub tstate_interp: u32,
    pub tstate_thread_id: u32,
    /// `exc_info`: the innermost `_PyErr_StackItem` (the exception being handled).
    pub tstate_exc_info: u32,
    /// In a `_PyErr_StackItem`: the type (3.8–3.10; ABSENT after) and the value.
    pub exc_item_type: u32,
    pub exc_item_value: u32,
    pub exc_item_previous: u32,
    /// 3.11+: the `_PyStackChunk` holding the newest `_PyInterpreterFrame`s.
    pub tstate_datastack_chunk: u32,
    /// The running frame: `PyFrameObject *frame` before 3.11, `current_frame` on 3.13+.
    pub tstate_frame: u32,
    /// 3.11–3.12: the running frame is `tstate->cframe->current_frame`.
    pub tstate_cframe: u32,
    pub cframe_current_frame: u32,

    /// Bytes of a frame to read to see every field below.
    pub frame_size: u32,
    pub frame_previous: u32,
    pub frame_code: u32,
    /// Before 3.11: `int f_lasti`, in units of `lasti_unit` bytes.
    pub frame_lasti: u32,
    /// 3.11+: `prev_instr` / `instr_ptr`, a pointer into the code object's bytecode.
    pub frame_instr_ptr: u32,
    /// 3.11 only: `bool is_entry`.
    pub frame_is_entry: u32,
    /// 3.11+: `char owner`, and the values that matter.
    pub frame_owner: u32,
    pub owned_by_generator: u32,
    /// 3.12+: frames with an owner of this value or above are the entry frames each
    /// `_PyEval_EvalFrameDefault` call keeps on the C stack below its first frame
    /// (`FRAME_OWNED_BY_CSTACK` on 3.12–3.13, `FRAME_OWNED_BY_INTERPRETER` since 3.14, when
    /// the enum was renumbered; 3.15's thread base frame has that owner too).
    pub entry_frame_owner: u32,
    pub lasti_unit: u32,
    /// 3.14+: `f_executable` is a `_PyStackRef`, whose low bits (these) are tags.
    pub frame_code_tag_bits: u32,

    pub object_type: u32,
    pub code_size: u32,
    pub code_name: u32,
    pub code_qualname: u32,
    pub code_filename: u32,
    pub code_firstlineno: u32,
    /// `co_lnotab` on 3.8–3.9, `co_linetable` since.
    pub code_linetable: u32,
    pub code_adaptive: u32,
    pub code_firsttraceable: u32,

    pub bytes_size: u32,
    pub bytes_len: u32,
    pub bytes_data: u32,
    pub str_ascii_size: u32,
    pub str_compact_size: u32,
    pub str_length: u32,
    pub str_state: u32,
    pub str_kind_mask: u32,
    pub str_compact_mask: u32,
    pub str_ascii_mask: u32,

    pub debug_version_at: u32,
    pub debug_free_threaded_at: u32,
    pub debug_checks: &'static [DebugCheck],
}

/// How a version encodes the instruction → line mapping of a code object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineTable {
    /// 3.8–3.9 `co_lnotab`.
    Lnotab,
    /// 3.10 `co_linetable`.
    Linetable310,
    /// 3.11+ `co_linetable` (locations table).
    Locations,
}

impl Layout {
    pub fn line_table(&self) -> LineTable {
        match self.minor {
            ..=9 => LineTable::Lnotab,
            10 => LineTable::Linetable310,
            _ => LineTable::Locations,
        }
    }

    /// 3.11+: frames are `_PyInterpreterFrame`s, several per `_PyEval_EvalFrameDefault` call.
    pub fn interpreter_frames(&self) -> bool {
        self.frame_instr_ptr != ABSENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::discover::generated_layout;

    #[test]
    fn every_supported_version_has_a_consistent_layout() {
        for minor in 8..=15 {
            let l =
                generated_layout(3, minor).unwrap_or_else(|| panic!("no layout for 3.{minor}"));
            assert!(l.frame_previous < l.frame_size && l.frame_code < l.frame_size);
            assert_eq!(l.interpreter_frames(), minor >= 11);
            assert_eq!(l.tstate_cframe != ABSENT, minor == 11 || minor == 12);
            assert_eq!(l.frame_is_entry != ABSENT, minor == 11);
            assert_eq!(l.entry_frame_owner != ABSENT, minor >= 12);
            assert_eq!(l.frame_code_tag_bits != 0, minor >= 14);
            assert_eq!(l.code_qualname != ABSENT, minor >= 11);
            assert_eq!(l.debug_checks.is_empty(), minor < 13);
        }
    }
}
