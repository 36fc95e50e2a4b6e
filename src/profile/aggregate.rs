//! Cold side: folding drained records into per-stack totals for one export period.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use crate::fast_map::FastMap;

use super::heap::{self, HeapEvent, LiveHeap, LIVE_HEAP};
use super::python_lock_site::SiteNames;

use crate::collect::ring::{Header, Kind};

/// Every sample type this profiler can produce, in the column order used internally.
/// Names and units are the ones Datadog's profilers use (DESIGN.md §1).
pub const SAMPLE_TYPES: [(&str, &str); 13] = [
    ("cpu-samples", "count"),
    ("cpu-time", "nanoseconds"),
    ("wall-samples", "count"),
    ("wall-time", "nanoseconds"),
    ("alloc-samples", "count"),
    ("alloc-space", "bytes"),
    ("heap-live-samples", "count"),
    ("heap-space", "bytes"),
    ("lock-acquire", "count"),
    ("lock-acquire-wait", "nanoseconds"),
    ("lock-release", "count"),
    ("lock-release-hold", "nanoseconds"),
    ("exception-samples", "count"),
];

pub const CPU_SAMPLES: usize = 0;
pub const CPU_TIME: usize = 1;
pub const WALL_SAMPLES: usize = 2;
pub const WALL_TIME: usize = 3;
pub const ALLOC_SAMPLES: usize = 4;
pub const ALLOC_SPACE: usize = 5;
pub const HEAP_LIVE_SAMPLES: usize = 6;
pub const HEAP_SPACE: usize = 7;
pub const LOCK_ACQUIRE: usize = 8;
pub const LOCK_ACQUIRE_WAIT: usize = 9;
pub const LOCK_RELEASE: usize = 10;
pub const LOCK_RELEASE_HOLD: usize = 11;
pub const EXCEPTION_SAMPLES: usize = 12;

/// Totals per sample type. Floating point because sampled allocations carry fractional
/// weights (1/p); rounding each one would bias the estimate. Rounded once, when encoded.
pub type Values = [f64; SAMPLE_TYPES.len()];

pub use super::sample_key::SampleKey;

/// The samples of one period, ready to encode.
pub struct Period {
    pub start: SystemTime,
    pub end: SystemTime,
    pub samples: FastMap<SampleKey, Values>,
    pub thread_names: HashMap<i32, String>,
    /// Names of the Python locks of the period's lock samples (see python_lock_site.rs).
    pub lock_names: HashMap<u64, Arc<str>>,
    /// Samples lost on the hot side (full ring) during the period.
    pub dropped: u64,
}

pub struct Aggregator {
    start: SystemTime,
    samples: FastMap<SampleKey, Values>,
    thread_names: HashMap<i32, String>,
    dropped: u64,
    /// Alloc/free events of the current drain, applied to the live heap in `end_drain`.
    heap_events: Vec<HeapEvent>,
    /// The library's own code: hook frames at the leaf of allocation stacks are cut off.
    own_text: Option<Range<u64>>,
    /// Wall events of the current drain, applied in time order in `end_drain`.
    wall_events: Vec<WallEvent>,
    /// The last stack captured on each thread: time during which the thread did not run is
    /// attributed to it.
    last_wall_stack: HashMap<i32, Box<[u64]>>,
    /// The last CPU-sampled stack of each thread, for the CPU it uses after it (see add_cpu).
    last_cpu_stack: HashMap<i32, Box<[u64]>>,
    /// Python locks by address: their names from where they were made (kept across periods),
    /// and whether a wait on them was recorded.
    lock_sites: HashMap<u64, LockSite>,
    site_names: SiteNames,
}

/// Python locks whose names are kept; past this, the locks no wait was recorded on are
/// forgotten (most are a request's short-lived locks, whose memory holds new locks since).
const MAX_LOCK_SITES: usize = 1 << 14;

struct LockSite {
    /// None: made where no name could be found (the address names it).
    name: Option<Arc<str>>,
    /// The creation's place in `sample::lock`'s sequence: an older record drained later
    /// (records of different threads come out of the ring in any order) does not replace it.
    created: i64,
    waited_on: bool,
}

/// How long wall events wait before being applied (see `apply_wall_events`).
const WALL_HOLDBACK_NS: u64 = 50_000_000;

