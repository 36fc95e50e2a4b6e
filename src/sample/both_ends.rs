//! Hot side: a bounded capture that keeps both ends of a stack too deep for its room.
//!
//! Unwinders hand frames leaf first. The first half of the room keeps the innermost frames;
//! the rest is a circular buffer that always holds the latest (outermost) frames seen, so
//! when the walk ends it holds the root. The frames pushed out of the circle are counted, and
//! at the end the oldest entry of the circle gives its place to one marker word (unit) saying
//! how many frames were left out between the two ends, and how many of them matched `mark`
//! (native: `_PyEval_EvalFrameDefault` frames; Python: frames that end an evaluation-loop
//! call), so the cold side can still pair native and Python frames across the gap.
//!
//! The room is a range of words of a claimed ring slot; a unit is one word (native frame) or
//! two (Python frame). Only the capturing thread touches the slot, so reading back what it
//! wrote is sound. No allocation, lock or system call: signal-safe.

use crate::collect::ring::SlotWriter;

/// Set in the first word of an omitted-frames marker (never set in a user-space address nor
/// in a Python frame word's address part).
pub const OMITTED_TAG: u64 = 1 << 62;
/// Frames walked at most (beyond that the root is lost: a runaway or corrupt stack).
const MAX_WALKED: usize = 16_384;

/// A native marker: `OMITTED_TAG | marked << 32 | frames`.
pub fn native_marker(frames: usize, marked: usize) -> u64 {
    OMITTED_TAG | (marked.min(0x3fff_ffff) as u64) << 32 | frames.min(u32::MAX as usize) as u64
}

/// (frames, marked) of a native marker word, or None for an ordinary frame.
pub fn decode_native_marker(word: u64) -> Option<(usize, usize)> {
    (word & (OMITTED_TAG | crate::python::PYTHON_FRAME_TAG) == OMITTED_TAG)
        .then(|| ((word & 0xffff_ffff) as usize, ((word >> 32) & 0x3fff_ffff) as usize))
}

/// A Python marker pair: `(PYTHON_FRAME_TAG | OMITTED_TAG | frames, PYTHON_FRAME_TAG | marked)`.
pub fn python_marker(frames: usize, marked: usize) -> [u64; 2] {
    let tag = crate::python::PYTHON_FRAME_TAG;
    [tag | OMITTED_TAG | frames.min(u32::MAX as usize) as u64, tag | marked.min(u32::MAX as usize) as u64]
}

/// (frames, marked) of a Python marker pair, or None for an ordinary Python frame.
pub fn decode_python_marker(pair: &[u64]) -> Option<(usize, usize)> {
    (pair[0] & OMITTED_TAG != 0).then(|| ((pair[0] & 0xffff_ffff) as usize, (pair[1] & 0xffff_ffff) as usize))
}

/// Keeps both ends of what is pushed into `slot` words `[start, start + room)`.
pub struct BothEnds<'s, const UNIT: usize> {
    slot: &'s SlotWriter<'s>,
    start: usize,
    /// Room, in units.
    room: usize,
    /// Units kept from the leaf end.
    head: usize,
    seen: usize,
    omitted: usize,
    omitted_marked: usize,
    pending: [u64; UNIT],
    pending_len: usize,
    mark: fn(&[u64; UNIT]) -> bool,
}

impl<'s, const UNIT: usize> BothEnds<'s, UNIT> {
    pub fn new(slot: &'s SlotWriter<'s>, start: usize, words: usize, mark: fn(&[u64; UNIT]) -> bool) -> Self {
        let room = words.min(slot.capacity().saturating_sub(start)) / UNIT;
        BothEnds { slot, start, room, head: room / 2, seen: 0, omitted: 0, omitted_marked: 0, pending: [0; UNIT], pending_len: 0, mark }
    }

    /// Takes one word; false once nothing more can be taken (the walk should stop).
    pub fn push(&mut self, word: u64) -> bool {
        if self.room < 3 || self.seen >= MAX_WALKED {
            return false;
        }
        self.pending[self.pending_len] = word;
        self.pending_len += 1;
        if self.pending_len == UNIT {
            self.pending_len = 0;
            let unit = self.pending;
            self.take(unit);
        }
        true
    }

