//! The SIGPROF handler: the hot side of CPU sampling.
//!
//! Runs on the thread whose CPU timer fired. It reads the thread's CPU clock (so `cpu-time` is
//! what the thread really consumed since its previous sample, overruns included), captures the
//! interrupted stack, and publishes a record into the ring. It never allocates, locks, logs
//! or blocks; errno is saved and restored because the interrupted code may be reading it.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::collect::ring::{Header, Kind};
use crate::sample::{stack, wall};
use crate::sample::unwind::Registers;
use crate::thread;

pub use crate::thread::CPU_SIGNAL;

/// Set when CPU samples should be recorded.
pub static CPU_SAMPLING: AtomicBool = AtomicBool::new(false);

/// Installs the handler unless the program already has one for SIGPROF. Returns false (and
/// installs nothing) in that case.
pub fn install() -> bool {
    // SAFETY: zeroed sigaction is a valid "query" buffer.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    if crate::real::sigaction(CPU_SIGNAL, std::ptr::null(), &mut current) != 0 {
        return false;
    }
    if current.sa_sigaction != libc::SIG_DFL {
        return false;
    }
    // SAFETY: zeroed sigaction then filled with a valid handler, flags and an empty mask.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_cpu_signal as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: sa_mask is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    crate::real::sigaction(CPU_SIGNAL, &action, std::ptr::null_mut()) == 0
}

/// True when `handler` is ours (so the sigaction hook can tell the program's from ours).
pub fn is_our_handler(handler: usize) -> bool {
    handler == on_cpu_signal as *const () as usize
}

extern "C" fn on_cpu_signal(_signal: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: __errno_location returns this thread's errno slot.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo.
    if !unsafe { is_wall_signal(info) } {
        record_cpu_sample(context);
    }
    // Also on a CPU timer's signal: a wall signal sent while that one was pending was merged
    // into it (SIGPROF is not a queued signal), and its weight waits in the thread's state.
    record_wall_sample(context);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

fn record_cpu_sample(context: *mut libc::c_void) {
    if !CPU_SAMPLING.load(Ordering::Relaxed) || context.is_null() {
        return;
    }
    let Some((tid, cpu_delta)) = thread::with(|s| {
        if s.tid.get() == 0 || s.internal.get() {
            return None;
        }
        let now = thread::thread_cpu_ns();
        let delta = now.saturating_sub(s.last_cpu_ns.get());
        s.last_cpu_ns.set(now);
        Some((s.tid.get(), delta))
    }) else {
        return;
    };
    // SAFETY: the kernel passes a valid ucontext_t as the third handler argument with SA_SIGINFO.
    let regs = unsafe { interrupted_registers(context) };
    record_stack(regs, |native_len| Header { kind: Kind::Cpu, tid, values: [1, cpu_delta as i64], extra: [handled_exception(), 0], native_len });
}

/// CPython 3.8–3.11: the type of the exception the thread is handling (read after the
/// capture, which found the thread's state), or 0; the cold side counts it as an exception
/// sample (see `python/handled_exception.rs`). 3.12+ counts raises instead.
fn handled_exception() -> u64 {
    match crate::python::target() {
        Some(t) if crate::sample::exception::enabled() => crate::python::handled_exception::handled_type(t),
        _ => 0,
    }
}

/// Captures the interrupted stack into a ring slot and publishes it with `header(native_len)`.
/// With the ring full the sample is dropped (and counted by the ring).
fn record_stack(regs: Registers, header: impl FnOnce(usize) -> Header) {
    let Some(slot) = crate::collect::ring().and_then(|ring| ring.claim()) else { return };
    let captured = stack::capture_into(&slot, regs);
    slot.commit(header(captured.native), captured.total);
}

/// The wall sampler's signals are tagged in their queued value; CPU timer signals
/// (SI_TIMER) and anything else are CPU samples.
///
/// # Safety
/// `info` must be null or point at the siginfo the kernel passed to the handler.
unsafe fn is_wall_signal(info: *const libc::siginfo_t) -> bool {
    if info.is_null() {
        return false;
    }
    // SAFETY: a siginfo is 128 bytes; si_code is at offset 8 and the queued value at 24.
    let (code, value) = unsafe { ((*info).si_code, *((info as *const u8).add(24) as *const u64)) };
    wall::is_wall_signal(code, value)
}

/// Records the wall time the sampler handed to this thread, if any, under the interrupted
/// stack. The weight is taken only by a registered thread: once an exiting thread has
/// cleared its tid, its exit takes the weight back instead.
fn record_wall_sample(context: *mut libc::c_void) {
    if !wall::WALL_SAMPLING.load(Ordering::Relaxed) || context.is_null() {
        return;
    }
    let tid = thread::with(|s| if s.internal.get() { 0 } else { s.tid.get() });
    if tid == 0 {
        return;
    }
    let weight = wall::take_pending();
    if weight == 0 {
        return;
    }
    // SAFETY: the kernel passes a valid ucontext_t as the third handler argument with SA_SIGINFO.
    let regs = unsafe { interrupted_registers(context) };
    record_stack(regs, |native_len| wall::captured_header(tid, weight, native_len));
    // Also when the ring was full: the sampler must not wait for this capture forever.
    wall::capture_done(regs.pc, regs.sp);
}

/// # Safety
/// `context` must point at the `ucontext_t` the kernel passed to a SA_SIGINFO handler.
unsafe fn interrupted_registers(context: *mut libc::c_void) -> Registers {
    // SAFETY: guaranteed by the caller.
    let uc = unsafe { &*(context as *const libc::ucontext_t) };
    let gregs = &uc.uc_mcontext.gregs;
    Registers {
        pc: gregs[libc::REG_RIP as usize] as u64,
        sp: gregs[libc::REG_RSP as usize] as u64,
        bp: gregs[libc::REG_RBP as usize] as u64,
    }
}