/// A wall sample: a captured stack, or "the thread did not run, reuse its last stack".
struct WallEvent {
    time: u64,
    tid: i32,
    reuse: bool,
    weight: f64,
    frames: Box<[u64]>,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new()
    }
}

impl Aggregator {
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// An aggregator whose first period starts at `start`.
    pub fn starting_at(start: SystemTime) -> Self {
        Aggregator {
            start,
            samples: FastMap::default(),
            thread_names: HashMap::new(),
            dropped: 0,
            heap_events: Vec::new(),
            wall_events: Vec::new(),
            last_wall_stack: HashMap::new(),
            last_cpu_stack: HashMap::new(),
            lock_sites: HashMap::new(),
            site_names: SiteNames::default(),
            own_text: own_text(),
        }
    }

    pub fn add(&mut self, header: &Header, words: &[u64]) {
        let merged;
        let frames = if header.native_len < words.len() && header.kind != Kind::ThreadName {
            merged = super::python_frames::merge(&words[..header.native_len], &words[header.native_len..]);
            &merged[..]
        } else {
            words
        };
        match header.kind {
            Kind::Cpu => self.add_cpu(header, frames),
            Kind::Wall => self.wall_events.push(WallEvent {
                time: header.extra[0],
                tid: header.tid,
                reuse: header.values[0] == 1,
                weight: header.values[1] as f64,
                frames: frames.into(),
            }),
            Kind::ThreadName => self.record_thread_name(header.tid, header.values[0] as usize, frames),
            Kind::Alloc => self.add_allocation(header, frames),
            Kind::Free => self.heap_events.push(HeapEvent::Free { seq: header.values[1], addr: header.extra[0] }),
            // Produced by a later profile type; nothing records it yet.
            Kind::Lock => self.add_lock(header, frames),
            Kind::LockInit => self.add_lock_site(header.extra[0], header.values[0], frames),
            Kind::Exception => {
                let frames = self.without_own_frames(frames);
                let key = SampleKey { frames: frames.into(), tid: header.tid, lock: 0, exception: header.extra[0] };
                self.add_keyed(key, &[(EXCEPTION_SAMPLES, header.values[0] as f64)]);
            }
        }
    }

    /// A CPU sample; one without frames is the unsampled CPU of an exiting thread, which goes
    /// to the thread's last sampled stack.
    fn add_cpu(&mut self, header: &Header, frames: &[u64]) {
        let values = [(CPU_SAMPLES, header.values[0] as f64), (CPU_TIME, header.values[1] as f64)];
        if !frames.is_empty() {
            self.last_cpu_stack.insert(header.tid, frames.into());
            self.add_values(header.tid, frames, &values);
            if header.extra[0] != 0 {
                self.add_handled_exception(header, frames);
            }
        } else if let Some(last) = self.last_cpu_stack.remove(&header.tid) {
            self.add_values(header.tid, &last, &values);
        }
    }

    /// CPython 3.8–3.11: the CPU sample was taken while its thread handled an exception of the
    /// type `extra[0]`: exception samples of that type, under the same stack, one for each CPU
    /// sampling period the sample stands for.
    fn add_handled_exception(&mut self, header: &Header, frames: &[u64]) {
        use crate::python_gil::exceptions::{name_later, PYTHON_TYPE_TAG};
        name_later(header.extra[0]);
        let key = SampleKey { frames: frames.into(), tid: header.tid, lock: 0, exception: PYTHON_TYPE_TAG | header.extra[0] };
        let hz = crate::status::config().map_or(crate::config::DEFAULT_CPU_FREQUENCY_HZ, |c| c.cpu_frequency_hz);
        self.add_keyed(key, &[(EXCEPTION_SAMPLES, sampling_periods(header.values[1] as u64, hz))]);
    }

    fn add_allocation(&mut self, header: &Header, frames: &[u64]) {
        let frames = self.without_own_frames(frames);
        let size = header.values[0] as u64;
        let (count, bytes) = heap::weights(size, crate::sample::alloc::mean_interval());
        self.add_values(header.tid, frames, &[(ALLOC_SAMPLES, count), (ALLOC_SPACE, bytes)]);
        let key = SampleKey { frames: frames.into(), tid: header.tid, lock: 0, exception: 0 };
        self.heap_events.push(HeapEvent::Alloc { seq: header.values[1], addr: header.extra[0], key, size });
    }

