//! 3.13+: the layout as the running interpreter describes it. CPython keeps a
//! `_Py_DebugOffsets` at the start of `_PyRuntime` (cookie `xdebugpy`, version, then the
//! offsets of the fields out-of-process debuggers read); most of what the frame reader needs
//! is there. Cold side, once, when the interpreter is found.
//!
//! The struct itself changes between minor versions (3.14 and 3.15 inserted members in the
//! middle), so it is read at the member positions the generated table gives for that version
//! (`DebugCheck::at`), and each value must equal what the version's headers say
//! (`DebugCheck::expect`): the table is the cross-check, and a disagreement disables Python
//! frames with one warning.
//!
//! A later minor version has no table yet. Its `_Py_DebugOffsets` is then read at the
//! positions of the newest version that has one, and accepted only when what it reads holds
//! together: the version in the struct is the interpreter's, the build is not free-threaded,
//! every offset lies inside the size given for its struct, the ABI-fixed members
//! (`PyObject.ob_type`, `PyVarObject.ob_size`, …) are where the ABI puts them, and the
//! flexible arrays (`localsplus`, `co_code_adaptive`) end their structs. What the struct
//! does not describe (the frame owner values, the `_PyStackRef` tag bits, the `str` state
//! bits) is taken from that newest version; `_co_firsttraceable` is not used. The running
//! interpreter then confirms the layout (`discover::check_live`) before its frames are kept.

use std::collections::HashMap;

use super::layout::{DebugCheck, Layout, ABSENT};
use super::memory;

/// The values read from the running interpreter's `_Py_DebugOffsets`, by member name.
pub struct Described {
    values: HashMap<&'static str, u64>,
    checks: &'static [DebugCheck],
}

/// Reads the `_Py_DebugOffsets` of the interpreter whose `_PyRuntime` is at `runtime`, at the
/// member positions of `positions` (the version's own table, or the newest one).
pub fn read(runtime: u64, version: (u32, u32, u32), positions: &Layout) -> Result<Described, String> {
    let base = runtime + positions.runtime_debug_offsets as u64;
    let mut cookie = [0u8; 8];
    if !memory::read(base, &mut cookie) || &cookie != b"xdebugpy" {
        return Err("_PyRuntime does not start with _Py_DebugOffsets".into());
    }
    let described = memory::read_u64(base + positions.debug_version_at as u64).unwrap_or(0);
    let (major, minor, _) = version;
    if (described >> 24) as u32 != major || ((described >> 16) & 0xff) as u32 != minor {
        return Err(format!("_Py_DebugOffsets describes version {described:#x}"));
    }
    if memory::read_u64(base + positions.debug_free_threaded_at as u64) != Some(0) {
        return Err("this is a free-threaded build (not supported)".into());
    }
    let mut values = HashMap::new();
    for check in positions.debug_checks {
        let Some(value) = memory::read_u64(base + check.at as u64) else {
            return Err(format!("_Py_DebugOffsets.{} is not readable", check.what));
        };
        values.insert(check.what, value);
    }
    Ok(Described {
        values,
        checks: positions.debug_checks,
    })
}

impl Described {
    fn get(&self, what: &str) -> Option<u64> {
        self.values.get(what).copied()
    }

    /// The table's cross-check: every offset read equals what the version's headers say.
    /// Struct sizes (`group.size`) are not compared: they depend on build flags the headers
    /// do not carry (Debian's 3.15 is built with the experimental JIT, whose `-D_Py_TIER2`
    /// adds a member at the end of `_PyThreadStateImpl`, embedded at the end of the main
    /// `PyInterpreterState`: both it and `_PyRuntimeState` are 8 bytes larger than the headers
    /// alone say), and the reader uses them only as bounds (`holds_together`).
    pub fn agrees_with_headers(&self) -> Result<(), String> {
        for check in self.checks.iter().filter(|c| !c.what.ends_with(".size")) {
            let got = self.get(check.what);
            if got != Some(check.expect as u64) {
                return Err(format!(
                    "_Py_DebugOffsets.{} is {}, the headers say {}",
                    check.what,
                    got.map_or("unreadable".to_string(), |v| v.to_string()),
                    check.expect
                ));
            }
        }
        Ok(())
    }

