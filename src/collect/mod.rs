//! The hand-off between the hot side and the cold side.
pub mod ring;

use std::sync::OnceLock;

static RING: OnceLock<ring::Ring> = OnceLock::new();

/// Slots in the sample ring: enough for several hundred milliseconds of heavy sampling
/// between two drains by the exporter (which drains every 100 ms).
const RING_SLOTS: usize = 2048;

/// Creates the ring (cold side, at load time, before any timer or hook records).
pub fn init_ring(max_frames: usize) {
    RING.get_or_init(|| ring::Ring::new(RING_SLOTS, max_frames));
}

/// The ring, once created. A lock-free load: usable from signal handlers.
#[inline]
pub fn ring() -> Option<&'static ring::Ring> {
    RING.get()
}