    /// Applies wall events in time order: the ring does not keep the order in which the
    /// sampler and the sampled threads wrote them.
    ///
    /// Events younger than `WALL_HOLDBACK_NS` wait for the next drain: a stack captured by a
    /// signal can be committed a few milliseconds after the look that sent it, so a later
    /// "reuse" event must not be applied before it. `everything` applies all (final export).
    fn apply_wall_events(&mut self, everything: bool) {
        let mut events = std::mem::take(&mut self.wall_events);
        events.sort_by_key(|e| e.time);
        if !everything {
            let cutoff = crate::sample::wall::monotonic_ns().saturating_sub(WALL_HOLDBACK_NS);
            let young = events.partition_point(|e| e.time <= cutoff);
            self.wall_events = events.split_off(young);
        }
        for event in events {
            let frames = if event.reuse {
                self.last_wall_stack.get(&event.tid).cloned().unwrap_or_default()
            } else {
                self.last_wall_stack.insert(event.tid, event.frames.clone());
                event.frames
            };
            self.add_values(event.tid, &frames, &[(WALL_SAMPLES, 1.0), (WALL_TIME, event.weight)]);
        }
    }

    /// Cuts the leaf frames that belong to the library itself (the hook that took the sample).
    fn without_own_frames<'f>(&self, frames: &'f [u64]) -> &'f [u64] {
        let Some(own) = &self.own_text else { return frames };
        let skip = frames.iter().take_while(|a| own.contains(a)).count();
        &frames[skip..]
    }

    /// Called after each drain: applies the drain's alloc/free events to the live heap; the
    /// next drain checks cached Python code objects again.
    pub fn end_drain(&mut self) {
        super::python_frames::next_drain();
        self.apply_wall_events(false);
        let events = std::mem::take(&mut self.heap_events);
        if events.is_empty() {
            return;
        }
        let mut live = LIVE_HEAP.lock();
        live.get_or_insert_with(LiveHeap::default).apply(events);
    }

    pub fn add_dropped(&mut self, n: u64) {
        self.dropped += n;
    }

    /// A lock record (see sample/lock.rs): values [ns, N], extra[0] = lock address. Waits
    /// (N = 0) and holds were recorded with probability p = 1 − exp(−ns/T), like an
    /// allocation of `ns` bytes, so they weigh 1/p and ns/p; a hold was moreover one of the
    /// 1 in N acquisitions followed, hence N/p and ns·N/p.
    fn add_lock(&mut self, header: &Header, frames: &[u64]) {
        let frames = self.without_own_frames(frames);
        let ns = header.values[0].max(0) as u64;
        let (count, time) = heap::weights(ns, crate::sample::lock::wait_interval());
        let values = match header.values[1] {
            every if every > 0 => [(LOCK_RELEASE, count * every as f64), (LOCK_RELEASE_HOLD, time * every as f64)],
            _ => [(LOCK_ACQUIRE, count), (LOCK_ACQUIRE_WAIT, time)],
        };
        self.add_keyed(SampleKey { frames: frames.into(), tid: header.tid, lock: header.extra[0], exception: 0 }, &values);
    }

    fn add_lock_site(&mut self, lock: u64, created: i64, frames: &[u64]) {
        if self.lock_sites.get(&lock).is_some_and(|site| site.created > created) {
            return;
        }
        if self.lock_sites.len() >= MAX_LOCK_SITES {
            self.lock_sites.retain(|_, site| site.waited_on);
            if self.lock_sites.len() >= MAX_LOCK_SITES / 2 {
                self.lock_sites.clear();
            }
            for site in self.lock_sites.values_mut() {
                site.waited_on = false;
            }
        }
        let name = super::python_lock_site::name(frames, &mut self.site_names);
        self.lock_sites.insert(lock, LockSite { name, created, waited_on: false });
    }

    fn add_values(&mut self, tid: i32, frames: &[u64], values: &[(usize, f64)]) {
        self.add_keyed(SampleKey { frames: frames.into(), tid, lock: 0, exception: 0 }, values);
    }

    fn add_keyed(&mut self, key: SampleKey, values: &[(usize, f64)]) {
        let tid = key.tid;
        let totals = self.samples.entry(key).or_insert([0.0; SAMPLE_TYPES.len()]);
        for &(column, value) in values {
            totals[column] += value;
        }
        if !self.thread_names.contains_key(&tid) {
            if let Some(name) = crate::python_gil::thread_name(tid).or_else(|| read_thread_name(tid)) {
                self.thread_names.insert(tid, name);
            }
        }
    }

    /// A thread about to exit sent its name (packed in the frame words), since /proc will no
    /// longer have it when the period is exported.
    fn record_thread_name(&mut self, tid: i32, len: usize, words: &[u64]) {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).take(len.min(16)).collect();
        self.thread_names.insert(tid, String::from_utf8_lossy(&bytes).into_owned());
    }

    /// Ends the period: returns its samples and starts the next one.
    pub fn take_period(&mut self) -> Period {
        self.end_drain();
        if !crate::sample::wall::WALL_SAMPLING.load(std::sync::atomic::Ordering::Acquire) {
            // Sampling has stopped (exit): nothing older can arrive any more.
            self.apply_wall_events(true);
        }
        self.add_live_heap();
        let end = SystemTime::now();
        let samples = std::mem::take(&mut self.samples);
        // Python names may have arrived after a thread was first seen (they come from the
        // interpreter, a little later); they win over the kernel's name.
        for (&tid, name) in self.thread_names.iter_mut() {
            if let Some(python_name) = crate::python_gil::thread_name(tid) {
                *name = python_name;
            }
        }
        // Names of threads that are gone and were not sampled are not needed any more.
        let names = self.thread_names.clone();
        let gone = |tid: i32| !thread_alive(tid);
        self.thread_names.retain(|&tid, _| !gone(tid));
        crate::python_gil::forget_thread_names(gone);
        self.last_wall_stack.retain(|&tid, _| thread_alive(tid));
        self.last_cpu_stack.retain(|&tid, _| thread_alive(tid));
        let lock_names = samples
            .keys()
            .filter_map(|k| {
                let site = self.lock_sites.get_mut(&k.lock)?;
                site.waited_on = true;
                Some((k.lock, site.name.clone()?))
            })
            .collect();
        let period = Period { start: self.start, end, samples, thread_names: names, lock_names, dropped: self.dropped };
        self.start = end;
        self.dropped = 0;
        period
    }
}

