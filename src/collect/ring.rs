//! Lock-free hand-off of samples from the hot side (signal handlers, hooks on any thread) to
//! the cold side (the exporter thread).
//!
//! A fixed array of equal-sized slots, each with a state word: FREE → WRITING (claimed by one
//! producer with a compare-and-swap) → READY (published with Release) → FREE (after the
//! consumer has read it). Producers never wait: when the few slots they probe are all taken,
//! the sample is dropped and counted. The consumer scans every slot, so a slow producer never
//! blocks the others. Memory is allocated once, before sampling starts, in mappings that a
//! forked child gets back zeroed, i.e. as an empty ring (wipe_on_fork.rs).

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

use super::wipe_on_fork::WipedOnFork;

const FREE: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;
/// Slots a producer tries before dropping its sample.
const PROBES: usize = 8;

/// What a record describes; the cold side aggregates each kind into its own sample types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// values: [samples, cpu ns]
    Cpu = 1,
    /// values: [samples, wall ns]
    Wall = 2,
    /// values: [size, weight ×1000], extra: [address, 0]
    Alloc = 3,
    /// extra: [address, 0]
    Free = 4,
    /// values: [wait or hold ns, N for a release / 0 for an acquire], extra: [lock address, 0]
    Lock = 5,
    /// frames hold the thread name bytes (up to 16), values[0] = length
    ThreadName = 6,
    /// A lock created by Python code: frames are its Python creation stack (native_len 0),
    /// extra: [lock address, 0]
    LockInit = 7,
    /// An exception thrown: values: [weight (1 in N throws sampled: N), 0], extra: [address of
    /// the thrown type's mangled name (C++ `type_info::name()`), 0]
    Exception = 8,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Cpu,
            2 => Kind::Wall,
            3 => Kind::Alloc,
            4 => Kind::Free,
            5 => Kind::Lock,
            6 => Kind::ThreadName,
            7 => Kind::LockInit,
            8 => Kind::Exception,
            _ => return None,
        })
    }
}

/// The fixed part of a record.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub kind: Kind,
    pub tid: i32,
    pub values: [i64; 2],
    pub extra: [u64; 2],
    /// How many of the frame words are native frames; the rest are Python frame words.
    pub native_len: usize,
}

const HEADER_WORDS: usize = 5;

pub struct Ring {
    /// FREE (0) in a fresh mapping and in a forked child's copy.
    states: WipedOnFork<AtomicU8>,
    /// `states.len() * stride` words; slot i owns `[i*stride, (i+1)*stride)`.
    words: WipedOnFork<AtomicU64>,
    stride: usize,
    cursor: AtomicUsize,
    /// The `cursor` value that maps to slot 0, moved to `cursor` after each drain, so that
    /// records fill the ring from its start again: only the slots one drain interval needs
    /// are ever touched, and the rest of the ring's memory (a few MiB at 128 frames a slot)
    /// stays unfaulted. Producers may read a stale origin; slots are claimed by CAS, so any
    /// start is correct.
    origin: AtomicUsize,
    /// `cursor` when this (forked) process started: unchanged means nothing was recorded since.
    cursor_at_fork: AtomicUsize,
    dropped: AtomicU64,
}