    fn take(&mut self, unit: [u64; UNIT]) {
        let position = if self.seen < self.room {
            self.seen
        } else {
            let position = self.circle_position(self.seen);
            self.leave_out(position);
            position
        };
        self.write(position, &unit);
        self.seen += 1;
    }

    /// Where unit number `n` (n ≥ head) goes in the circle.
    fn circle_position(&self, n: usize) -> usize {
        self.head + (n - self.head) % (self.room - self.head)
    }

    fn leave_out(&mut self, position: usize) {
        self.omitted += 1;
        if (self.mark)(&self.read(position)) {
            self.omitted_marked += 1;
        }
    }

    fn read(&self, position: usize) -> [u64; UNIT] {
        std::array::from_fn(|i| self.slot.frame(self.start + position * UNIT + i))
    }

    fn write(&self, position: usize, unit: &[u64; UNIT]) {
        for (i, &w) in unit.iter().enumerate() {
            self.slot.set_frame(self.start + position * UNIT + i, w);
        }
    }

    /// Puts the circle in order (oldest first), replaces its oldest unit with the marker and
    /// returns the number of words written.
    pub fn finish(mut self, marker: fn(usize, usize) -> [u64; UNIT]) -> usize {
        if self.seen <= self.room {
            return self.seen * UNIT;
        }
        let oldest = self.circle_position(self.seen);
        self.rotate_circle(oldest - self.head);
        self.leave_out(self.head);
        let m = marker(self.omitted, self.omitted_marked);
        self.write(self.head, &m);
        self.room * UNIT
    }

    /// Rotates the circle's units left by `by` (three reversals: no buffer needed).
    fn rotate_circle(&self, by: usize) {
        let (lo, hi) = (self.head, self.room);
        self.reverse(lo, lo + by);
        self.reverse(lo + by, hi);
        self.reverse(lo, hi);
    }

    fn reverse(&self, mut lo: usize, mut hi: usize) {
        while lo + 1 < hi {
            hi -= 1;
            let (a, b) = (self.read(lo), self.read(hi));
            self.write(lo, &b);
            self.write(hi, &a);
            lo += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::ring::Ring;

    fn run<const U: usize>(room: usize, pushed: &[u64], mark: fn(&[u64; U]) -> bool) -> Vec<u64> {
        let ring = Ring::new(1, 64);
        let slot = ring.claim().unwrap();
        let mut ends = BothEnds::<U>::new(&slot, 3, room, mark);
        for &w in pushed {
            assert!(ends.push(w));
        }
        let n = ends.finish(|f, m| std::array::from_fn(|i| if i == 0 { native_marker(f, m) } else { 7 }));
        (0..n).map(|i| slot.frame(3 + i)).collect()
    }

    #[test]
    fn short_stacks_are_unchanged() {
        assert_eq!(run::<1>(8, &[1, 2, 3], |_| false), vec![1, 2, 3]);
        assert_eq!(run::<1>(8, &(1..=8).collect::<Vec<_>>(), |_| false), (1..=8).collect::<Vec<_>>());
    }

    #[test]
    fn deep_stacks_keep_leaf_and_root() {
        let pushed: Vec<u64> = (1..=100).collect();
        let out = run::<1>(8, &pushed, |u| u[0] % 10 == 0);
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
        assert_eq!(&out[5..], &[98, 99, 100]);
        // 5..=97 were left out: 93 frames, of which 10, 20, …, 90 are marked.
        assert_eq!(decode_native_marker(out[4]), Some((93, 9)));
    }

    #[test]
    fn pairs_stay_whole() {
        let pushed: Vec<u64> = (1..=40).collect();
        let out = run::<2>(10, &pushed, |u| u[1] % 8 == 0);
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
        // Pairs 3 to 18 (words 5..=36) were left out; 4 of them end in a multiple of 8.
        assert_eq!(decode_native_marker(out[4]), Some((16, 4)));
        assert_eq!(out[5], 7);
        assert_eq!(&out[6..], &[37, 38, 39, 40]);
    }
}