    /// For a version without a table: what was read must hold together (see the module doc).
    pub fn holds_together(&self) -> Result<(), String> {
        let value = |what: &str| self.get(what).ok_or_else(|| format!("no {what}"));
        for (what, &v) in &self.values {
            if v > 1 << 24 {
                return Err(format!("{what} is {v}"));
            }
            let (group, member) = what.split_once('.').unwrap_or((what, ""));
            if member == "size" || member.ends_with("_size") {
                if v == 0 {
                    return Err(format!("{what} is 0"));
                }
                continue;
            }
            if let Some(size) = self.get(&format!("{group}.size")) {
                if v >= size {
                    return Err(format!("{what} is {v}, beyond {group}.size {size}"));
                }
            }
        }
        // Fixed by the ABI of every non-free-threaded build.
        for (what, expect) in [
            ("pyobject.size", 16),
            ("pyobject.ob_type", 8),
            ("bytes_object.ob_size", 16),
            ("unicode_object.length", 16),
            ("thread_state.prev", 0),
            ("thread_state.next", 8),
        ] {
            let v = value(what)?;
            if v != expect {
                return Err(format!("{what} is {v}, not {expect}"));
            }
        }
        // The flexible arrays end their structs (one 8-byte element, or a byte plus padding).
        let (frame, locals) = (value("interpreter_frame.size")?, value("interpreter_frame.localsplus")?);
        if locals + 8 != frame {
            return Err(format!("interpreter_frame.localsplus {locals} does not end a frame of {frame} bytes"));
        }
        let (code, adaptive) = (value("code_object.size")?, value("code_object.co_code_adaptive")?);
        if adaptive >= code || code - adaptive > 8 {
            return Err(format!("code_object.co_code_adaptive {adaptive} does not end a code object of {code} bytes"));
        }
        Ok(())
    }

