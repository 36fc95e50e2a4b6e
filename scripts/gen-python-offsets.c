/* Prints the memory layout libddprof's Python frame reader needs, as one Rust `Layout`
 * literal, by compiling offsetof()/sizeof() against one CPython version's own headers.
 * Built and run by scripts/gen-python-offsets.sh; never hand-edit the output.
 *
 *   cc -DPy_BUILD_CORE -I<prefix>/include/python3.X -o gen gen-python-offsets.c && ./gen
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if PY_VERSION_HEX < 0x03080000 || PY_VERSION_HEX >= 0x03100000
#error "only CPython 3.8 to 3.15 are described"
#endif
#ifdef Py_GIL_DISABLED
#error "free-threaded builds are not described"
#endif

#if PY_VERSION_HEX < 0x03090000
#include "internal/pycore_pystate.h"
#include "frameobject.h"
#elif PY_VERSION_HEX < 0x030B0000
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"
#include "frameobject.h"
#else
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"
#include "internal/pycore_frame.h"
#include "internal/pycore_code.h"
#endif
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_stackref.h"
#endif

#define ABSENT "ABSENT"
static void field(const char *name, long value) { printf("        %s: %ld,\n", name, value); }
static void absent(const char *name) { printf("        %s: %s,\n", name, ABSENT); }

/* The bit mask of a bitfield member of PyASCIIObject.state, found by setting the member to all
 * ones in an otherwise zeroed object (bitfields have no offsetof). The state word is read as a
 * 32-bit little-endian value at offsetof(PyASCIIObject, state). */
#define STATE_MASK(member, width)                                                    \
    ({                                                                               \
        PyASCIIObject o;                                                             \
        memset(&o, 0, sizeof o);                                                     \
        o.state.member = (1u << (width)) - 1;                                        \
        unsigned int m;                                                              \
        memcpy(&m, (char *)&o + offsetof(PyASCIIObject, state), sizeof m);          \
        (long)m;                                                                     \
    })

