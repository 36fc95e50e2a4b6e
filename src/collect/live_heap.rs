//! Hot side of live-heap tracking: the set of sampled addresses still allocated, so `free`
//! can tell in a few nanoseconds whether the block it frees was sampled.
//!
//! Two static arrays, no allocation, no lock:
//! - a counting filter (one byte per 64-byte granule of address space, folded onto 64 Ki
//!   counters): zero means "certainly not sampled", which is the answer for almost every free.
//!   It is indexed by address bits, not by a scrambling hash, so that the blocks a program
//!   churns through (close together in memory) share a few filter cache lines instead of
//!   each taking its own: every free reads it, and a miss there costs more than the hook;
//! - an open-addressing table of addresses with bounded linear probing and tombstones
//!   (hashed: linear probing wants homes spread out). Only a prefix of it is in use, 4 Ki
//!   slots (32 KiB) at first, doubled when half of it holds live entries: a program with a
//!   few hundred sampled blocks live touches 32 KiB of it, not the whole 512 KiB (every page
//!   a hash lands on becomes resident). An entry stays where it was put; `remove` looks for
//!   it in the probe sequence of each prefix size in use, largest first.
//! When the probe bound is hit the sample is not tracked and the loss is counted (reported
//! by the exporter), never a hang, never unbounded memory.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

const TABLE_BITS: u32 = 16;
const TABLE_SIZE: usize = 1 << TABLE_BITS;
/// The prefix of TABLE in use at first (2^12 slots).
const FIRST_SPAN_BITS: u32 = 12;
const MAX_PROBES: usize = 64;
const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 1;

static FILTER: [AtomicU8; TABLE_SIZE] = [const { AtomicU8::new(0) }; TABLE_SIZE];
static TABLE: [AtomicU64; TABLE_SIZE] = [const { AtomicU64::new(EMPTY) }; TABLE_SIZE];
static LOST: AtomicU64 = AtomicU64::new(0);
/// log2 of the prefix of TABLE that inserts use; it only grows (`clear` resets it).
static SPAN_BITS: AtomicU32 = AtomicU32::new(FIRST_SPAN_BITS);
/// Entries in TABLE (tombstones not counted).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Home slot of `addr` in the prefix of 2^`span_bits` slots.
#[inline(always)]
fn bucket(addr: u64, span_bits: u32) -> usize {
    ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - span_bits)) as usize
}

/// The probe sequence of `addr` in the prefix of 2^`span_bits` slots.
fn probes(addr: u64, span_bits: u32) -> impl Iterator<Item = &'static AtomicU64> {
    let home = bucket(addr, span_bits);
    let mask = (1usize << span_bits) - 1;
    (0..MAX_PROBES.min(mask + 1)).map(move |probe| &TABLE[(home + probe) & mask])
}

/// Counter in FILTER: the 64-byte granule, with the bits above the first 4 MiB folded in by
/// XOR so that distant regions (thread arenas 64 MiB apart, say) do not all collide.
#[inline(always)]
fn filter_index(addr: u64) -> usize {
    let granule = addr >> 6;
    ((granule ^ (granule >> TABLE_BITS)) as usize) & (TABLE_SIZE - 1)
}

/// False means `addr` is certainly not tracked (nor pinned). One byte load: the free fast path.
#[inline(always)]
pub fn maybe_tracked(addr: u64) -> bool {
    filter_base()[filter_index(addr)].load(Ordering::Relaxed) != 0
}

/// FILTER's address with a RIP-relative `lea`: a plain reference compiles to a load of the
/// address from the GOT (the crate is also an rlib, so its statics are not assumed local),
/// one more dependent load on every `free` of the program.
#[inline(always)]
fn filter_base() -> &'static [AtomicU8; TABLE_SIZE] {
    let base: *const [AtomicU8; TABLE_SIZE];
    // SAFETY: computes FILTER's address (the symbol is local to this library), nothing else.
    unsafe {
        std::arch::asm!("lea {base}, [rip + {filter}]", base = out(reg) base, filter = sym FILTER, options(pure, nomem, nostack, preserves_flags));
    }
    // SAFETY: `base` is FILTER's address; FILTER is a static, valid for the program's life.
    unsafe { &*base }
}

/// Makes `maybe_tracked(addr)` true for good (a saturated counter never goes down, not even
/// in `clear`): the malloc hooks pin the bootstrap arena's blocks so that the free fast path
/// needs no separate "is it an arena block?" test.
pub fn pin(addr: u64) {
    FILTER[filter_index(addr)].store(u8::MAX, Ordering::Release);
}