    /// `template` with every field the struct describes taken from it.
    pub fn layout(&self, template: &Layout, version: (u32, u32, u32)) -> Layout {
        let mut l = template.clone();
        l.major = version.0;
        l.minor = version.1;
        for (&what, &value) in &self.values {
            let v = value as u32;
            match what {
                "runtime_state.interpreters_head" => l.runtime_interpreters_head = v,
                "interpreter_state.next" => l.interp_next = v,
                "interpreter_state.threads_head" => l.interp_threads_head = v,
                "thread_state.prev" => l.tstate_prev = v,
                "thread_state.next" => l.tstate_next = v,
                "thread_state.interp" => l.tstate_interp = v,
                "thread_state.current_frame" => l.tstate_frame = v,
                "thread_state.thread_id" => l.tstate_thread_id = v,
                "thread_state.datastack_chunk" => l.tstate_datastack_chunk = v,
                "interpreter_frame.previous" => l.frame_previous = v,
                "interpreter_frame.executable" => l.frame_code = v,
                "interpreter_frame.instr_ptr" => l.frame_instr_ptr = v,
                // What the reader reads of a frame: everything before its locals.
                "interpreter_frame.localsplus" => l.frame_size = v,
                "interpreter_frame.owner" => l.frame_owner = v,
                "code_object.size" => l.code_size = v,
                "code_object.filename" => l.code_filename = v,
                "code_object.name" => l.code_name = v,
                "code_object.qualname" => l.code_qualname = v,
                "code_object.linetable" => l.code_linetable = v,
                "code_object.firstlineno" => l.code_firstlineno = v,
                "code_object.co_code_adaptive" => l.code_adaptive = v,
                "pyobject.ob_type" => l.object_type = v,
                "bytes_object.ob_size" => l.bytes_len = v,
                "bytes_object.ob_sval" => {
                    l.bytes_data = v;
                    l.bytes_size = v;
                }
                "unicode_object.length" => l.str_length = v,
                "unicode_object.state" => l.str_state = v,
                "unicode_object.asciiobject_size" => l.str_ascii_size = v,
                "unicode_object.compactunicodeobject_size" => l.str_compact_size = v,
                _ => {}
            }
        }
        if template.minor != version.1 {
            // Not described by _Py_DebugOffsets, and not known for this version.
            l.code_firsttraceable = ABSENT;
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::discover::generated_layout;

    /// A `_Py_DebugOffsets` as `positions`' headers lay it out, for version 3.`minor`.
    fn image(positions: &Layout, minor: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; 4096];
        bytes[..8].copy_from_slice(b"xdebugpy");
        let version: u64 = (3 << 24) | ((minor as u64) << 16) | 0xf0;
        let at = positions.debug_version_at as usize;
        bytes[at..at + 8].copy_from_slice(&version.to_ne_bytes());
        for c in positions.debug_checks {
            bytes[c.at as usize..c.at as usize + 8].copy_from_slice(&(c.expect as u64).to_ne_bytes());
        }
        bytes
    }

    #[test]
    fn every_table_agrees_with_its_own_debug_offsets_and_rebuilds_itself() {
        memory::init().unwrap();
        for minor in 13..=15 {
            let table = generated_layout(3, minor).unwrap();
            let bytes = image(table, minor);
            let d = read(bytes.as_ptr() as u64, (3, minor, 0), table).unwrap();
            d.agrees_with_headers().unwrap();
            d.holds_together().unwrap_or_else(|e| panic!("3.{minor}: {e}"));
            let built = d.layout(table, (3, minor, 0));
            assert_eq!(format!("{built:?}"), format!("{table:?}"), "3.{minor}");
        }
    }

    #[test]
    fn a_later_version_with_the_newest_structure_is_read_from_its_debug_offsets() {
        memory::init().unwrap();
        let newest = crate::python::discover::newest_layout();
        // A 3.(newest+1) whose thread state moved its fields by 16 bytes.
        let mut bytes = image(newest, newest.minor + 1);
        for c in newest.debug_checks.iter().filter(|c| ["thread_state.thread_id", "thread_state.datastack_chunk"].contains(&c.what)) {
            bytes[c.at as usize..c.at as usize + 8].copy_from_slice(&(c.expect as u64 + 16).to_ne_bytes());
        }
        let version = (3, newest.minor + 1, 0);
        let d = read(bytes.as_ptr() as u64, version, newest).unwrap();
        assert!(d.agrees_with_headers().is_err());
        d.holds_together().unwrap();
        let l = d.layout(newest, version);
        assert_eq!((l.minor, l.tstate_thread_id, l.tstate_datastack_chunk), (newest.minor + 1, newest.tstate_thread_id + 16, newest.tstate_datastack_chunk + 16));
        assert_eq!(l.code_firsttraceable, ABSENT);
    }

    #[test]
    fn a_struct_read_at_the_wrong_positions_is_refused() {
        memory::init().unwrap();
        // 3.15's struct (members inserted in the thread state) read at 3.14's positions, and
        // 3.14's read at 3.13's.
        for (data, positions) in [(15, 14), (14, 13)] {
            let bytes = image(generated_layout(3, data).unwrap(), data);
            let positions = generated_layout(3, positions).unwrap();
            let d = read(bytes.as_ptr() as u64, (3, data, 0), positions).unwrap();
            assert!(d.holds_together().is_err(), "3.{data} read as {}", positions.minor);
        }
        // The wrong version, and a free-threaded build.
        let table = generated_layout(3, 14).unwrap();
        let mut bytes = image(table, 14);
        assert!(read(bytes.as_ptr() as u64, (3, 13, 0), table).is_err());
        bytes[table.debug_free_threaded_at as usize] = 1;
        assert!(read(bytes.as_ptr() as u64, (3, 14, 0), table).is_err());
    }
}
