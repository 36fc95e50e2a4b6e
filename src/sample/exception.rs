//! Exception sampling (hot side, called from the `__cxa_throw` hook in `hooks/exception.rs`).
//!
//! Each throw is sampled independently with probability 1/N
//! (`DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL`): each thread counts down throws, the gaps
//! drawn from a geometric distribution of mean N, and a sampled throw weighs N, so
//! `exception-samples` estimates the number of throws without bias. A sample is the throwing
//! stack and the address of the thrown type's mangled name, which the cold side demangles.
//! The fast path is one flag load and a TLS decrement: a throw itself costs microseconds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::collect::ring::Kind;
use crate::sample::{draw, stack};
use crate::thread;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Mean throws between two samples (N).
static INTERVAL: AtomicU64 = AtomicU64::new(100);

pub fn configure(enabled: bool, interval: u64) {
    INTERVAL.store(interval.max(1), Ordering::Relaxed);
    ENABLED.store(enabled, Ordering::Release);
}

pub fn stop() {
    ENABLED.store(false, Ordering::Release);
}

/// A throw of the type whose mangled name is at `type_name`.
pub fn on_throw(type_name: *const libc::c_char) {
    if sampled() {
        record(type_name as u64);
    }
}

/// Counts one throw (or Python raise) on this thread; true when it is to be sampled (then
/// the caller calls `record`).
pub fn sampled() -> bool {
    if !ENABLED.load(Ordering::Acquire) || thread::in_profiler() {
        return false;
    }
    thread::with(|s| {
        let mut left = s.exception_countdown.get();
        if left <= 0 {
            left = draw_gap();
        }
        left -= 1;
        let sampled = left == 0;
        s.exception_countdown.set(if sampled { draw_gap() } else { left });
        sampled
    })
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Throws until the next sample: geometric with mean N (at least 1).
fn draw_gap() -> i64 {
    draw::geometric(draw::ln_keep(INTERVAL.load(Ordering::Relaxed)))
}

/// Records a sampled throw with the calling thread's stack; `type_word` is what the cold side
/// names the type from (`profile/exception_type.rs`).
pub fn record(type_word: u64) {
    let weight = INTERVAL.load(Ordering::Relaxed).min(i64::MAX as u64) as i64;
    stack::record_here(Kind::Exception, [weight, 0], type_word);
}