/// Tracks a sampled address. Returns false (and counts the loss) when the table is too full.
pub fn insert(addr: u64) -> bool {
    loop {
        let span_bits = SPAN_BITS.load(Ordering::Acquire);
        if insert_in_span(addr, span_bits) {
            let live = LIVE.fetch_add(1, Ordering::Relaxed) + 1;
            if live > (1 << span_bits) / 2 {
                grow_from(span_bits);
            }
            return true;
        }
        if span_bits == TABLE_BITS {
            LOST.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        grow_from(span_bits); // its probe sequence was full: place it in a larger span
    }
}

fn insert_in_span(addr: u64, span_bits: u32) -> bool {
    for slot in probes(addr, span_bits) {
        let current = slot.load(Ordering::Relaxed);
        if (current == EMPTY || current == TOMBSTONE)
            && slot.compare_exchange(current, addr, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            filter_add(filter_index(addr));
            return true;
        }
    }
    false
}

/// Doubles the span, unless another thread did already.
fn grow_from(span_bits: u32) {
    if span_bits < TABLE_BITS {
        let _ = SPAN_BITS.compare_exchange(span_bits, span_bits + 1, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// Stops tracking `addr`; true if it was tracked. The entry was put in the span in use at
/// its insertion, which is at most today's: each span's probe sequence is searched, until
/// an empty slot (never emptied again but by `clear`, so the entry is not further on).
pub fn remove(addr: u64) -> bool {
    let widest = SPAN_BITS.load(Ordering::Acquire);
    (FIRST_SPAN_BITS..=widest).rev().any(|span_bits| remove_in_span(addr, span_bits))
}

fn remove_in_span(addr: u64, span_bits: u32) -> bool {
    for slot in probes(addr, span_bits) {
        let current = slot.load(Ordering::Acquire);
        if current == EMPTY {
            return false;
        }
        if current == addr && slot.compare_exchange(addr, TOMBSTONE, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            filter_remove(filter_index(addr));
            return true;
        }
    }
    false
}

/// A saturated counter stays saturated: the filter then answers "maybe" for that bucket,
/// which costs a table lookup, never a wrong answer.
fn filter_add(index: usize) {
    let _ = FILTER[index].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| (c < u8::MAX).then_some(c + 1));
}

fn filter_remove(index: usize) {
    let _ = FILTER[index].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| (c > 0 && c < u8::MAX).then(|| c - 1));
}

/// Sampled allocations the table had no room for, since the last `take_lost`.
pub fn lost() -> u64 {
    LOST.load(Ordering::Relaxed)
}

/// Sampled allocations that could not be tracked since the last call.
pub fn take_lost() -> u64 {
    LOST.swap(0, Ordering::Relaxed)
}

/// Forgets everything (a forked child whose cold-side copy of the live set was unusable).
/// Saturated counters stay: they may be pins, and are only "maybe" answers anyway.
pub fn clear() {
    let span = 1usize << SPAN_BITS.load(Ordering::Relaxed);
    for slot in &TABLE[..span] {
        slot.store(EMPTY, Ordering::Relaxed);
    }
    for filter in FILTER.iter() {
        if filter.load(Ordering::Relaxed) != u8::MAX {
            filter.store(0, Ordering::Relaxed);
        }
    }
    LIVE.store(0, Ordering::Relaxed);
    SPAN_BITS.store(FIRST_SPAN_BITS, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The table is global, so both checks run in one test, one after the other.
    #[test]
    fn live_table() {
        insert_lookup_remove();
        overfull_table_counts_losses_and_recovers();
        pins_survive_removal_and_clear();
    }

    // The free hook relies on this to send bootstrap-arena blocks to its slow path.
    fn pins_survive_removal_and_clear() {
        let pinned = 0x5000_0000_0040u64;
        pin(pinned);
        assert!(maybe_tracked(pinned));
        assert!(insert(pinned) && remove(pinned));
        assert!(maybe_tracked(pinned));
        clear();
        assert!(maybe_tracked(pinned));
        assert!(!maybe_tracked(pinned + 0x1000), "a pin covers its own granule only");
    }

    fn insert_lookup_remove() {
        let base = 0x7000_0000_0000u64;
        for i in 0..1000 {
            assert!(insert(base + i * 64));
        }
        assert_eq!(SPAN_BITS.load(Ordering::Relaxed), FIRST_SPAN_BITS, "1000 entries fit in the first 32 KiB");
        for i in 0..1000 {
            assert!(maybe_tracked(base + i * 64));
            assert!(remove(base + i * 64));
            assert!(!remove(base + i * 64));
        }
        let untracked = (0..1000).filter(|i| !maybe_tracked(base + 0x100_0000 + i * 64)).count();
        assert!(untracked > 900, "filter should reject most unknown addresses: {untracked}");
    }

    fn overfull_table_counts_losses_and_recovers() {
        let base = 0x6000_0000_0000u64;
        let n = TABLE_SIZE as u64 + 5000;
        let inserted: Vec<u64> = (0..n).map(|i| base + i * 48).filter(|a| insert(*a)).collect();
        assert!(inserted.len() < n as usize);
        assert!(inserted.len() > TABLE_SIZE / 2, "the span grew to the whole table: {}", inserted.len());
        assert_eq!(SPAN_BITS.load(Ordering::Relaxed), TABLE_BITS);
        assert!(take_lost() > 0);
        for a in &inserted {
            assert!(remove(*a));
        }
        assert!(insert(base));
        assert!(remove(base));
    }
}