impl Ring {
    /// `slots` is rounded up to a power of two; each slot holds up to `max_frames` frames.
    pub fn new(slots: usize, max_frames: usize) -> Ring {
        let slots = slots.max(PROBES).next_power_of_two();
        let stride = HEADER_WORDS + max_frames.max(2);
        // Failing to map a few MiB at start-up is the same out-of-memory as failing to allocate.
        Ring {
            states: WipedOnFork::new(slots).expect("cannot map the sample ring"),
            words: WipedOnFork::new(slots * stride).expect("cannot map the sample ring"),
            stride,
            cursor: AtomicUsize::new(0),
            origin: AtomicUsize::new(0),
            cursor_at_fork: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn max_frames(&self) -> usize {
        self.stride - HEADER_WORDS
    }

    /// Claims a free slot, or counts a drop and returns None. Async-signal-safe.
    pub fn claim(&self) -> Option<SlotWriter<'_>> {
        let slot = self.claim_quietly();
        if slot.is_none() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        slot
    }

    /// Claims a free slot without counting a drop when there is none. Every eighth of the
    /// ring's capacity, the claimer wakes the exporter so it drains before the ring fills.
    pub fn claim_quietly(&self) -> Option<SlotWriter<'_>> {
        let mask = self.states.len() - 1;
        let count = self.cursor.fetch_add(1, Ordering::Relaxed);
        if count & (self.states.len() / 8 - 1) == 0 {
            super::wake::wake_exporter();
        }
        let start = count.wrapping_sub(self.origin.load(Ordering::Relaxed));
        for probe in 0..PROBES {
            let index = (start + probe) & mask;
            if self.states[index].compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return Some(SlotWriter { ring: self, index, committed: false });
            }
        }
        None
    }

    /// Samples lost because the ring was full since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    /// Reads and frees every published record (cold side; one consumer).
    pub fn drain(&self, mut each: impl FnMut(&Header, &[u64])) {
        let mut frames = vec![0u64; self.max_frames()];
        for (index, state) in self.states.iter().enumerate() {
            if state.load(Ordering::Acquire) != READY {
                continue;
            }
            let base = index * self.stride;
            let word = |i: usize| self.words[base + i].load(Ordering::Relaxed);
            let kind_and_len = word(0);
            let n = ((kind_and_len >> 8) as u16 as usize).min(frames.len());
            let native_len = ((kind_and_len >> 24) as u16 as usize).min(n);
            for (i, frame) in frames[..n].iter_mut().enumerate() {
                *frame = word(HEADER_WORDS + i);
            }
            let header = Kind::from_u8(kind_and_len as u8).map(|kind| Header {
                kind,
                tid: word(1) as i32,
                values: [word(2) as i64, word(3) as i64],
                extra: [word(4), 0],
                native_len,
            });
            state.store(FREE, Ordering::Release);
            if let Some(header) = header {
                each(&header, &frames[..n]);
            }
        }
        self.origin.store(self.cursor.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// In a forked child: forget the parent's unexported samples and any slot a vanished
    /// thread was writing.
    pub fn reset(&self) {
        // Normally the kernel did it already (MADV_WIPEONFORK); writing would only fault in a page.
        if !self.states.wiped_on_fork() {
            for state in self.states.iter() {
                state.store(FREE, Ordering::Relaxed);
            }
        }
        if self.dropped.load(Ordering::Relaxed) != 0 {
            self.dropped.store(0, Ordering::Relaxed);
        }
        self.cursor_at_fork.store(self.cursor.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// In a forked child: whether no record was claimed (or dropped) since the fork.
    pub fn untouched_since_fork(&self) -> bool {
        self.cursor.load(Ordering::Relaxed) == self.cursor_at_fork.load(Ordering::Relaxed) && self.dropped.load(Ordering::Relaxed) == 0
    }
}

/// A claimed slot. Dropping it without `commit` frees it again.
pub struct SlotWriter<'r> {
    ring: &'r Ring,
    index: usize,
    committed: bool,
}

impl SlotWriter<'_> {
    fn word(&self, i: usize) -> &AtomicU64 {
        &self.ring.words[self.index * self.ring.stride + i]
    }

    /// Publishes the record with the first `nframes` frame words. The extra[1] word is not
    /// stored (reserved).
    pub fn commit(mut self, header: Header, nframes: usize) {
        let n = nframes.min(self.ring.max_frames());
        let native = header.native_len.min(n);
        self.word(0).store(header.kind as u64 | (n as u64) << 8 | (native as u64) << 24, Ordering::Relaxed);
        self.word(1).store(header.tid as u32 as u64, Ordering::Relaxed);
        self.word(2).store(header.values[0] as u64, Ordering::Relaxed);
        self.word(3).store(header.values[1] as u64, Ordering::Relaxed);
        self.word(4).store(header.extra[0], Ordering::Relaxed);
        self.ring.states[self.index].store(READY, Ordering::Release);
        self.committed = true;
    }

    /// Writes frame `i` directly into the slot.
    pub fn set_frame(&self, i: usize, value: u64) {
        if i < self.ring.max_frames() {
            self.word(HEADER_WORDS + i).store(value, Ordering::Relaxed);
        }
    }

    /// Reads back frame `i` written by this writer (0 past the capacity).
    pub fn frame(&self, i: usize) -> u64 {
        if i < self.ring.max_frames() {
            self.word(HEADER_WORDS + i).load(Ordering::Relaxed)
        } else {
            0
        }
    }

    pub fn capacity(&self) -> usize {
        self.ring.max_frames()
    }

    /// A sink for unwinders: stores frames from index `*len` on, until `limit` (capped at the
    /// slot's capacity), advancing `*len`; returns false when full.
    pub fn appender<'s>(&'s self, len: &'s mut usize, limit: usize) -> impl FnMut(u64) -> bool + 's {
        let limit = limit.min(self.capacity());
        move |frame| {
            if *len >= limit {
                return false;
            }
            self.set_frame(*len, frame);
            *len += 1;
            true
        }
    }
}

impl Drop for SlotWriter<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.ring.states[self.index].store(FREE, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(tid: i32) -> Header {
        Header { kind: Kind::Cpu, tid, values: [1, 10], extra: [0, 0], native_len: 0 }
    }

    #[test]
    fn roundtrip_and_free() {
        let ring = Ring::new(16, 4);
        let w = ring.claim().unwrap();
        w.set_frame(0, 0xaa);
        w.set_frame(1, 0xbb);
        w.commit(cpu(7), 2);
        let mut seen = vec![];
        ring.drain(|h, f| seen.push((h.tid, f.to_vec())));
        assert_eq!(seen, vec![(7, vec![0xaa, 0xbb])]);
        let mut again = 0;
        ring.drain(|_, _| again += 1);
        assert_eq!(again, 0);
    }

    #[test]
    fn records_after_a_drain_start_again_at_the_first_slot() {
        let ring = Ring::new(64, 2);
        for round in 0..10 {
            let indices: Vec<usize> = (0..5).map(|_| { let w = ring.claim().unwrap(); let i = w.index; w.commit(cpu(round), 0); i }).collect();
            assert_eq!(indices, vec![0, 1, 2, 3, 4], "round {round}");
            let mut n = 0;
            ring.drain(|_, _| n += 1);
            assert_eq!(n, 5);
        }
    }

    #[test]
    fn full_ring_drops_and_counts() {
        let ring = Ring::new(8, 2);
        for _ in 0..8 {
            ring.claim().unwrap().commit(cpu(1), 0);
        }
        assert!(ring.claim().is_none());
        assert_eq!(ring.take_dropped(), 1);
        let mut n = 0;
        ring.drain(|_, _| n += 1);
        assert_eq!(n, 8);
    }

    #[test]
    fn uncommitted_slot_is_released() {
        let ring = Ring::new(8, 2);
        for _ in 0..100 {
            drop(ring.claim().unwrap());
        }
        let mut n = 0;
        ring.drain(|_, _| n += 1);
        assert_eq!(n, 0);
    }

    #[test]
    fn many_threads_lose_nothing_when_drained() {
        let ring = std::sync::Arc::new(Ring::new(4096, 4));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let w = ring.claim().expect("room");
                        w.set_frame(0, i);
                        w.commit(cpu(t), 1);
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        let mut n = 0;
        ring.drain(|_, _| n += 1);
        assert_eq!(n, 2000);
    }
}
