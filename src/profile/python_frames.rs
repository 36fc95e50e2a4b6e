//! Cold side: splicing the Python frames of a sample into its native stack, and naming them.
//!
//! The hot side recorded, leaf first, two words per Python frame (see `walk.rs`), with
//! `FLAG_ENTRY` on the outermost frame of each `_PyEval_EvalFrameDefault` call. Those
//! frames are cut into one group per call; walking the native stack leaf first, the n-th
//! `_PyEval_EvalFrameDefault` frame is replaced by the n-th group (leaf first). Groups left
//! over (a native stack cut short) go at the root end; a group whose frames all vanished
//! leaves its native frame in place.
//!
//! A resolved frame becomes one word, `PYTHON_FRAME_TAG | index` into a table of distinct
//! (qualified name, file, line), which `describe` reads back when the profile is encoded.

use std::collections::HashMap;
use std::sync::Arc;

use super::symbolize::Frame;
use crate::python::code::{CodeCache, Resolved};
use crate::python::discover::Target;
use crate::python::walk::{self, FLAG_ENTRY, FLAG_GENERATOR, PYTHON_FRAME_TAG};

/// Distinct Python frames kept; past this, new ones share one "too many" entry.
const MAX_INTERNED: usize = 1 << 22;

#[derive(Default)]
struct Interner {
    frames: Vec<Frame>,
    index: HashMap<(Arc<str>, Arc<str>, u32), u32>,
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
    let groups = with_cold(|cold| groups(t, cold, python));
    if groups.is_empty() {
        return native.to_vec();
    }
    splice(&t.eval, native, groups)
}

/// Python frames by `_PyEval_EvalFrameDefault` call, innermost call first, each leaf first.
fn groups(t: &Target, cold: &mut Cold, python: &[u64]) -> Vec<Vec<u64>> {
    let mut groups = Vec::new();
    let mut current = Vec::new();
    let mut open = false;
    // A trailing half frame (the slot filled up between the two words) is ignored.
    for pair in python.chunks_exact(2) {
        let code = pair[0] & !PYTHON_FRAME_TAG;
        let (offset, flags) = walk::decode_offset(pair[1]);
        open = true;
        match cold
            .codes
            .resolve(t, code, offset, flags & FLAG_GENERATOR != 0)
        {
            Resolved::Frame { name, file, line } => {
                cold.resolved += 1;
                current.push(cold.interner.word(&name, &file, line));
            }
            Resolved::Incomplete => {}
            Resolved::Invalid => cold.invalid += 1,
        }
        if flags & FLAG_ENTRY != 0 {
            groups.push(std::mem::take(&mut current));
            open = false;
        }
    }
    if open {
        groups.push(current);
    }
    groups
}

/// Replaces the n-th `_PyEval_EvalFrameDefault` frame of `native` (leaf first) with the n-th
/// group.
pub fn splice(eval: &std::ops::Range<u64>, native: &[u64], groups: Vec<Vec<u64>>) -> Vec<u64> {
    let mut out = Vec::with_capacity(native.len() + groups.iter().map(Vec::len).sum::<usize>());
    let mut groups = groups.into_iter();
    for &address in native {
        if eval.contains(&address) {
            match groups.next() {
                Some(group) if !group.is_empty() => out.extend(group),
                _ => out.push(address),
            }
        } else {
            out.push(address);
        }
    }
    for group in groups {
        out.extend(group);
    }
    out
}

/// A merged Python frame word → function (qualified name), file, line.
pub fn describe(word: u64) -> Option<Frame> {
    let i = (word & !PYTHON_FRAME_TAG) as usize;
    with_cold(|c| c.interner.frames.get(i).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_eval_frame_takes_the_next_group() {
        let eval = 100..200;
        let native = [1, 150, 2, 160, 3];
        let groups = vec![vec![10, 11], vec![12]];
        assert_eq!(splice(&eval, &native, groups), vec![1, 10, 11, 2, 12, 3]);
    }

    #[test]
    fn missing_and_extra_groups() {
        let eval = 100..200;
        // Empty group: the native frame stays. Extra group: appended at the root end.
        assert_eq!(
            splice(&eval, &[150, 2], vec![vec![], vec![7]]),
            vec![150, 2, 7]
        );
        // More eval frames than groups: the rest stay native.
        assert_eq!(splice(&eval, &[150, 160], vec![vec![7]]), vec![7, 160]);
    }
}
