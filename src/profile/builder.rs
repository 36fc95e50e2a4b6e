//! Deduplicating assembly of one pprof [`Profile`], plus gzip encoding and decoding.
//!
//! Every table (strings, mappings, functions, locations, samples) is deduplicated through a hash
//! map, so building a profile is linear in the number of calls. Ids handed out are the pprof ids
//! (1-based for mappings, functions and locations; string index 0 is always `""`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fast_map::FastMap;

use prost::Message;

use crate::profile::pprof::{Function, Label, Line, Location, Mapping, Profile, Sample, ValueType};

/// One label attached to a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelValue<'a> {
    Str {
        key: &'a str,
        value: &'a str,
    },
    Num {
        key: &'a str,
        value: i64,
        unit: Option<&'a str>,
    },
}

/// Interned label: (key, str, num, num_unit), the four fields of a pprof `Label`.
type LabelKey = (i64, i64, i64, i64);
/// (mapping id, address, (function id, line) pairs).
type LocationKey = (u64, u64, Box<[(u64, i64)]>);
/// (location ids, labels).
type SampleKey = (Box<[u64]>, Box<[LabelKey]>);

/// Builds one pprof profile, deduplicating as it goes.
pub struct ProfileBuilder {
    profile: Profile,
    strings: FastMap<String, i64>,
    /// (memory_start, filename index) → mapping id
    mappings: HashMap<(u64, i64), u64>,
    /// (name, system_name, filename, start_line), all interned → function id
    functions: HashMap<(i64, i64, i64, i64), u64>,
    /// (mapping id, address, lines) → location id
    locations: FastMap<LocationKey, u64>,
    /// (location ids, labels) → index in `profile.sample`
    samples: FastMap<SampleKey, usize>,
    n_values: usize,
}

impl ProfileBuilder {
    /// `sample_types`: (type, unit) pairs, e.g. `("cpu-samples", "count")`,
    /// `("cpu-time", "nanoseconds")`. Every sample carries one value per pair, in this order.
    pub fn new(sample_types: &[(&str, &str)], start: SystemTime, duration: Duration) -> Self {
        let mut b = ProfileBuilder {
            profile: Profile::default(),
            strings: FastMap::default(),
            mappings: HashMap::new(),
            functions: HashMap::new(),
            locations: FastMap::default(),
            samples: FastMap::default(),
            n_values: sample_types.len(),
        };
        b.intern("");
        for (ty, unit) in sample_types {
            let vt = ValueType {
                r#type: b.intern(ty),
                unit: b.intern(unit),
            };
            b.profile.sample_type.push(vt);
        }
        b.profile.time_nanos = match start.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        b.profile.duration_nanos = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        b
    }

    /// Sets `period_type` and `period` (e.g. `("cpu", "nanoseconds", 10_000_000)`).
    pub fn set_period(&mut self, type_: &str, unit: &str, period: i64) {
        let vt = ValueType {
            r#type: self.intern(type_),
            unit: self.intern(unit),
        };
        self.profile.period_type = Some(vt);
        self.profile.period = period;
    }

