//! Reading pprof files and merging them into one flat, name-keyed view.
//!
//! Every file has its own string table and its own location/function ids, so nothing is merged
//! by id: sample types are matched by name, and each location is turned into frames keyed by
//! (function name, file, line). Samples with the same frames and the same thread add up.

use std::collections::HashMap;
use std::path::Path;

use crate::profile::builder::decode;
use crate::profile::pprof::Profile;

use super::ReportError;

/// A sample type (`cpu-time`/`nanoseconds`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleType {
    pub name: String,
    pub unit: String,
}

/// One frame of a stack. Unsymbolized frames have an empty file, line 0 and a function named
/// after the address (`libfoo.so+0x1234`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: i64,
}

impl Frame {
    /// `function (file:line)`, `function (file)` or `function`.
    pub fn display(&self) -> String {
        match (self.file.is_empty(), self.line > 0) {
            (true, _) => self.function.clone(),
            (false, true) => format!("{} ({}:{})", self.function, self.file, self.line),
            (false, false) => format!("{} ({})", self.function, self.file),
        }
    }
}

/// One merged sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Indices into [`Merged::frames`], leaf first.
    pub stack: Vec<u32>,
    /// One value per [`Merged::types`] entry; shorter when types were added by a later file
    /// (use [`Sample::value`]).
    pub values: Vec<i64>,
    pub thread_id: Option<i64>,
    pub thread_name: Option<String>,
}

impl Sample {
    /// The value for sample type `t` (0 when this sample has none).
    pub fn value(&self, t: usize) -> i64 {
        self.values.get(t).copied().unwrap_or(0)
    }
}

type SampleKey = (Vec<u32>, Option<i64>, Option<String>);

/// All samples of all files, in one name-keyed table.
#[derive(Default, Debug)]
pub struct Merged {
    /// The files merged, in order.
    pub files: Vec<String>,
    pub types: Vec<SampleType>,
    pub frames: Vec<Frame>,
    pub samples: Vec<Sample>,
    frame_index: HashMap<Frame, u32>,
    sample_index: HashMap<SampleKey, usize>,
    /// For each type, the file that first brought it (for unit-mismatch errors).
    type_origin: Vec<String>,
}

/// Which samples to keep: `--thread NAME|ID`. A number matches the `thread id` label or a
/// thread of that name; anything else matches the `thread name` label exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadFilter(pub String);

impl ThreadFilter {
    pub fn matches(&self, s: &Sample) -> bool {
        if s.thread_name.as_deref() == Some(self.0.as_str()) {
            return true;
        }
        match self.0.trim().parse::<i64>() {
            Ok(id) => s.thread_id == Some(id),
            Err(_) => false,
        }
    }
}

/// Reads, decodes and merges `paths`. Errors name the offending file.
pub fn load_files(paths: &[impl AsRef<Path>]) -> Result<Merged, ReportError> {
    let mut merged = Merged::default();
    for path in paths {
        let path = path.as_ref();
        let name = path.display().to_string();
        if path.is_dir() {
            return Err(ReportError::input(format!("{name} is a directory, not a pprof file")));
        }
        let bytes = std::fs::read(path).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                _ => e.to_string(),
            };
            ReportError::input(format!("cannot read {name}: {why}"))
        })?;
        let profile = decode_file(&name, &bytes)?;
        merged.add(&name, &profile).map_err(|e| ReportError::input(format!("{name}: {e}")))?;
    }
    Ok(merged)
}

/// Decodes one file, turning the decoder's message into one that names the file.
pub fn decode_file(name: &str, bytes: &[u8]) -> Result<Profile, ReportError> {
    if bytes.is_empty() {
        return Err(ReportError::input(format!(
            "{name} is not a pprof profile: the file is empty (neither gzip'd nor plain protobuf pprof)"
        )));
    }
    decode(bytes).map_err(|detail| {
        let mut detail = detail.strip_prefix("not a pprof profile: ").unwrap_or(&detail);
        // The decoder already says "neither gzip nor …": keep only its reason.
        if let Some(inner) = detail.strip_prefix("neither gzip nor a valid pprof protobuf message (") {
            detail = inner.strip_suffix(')').unwrap_or(inner);
        }
        ReportError::input(format!(
            "{name} is not a pprof profile: it is neither gzip'd nor plain protobuf pprof ({detail})"
        ))
    })
}

