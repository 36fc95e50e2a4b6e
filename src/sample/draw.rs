//! Hot side: the random gaps between sample points, from the calling thread's generator
//! (`thread::uniform`), async-signal-safe. `libm` gives the logarithms (pure Rust: the library
//! links no `libm.so`).

use crate::thread;

/// An exponential draw with mean `mean`: the gap to the next point of a Poisson process.
pub fn exponential(mean: f64) -> f64 {
    -libm::log(thread::uniform()) * mean
}

/// ln(1 − 1/N), the log-probability of passing over one event when 1 in N is kept on average
/// (0 for N ≤ 1: every event kept).
pub fn ln_keep(every: u64) -> f64 {
    if every <= 1 {
        0.0
    } else {
        libm::log1p(-1.0 / every as f64)
    }
}

/// Events until the next kept one: geometric on {1, 2, …} with mean N, given `ln_keep(N)`,
/// i.e. every event kept with probability 1/N, independently.
pub fn geometric(ln_keep: f64) -> i64 {
    if ln_keep >= 0.0 {
        return 1; // N = 1
    }
    ((libm::log(thread::uniform()) / ln_keep).ceil() as i64).max(1)
}