impl Aggregator {
    /// Live sampled blocks, as they are at export time, under their allocation stacks.
    fn add_live_heap(&mut self) {
        let interval = crate::sample::alloc::mean_interval();
        let live = LIVE_HEAP.lock();
        let Some(live) = live.as_ref() else { return };
        for (key, count, bytes) in live.live(interval) {
            let totals = self.samples.entry(key.clone()).or_insert([0.0; SAMPLE_TYPES.len()]);
            totals[HEAP_LIVE_SAMPLES] += count;
            totals[HEAP_SPACE] += bytes;
        }
    }
}

/// The kernel's name for a thread of this process (`pthread_setname_np` sets it).
pub fn read_thread_name(tid: i32) -> Option<String> {
    if tid == crate::thread::gettid() {
        // The calling thread (a forked child exporting at its exit): no file to open.
        let mut name = [0u8; 17];
        // SAFETY: PR_GET_NAME writes at most 16 bytes and a NUL into the buffer.
        if unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) } == 0 {
            let len = name.iter().position(|&b| b == 0).unwrap_or(16);
            return Some(String::from_utf8_lossy(&name[..len]).into_owned());
        }
    }
    let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
    Some(name.trim_end_matches('\n').to_string())
}

/// The library's own code, found once (a forked child inherits it rather than walking the
/// loader's module list again in every aggregator it makes).
pub fn own_text() -> Option<Range<u64>> {
    static OWN_TEXT: std::sync::OnceLock<Option<Range<u64>>> = std::sync::OnceLock::new();
    OWN_TEXT.get_or_init(|| crate::sample::modules::text_range_containing(own_text as *const () as u64)).clone()
}

