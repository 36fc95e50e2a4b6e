//! Cold side: one period's aggregated samples → a pprof `Profile`, with symbolized locations
//! and mappings carrying file names and build ids. Addresses without symbols stay raw
//! addresses attached to their mapping, so they can be symbolized offline.

use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::aggregate::{Period, LOCK_ACQUIRE, LOCK_ACQUIRE_WAIT, SAMPLE_TYPES};
use super::builder::{LabelValue, ProfileBuilder};
use super::pprof::Profile;
use super::symbolize::{Symbolized, Symbolizer};
use super::view;
use crate::config::PythonNative;
use crate::sample::both_ends::OMITTED_TAG;
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
    // Finding the interpreter's code and naming locks ask the loader (fork_safe::with_loader).
    let folding = crate::fork_safe::with_loader(Folding::of_this_process);
    let symbols = symbolize(period, options.mappings, &folding.names_only(), symbolizer);
    let context = view_context(&symbols, &folding, options.mappings);
    let mut locations = Locations { symbols: &symbols, mappings: options.mappings, ids: HashMap::new(), mapping_ids: HashMap::new() };
    for (key, values) in &period.samples {
        let shown = view::show(&key.frames, key.lock != 0, &context);
        let mut picked: Vec<i64> = options.columns.iter().map(|&c| values[c].round() as i64).collect();
        if shown.idle_wait {
            for (v, &c) in picked.iter_mut().zip(options.columns) {
                if c == LOCK_ACQUIRE || c == LOCK_ACQUIRE_WAIT {
                    *v = 0;
                }
            }
        }
        if picked.iter().all(|&v| v == 0) {
            continue;
        }
        let ids: Vec<u64> = shown.frames.iter().map(|&w| locations.id(w, &mut builder)).collect();
        let name = period.thread_names.get(&key.tid).map(String::as_str).unwrap_or("");
        let mut labels = vec![LabelValue::Num { key: "thread id", value: key.tid as i64, unit: None }];
        if !name.is_empty() {
            labels.push(LabelValue::Str { key: "thread name", value: name });
        }
        let lock_name: Option<Rc<str>> = match key.lock {
            0 => None,
            _ if shown.gil => Some("GIL".into()),
            addr => Some(match period.lock_names.get(&addr) {
                Some(name) => name.as_ref().into(),
                None => crate::fork_safe::with_loader(|| super::lock_name::describe(addr)),
            }),
        };
        if let Some(lock_name) = &lock_name {
            labels.push(LabelValue::Str { key: "lock name", value: lock_name });
        }
        let exception_type = (key.exception != 0).then(|| super::exception_type::describe(key.exception));
        if let Some(exception_type) = &exception_type {
            labels.push(LabelValue::Str { key: "exception type", value: exception_type });
        }
        builder.sample(&ids, &picked, &labels);
    }
    finish(builder, period, options)
}

/// Symbols of every native address of the period's stacks, resolved in one batch; the code
/// in `names_only` from its ELF symbol table alone (see `Folding::names_only`).
fn symbolize(period: &Period, mappings: &[Mapping], names_only: &[Range<u64>], symbolizer: &mut Symbolizer) -> HashMap<u64, Arc<Symbolized>> {
    let mut addresses: Vec<u64> = period
        .samples
        .keys()
        .flat_map(|k| k.frames.iter().copied())
        .filter(|&w| w & (PYTHON_FRAME_TAG | OMITTED_TAG) == 0)
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    let symbols = symbolizer.resolve(&addresses, mappings, names_only);
    addresses.into_iter().zip(symbols).collect()
}

/// The code whose frames the view folds away: the library's own, and in the Python view the
/// interpreter's.
struct Folding {
    own: Option<Range<u64>>,
    interpreter: Option<Range<u64>>,
    python_view: bool,
}

impl Folding {
    fn of_this_process() -> Folding {
        let interpreter = crate::python::target()
            .filter(|t| !t.eval.is_empty())
            .and_then(|t| crate::sample::modules::text_range_containing(t.eval.entry()));
        let python_view = interpreter.is_some() && crate::status::config().is_none_or(|c| c.python_native == PythonNative::Python);
        Folding { own: super::aggregate::own_text(), interpreter, python_view }
    }

    /// Code named from its ELF symbol table alone, never from DWARF: the view shows none of
    /// its frames, and asks only physical function names of them (a forwarding hook, the GIL,
    /// a built-in, an idle wait — all functions of their own, never only inlined). Reading
    /// DWARF for them would map and parse the library's own debug info (~20 MiB) and
    /// libpython's (~25 MiB resident in a service) in every profiled process.
    fn names_only(&self) -> Vec<Range<u64>> {
        let interpreter = self.interpreter.clone().filter(|_| self.python_view);
        self.own.clone().into_iter().chain(interpreter).collect()
    }
}

/// How this process's stacks are shown (see view.rs).
fn view_context<'a>(symbols: &'a HashMap<u64, Arc<Symbolized>>, folding: &Folding, mappings: &[Mapping]) -> view::Context<'a> {
    let config = crate::status::config();
    view::Context {
        python_view: folding.python_view,
        interpreter: folding.interpreter.clone(),
        own: folding.own.clone(),
        idle_code: mappings
            .iter()
            .filter(|m| {
                let file = m.path.rsplit('/').next().unwrap_or("");
                file.ends_with(".so") && view::IDLE_MODULES.iter().any(|p| file.starts_with(p))
            })
            .map(|m| m.text_avma.clone())
            .collect(),
        max_frames: config.map_or(usize::MAX, |c| c.max_frames),
        symbols,
    }
}

/// One pprof location per distinct frame word, made when first used.
struct Locations<'a> {
    symbols: &'a HashMap<u64, Arc<Symbolized>>,
    mappings: &'a [Mapping],
    ids: HashMap<u64, u64>,
    mapping_ids: HashMap<usize, u64>,
}

impl Locations<'_> {
    fn id(&mut self, word: u64, builder: &mut ProfileBuilder) -> u64 {
        if let Some(&id) = self.ids.get(&word) {
            return id;
        }
        let id = if word & PYTHON_FRAME_TAG != 0 { self.python(word, builder) } else { self.native(word, builder) };
        self.ids.insert(word, id);
        id
    }

    fn python(&mut self, word: u64, builder: &mut ProfileBuilder) -> u64 {
        let lines: Vec<(u64, i64)> = match super::python_frames::describe(word) {
            Some(f) => vec![(builder.function(&f.function, &f.function, &f.file, 0), f.line as i64)],
            None => vec![(builder.function("<unknown python frame>", "", "", 0), 0)],
        };
        builder.location(0, 0, &lines)
    }

    fn native(&mut self, address: u64, builder: &mut ProfileBuilder) -> u64 {
        let mapping_id = match self.mappings.iter().position(|m| m.text_avma.contains(&address)) {
            Some(index) => *self.mapping_ids.entry(index).or_insert_with(|| {
                let m = &self.mappings[index];
                builder.mapping(m.text_avma.start, m.text_avma.end, m.text_file_offset, &m.path, &m.build_id, true)
            }),
            None => 0,
        };
        let lines: Vec<(u64, i64)> = self
            .symbols
            .get(&address)
            .map(|s| s.frames.iter().map(|f| (builder.function(&f.function, &f.function, &f.file, 0), f.line as i64)).collect())
            .unwrap_or_default();
        builder.location(mapping_id, address, &lines)
    }
}