impl Merged {
    /// Adds one decoded profile. `name` is used in error messages.
    pub fn add(&mut self, name: &str, p: &Profile) -> Result<(), String> {
        let st = |i: i64| -> Result<&str, String> {
            usize::try_from(i)
                .ok()
                .and_then(|i| p.string_table.get(i))
                .map(String::as_str)
                .ok_or_else(|| format!("invalid pprof: string index {i} is out of range"))
        };

        // Sample types, matched by name.
        let mut type_map = Vec::with_capacity(p.sample_type.len());
        for vt in &p.sample_type {
            let ty = SampleType { name: st(vt.r#type)?.to_string(), unit: st(vt.unit)?.to_string() };
            let index = match self.types.iter().position(|t| t.name == ty.name) {
                Some(i) => {
                    if self.types[i].unit != ty.unit {
                        return Err(format!(
                            "sample type {} is in {} here but in {} in {}; cannot merge",
                            ty.name,
                            unit_or_none(&ty.unit),
                            unit_or_none(&self.types[i].unit),
                            self.type_origin[i]
                        ));
                    }
                    i
                }
                None => {
                    self.types.push(ty);
                    self.type_origin.push(name.to_string());
                    self.types.len() - 1
                }
            };
            type_map.push(index);
        }

        // Functions and mappings by id.
        let mut functions: HashMap<u64, (&str, &str)> = HashMap::with_capacity(p.function.len());
        for f in &p.function {
            let mut fname = st(f.name)?;
            if fname.is_empty() {
                fname = st(f.system_name)?;
            }
            functions.insert(f.id, (fname, st(f.filename)?));
        }
        let mut mappings: HashMap<u64, (u64, u64, &str)> = HashMap::with_capacity(p.mapping.len());
        for m in &p.mapping {
            mappings.insert(m.id, (m.memory_start, m.file_offset, st(m.filename)?));
        }

        // Locations → frames (leaf first: a location's lines are innermost first already).
        let mut locations: HashMap<u64, Vec<u32>> = HashMap::with_capacity(p.location.len());
        for loc in &p.location {
            let mut frames = Vec::with_capacity(loc.line.len().max(1));
            if loc.line.is_empty() {
                frames.push(self.intern(unsymbolized_frame(loc.address, mappings.get(&loc.mapping_id))));
            }
            for line in &loc.line {
                let &(function, file) = functions.get(&line.function_id).ok_or_else(|| {
                    format!("invalid pprof: location {} refers to missing function {}", loc.id, line.function_id)
                })?;
                let function = if function.is_empty() { "<unknown>" } else { function };
                frames.push(self.intern(Frame {
                    function: function.to_string(),
                    file: file.to_string(),
                    line: line.line.max(0),
                }));
            }
            locations.insert(loc.id, frames);
        }

        let thread_id_key = p.string_table.iter().position(|s| s == "thread id").map(|i| i as i64);
        let thread_name_key = p.string_table.iter().position(|s| s == "thread name").map(|i| i as i64);

        for s in &p.sample {
            let mut stack = Vec::with_capacity(s.location_id.len());
            for id in &s.location_id {
                let frames = locations
                    .get(id)
                    .ok_or_else(|| format!("invalid pprof: a sample refers to missing location {id}"))?;
                stack.extend_from_slice(frames);
            }
            if stack.is_empty() {
                stack.push(self.intern(Frame { function: "[no stack]".into(), file: String::new(), line: 0 }));
            }
            let mut thread_id = None;
            let mut thread_name = None;
            for l in &s.label {
                if thread_id_key == Some(l.key) {
                    thread_id = if l.str != 0 { st(l.str)?.trim().parse().ok() } else { Some(l.num) };
                } else if thread_name_key == Some(l.key) {
                    thread_name = Some(st(l.str)?.to_string());
                }
            }
            let key = (stack, thread_id, thread_name);
            let index = match self.sample_index.get(&key) {
                Some(&i) => i,
                None => {
                    self.samples.push(Sample {
                        stack: key.0.clone(),
                        values: Vec::new(),
                        thread_id: key.1,
                        thread_name: key.2.clone(),
                    });
                    self.sample_index.insert(key, self.samples.len() - 1);
                    self.samples.len() - 1
                }
            };
            let values = &mut self.samples[index].values;
            if values.len() < self.types.len() {
                values.resize(self.types.len(), 0);
            }
            for (&t, &v) in type_map.iter().zip(&s.value) {
                values[t] = values[t].saturating_add(v);
            }
        }
        self.files.push(name.to_string());
        Ok(())
    }

    fn intern(&mut self, frame: Frame) -> u32 {
        if let Some(&i) = self.frame_index.get(&frame) {
            return i;
        }
        let i = self.frames.len() as u32;
        self.frames.push(frame.clone());
        self.frame_index.insert(frame, i);
        i
    }

    /// Index of the sample type called `name`.
    pub fn type_index(&self, name: &str) -> Option<usize> {
        self.types.iter().position(|t| t.name == name)
    }

    /// Sum of type `t` over all samples.
    pub fn total(&self, t: usize) -> i64 {
        self.samples.iter().fold(0i64, |acc, s| acc.saturating_add(s.value(t)))
    }

    /// Keeps only the samples that match at least one filter (all of them when `filters` is
    /// empty).
    pub fn retain_threads(&mut self, filters: &[ThreadFilter]) {
        if filters.is_empty() {
            return;
        }
        self.samples.retain(|s| filters.iter().any(|f| f.matches(s)));
        self.sample_index.clear();
    }

    /// The threads seen in the samples, as `name (id)`, most frequent first, at most `max`.
    pub fn thread_list(&self, max: usize) -> Vec<String> {
        let mut seen: HashMap<(Option<String>, Option<i64>), usize> = HashMap::new();
        for s in &self.samples {
            *seen.entry((s.thread_name.clone(), s.thread_id)).or_default() += 1;
        }
        let mut seen: Vec<_> = seen.into_iter().collect();
        seen.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        seen.into_iter()
            .take(max)
            .map(|((name, id), _)| match (name, id) {
                (Some(n), Some(id)) => format!("{n} ({id})"),
                (Some(n), None) => n,
                (None, Some(id)) => format!("({id})"),
                (None, None) => "(no thread label)".to_string(),
            })
            .collect()
    }
}

fn unit_or_none(unit: &str) -> &str {
    if unit.is_empty() {
        "no unit"
    } else {
        unit
    }
}

/// A frame for a location without symbols: `libfoo.so+0x1234` (offset in the file) when the
/// mapping is known, the bare address otherwise.
fn unsymbolized_frame(address: u64, mapping: Option<&(u64, u64, &str)>) -> Frame {
    let function = match mapping {
        Some(&(start, offset, file)) if !file.is_empty() && address >= start => {
            let base = file.rsplit('/').next().unwrap_or(file);
            format!("{base}+{:#x}", address - start + offset)
        }
        _ => format!("{address:#x}"),
    };
    Frame { function, file: String::new(), line: 0 }
}
