//! Cold side: splicing the Python frames of a sample into its native stack, and naming them.
//!
//! The hot side recorded, leaf first, two words per Python frame (see `walk.rs`), with
//! `FLAG_ENTRY` on the outermost frame of each `_PyEval_EvalFrameDefault` call, so each frame
//! knows which evaluation-loop call (counted from the leaf) runs it. Walking the native stack
//! leaf first, the n-th `_PyEval_EvalFrameDefault` frame is replaced by the frames of call n.
//! A capture cut in the middle (`sample/both_ends.rs`) says how many evaluation frames and
//! calls it hid, so the root ends stay paired. Frames left over (a native stack cut short) go
//! at the root end; a call whose frames all vanished leaves its native frame in place.
//!
//! A resolved frame becomes one word, `PYTHON_FRAME_TAG | index` into a table of distinct
//! (qualified name, file, line), which `describe` reads back when the profile is encoded.

use std::sync::Arc;

use super::symbolize::Frame;
use crate::fast_map::FastMap;
use crate::python::code::{CodeCache, Resolved};
use crate::python::discover::Target;
use crate::python::walk::{self, FLAG_ENTRY, FLAG_GENERATOR, PYTHON_FRAME_TAG};
use crate::sample::both_ends::{decode_native_marker, decode_python_marker, OMITTED_TAG};

/// Distinct Python frames kept; past this, new ones share one "too many" entry.
const MAX_INTERNED: usize = 1 << 22;

#[derive(Default)]
struct Interner {
    frames: Vec<Frame>,
    index: FastMap<(Arc<str>, Arc<str>, u32), u32>,
}

impl Interner {
    fn word(&mut self, name: &Arc<str>, file: &Arc<str>, line: u32) -> u64 {
        let key = (name.clone(), file.clone(), line);
        if let Some(&i) = self.index.get(&key) {
            return PYTHON_FRAME_TAG | i as u64;
        }
        if self.frames.len() >= MAX_INTERNED {
            return PYTHON_FRAME_TAG | self.overflow() as u64;
        }
        let i = self.frames.len() as u32;
        self.frames.push(Frame {
            function: name.to_string(),
            file: file.to_string(),
            line,
        });
        self.index.insert(key, i);
        PYTHON_FRAME_TAG | i as u64
    }

    fn overflow(&mut self) -> u32 {
        let key: (Arc<str>, Arc<str>, u32) = ("<too many Python frames>".into(), "".into(), 0);
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.frames.len() as u32;
        self.frames.push(Frame {
            function: key.0.to_string(),
            file: String::new(),
            line: 0,
        });
        self.index.insert(key, i);
        i
    }
}

#[derive(Default)]
struct Cold {
    codes: CodeCache,
    interner: Interner,
    resolved: u64,
    invalid: u64,
}

/// A spin lock (not std's) so a forked child can reset it (see `after_fork_in_child`).
static COLD: crate::yield_lock::Lock<Option<Cold>> = crate::yield_lock::Lock::new(None);

fn with_cold<R>(f: impl FnOnce(&mut Cold) -> R) -> R {
    let mut guard = COLD.lock();
    f(guard.get_or_insert_with(Cold::default))
}

/// In a forked child: if the parent's exporter held the cache at the fork it may be half
/// updated; it is leaked and a fresh one starts.
pub(crate) fn after_fork_in_child() {
    crate::fork_safe::keep_if_consistent(&COLD);
}

/// A drain of the ring begins: cached code objects are looked at again before they are
/// trusted (see `CodeCache::next_drain`).
pub fn next_drain() {
    with_cold(|c| c.codes.next_drain());
}

/// Code objects that do not look like code objects, in bulk, mean a layout this build does
/// not understand: Python frames are then disabled (one warning) and the cache dropped.
pub fn check_health() {
    if !crate::python::target::confirmed() {
        return;
    }
    let (resolved, invalid) = with_cold(|c| (c.resolved, c.invalid));
    if invalid >= 1000 && invalid > 4 * resolved {
        let (major, minor, micro) = crate::python::target().map(|t| t.version).unwrap_or_default();
        crate::python::target::disable(&format!(
            "{invalid} of {} frames read from CPython {major}.{minor}.{micro} are not code objects",
            resolved + invalid
        ));
        with_cold(|c| c.codes.clear());
    }
}

/// The native stack with each `_PyEval_EvalFrameDefault` frame replaced by the Python frames
/// it runs.
pub fn merge(native: &[u64], python_words: &[u64]) -> Vec<u64> {
    match crate::python::target() {
        Some(t) if !python_words.is_empty() => merge_with(t, native, python_words),
        _ => native.to_vec(),
    }
}

fn merge_with(t: &Target, native: &[u64], python: &[u64]) -> Vec<u64> {
    let frames = with_cold(|cold| python_frames(t, cold, python));
    if frames.is_empty() {
        return native.to_vec();
    }
    splice(&t.eval, native, &frames)
}

/// A Python frame word (or an omitted-frames word) and the evaluation-loop call it belongs
/// to, counted from the leaf.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InCall {
    pub call: usize,
    pub word: u64,
}

