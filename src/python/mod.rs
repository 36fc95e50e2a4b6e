//! Python frames: reading CPython's frame stack of the sampled thread (hot side) and
//! turning it into functions, files and lines (cold side).
//!
//! Integration points used by the rest of the library:
//! - `init()` / `refresh()`: cold side, find the interpreter after start-up and after dlopen.
//! - `capture_current_thread(push)`: hot side, called after the native unwind of every sample;
//!   pushes the Python frame words of the current thread; returns how many it pushed.
//! - `merge(native, python_words)`: cold side, splices Python frames into the native stack
//!   (each `_PyEval_EvalFrameDefault` frame expands into the Python frames it runs).
//! - `describe(word)`: cold side, a merged Python frame word → function, file, line.
//!
//! Not yet implemented: all of these are pass-throughs until the Python reader lands.

use crate::profile::symbolize::Frame;

/// Frame words with this bit set are Python frames (user-space addresses never have it).
pub const PYTHON_FRAME_TAG: u64 = 1 << 63;

pub fn init() {}

pub fn refresh() {}

pub fn capture_current_thread(_push: &mut dyn FnMut(u64) -> bool) -> usize {
    0
}

pub fn merge(native: &[u64], _python_words: &[u64]) -> Vec<u64> {
    native.to_vec()
}

pub fn describe(_word: u64) -> Option<Frame> {
    None
}