int main(void) {
    printf("    Layout {\n");
    printf("        // generated from the headers of CPython %s\n", PY_VERSION);
    field("major", PY_MAJOR_VERSION);
    field("minor", PY_MINOR_VERSION);

    /* _PyRuntime → interpreters → thread states */
    field("runtime_interpreters_head", offsetof(_PyRuntimeState, interpreters.head));
#if PY_VERSION_HEX >= 0x030D0000
    field("runtime_debug_offsets", offsetof(_PyRuntimeState, debug_offsets));
#else
    absent("runtime_debug_offsets");
#endif
    field("interp_next", offsetof(PyInterpreterState, next));
#if PY_VERSION_HEX >= 0x030B0000
    field("interp_threads_head", offsetof(PyInterpreterState, threads.head));
#else
    field("interp_threads_head", offsetof(PyInterpreterState, tstate_head));
#endif
    /* 3.9–3.12 wake the main thread for a pending call only when the caller is the main
     * thread itself; a foreign caller sets this flag (see src/python_gil/gil_tasks.rs). */
#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x030D0000
    field("interp_eval_breaker", offsetof(PyInterpreterState, ceval.eval_breaker));
#else
    absent("interp_eval_breaker");
#endif
    /* 3.8 only: its pending-call queue, which the library fills under the queue's own lock,
     * since 3.8's Py_AddPendingCall is unsafe from a foreign thread once finalization began. */
#if PY_VERSION_HEX < 0x03090000
    field("runtime_pending_lock", offsetof(_PyRuntimeState, ceval.pending.lock));
    field("runtime_pending_finishing", offsetof(_PyRuntimeState, ceval.pending.finishing));
    field("runtime_pending_calls_to_do", offsetof(_PyRuntimeState, ceval.pending.calls_to_do));
    field("runtime_pending_calls", offsetof(_PyRuntimeState, ceval.pending.calls));
    field("runtime_pending_call_size", sizeof(_PyRuntime.ceval.pending.calls[0]));
    field("runtime_pending_ncalls", sizeof(_PyRuntime.ceval.pending.calls) / sizeof(_PyRuntime.ceval.pending.calls[0]));
    field("runtime_pending_first", offsetof(_PyRuntimeState, ceval.pending.first));
    field("runtime_pending_last", offsetof(_PyRuntimeState, ceval.pending.last));
    field("runtime_eval_breaker", offsetof(_PyRuntimeState, ceval.eval_breaker));
#else
    absent("runtime_pending_lock");
    absent("runtime_pending_finishing");
    absent("runtime_pending_calls_to_do");
    absent("runtime_pending_calls");
    absent("runtime_pending_call_size");
    absent("runtime_pending_ncalls");
    absent("runtime_pending_first");
    absent("runtime_pending_last");
    absent("runtime_eval_breaker");
#endif
    field("tstate_prev", offsetof(PyThreadState, prev));
    field("tstate_next", offsetof(PyThreadState, next));
    field("tstate_interp", offsetof(PyThreadState, interp));
    field("tstate_thread_id", offsetof(PyThreadState, thread_id));
    /* The exception being handled (sys.exc_info()): the innermost _PyErr_StackItem, its type
       (3.8-3.10) or its value (3.11+, the type being the value's ob_type). */
    field("tstate_exc_info", offsetof(PyThreadState, exc_info));
#if PY_VERSION_HEX < 0x030B0000
    field("exc_item_type", offsetof(_PyErr_StackItem, exc_type));
#else
    absent("exc_item_type");
#endif
    field("exc_item_value", offsetof(_PyErr_StackItem, exc_value));
    field("exc_item_previous", offsetof(_PyErr_StackItem, previous_item));
#if PY_VERSION_HEX >= 0x030B0000
    /* The chunk of the thread's frame stack that holds the newest frames. */
    field("tstate_datastack_chunk", offsetof(PyThreadState, datastack_chunk));
#else
    absent("tstate_datastack_chunk");
#endif
#if PY_VERSION_HEX < 0x030B0000
    /* The PyFrameObject of the running frame. */
    field("tstate_frame", offsetof(PyThreadState, frame));
    absent("tstate_cframe");
    absent("cframe_current_frame");
#elif PY_VERSION_HEX < 0x030D0000
    /* tstate->cframe->current_frame is the running _PyInterpreterFrame. */
    absent("tstate_frame");
    field("tstate_cframe", offsetof(PyThreadState, cframe));
    field("cframe_current_frame", offsetof(_PyCFrame, current_frame));
#else
    field("tstate_frame", offsetof(PyThreadState, current_frame));
    absent("tstate_cframe");
    absent("cframe_current_frame");
#endif

    /* Frames: PyFrameObject before 3.11, _PyInterpreterFrame since. */
#if PY_VERSION_HEX < 0x030B0000
    field("frame_size", offsetof(PyFrameObject, f_lasti) + sizeof(int));
    field("frame_previous", offsetof(PyFrameObject, f_back));
    field("frame_code", offsetof(PyFrameObject, f_code));
    field("frame_lasti", offsetof(PyFrameObject, f_lasti));
    absent("frame_instr_ptr");
    absent("frame_is_entry");
    absent("frame_owner");
    absent("owned_by_generator");
    absent("entry_frame_owner");
#if PY_VERSION_HEX >= 0x030A0000
    field("lasti_unit", sizeof(_Py_CODEUNIT)); /* f_lasti counts code units */
#else
    field("lasti_unit", 1); /* f_lasti counts bytes */
#endif
#else
    field("frame_size", offsetof(_PyInterpreterFrame, localsplus));
    field("frame_previous", offsetof(_PyInterpreterFrame, previous));
#if PY_VERSION_HEX >= 0x030D0000
    field("frame_code", offsetof(_PyInterpreterFrame, f_executable));
    absent("frame_lasti");
    field("frame_instr_ptr", offsetof(_PyInterpreterFrame, instr_ptr));
#else
    field("frame_code", offsetof(_PyInterpreterFrame, f_code));
    absent("frame_lasti");
    field("frame_instr_ptr", offsetof(_PyInterpreterFrame, prev_instr));
#endif
#if PY_VERSION_HEX < 0x030C0000
    field("frame_is_entry", offsetof(_PyInterpreterFrame, is_entry));
#else
    absent("frame_is_entry");
#endif
    field("frame_owner", offsetof(_PyInterpreterFrame, owner));
    field("owned_by_generator", FRAME_OWNED_BY_GENERATOR);
    /* 3.12+: the frame each _PyEval_EvalFrameDefault call keeps on the C stack below its
     * first frame: FRAME_OWNED_BY_CSTACK on 3.12-3.13; from 3.14 the entry frame is
     * FRAME_OWNED_BY_INTERPRETER (CSTACK, renumbered to 4, is no longer assigned in 3.14 and
     * gone in 3.15), and CPython itself tests owner >= FRAME_OWNED_BY_INTERPRETER. */
#if PY_VERSION_HEX >= 0x030E0000
    field("entry_frame_owner", FRAME_OWNED_BY_INTERPRETER);
#elif PY_VERSION_HEX >= 0x030C0000
    field("entry_frame_owner", FRAME_OWNED_BY_CSTACK);
#else
    absent("entry_frame_owner");
#endif
    field("lasti_unit", sizeof(_Py_CODEUNIT));
#endif
    /* 3.14+: f_executable is a _PyStackRef, a pointer whose low bits are tags. */
#if PY_VERSION_HEX >= 0x030E0000
    field("frame_code_tag_bits", Py_TAG_BITS);
#else
    field("frame_code_tag_bits", 0);
#endif

    /* Code objects. */
    field("object_type", offsetof(PyObject, ob_type));
    field("code_size", sizeof(PyCodeObject));
    field("code_name", offsetof(PyCodeObject, co_name));
#if PY_VERSION_HEX >= 0x030B0000
    field("code_qualname", offsetof(PyCodeObject, co_qualname));
#else
    absent("code_qualname");
#endif
    field("code_filename", offsetof(PyCodeObject, co_filename));
    field("code_firstlineno", offsetof(PyCodeObject, co_firstlineno));
#if PY_VERSION_HEX >= 0x030A0000
    field("code_linetable", offsetof(PyCodeObject, co_linetable));
#else
    field("code_linetable", offsetof(PyCodeObject, co_lnotab));
#endif
#if PY_VERSION_HEX >= 0x030B0000
    field("code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
    field("code_firsttraceable", offsetof(PyCodeObject, _co_firsttraceable));
#else
    absent("code_adaptive");
    absent("code_firsttraceable");
#endif

    /* bytes and str objects. */
    field("bytes_size", offsetof(PyBytesObject, ob_sval));
    field("bytes_len", offsetof(PyVarObject, ob_size));
    field("bytes_data", offsetof(PyBytesObject, ob_sval));
    field("str_ascii_size", sizeof(PyASCIIObject));
    field("str_compact_size", sizeof(PyCompactUnicodeObject));
    field("str_length", offsetof(PyASCIIObject, length));
    field("str_state", offsetof(PyASCIIObject, state));
    field("str_kind_mask", STATE_MASK(kind, 3));
    field("str_compact_mask", STATE_MASK(compact, 1));
    field("str_ascii_mask", STATE_MASK(ascii, 1));

    /* 3.13+: pairs (where in _Py_DebugOffsets, what the headers say). The reader takes these
     * members from the _Py_DebugOffsets the running interpreter carries at the start of
     * _PyRuntime, and requires them to agree with the headers' values. */
#if PY_VERSION_HEX >= 0x030D0000
#define CHECK(dbg, value) \
    printf("            DebugCheck { what: \"%s\", at: %ld, expect: %ld },\n", #dbg, \
           (long)offsetof(_Py_DebugOffsets, dbg), (long)(value))
    field("debug_version_at", offsetof(_Py_DebugOffsets, version));
    field("debug_free_threaded_at", offsetof(_Py_DebugOffsets, free_threaded));
    printf("        debug_checks: &[\n");
    /* Every member the reader takes from _Py_DebugOffsets, and the struct sizes that bound
     * them (the reader checks them against each other when it meets a version it has no
     * table for). */
    CHECK(runtime_state.size, sizeof(_PyRuntimeState));
    CHECK(runtime_state.interpreters_head, offsetof(_PyRuntimeState, interpreters.head));
    CHECK(interpreter_state.size, sizeof(PyInterpreterState));
    CHECK(interpreter_state.next, offsetof(PyInterpreterState, next));
    CHECK(interpreter_state.threads_head, offsetof(PyInterpreterState, threads.head));
    CHECK(thread_state.size, sizeof(PyThreadState));
    CHECK(thread_state.prev, offsetof(PyThreadState, prev));
    CHECK(thread_state.next, offsetof(PyThreadState, next));
    CHECK(thread_state.interp, offsetof(PyThreadState, interp));
    CHECK(thread_state.current_frame, offsetof(PyThreadState, current_frame));
    CHECK(thread_state.thread_id, offsetof(PyThreadState, thread_id));
    CHECK(thread_state.native_thread_id, offsetof(PyThreadState, native_thread_id));
    CHECK(thread_state.datastack_chunk, offsetof(PyThreadState, datastack_chunk));
    CHECK(interpreter_frame.size, sizeof(_PyInterpreterFrame));
    CHECK(interpreter_frame.previous, offsetof(_PyInterpreterFrame, previous));
    CHECK(interpreter_frame.executable, offsetof(_PyInterpreterFrame, f_executable));
    CHECK(interpreter_frame.instr_ptr, offsetof(_PyInterpreterFrame, instr_ptr));
    CHECK(interpreter_frame.localsplus, offsetof(_PyInterpreterFrame, localsplus));
    CHECK(interpreter_frame.owner, offsetof(_PyInterpreterFrame, owner));
    CHECK(code_object.size, sizeof(PyCodeObject));
    CHECK(code_object.filename, offsetof(PyCodeObject, co_filename));
    CHECK(code_object.name, offsetof(PyCodeObject, co_name));
    CHECK(code_object.qualname, offsetof(PyCodeObject, co_qualname));
    CHECK(code_object.linetable, offsetof(PyCodeObject, co_linetable));
    CHECK(code_object.firstlineno, offsetof(PyCodeObject, co_firstlineno));
    CHECK(code_object.co_code_adaptive, offsetof(PyCodeObject, co_code_adaptive));
    CHECK(pyobject.size, sizeof(PyObject));
    CHECK(pyobject.ob_type, offsetof(PyObject, ob_type));
    CHECK(bytes_object.size, sizeof(PyBytesObject));
    CHECK(bytes_object.ob_size, offsetof(PyVarObject, ob_size));
    CHECK(bytes_object.ob_sval, offsetof(PyBytesObject, ob_sval));
    CHECK(unicode_object.size, sizeof(PyUnicodeObject));
    CHECK(unicode_object.length, offsetof(PyASCIIObject, length));
    CHECK(unicode_object.state, offsetof(PyASCIIObject, state));
    CHECK(unicode_object.asciiobject_size, sizeof(PyASCIIObject));
#if PY_VERSION_HEX >= 0x030F0000
    CHECK(unicode_object.compactunicodeobject_size, sizeof(PyCompactUnicodeObject));
#endif
    printf("        ],\n");
#else
    absent("debug_version_at");
    absent("debug_free_threaded_at");
    printf("        debug_checks: &[],\n");
#endif
    printf("    },\n");
    return 0;
}