/// The resolved Python frames, leaf first, each with its evaluation-loop call. A cut made by
/// the capture (`both_ends.rs`) becomes one `PYTHON_FRAME_TAG | OMITTED_TAG | count` word, and
/// the calls it hid are counted, so frames on both sides keep their call numbers.
fn python_frames(t: &Target, cold: &mut Cold, python: &[u64]) -> Vec<InCall> {
    let mut out = Vec::new();
    let mut call = 0;
    // A trailing half frame (the slot filled up between the two words) is ignored.
    for pair in python.chunks_exact(2) {
        if let Some((frames, calls)) = decode_python_marker(pair) {
            out.push(InCall { call, word: PYTHON_FRAME_TAG | OMITTED_TAG | frames as u64 });
            call += calls;
            continue;
        }
        let code = pair[0] & !PYTHON_FRAME_TAG;
        let (offset, flags) = walk::decode_offset(pair[1]);
        match cold.codes.resolve(t, code, offset, flags & FLAG_GENERATOR != 0) {
            Resolved::Frame { name, file, line } => {
                cold.resolved += 1;
                out.push(InCall { call, word: cold.interner.word(&name, &file, line) });
            }
            Resolved::Incomplete => {}
            Resolved::Invalid => cold.invalid += 1,
        }
        if flags & FLAG_ENTRY != 0 {
            call += 1;
        }
    }
    out
}

/// Replaces the n-th `_PyEval_EvalFrameDefault` frame of `native` (leaf first) with the
/// Python frames of call n, and of earlier calls whose own native frame was cut from the
/// capture. An evaluation frame whose call left no Python frame stays; Python frames left over
/// (a native stack cut short) go at the root end.
pub fn splice(eval: &crate::python::eval_code::EvalCode, native: &[u64], python: &[InCall]) -> Vec<u64> {
    let mut out = Vec::with_capacity(native.len() + python.len());
    let mut call = 0;
    let mut next = 0;
    for &address in native {
        if let Some((_, calls)) = decode_native_marker(address) {
            out.push(address);
            call += calls;
        } else if eval.contains(address) {
            let before = out.len();
            while next < python.len() && python[next].call <= call {
                out.push(python[next].word);
                next += 1;
            }
            if out.len() == before {
                out.push(address);
            }
            call += 1;
        } else {
            out.push(address);
        }
    }
    out.extend(python[next..].iter().map(|f| f.word));
    out
}

/// A frame that stands for something other than a function (`[libddprof]`, `[CPython]`,
/// `[N frames omitted]`), as a frame word that `describe` names.
pub fn label(text: &str) -> u64 {
    let text: Arc<str> = text.into();
    let empty: Arc<str> = "".into();
    with_cold(|c| c.interner.word(&text, &empty, 0))
}

/// A built-in function of the interpreter, as a frame word: its Python name, file `<built-in>`
/// (as CPython itself names them).
pub fn builtin(name: &str) -> u64 {
    let name: Arc<str> = name.into();
    let file: Arc<str> = "<built-in>".into();
    with_cold(|c| c.interner.word(&name, &file, 0))
}

#[cfg(test)]
pub fn intern_for_test(name: &str, file: &str, line: u32) -> u64 {
    with_cold(|c| c.interner.word(&name.into(), &file.into(), line))
}

/// A merged Python frame word → function (qualified name), file, line.
pub fn describe(word: u64) -> Option<Frame> {
    if word & OMITTED_TAG != 0 {
        return None;
    }
    let i = (word & !PYTHON_FRAME_TAG) as usize;
    with_cold(|c| c.interner.frames.get(i).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::both_ends::native_marker;

    fn calls(list: &[(usize, u64)]) -> Vec<InCall> {
        list.iter().map(|&(call, word)| InCall { call, word }).collect()
    }

    #[test]
    fn each_eval_frame_takes_its_call() {
        let eval = (100..200).into();
        let native = [1, 150, 2, 160, 3];
        assert_eq!(splice(&eval, &native, &calls(&[(0, 10), (0, 11), (1, 12)])), vec![1, 10, 11, 2, 12, 3]);
    }

    #[test]
    fn missing_and_extra_calls() {
        let eval = (100..200).into();
        // No frame for call 0: the native frame stays. Call 1 has no eval frame: root end.
        assert_eq!(splice(&eval, &[150, 2], &calls(&[(1, 7)])), vec![150, 2, 7]);
        // More eval frames than calls: the rest stay native.
        assert_eq!(splice(&eval, &[150, 160], &calls(&[(0, 7)])), vec![7, 160]);
    }

    #[test]
    fn calls_hidden_by_a_native_cut_keep_the_root_paired() {
        let eval = (100..200).into();
        // Leaf eval (call 0), a cut that hid 3 eval frames (calls 1-3), then the root eval
        // frame: call 4, the outermost Python frame, must land on it.
        let native = [1, 150, native_marker(12, 3), 160, 5];
        let python = calls(&[(0, 10), (1, 11), (4, 99)]);
        assert_eq!(splice(&eval, &native, &python), vec![1, 10, native_marker(12, 3), 11, 99, 5]);
    }
}
