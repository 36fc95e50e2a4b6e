//! Cold side of allocation profiling: unbiased weights of allocation samples, and the set of
//! sampled blocks still alive (for `heap-space` / `heap-live-samples`).
//!
//! Alloc and free records of sampled blocks reach the exporter in any order (the ring is
//! scanned by slot, not by time), so each carries a sequence number: a drain's events are
//! applied in sequence order, and a free that arrives before its allocation waits one drain
//! in `pending_frees` to cancel it.
//!
//! The live set is global behind a spin lock so a forked child can keep it: the child's
//! blocks are the parent's blocks (DESIGN choice documented in the README).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::sample_key::SampleKey;

/// One allocation sample's contribution: (count weight, byte weight).
/// With sampling probability p = 1 − exp(−size/T): count 1/p, bytes size/p.
pub fn weights(size: u64, mean_interval: u64) -> (f64, f64) {
    let size = size.max(1) as f64;
    let p = -libm::expm1(-size / mean_interval.max(1) as f64);
    (1.0 / p, size / p)
}

pub enum HeapEvent {
    Alloc { seq: i64, addr: u64, key: SampleKey, size: u64 },
    Free { seq: i64, addr: u64 },
}

impl HeapEvent {
    fn seq(&self) -> i64 {
        match self {
            HeapEvent::Alloc { seq, .. } | HeapEvent::Free { seq, .. } => *seq,
        }
    }
}

struct LiveBlock {
    seq: i64,
    key: SampleKey,
    size: u64,
}

#[derive(Default)]
pub struct LiveHeap {
    blocks: HashMap<u64, LiveBlock>,
    /// Frees seen before their allocation: address → (seq, drains waited).
    pending_frees: HashMap<u64, (i64, u8)>,
}

impl LiveHeap {
    /// Applies one drain's events in sequence order.
    pub fn apply(&mut self, mut events: Vec<HeapEvent>) {
        events.sort_by_key(HeapEvent::seq);
        self.age_pending_frees();
        for event in events {
            match event {
                HeapEvent::Alloc { seq, addr, key, size } => {
                    if let Some((free_seq, _)) = self.pending_frees.get(&addr) {
                        if *free_seq > seq {
                            self.pending_frees.remove(&addr);
                            continue;
                        }
                    }
                    self.blocks.insert(addr, LiveBlock { seq, key, size });
                }
                HeapEvent::Free { seq, addr } => match self.blocks.get(&addr) {
                    Some(block) if block.seq < seq => {
                        self.blocks.remove(&addr);
                    }
                    _ => {
                        self.pending_frees.insert(addr, (seq, 0));
                    }
                },
            }
        }
        LIVE_BLOCKS.store(self.blocks.len(), Ordering::Relaxed);
    }

    /// A free waits for its allocation for one more drain, then is forgotten.
    fn age_pending_frees(&mut self) {
        self.pending_frees.retain(|_, (_, age)| {
            *age += 1;
            *age <= 2
        });
    }

    /// Live sampled blocks as (stack, count weight, byte weight).
    pub fn live(&self, mean_interval: u64) -> impl Iterator<Item = (&SampleKey, f64, f64)> {
        self.blocks.values().map(move |b| {
            let (count, bytes) = weights(b.size, mean_interval);
            (&b.key, count, bytes)
        })
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

pub static LIVE_HEAP: crate::yield_lock::Lock<Option<LiveHeap>> = crate::yield_lock::Lock::new(None);
/// How many blocks `LIVE_HEAP` holds, readable without its lock (a forked child asks whether
/// its profile will have any heap sample without writing the lock's page).
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

/// Whether no sampled allocation is known to be live (inherited ones included).
pub fn nothing_live() -> bool {
    LIVE_BLOCKS.load(Ordering::Relaxed) == 0
}

/// In a forked child: keep the parent's live set if it was consistent at the fork (no one
/// held its lock); otherwise start empty, on both sides.
pub fn after_fork_in_child() {
    if !crate::fork_safe::keep_if_consistent(&LIVE_HEAP) {
        crate::collect::live_heap::clear();
        LIVE_BLOCKS.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tid: i32) -> SampleKey {
        SampleKey { frames: vec![1].into(), tid, lock: 0, exception: 0 }
    }

    #[test]
    fn weights_are_unbiased_in_expectation() {
        // E[weight × indicator] = weight × p = size exactly.
        for size in [1u64, 64, 4096, 256 * 1024, 64 << 20] {
            let t = 512 * 1024;
            let p = 1.0 - (-(size as f64) / t as f64).exp();
            let (count, bytes) = weights(size, t);
            assert!((count * p - 1.0).abs() < 1e-9);
            assert!((bytes * p - size as f64).abs() / (size as f64) < 1e-9);
        }
    }

    #[test]
    fn free_before_alloc_cancels() {
        let mut heap = LiveHeap::default();
        heap.apply(vec![HeapEvent::Free { seq: 5, addr: 0x10 }]);
        heap.apply(vec![HeapEvent::Alloc { seq: 4, addr: 0x10, key: key(1), size: 8 }]);
        assert!(heap.is_empty());
    }

    #[test]
    fn events_apply_in_sequence_order() {
        let mut heap = LiveHeap::default();
        heap.apply(vec![
            HeapEvent::Alloc { seq: 3, addr: 0x20, key: key(1), size: 8 },
            HeapEvent::Free { seq: 2, addr: 0x20 },
            HeapEvent::Alloc { seq: 1, addr: 0x20, key: key(1), size: 8 },
        ]);
        assert_eq!(heap.len(), 1);
        assert_eq!(heap.blocks[&0x20].seq, 3);
    }

    #[test]
    fn stale_pending_free_is_forgotten() {
        let mut heap = LiveHeap::default();
        heap.apply(vec![HeapEvent::Free { seq: 9, addr: 0x30 }]);
        heap.apply(vec![]);
        heap.apply(vec![]);
        heap.apply(vec![HeapEvent::Alloc { seq: 4, addr: 0x30, key: key(1), size: 8 }]);
        assert_eq!(heap.len(), 1);
    }
}
