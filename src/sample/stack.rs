//! One stack capture for every sampler (CPU and wall signals, allocation and lock hooks):
//! native frames first (framehop), then the Python frames of the thread, if any, written
//! straight into a claimed ring slot.

use std::arch::asm;

use crate::collect::ring::SlotWriter;
use crate::sample::both_ends::{self, BothEnds};
use crate::sample::unwind::{self, Registers};
use crate::thread;

/// What a capture wrote into the slot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Captured {
    pub total: usize,
    pub native: usize,
}

/// Captures the stack described by `regs` (an interrupted context) into `slot`, keeping
/// both ends of a stack deeper than the slot (see `both_ends.rs`). Async-signal-safe.
pub fn capture_into(slot: &SlotWriter, regs: Registers) -> Captured {
    let capacity = slot.capacity();
    let stack_hi = thread::with(|s| s.stack_hi.get() as u64);
    let stack = regs.sp..stack_hi.max(regs.sp);
    // Native frames come first; in a Python process half the room is kept for the Python
    // frames, or a deep native stack (4-5 frames per Python call before 3.11) would leave
    // none for them.
    let python = crate::python::target();
    let native_room = if python.is_some() { capacity / 2 } else { capacity };
    let mut native = BothEnds::<1>::new(slot, 0, native_room, is_eval_frame);
    unwind::capture(regs, stack, &mut |w| native.push(w));
    let n = native.finish(|frames, evals| [both_ends::native_marker(frames, evals)]);
    if python.is_none() {
        return Captured { total: n, native: n };
    }
    let mut frames = BothEnds::<2>::new(slot, n, capacity - n, ends_eval_call);
    crate::python::capture_current_thread(&mut |w| frames.push(w));
    let total = n + frames.finish(both_ends::python_marker);
    Captured { total, native: n }
}

/// For hooks: records one sample of `kind` with the caller's stack (`values`, `extra[0]`),
/// unless the thread is already inside the library; errno is kept as the program left it.
pub fn record_here(kind: crate::collect::ring::Kind, values: [i64; 2], extra: u64) {
    let Some(_inside) = thread::ReentrancyGuard::enter() else { return };
    // SAFETY: __errno_location returns this thread's errno slot.
    let errno = unsafe { *libc::__errno_location() };
    if let Some(slot) = crate::collect::claim_patiently() {
        let captured = capture_here(&slot);
        let tid = match thread::with(|s| s.tid.get()) {
            0 => thread::gettid(),
            tid => tid,
        };
        let header = crate::collect::ring::Header { kind, tid, values, extra: [extra, 0], native_len: captured.native };
        slot.commit(header, captured.total);
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Captures only this thread's Python frames (both ends kept); returns the words written.
pub fn capture_python_only(slot: &SlotWriter) -> usize {
    let mut frames = BothEnds::<2>::new(slot, 0, slot.capacity(), ends_eval_call);
    crate::python::capture_current_thread(&mut |w| frames.push(w));
    frames.finish(both_ends::python_marker)
}

/// A native frame of `_PyEval_EvalFrameDefault` (one per evaluation-loop call).
fn is_eval_frame(unit: &[u64; 1]) -> bool {
    crate::python::target().is_some_and(|t| t.eval.contains(unit[0]))
}

/// A Python frame that is the outermost one of its evaluation-loop call.
fn ends_eval_call(unit: &[u64; 2]) -> bool {
    crate::python::walk::decode_offset(unit[1]).1 & crate::python::walk::FLAG_ENTRY != 0
}

/// Captures the caller's own stack (for hooks, which run on the program's thread).
/// The frames of the library itself stay at the leaf end; the cold side trims them.
#[inline(never)]
pub fn capture_here(slot: &SlotWriter) -> Captured {
    unwind::wait_for_modules();
    capture_into(slot, current_registers())
}

/// The registers at this point of this function: pc, sp and bp read together so they
/// describe one consistent state for the unwinder.
#[inline(always)]
fn current_registers() -> Registers {
    let (pc, sp, bp): (u64, u64, u64);
    // SAFETY: reads rip (via lea), rsp and rbp into registers; no memory is touched.
    unsafe {
        asm!(
            "lea {pc}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    Registers { pc, sp, bp }
}
