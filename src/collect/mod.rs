//! The hand-off between the hot side and the cold side.
pub mod live_heap;
pub mod ring;
pub mod wipe_on_fork;

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

// ---------------------------------------------------------------- waking the exporter

use std::sync::atomic::{AtomicU32, Ordering};

/// Futex word the exporter sleeps on between drains; bumped to wake it early.
static WAKE: AtomicU32 = AtomicU32::new(0);

/// Wakes the exporter so it drains now. A futex wake: async-signal-safe, never blocks.
pub fn wake_exporter() {
    WAKE.fetch_add(1, Ordering::Release);
    // SAFETY: FUTEX_WAKE on a valid, static, aligned u32.
    unsafe { libc::syscall(libc::SYS_futex, WAKE.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
}

/// The exporter's sleep: returns after `timeout` or as soon as `wake_exporter` is called.
pub fn wait_for_work(timeout: std::time::Duration) {
    let seen = WAKE.load(Ordering::Acquire);
    let ts = libc::timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: timeout.subsec_nanos() as i64 };
    // SAFETY: FUTEX_WAIT on a valid static u32 with a valid relative timeout; it returns at
    // once if the word no longer equals `seen`.
    unsafe {
        libc::syscall(libc::SYS_futex, WAKE.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, seen, &ts);
    }
}

/// For hooks (never the signal handler): when the ring is full, wake the exporter and give
/// it a moment before dropping the sample. Bounded (a few hundred microseconds at most), so
/// a thread never waits on the exporter for long, and never forever.
pub fn claim_patiently() -> Option<ring::SlotWriter<'static>> {
    let ring = ring()?;
    if crate::runtime::profile_ended() {
        // Nothing drains the ring any more: waiting for room would only cost the program.
        return ring.claim();
    }
    // A forked child that lives on needs its exporter now (see child_threads.rs).
    crate::child_threads::start_if_due(false);
    for _ in 0..64 {
        if let Some(slot) = ring.claim_quietly() {
            return Some(slot);
        }
        // Full, and maybe no exporter yet to drain it.
        crate::child_threads::start_if_due(true);
        wake_exporter();
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    ring.claim()
}
