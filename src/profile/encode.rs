//! Cold side: one period's aggregated samples → a pprof `Profile`, with symbolized locations
//! and mappings carrying file names and build ids. Addresses without symbols stay raw
//! addresses attached to their mapping, so they can be symbolized offline.

use std::collections::HashMap;
use std::time::Duration;

use super::aggregate::{Period, SAMPLE_TYPES};
use super::builder::{LabelValue, ProfileBuilder};
use super::pprof::Profile;
use super::symbolize::Symbolizer;
use crate::python::PYTHON_FRAME_TAG;
use crate::sample::unwind::Mapping;

/// What is being encoded besides the samples.
pub struct EncodeOptions<'a> {
    /// Indices into `SAMPLE_TYPES` of the types this profile carries.
    pub columns: &'a [usize],
    /// CPU sampling period in nanoseconds (pprof `period`), if CPU is sampled.
    pub cpu_period_ns: Option<i64>,
    pub mappings: &'a [Mapping],
    pub comments: &'a [String],
}

/// A profile with no sample (a quiet forked child's, see export/handoff.rs): what
/// `encode_period` makes of an empty period, without the symbolizer.
pub fn encode_empty(period: &Period, options: &EncodeOptions) -> Profile {
    finish(new_builder(period, options), period, options)
}

fn new_builder(period: &Period, options: &EncodeOptions) -> ProfileBuilder {
    let types: Vec<(&str, &str)> = options.columns.iter().map(|&c| SAMPLE_TYPES[c]).collect();
    let duration = period.end.duration_since(period.start).unwrap_or(Duration::ZERO);
    let mut builder = ProfileBuilder::new(&types, period.start, duration);
    if let Some(ns) = options.cpu_period_ns {
        builder.set_period("cpu-time", "nanoseconds", ns);
    }
    builder
}

fn finish(mut builder: ProfileBuilder, period: &Period, options: &EncodeOptions) -> Profile {
    if period.dropped > 0 {
        builder.comment(&format!("libddprof: {} samples dropped (sample buffer full)", period.dropped));
    }
    for comment in options.comments {
        builder.comment(comment);
    }
    builder.build()
}

pub fn encode_period(period: &Period, options: &EncodeOptions, symbolizer: &mut Symbolizer) -> Profile {
    let mut builder = new_builder(period, options);
    let locations = build_locations(period, options.mappings, symbolizer, &mut builder);
    for (key, values) in &period.samples {
        let picked: Vec<i64> = options.columns.iter().map(|&c| values[c].round() as i64).collect();
        if picked.iter().all(|&v| v == 0) {
            continue;
        }
        let ids: Vec<u64> = key.frames.iter().map(|a| locations[a]).collect();
        let name = period.thread_names.get(&key.tid).map(String::as_str).unwrap_or("");
        let mut labels = vec![LabelValue::Num { key: "thread id", value: key.tid as i64, unit: None }];
        if !name.is_empty() {
            labels.push(LabelValue::Str { key: "thread name", value: name });
        }
        let lock_name = (key.lock != 0).then(|| super::lock_name::describe(key.lock));
        if let Some(lock_name) = &lock_name {
            labels.push(LabelValue::Str { key: "lock name", value: lock_name });
        }
        builder.sample(&ids, &picked, &labels);
    }
    finish(builder, period, options)
}

/// One pprof location per distinct address.
fn build_locations(
    period: &Period,
    mappings: &[Mapping],
    symbolizer: &mut Symbolizer,
    builder: &mut ProfileBuilder,
) -> HashMap<u64, u64> {
    let mut words: Vec<u64> = period.samples.keys().flat_map(|k| k.frames.iter().copied()).collect();
    words.sort_unstable();
    words.dedup();
    let (python, addresses): (Vec<u64>, Vec<u64>) = words.into_iter().partition(|w| w & PYTHON_FRAME_TAG != 0);
    let symbols = symbolizer.resolve(&addresses, mappings);
    let mut mapping_ids: HashMap<usize, u64> = HashMap::new();
    let mut locations = HashMap::with_capacity(addresses.len());
    for (&address, symbolized) in addresses.iter().zip(symbols.iter()) {
        let mapping_id = match mappings.iter().position(|m| m.text_avma.contains(&address)) {
            Some(index) => *mapping_ids.entry(index).or_insert_with(|| {
                let m = &mappings[index];
                builder.mapping(m.text_avma.start, m.text_avma.end, m.text_file_offset, &m.path, &m.build_id, true)
            }),
            None => 0,
        };
        let lines: Vec<(u64, i64)> = symbolized
            .frames
            .iter()
            .map(|f| (builder.function(&f.function, &f.function, &f.file, 0), f.line as i64))
            .collect();
        locations.insert(address, builder.location(mapping_id, address, &lines));
    }
    for word in python {
        let lines: Vec<(u64, i64)> = match super::python_frames::describe(word) {
            Some(f) => vec![(builder.function(&f.function, &f.function, &f.file, 0), f.line as i64)],
            None => vec![(builder.function("<unknown python frame>", "", "", 0), 0)],
        };
        locations.insert(word, builder.location(0, 0, &lines));
    }
    locations
}
