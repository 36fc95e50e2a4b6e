//! The cold side's hash maps for its hottest lookups: sample keys (whole stacks), Python code
//! objects and the names interned for them, and the pprof builder's tables.
//!
//! std's `HashMap` hashes with SipHash-1-3, built to resist keys chosen by an attacker; these
//! keys are stacks, addresses and names the profiler read from the program itself, and a
//! perf of a gunicorn worker put SipHash at a fifth of the exporter thread's CPU (0.25 % of the
//! worker's). aHash (already built for `inferno`) keeps a random seed per map and is several
//! times faster on such keys.

/// `HashMap` with aHash; make one with `FastMap::default()`.
pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
