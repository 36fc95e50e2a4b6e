//! Cold side: code object → (qualified name, file, line of an instruction), with a cache.
//!
//! Code objects are read through the fault-proof reader when the exporter drains samples (every
//! 100 ms), while the functions they belong to are almost always still alive. Each one is
//! checked (`ob_type == &PyCode_Type`, strings are `str`, tables are `bytes`) before it is
//! trusted. A cached entry is re-checked against the object's identity (name, file and line
//! table pointers, first line) in each drain of the ring that uses it, and within a drain once
//! it is older than `RECHECK`, so an address reused by another code object is noticed; an entry
//! whose object has just become unreadable is still used for a short while (`STILL_TRUSTED`),
//! for the samples drained after the interpreter has finalized. Finalization itself waits for
//! one last drain (`exit_drain.rs`), so the code a program ran just before it ends is named
//! too. A code object freed within one drain interval of its samples (a module's top-level
//! code, run once at import) is named as long as its memory was not reused; otherwise the check
//! fails and its frames are dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fast_map::FastMap;

use super::discover::Target;
use super::layout::{LineTable, ABSENT};
use super::linetable;
use super::memory::{self, u32_at, u64_at};

const RECHECK: Duration = Duration::from_millis(50);
const STILL_TRUSTED: Duration = Duration::from_secs(2);
const MAX_CODES: usize = 1 << 16;
const MAX_NAME_CHARS: u64 = 4096;
const MAX_TABLE_BYTES: u64 = 1 << 20;
const HEADER_BUF: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    Frame {
        name: Arc<str>,
        file: Arc<str>,
        line: u32,
    },
    /// A frame that has not started its first traceable instruction (3.11+); Python's own
    /// tracebacks skip these.
    Incomplete,
    /// Not a code object (freed, or a layout mismatch).
    Invalid,
}

struct CodeInfo {
    ident: [u64; 5],
    checked: Instant,
    /// The drain it was last checked in (see `CodeCache::next_drain`).
    checked_in: u64,
    name: Arc<str>,
    file: Arc<str>,
    first_line: i32,
    table: Vec<u8>,
    first_traceable: i64,
    lines: FastMap<i64, u32>,
}

#[derive(Default)]
pub struct CodeCache {
    codes: FastMap<u64, CodeInfo>,
    drain: u64,
    clock: RecentClock,
}

/// The time for `RECHECK`'s test, read from the clock once every `READS_PER_LOOK` lookups:
/// every frame of every drained sample is looked up, and a clock read for each was 14 % of
/// the exporter thread's CPU in a gunicorn worker (perf). 64 lookups take well under a
/// millisecond, against the 50 ms of `RECHECK`.
#[derive(Default)]
struct RecentClock {
    now: Option<Instant>,
    uses: u32,
}

impl RecentClock {
    const READS_PER_LOOK: u32 = 64;

    fn now(&mut self) -> Instant {
        self.uses += 1;
        match self.now {
            Some(now) if self.uses < Self::READS_PER_LOOK => now,
            _ => {
                self.uses = 0;
                *self.now.insert(Instant::now())
            }
        }
    }
}

impl CodeCache {
    pub fn resolve(&mut self, t: &Target, code: u64, offset: i64, generator: bool) -> Resolved {
        let drain = self.drain;
        let now = self.clock.now();
        let fresh = self
            .codes
            .get(&code)
            .is_some_and(|c| c.checked_in == drain && now.saturating_duration_since(c.checked) < RECHECK);
        if !fresh {
            let Some(header) = read_header(t, code) else {
                return self.gone(t, code, offset, generator);
            };
            let ident = identity(t, &header);
            match self.codes.get_mut(&code) {
                Some(c) if c.ident == ident => {
                    c.checked = Instant::now();
                    c.checked_in = drain;
                }
                _ => {
                    let Some(info) = decode(t, &header, ident, drain) else {
                        return self.gone(t, code, offset, generator);
                    };
                    if self.codes.len() >= MAX_CODES {
                        self.codes.clear();
                    }
                    self.codes.insert(code, info);
                }
            }
        }
        self.describe(t, code, offset, generator)
    }

    /// The code object is no longer readable. Samples are resolved up to 100 ms after they
    /// were taken, and the last ones after the interpreter has finalized (freeing every code
    /// object): an entry confirmed a moment ago still describes the code those samples saw.
    fn gone(&mut self, t: &Target, code: u64, offset: i64, generator: bool) -> Resolved {
        match self.codes.get(&code) {
            Some(c) if c.checked.elapsed() < STILL_TRUSTED => {
                self.describe(t, code, offset, generator)
            }
            _ => {
                self.codes.remove(&code);
                Resolved::Invalid
            }
        }
    }

