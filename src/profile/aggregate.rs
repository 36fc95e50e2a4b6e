//! Cold side: folding drained records into per-stack totals for one export period.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::collect::ring::{Header, Kind};

/// Every sample type this profiler can produce, in the column order used internally.
/// Names and units are the ones Datadog's profilers use (DESIGN.md §1).
pub const SAMPLE_TYPES: [(&str, &str); 12] = [
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
];

pub const CPU_SAMPLES: usize = 0;
pub const CPU_TIME: usize = 1;
pub const WALL_SAMPLES: usize = 2;
pub const WALL_TIME: usize = 3;

pub type Values = [i64; SAMPLE_TYPES.len()];

/// What identifies one aggregated sample: its stack (leaf first) and its labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SampleKey {
    pub frames: Box<[u64]>,
    pub tid: i32,
}

/// The samples of one period, ready to encode.
pub struct Period {
    pub start: SystemTime,
    pub end: SystemTime,
    pub samples: HashMap<SampleKey, Values>,
    pub thread_names: HashMap<i32, String>,
    /// Samples lost on the hot side (full ring) during the period.
    pub dropped: u64,
}

pub struct Aggregator {
    start: SystemTime,
    samples: HashMap<SampleKey, Values>,
    thread_names: HashMap<i32, String>,
    dropped: u64,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new()
    }
}

impl Aggregator {
    pub fn new() -> Self {
        Aggregator { start: SystemTime::now(), samples: HashMap::new(), thread_names: HashMap::new(), dropped: 0 }
    }

    pub fn add(&mut self, header: &Header, words: &[u64]) {
        let merged;
        let frames = if header.native_len < words.len() && header.kind != Kind::ThreadName {
            merged = crate::python::merge(&words[..header.native_len], &words[header.native_len..]);
            &merged[..]
        } else {
            words
        };
        match header.kind {
            Kind::Cpu => self.add_values(header.tid, frames, &[(CPU_SAMPLES, header.values[0]), (CPU_TIME, header.values[1])]),
            Kind::Wall => self.add_values(header.tid, frames, &[(WALL_SAMPLES, header.values[0]), (WALL_TIME, header.values[1])]),
            Kind::ThreadName => self.record_thread_name(header.tid, header.values[0] as usize, frames),
            // Produced by later profile types; nothing records them yet.
            Kind::Alloc | Kind::Free | Kind::Lock => {}
        }
    }

    pub fn add_dropped(&mut self, n: u64) {
        self.dropped += n;
    }

    fn add_values(&mut self, tid: i32, frames: &[u64], values: &[(usize, i64)]) {
        let key = SampleKey { frames: frames.into(), tid };
        let totals = self.samples.entry(key).or_insert([0; SAMPLE_TYPES.len()]);
        for &(column, value) in values {
            totals[column] += value;
        }
        if !self.thread_names.contains_key(&tid) {
            if let Some(name) = read_thread_name(tid) {
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
        let end = SystemTime::now();
        let samples = std::mem::take(&mut self.samples);
        // Names of threads that are gone and were not sampled are not needed any more.
        let names = self.thread_names.clone();
        self.thread_names.retain(|tid, _| std::path::Path::new(&format!("/proc/self/task/{tid}")).exists());
        let period = Period { start: self.start, end, samples, thread_names: names, dropped: self.dropped };
        self.start = end;
        self.dropped = 0;
        period
    }
}

/// The kernel's name for a thread of this process (`pthread_setname_np` sets it).
pub fn read_thread_name(tid: i32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
    Some(name.trim_end_matches('\n').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(tid: i32, ns: i64) -> Header {
        Header { kind: Kind::Cpu, tid, values: [1, ns], extra: [0, 0], native_len: 3 }
    }

    #[test]
    fn same_stack_and_thread_merge() {
        let mut agg = Aggregator::new();
        agg.add(&cpu(1, 10), &[1, 2, 3]);
        agg.add(&cpu(1, 5), &[1, 2, 3]);
        agg.add(&cpu(2, 7), &[1, 2, 3]);
        let period = agg.take_period();
        assert_eq!(period.samples.len(), 2);
        let key = SampleKey { frames: vec![1, 2, 3].into(), tid: 1 };
        assert_eq!(period.samples[&key][CPU_SAMPLES], 2);
        assert_eq!(period.samples[&key][CPU_TIME], 15);
        assert!(agg.take_period().samples.is_empty());
    }

    #[test]
    fn thread_name_record_is_decoded() {
        let mut agg = Aggregator::new();
        let words: Vec<u64> = b"worker-1\0\0\0\0\0\0\0\0".chunks(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).collect();
        agg.add(&Header { kind: Kind::ThreadName, tid: 99, values: [8, 0], extra: [0, 0], native_len: 0 }, &words);
        assert_eq!(agg.take_period().thread_names[&99], "worker-1");
    }
}
