//! Waking the exporter: a futex word the cold side sleeps on and the hot side bumps.

use std::sync::atomic::{AtomicU32, Ordering};

/// Futex word the exporter sleeps on between drains; bumped to wake it early.
static WAKE: AtomicU32 = AtomicU32::new(0);

/// Wakes the exporter so it drains now. A futex wake: async-signal-safe, never blocks.
pub fn wake_exporter() {
    WAKE.fetch_add(1, Ordering::Release);
    // SAFETY: FUTEX_WAKE on a valid, static, aligned u32.
    unsafe { libc::syscall(libc::SYS_futex, WAKE.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
}

/// How many wakes there were so far: a later `wait_for_work_since` with it returns at once
/// if one came in between.
pub fn wakes_so_far() -> u32 {
    WAKE.load(Ordering::Acquire)
}

/// The exporter's sleep: returns after `timeout` or as soon as `wake_exporter` is called.
pub fn wait_for_work(timeout: std::time::Duration) {
    wait_for_work_since(WAKE.load(Ordering::Acquire), timeout);
}

/// `wait_for_work`, returning at once if `wake_exporter` was called since `seen` was read
/// (with `wakes_so_far`).
pub fn wait_for_work_since(seen: u32, timeout: std::time::Duration) {
    let ts = libc::timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: timeout.subsec_nanos() as i64 };
    // SAFETY: FUTEX_WAIT on a valid static u32 with a valid relative timeout; it returns at
    // once if the word no longer equals `seen`.
    unsafe {
        libc::syscall(libc::SYS_futex, WAKE.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, seen, &ts);
    }
}