    fn describe(&mut self, t: &Target, code: u64, offset: i64, generator: bool) -> Resolved {
        let info = self.codes.get_mut(&code).expect("just checked or inserted");
        if t.layout.code_firsttraceable != ABSENT && !generator && offset < info.first_traceable {
            return Resolved::Incomplete;
        }
        let line = *info.lines.entry(offset).or_insert_with(|| {
            let line = match t.layout.line_table() {
                LineTable::Lnotab => linetable::lnotab_line(&info.table, info.first_line, offset),
                LineTable::Linetable310 => {
                    linetable::linetable310_line(&info.table, info.first_line, offset)
                }
                LineTable::Locations => {
                    linetable::locations_line(&info.table, info.first_line, offset)
                }
            };
            // An instruction without a line (rare: generated code) is shown at the function's line.
            line.unwrap_or(info.first_line).max(0) as u32
        });
        Resolved::Frame {
            name: info.name.clone(),
            file: info.file.clone(),
            line,
        }
    }

    pub fn clear(&mut self) {
        self.codes.clear();
    }

    /// A new drain of the ring begins. An entry is trusted without a new look only within the
    /// drain that checked it: a code object freed after one drain and another made at its
    /// address before the next (a module's code compiled where start-up code was) would
    /// otherwise lend its name to the new one's frames for up to `RECHECK`.
    pub fn next_drain(&mut self) {
        self.drain += 1;
        self.clock = RecentClock::default();
    }
}

/// The code object's fixed part, if `code` is a code object.
fn read_header(t: &Target, code: u64) -> Option<[u8; HEADER_BUF]> {
    let l = t.layout;
    let mut buf = [0u8; HEADER_BUF];
    let size = (l.code_size as usize).min(HEADER_BUF);
    if !memory::read(code, &mut buf[..size]) || u64_at(&buf, l.object_type) != t.code_type {
        return None;
    }
    Some(buf)
}

fn identity(t: &Target, header: &[u8]) -> [u64; 5] {
    let l = t.layout;
    let field = |off: u32| {
        if off == ABSENT {
            0
        } else {
            u64_at(header, off)
        }
    };
    [
        field(l.code_name),
        field(l.code_qualname),
        field(l.code_filename),
        field(l.code_linetable),
        u32_at(header, l.code_firstlineno) as u64,
    ]
}

fn decode(t: &Target, header: &[u8], ident: [u64; 5], drain: u64) -> Option<CodeInfo> {
    let l = t.layout;
    let name_ptr = if l.code_qualname != ABSENT {
        ident[1]
    } else {
        ident[0]
    };
    let name = read_str(t, name_ptr)?;
    let file = read_str(t, ident[2])?;
    let table = read_bytes(t, ident[3])?;
    let first_line = ident[4] as u32 as i32;
    let first_traceable = if l.code_firsttraceable != ABSENT {
        u32_at(header, l.code_firsttraceable) as i32 as i64 * l.lasti_unit as i64
    } else {
        i64::MIN
    };
    Some(CodeInfo {
        ident,
        checked: Instant::now(),
        checked_in: drain,
        name: name.into(),
        file: file.into(),
        first_line,
        table,
        first_traceable,
        lines: FastMap::default(),
    })
}

/// A compact `str` object's text.
pub fn read_str(t: &Target, addr: u64) -> Option<String> {
    let l = t.layout;
    let mut head = [0u8; 128];
    let size = (l.str_compact_size as usize).min(head.len());
    if !memory::read(addr, &mut head[..size]) || u64_at(&head, l.object_type) != t.unicode_type {
        return None;
    }
    let length = u64_at(&head, l.str_length);
    let state = u32_at(&head, l.str_state);
    let kind = (state & l.str_kind_mask) >> l.str_kind_mask.trailing_zeros();
    if state & l.str_compact_mask == 0 || length > MAX_NAME_CHARS || !matches!(kind, 1 | 2 | 4) {
        return None;
    }
    let ascii = state & l.str_ascii_mask != 0;
    let data = addr
        + if ascii {
            l.str_ascii_size
        } else {
            l.str_compact_size
        } as u64;
    let mut bytes = vec![0u8; (length * kind as u64) as usize];
    if !memory::read(data, &mut bytes) {
        return None;
    }
    Some(match kind {
        1 => bytes.iter().map(|&b| b as char).collect(),
        2 => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_ne_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => bytes
            .chunks_exact(4)
            .map(|c| {
                char::from_u32(u32::from_ne_bytes(c.try_into().unwrap())).unwrap_or('\u{fffd}')
            })
            .collect(),
    })
}

/// A `bytes` object's contents.
fn read_bytes(t: &Target, addr: u64) -> Option<Vec<u8>> {
    let l = t.layout;
    let mut head = [0u8; 64];
    let size = (l.bytes_size as usize).min(head.len());
    if !memory::read(addr, &mut head[..size]) || u64_at(&head, l.object_type) != t.bytes_type {
        return None;
    }
    let len = u64_at(&head, l.bytes_len);
    if len > MAX_TABLE_BYTES {
        return None;
    }
    let mut data = vec![0u8; len as usize];
    memory::read(addr + l.bytes_data as u64, &mut data).then_some(data)
}
