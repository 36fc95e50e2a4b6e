//! Allocation sampling (hot side, called from the malloc-family hooks).
//!
//! Each thread counts down the bytes it allocates; the distance between two samples is drawn
//! from an exponential distribution with mean `DD_PROFILING_HEAP_SAMPLE_SIZE`, so sample
//! points form a Poisson process over allocated bytes. An allocation of `s` bytes is then
//! sampled with probability `p = 1 − exp(−s/T)`, whatever its neighbours; the cold side
//! weighs each sample by `1/p` (count) and `s/p` (bytes), which makes every per-site total an
//! unbiased estimate for small and huge blocks alike. The fast path is one TLS subtraction
//! and a compare.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::collect::live_heap;
use crate::collect::ring::{Header, Kind};
use crate::sample::{draw, stack};
use crate::thread;
use crate::tls_counter::alloc_bytes_left as countdown;

/// Mean bytes between samples (T).
static MEAN_INTERVAL: AtomicU64 = AtomicU64::new(512 * 1024);
/// Record allocation samples (alloc-* types).
static RECORD_ALLOCS: AtomicBool = AtomicBool::new(false);
/// Track sampled blocks until freed (heap-* types).
static TRACK_LIVE: AtomicBool = AtomicBool::new(false);
/// Orders alloc and free records of sampled blocks (the ring does not keep order).
static SEQUENCE: AtomicU64 = AtomicU64::new(1);

pub fn configure(mean_interval: u64, record_allocs: bool, track_live: bool) {
    MEAN_INTERVAL.store(mean_interval.max(1), Ordering::Relaxed);
    TRACK_LIVE.store(track_live, Ordering::Release);
    RECORD_ALLOCS.store(record_allocs || track_live, Ordering::Release);
}

pub fn stop() {
    RECORD_ALLOCS.store(false, Ordering::Release);
}

/// Allocation samples are being recorded.
pub fn recording() -> bool {
    RECORD_ALLOCS.load(Ordering::Acquire)
}

pub fn mean_interval() -> u64 {
    MEAN_INTERVAL.load(Ordering::Relaxed)
}

/// Called after every successful allocation of `size` bytes at `ptr`: one subtraction from
/// an initial-exec thread-local counter (see tls_counter.rs) and a branch.
#[inline(always)]
pub fn on_alloc(ptr: *mut libc::c_void, size: usize) {
    if reaches_sample_point(size) {
        on_sample_point(ptr, size);
    }
}

/// The first half of `on_alloc`, for hooks that count the bytes *before* allocating so that
/// their fast path can end in a tail jump to the real allocator: true when these `size` bytes
/// reach the next sample point; the caller must then call `on_sample_point` with the block
/// (or null if the allocation failed). Counting bytes of an allocation that then fails keeps
/// sampling unbiased: the gaps are exponential, hence memoryless, so sample points over the
/// bytes actually allocated still form a Poisson process of the same rate.
#[inline(always)]
pub fn reaches_sample_point(size: usize) -> bool {
    countdown::subtract_crosses(size as i64)
}

/// Called before every free of a non-null `ptr`.
#[inline(always)]
pub fn on_free(ptr: *mut libc::c_void) {
    if live_heap::maybe_tracked(ptr as u64) {
        on_free_of_maybe_sampled(ptr);
    }
}

/// This allocation reached the sample point: place the next one and record the block.
/// A null `ptr` (failed allocation) only places the next point.
#[cold]
#[inline(never)]
pub fn on_sample_point(ptr: *mut libc::c_void, size: usize) {
    if thread::with(|s| s.internal.get()) {
        // One of the library's own threads (a block the own heap could not serve): keep its
        // countdown crossed, so its next allocations still come to the own heap.
        crate::thread::keep_allocations_on_slow_path();
        return;
    }
    let started = thread::with(|s| s.alloc_started.replace(true));
    let next_interval = draw_interval();
    if !started {
        // First allocation on this thread: place the first sample point, then see whether
        // this block reaches it.
        let left = next_interval - size as i64;
        countdown::set(left);
        if left > 0 {
            return;
        }
        countdown::set(draw_interval());
    } else {
        countdown::set(next_interval);
    }
    if ptr.is_null() || !RECORD_ALLOCS.load(Ordering::Acquire) || !crate::status::active() {
        return;
    }
    let Some(_inside) = thread::ReentrancyGuard::enter() else { return };
    record_allocation(ptr, size);
}

fn draw_interval() -> i64 {
    let mean = MEAN_INTERVAL.load(Ordering::Relaxed) as f64;
    (draw::exponential(mean) as i64).max(1)
}

fn record_allocation(ptr: *mut libc::c_void, size: usize) {
    let Some(slot) = crate::collect::claim_patiently() else { return };
    let captured = stack::capture_here(&slot);
    let tid = thread::with(|s| s.tid.get());
    let tid = if tid == 0 { thread::gettid() } else { tid };
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) as i64;
    let header = Header { kind: Kind::Alloc, tid, values: [size as i64, seq], extra: [ptr as u64, 0], native_len: captured.native };
    slot.commit(header, captured.total);
    if TRACK_LIVE.load(Ordering::Relaxed) {
        live_heap::insert(ptr as u64);
    }
}

#[cold]
#[inline(never)]
fn on_free_of_maybe_sampled(ptr: *mut libc::c_void) {
    if !live_heap::remove(ptr as u64) {
        return;
    }
    let Some(slot) = crate::collect::claim_patiently() else { return };
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) as i64;
    slot.commit(Header { kind: Kind::Free, tid: 0, values: [0, seq], extra: [ptr as u64, 0], native_len: 0 }, 0);
}