/// Whether thread `tid` of this process still exists.
fn thread_alive(tid: i32) -> bool {
    tid == crate::thread::gettid() || std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

/// How many CPU sampling periods a CPU sample of `cpu_ns` stands for (at least one). On a
/// loaded machine a thread's CPU timer is checked at scheduler ticks only, and expirations
/// that pass while its signal is pending merge into one signal: the sample then covers
/// several periods of the thread's CPU time (measured as 1.5 s of CPU in 135 samples instead
/// of 372 at 250 Hz, with 5 busy threads on 2 cores).
fn sampling_periods(cpu_ns: u64, hz: u32) -> f64 {
    let period_ns = 1e9 / f64::from(hz.max(1));
    (cpu_ns as f64 / period_ns).round().max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_sample_stands_for_the_periods_its_cpu_time_covers() {
        assert_eq!(sampling_periods(4_000_000, 250), 1.0);
        assert_eq!(sampling_periods(1_000, 250), 1.0);
        assert_eq!(sampling_periods(11_000_000, 250), 3.0);
        assert_eq!(sampling_periods(20_000_000, 100), 2.0);
    }

    fn cpu(tid: i32, ns: i64) -> Header {
        Header { kind: Kind::Cpu, tid, values: [1, ns], extra: [0, 0], native_len: 3 }
    }

    #[test]
    fn a_lock_keeps_the_name_of_its_newest_creation_whatever_the_drain_order() {
        let mut agg = Aggregator::new();
        let site = |file: &str, line| super::super::python_frames::intern_for_test("make", file, line);
        // The lock made at app.py:10 reuses the address of one made (and freed) at old.py:5;
        // the older record comes out of the ring last. (Its frames as `add` passes them,
        // once merged: without an interpreter here, `add` itself would find none.)
        agg.add_lock_site(0x1000, 2, &[site("/srv/app.py", 10)]);
        agg.add_lock_site(0x1000, 1, &[site("/srv/old.py", 5)]);
        agg.add(&Header { kind: Kind::Lock, tid: 1, values: [1_000_000, 0], extra: [0x1000, 0], native_len: 3 }, &[1, 2, 3]);
        let period = agg.take_period();
        assert_eq!(period.lock_names.get(&0x1000).map(|n| &**n), Some("app.py:10"));
    }

    #[test]
    fn same_stack_and_thread_merge() {
        let mut agg = Aggregator::new();
        agg.add(&cpu(1, 10), &[1, 2, 3]);
        agg.add(&cpu(1, 5), &[1, 2, 3]);
        agg.add(&cpu(2, 7), &[1, 2, 3]);
        let period = agg.take_period();
        assert_eq!(period.samples.len(), 2);
        let key = SampleKey { frames: vec![1, 2, 3].into(), tid: 1, lock: 0, exception: 0 };
        assert_eq!(period.samples[&key][CPU_SAMPLES], 2.0);
        assert_eq!(period.samples[&key][CPU_TIME], 15.0);
        assert!(agg.take_period().samples.is_empty());
    }

    #[test]
    fn lock_records_are_weighed_and_keyed_by_lock() {
        let mut agg = Aggregator::new();
        let lock = |ns, every| Header { kind: Kind::Lock, tid: 3, values: [ns, every], extra: [0x1000, 0], native_len: 2 };
        agg.add(&lock(1000, 0), &[1, 2]);
        agg.add(&lock(500, 10), &[1, 2]);
        agg.add(&cpu(3, 7), &[1, 2]);
        let period = agg.take_period();
        assert_eq!(period.samples.len(), 2, "the lock address is part of the key");
        let v = period.samples[&SampleKey { frames: vec![1, 2].into(), tid: 3, lock: 0x1000, exception: 0 }];
        let p = -(-1000.0 / crate::sample::lock::wait_interval() as f64).exp_m1();
        assert!((v[LOCK_ACQUIRE] * p - 1.0).abs() < 1e-9);
        assert!((v[LOCK_ACQUIRE_WAIT] * p - 1000.0).abs() < 1e-6);
        let p = -(-500.0 / crate::sample::lock::wait_interval() as f64).exp_m1();
        assert!((v[LOCK_RELEASE] * p - 10.0).abs() < 1e-9);
        assert!((v[LOCK_RELEASE_HOLD] * p - 5000.0).abs() < 1e-6);
    }

    #[test]
    fn thread_name_record_is_decoded() {
        let mut agg = Aggregator::new();
        let words: Vec<u64> = b"worker-1\0\0\0\0\0\0\0\0".chunks(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).collect();
        agg.add(&Header { kind: Kind::ThreadName, tid: 99, values: [8, 0], extra: [0, 0], native_len: 0 }, &words);
        assert_eq!(agg.take_period().thread_names[&99], "worker-1");
    }
}