    /// Index of `s` in the string table, adding it if new. Index 0 is `""`.
    pub fn intern(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    /// Mapping id for the mapping starting at `start` backed by `filename`; the first call for a
    /// given (start, filename) decides the other fields. `symbolized` says whether locations in
    /// this mapping carry functions, files, lines and inline frames.
    pub fn mapping(
        &mut self,
        start: u64,
        limit: u64,
        file_offset: u64,
        filename: &str,
        build_id: &str,
        symbolized: bool,
    ) -> u64 {
        let filename = self.intern(filename);
        if let Some(&id) = self.mappings.get(&(start, filename)) {
            return id;
        }
        let build_id = self.intern(build_id);
        let id = self.profile.mapping.len() as u64 + 1;
        self.profile.mapping.push(Mapping {
            id,
            memory_start: start,
            memory_limit: limit,
            file_offset,
            filename,
            build_id,
            has_functions: symbolized,
            has_filenames: symbolized,
            has_line_numbers: symbolized,
            has_inline_frames: symbolized,
        });
        self.mappings.insert((start, filename), id);
        id
    }

    /// Function id, deduplicated by all four fields.
    pub fn function(
        &mut self,
        name: &str,
        system_name: &str,
        filename: &str,
        start_line: i64,
    ) -> u64 {
        let key = (
            self.intern(name),
            self.intern(system_name),
            self.intern(filename),
            start_line,
        );
        if let Some(&id) = self.functions.get(&key) {
            return id;
        }
        let id = self.profile.function.len() as u64 + 1;
        self.profile.function.push(Function {
            id,
            name: key.0,
            system_name: key.1,
            filename: key.2,
            start_line,
        });
        self.functions.insert(key, id);
        id
    }

    /// Location id, deduplicated by (mapping, address, lines). `lines` are
    /// (function id, line) pairs, innermost inlined function first, physical function last.
    /// `mapping_id` 0 means "no mapping".
    pub fn location(&mut self, mapping_id: u64, address: u64, lines: &[(u64, i64)]) -> u64 {
        let key: LocationKey = (mapping_id, address, lines.into());
        if let Some(&id) = self.locations.get(&key) {
            return id;
        }
        let id = self.profile.location.len() as u64 + 1;
        self.profile.location.push(Location {
            id,
            mapping_id,
            address,
            line: lines
                .iter()
                .map(|&(function_id, line)| Line {
                    function_id,
                    line,
                    column: 0,
                })
                .collect(),
            is_folded: false,
        });
        self.locations.insert(key, id);
        id
    }

    /// Adds a sample: `location_ids` leaf first, one value per sample type (missing values count
    /// as 0, extra ones are ignored). Samples with the same locations and labels (same order) are
    /// merged by adding their values.
    pub fn sample(&mut self, location_ids: &[u64], values: &[i64], labels: &[LabelValue]) {
        let labels: Box<[LabelKey]> = labels
            .iter()
            .map(|l| match *l {
                LabelValue::Str { key, value } => (self.intern(key), self.intern(value), 0, 0),
                LabelValue::Num { key, value, unit } => {
                    let unit = unit.map_or(0, |u| self.intern(u));
                    (self.intern(key), 0, value, unit)
                }
            })
            .collect();
        let key = (Box::<[u64]>::from(location_ids), labels);
        if let Some(&i) = self.samples.get(&key) {
            let s = &mut self.profile.sample[i];
            for (acc, v) in s.value.iter_mut().zip(values) {
                *acc = acc.saturating_add(*v);
            }
            return;
        }
        let mut value = vec![0i64; self.n_values];
        for (slot, v) in value.iter_mut().zip(values) {
            *slot = *v;
        }
        self.profile.sample.push(Sample {
            location_id: location_ids.to_vec(),
            value,
            label: key
                .1
                .iter()
                .map(|&(key, str, num, num_unit)| Label {
                    key,
                    str,
                    num,
                    num_unit,
                })
                .collect(),
        });
        self.samples.insert(key, self.profile.sample.len() - 1);
    }

    /// Adds a free-form comment to the profile.
    pub fn comment(&mut self, s: &str) {
        let i = self.intern(s);
        self.profile.comment.push(i);
    }

    /// Number of distinct samples so far.
    pub fn sample_count(&self) -> usize {
        self.profile.sample.len()
    }

    pub fn build(self) -> Profile {
        self.profile
    }
}

/// Below this many protobuf bytes a profile is stored in gzip uncompressed: compressing it
/// would save a few hundred bytes and cost a compressor's set-up (see gzip_stored.rs).
const STORE_BELOW: usize = 4096;

/// Protobuf-encodes and gzips a profile (the format the Agent and `go tool pprof` read).
pub fn encode_gzip(profile: &Profile) -> Vec<u8> {
    let raw = profile.encode_to_vec();
    if raw.len() < STORE_BELOW {
        return super::gzip_stored::encode(&raw);
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4 + 64),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    enc.write_all(&raw).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// Decodes a pprof profile, gzip-compressed (magic `1f 8b`) or plain protobuf.
pub fn decode(bytes: &[u8]) -> Result<Profile, String> {
    if bytes.is_empty() {
        return Err("not a pprof profile: input is empty".into());
    }
    let owned;
    let raw: &[u8] = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| format!("not a pprof profile: gzip data is corrupt ({e})"))?;
        owned = out;
        &owned
    } else {
        bytes
    };
    let profile = Profile::decode(raw).map_err(|e| {
        format!("not a pprof profile: neither gzip nor a valid pprof protobuf message ({e})")
    })?;
    if profile.string_table.first().map(String::as_str) != Some("") {
        return Err(
            "not a pprof profile: the string table must start with the empty string".into(),
        );
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> ProfileBuilder {
        ProfileBuilder::new(
            &[("cpu-samples", "count"), ("cpu-time", "nanoseconds")],
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            Duration::from_secs(60),
        )
    }

    fn s(p: &Profile, i: i64) -> &str {
        &p.string_table[i as usize]
    }

    #[test]
    fn string_table_starts_empty_and_dedups() {
        let mut b = builder();
        assert_eq!(b.intern(""), 0);
        let a = b.intern("abc");
        assert_eq!(b.intern("abc"), a);
        assert_ne!(b.intern("abd"), a);
        let p = b.build();
        assert_eq!(p.string_table[0], "");
        assert_eq!(
            p.string_table
                .iter()
                .filter(|x| x.as_str() == "abc")
                .count(),
            1
        );
        assert_eq!(s(&p, p.sample_type[0].r#type), "cpu-samples");
        assert_eq!(s(&p, p.sample_type[1].unit), "nanoseconds");
        assert_eq!(p.time_nanos, 1_700_000_000 * 1_000_000_000);
        assert_eq!(p.duration_nanos, 60 * 1_000_000_000);
    }

    #[test]
    fn dedup_tables() {
        let mut b = builder();
        let m1 = b.mapping(0x1000, 0x2000, 0, "/lib/a.so", "abcd", true);
        let m2 = b.mapping(0x1000, 0x2000, 0, "/lib/a.so", "abcd", true);
        let m3 = b.mapping(0x3000, 0x4000, 0, "/lib/a.so", "abcd", true);
        assert_eq!(m1, 1);
        assert_eq!(m1, m2);
        assert_ne!(m1, m3);

        let f1 = b.function("main", "main", "main.c", 3);
        let f2 = b.function("main", "main", "main.c", 3);
        let f3 = b.function("main", "main", "main.c", 4);
        assert_eq!(f1, 1);
        assert_eq!(f1, f2);
        assert_ne!(f1, f3);

        let l1 = b.location(m1, 0x1234, &[(f1, 10), (f3, 20)]);
        let l2 = b.location(m1, 0x1234, &[(f1, 10), (f3, 20)]);
        let l3 = b.location(m1, 0x1234, &[(f1, 10)]);
        let l4 = b.location(m3, 0x1234, &[(f1, 10), (f3, 20)]);
        assert_eq!(l1, 1);
        assert_eq!(l1, l2);
        assert_ne!(l1, l3);
        assert_ne!(l1, l4);

        let p = b.build();
        assert_eq!(p.mapping.len(), 2);
        assert_eq!(p.function.len(), 2);
        assert_eq!(p.location.len(), 3);
        for (i, l) in p.location.iter().enumerate() {
            assert_eq!(l.id, i as u64 + 1);
        }
        assert_eq!(p.location[0].line.len(), 2);
        assert_eq!(p.location[0].line[1].function_id, f3);
        assert_eq!(p.location[0].line[1].line, 20);
        assert_eq!(s(&p, p.mapping[0].build_id), "abcd");
        assert!(p.mapping[0].has_functions);
    }

    #[test]
    fn samples_merge() {
        let mut b = builder();
        let lbl = [
            LabelValue::Num {
                key: "thread id",
                value: 42,
                unit: None,
            },
            LabelValue::Str {
                key: "thread name",
                value: "main",
            },
        ];
        b.sample(&[1, 2, 3], &[1, 10], &lbl);
        b.sample(&[1, 2, 3], &[2, 20], &lbl);
        b.sample(&[1, 2], &[1, 5], &lbl);
        b.sample(&[1, 2, 3], &[1, 1], &lbl[..1]);
        b.sample(&[1, 2, 3], &[7], &[]); // short values are padded
        assert_eq!(b.sample_count(), 4);
        let p = b.build();
        assert_eq!(p.sample[0].value, vec![3, 30]);
        assert_eq!(p.sample[1].value, vec![1, 5]);
        assert_eq!(p.sample[2].value, vec![1, 1]);
        assert_eq!(p.sample[3].value, vec![7, 0]);
        assert_eq!(p.sample[3].label.len(), 0);
        let l = &p.sample[0].label;
        assert_eq!(s(&p, l[0].key), "thread id");
        assert_eq!(l[0].num, 42);
        assert_eq!(s(&p, l[1].key), "thread name");
        assert_eq!(s(&p, l[1].str), "main");
    }

    #[test]
    fn roundtrip_gzip_and_plain() {
        let mut b = builder();
        b.set_period("cpu", "nanoseconds", 10_000_000);
        b.comment("hello");
        let m = b.mapping(0x1000, 0x2000, 0x10, "/bin/x", "", false);
        let f = b.function("f", "_Zf", "f.rs", 1);
        let l = b.location(m, 0x1100, &[(f, 12)]);
        b.sample(
            &[l],
            &[1, 100],
            &[LabelValue::Num {
                key: "n",
                value: 5,
                unit: Some("bytes"),
            }],
        );
        let p = b.build();

        let gz = encode_gzip(&p);
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert_eq!(decode(&gz).unwrap(), p);
        assert_eq!(decode(&p.encode_to_vec()).unwrap(), p);
        assert_eq!(s(&p, p.comment[0]), "hello");
        assert_eq!(p.period, 10_000_000);
        assert_eq!(s(&p, p.period_type.as_ref().unwrap().r#type), "cpu");
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(decode(&[]).unwrap_err().contains("empty"));
        let e = decode(b"this is not a profile at all").unwrap_err();
        assert!(e.contains("not a pprof profile"), "{e}");
        let e = decode(&[0x1f, 0x8b, 1, 2, 3]).unwrap_err();
        assert!(e.contains("gzip"), "{e}");
    }

    #[test]
    fn building_is_linear() {
        let mut b = builder();
        let m = b.mapping(0x1000, 0x100000, 0, "/bin/x", "", true);
        let t = std::time::Instant::now();
        for i in 0..200_000u64 {
            let f = b.function(&format!("f{}", i % 5000), "", "x.rs", 0);
            let l = b.location(m, 0x1000 + (i % 5000), &[(f, (i % 7) as i64)]);
            b.sample(
                &[l, 1, 2],
                &[1, 10],
                &[LabelValue::Num {
                    key: "thread id",
                    value: (i % 13) as i64,
                    unit: None,
                }],
            );
        }
        let p = b.build();
        assert!(p.function.len() == 5000);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
