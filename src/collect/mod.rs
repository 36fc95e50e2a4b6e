//! The hand-off between the hot side and the cold side.
pub mod live_heap;
pub mod ring;
pub mod wake;
pub mod wipe_on_fork;

pub use wake::{wait_for_work, wait_for_work_since, wake_exporter, wakes_so_far};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

static RING: OnceLock<ring::Ring> = OnceLock::new();

/// Slots in the sample ring: a 100 ms drain interval at a few thousand samples a second,
/// with room to spare; the exporter drains every 5 ms while the ring is busy.
const RING_SLOTS: usize = 4096;
/// A drain that found this many records means the ring is busy.
pub const BUSY_DRAIN_RECORDS: usize = RING_SLOTS / 16;

/// Creates the ring (cold side, at load time, before any timer or hook records).
pub fn init_ring(max_frames: usize) {
    RING.get_or_init(|| ring::Ring::new(RING_SLOTS, max_frames));
}

/// The ring, once created. A lock-free load: usable from signal handlers.
#[inline]
pub fn ring() -> Option<&'static ring::Ring> {
    RING.get()
}

/// For hooks (never the signal handler): when the ring is full, wake the exporter and give
/// it a moment before dropping the sample. Bounded (a few hundred microseconds at most), so
/// a thread never waits on the exporter for long, and never forever.
pub fn claim_patiently() -> Option<ring::SlotWriter<'static>> {
    let ring = ring()?;
    if crate::status::profile_ended() {
        // Nothing drains the ring any more: waiting for room would only cost the program.
        return ring.claim();
    }
    // A forked child that lives on needs its exporter now (see profiler_threads.rs).
    start_if_due(false);
    for _ in 0..64 {
        if let Some(slot) = ring.claim_quietly() {
            return Some(slot);
        }
        // Full, and maybe no exporter yet to drain it.
        start_if_due(true);
        wake_exporter();
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    ring.claim()
}

/// The life cycle's "start a forked child's deferred threads once due"
/// (`profiler_threads::start_if_due`), registered at start-up: the hand-off sits below the life
/// cycle and does not call it by name. 0 until registered.
static DEFERRED_START: AtomicUsize = AtomicUsize::new(0);

/// Registers what `claim_patiently` calls to start deferred threads (`now`: a drain is
/// needed now — the ring is filling up, or a record must be read before its memory goes).
pub fn set_deferred_start(start_if_due: fn(now: bool)) {
    DEFERRED_START.store(start_if_due as usize, Ordering::Release);
}

/// For hooks (never the signal handler): a record was just published whose Python frames
/// must be read soon, before their code objects are freed (module-level code, run once):
/// the exporter drains now, started first in a forked child that deferred it.
pub fn drain_soon() {
    start_if_due(true);
    wake_exporter();
}

fn start_if_due(now: bool) {
    let f = DEFERRED_START.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: only `set_deferred_start` stores here, and it stores a `fn(bool)`.
        unsafe { std::mem::transmute::<usize, fn(bool)>(f)(now) };
    }
}
