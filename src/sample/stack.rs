//! One stack capture for every sampler (CPU and wall signals, allocation and lock hooks):
//! native frames first (framehop), then the Python frames of the thread, if any, written
//! straight into a claimed ring slot.

use std::arch::asm;

use crate::collect::ring::SlotWriter;
use crate::sample::unwind::{self, Registers};
use crate::thread;

/// What a capture wrote into the slot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Captured {
    pub total: usize,
    pub native: usize,
}

/// Captures the stack described by `regs` (an interrupted context) into `slot`.
/// Async-signal-safe.
pub fn capture_into(slot: &SlotWriter, regs: Registers) -> Captured {
    let capacity = slot.capacity();
    let stack_hi = thread::with(|s| s.stack_hi.get() as u64);
    let stack = regs.sp..stack_hi.max(regs.sp);
    // Native frames come first; in a Python process half the room is kept for the Python
    // frames, or a deep native stack (4-5 frames per Python call before 3.11) would leave
    // none for them.
    let native_capacity = if crate::python::active() { capacity / 2 } else { capacity };
    let mut n = 0usize;
    unwind::capture(regs, stack, &mut slot.appender(&mut n, native_capacity));
    let native = n;
    crate::python::capture_current_thread(&mut slot.appender(&mut n, capacity));
    Captured { total: n, native }
}

/// Captures the caller's own stack (for hooks, which run on the program's thread).
/// The frames of the library itself stay at the leaf end; the cold side trims them.
#[inline(never)]
pub fn capture_here(slot: &SlotWriter) -> Captured {
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
