//! Finding the interpreter in this process (cold side): the CPython build's version, the
//! address of `_PyRuntime`, its layout (generated tables; `_Py_DebugOffsets` on 3.13+), the
//! type objects used to validate what is read, and the code of `_PyEval_EvalFrameDefault`
//! used for merging (`eval_code.rs`).
//!
//! Symbols are looked up with `dlsym(RTLD_DEFAULT)` first: that finds them in a `python`
//! executable that exports its symbols (pyenv's, Debian's stripped `/usr/bin/python3`: the
//! dynamic symbol table survives stripping) and in a `libpython3.X.so` the program links.
//! A `libpython` loaded later with `dlopen(RTLD_LOCAL)` is not in the global scope: it is
//! found by name among the loaded objects and searched through its own handle.

use std::ffi::{CStr, CString};
use std::ops::Range;

use super::debug_offsets;
use super::eval_code::EvalCode;
use super::layout::{Layout, ABSENT};
use super::layout_table::LAYOUTS;
use super::memory;

/// What the reader needs to know about the interpreter it reads.
#[derive(Debug)]
pub struct Target {
    pub layout: &'static Layout,
    /// (major, minor, micro)
    pub version: (u32, u32, u32),
    /// Address of `_PyRuntime`.
    pub runtime: u64,
    pub code_type: u64,
    pub unicode_type: u64,
    pub bytes_type: u64,
    /// Address of `_Py_NoneStruct` (0 if not exported).
    pub none: u64,
    /// The code of `_PyEval_EvalFrameDefault`: its symbol's range and the parts the compiler
    /// moved out of it (empty when its size is unknown).
    pub eval: EvalCode,
    /// The object the interpreter lives in (the executable or a libpython).
    pub origin: String,
    /// The C API functions used under the GIL (`gil_tasks.rs`); None when one is missing.
    pub api: Option<super::c_api::Api>,
    pub found_at: std::time::Instant,
}

pub enum Found {
    /// No interpreter in this process (yet).
    Nothing,
    /// An interpreter this build cannot read; the message says why.
    Unsupported(String),
    Target(Target),
}

/// `RTLD_DL_SYMENT` from glibc's dlfcn.h: dladdr1 returns the `ElfW(Sym)` of the symbol.
const RTLD_DL_SYMENT: libc::c_int = 1;

struct Scope {
    handle: *mut libc::c_void,
}

impl Scope {
    fn symbol(&self, name: &CStr) -> u64 {
        // SAFETY: a valid handle (RTLD_DEFAULT or from dlopen) and a NUL-terminated name.
        unsafe { libc::dlsym(self.handle, name.as_ptr()) as u64 }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.handle.is_null() && self.handle != libc::RTLD_DEFAULT {
            // SAFETY: drops the reference our RTLD_NOLOAD dlopen took.
            unsafe { libc::dlclose(self.handle) };
        }
    }
}

/// Looks for the interpreter. Cold side (calls dlsym, dlopen with RTLD_NOLOAD, dladdr).
pub fn find() -> Found {
    let default = Scope {
        handle: libc::RTLD_DEFAULT,
    };
    if default.symbol(c"_PyRuntime") != 0 {
        return inspect(&default);
    }
    for path in libpython_paths() {
        let Ok(cpath) = CString::new(path) else {
            continue;
        };
        // SAFETY: RTLD_NOLOAD never loads anything: it only returns a handle to an object
        // already loaded, or null.
        let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
        if handle.is_null() {
            continue;
        }
        let scope = Scope { handle };
        if scope.symbol(c"_PyRuntime") != 0 {
            return inspect(&scope);
        }
    }
    Found::Nothing
}

/// Paths of loaded objects named `libpython3*`.
fn libpython_paths() -> Vec<String> {
    unsafe extern "C" fn collect(
        info: *mut libc::dl_phdr_info,
        _: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: valid for the duration of the callback; data is our Vec.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Vec<String>)) };
        if !info.dlpi_name.is_null() {
            // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
            let name = unsafe { CStr::from_ptr(info.dlpi_name) }.to_string_lossy();
            let base = name.rsplit('/').next().unwrap_or("");
            if base.starts_with("libpython3") {
                out.push(name.into_owned());
            }
        }
        0
    }
    let mut paths = Vec::new();
    // SAFETY: the callback writes only through the pointer we pass.
    unsafe { libc::dl_iterate_phdr(Some(collect), (&mut paths as *mut Vec<String>).cast()) };
    paths
}

fn inspect(scope: &Scope) -> Found {
    let runtime = scope.symbol(c"_PyRuntime");
    let origin = object_path(runtime).unwrap_or_else(|| "?".into());
    let Some(version) = version(scope) else {
        return Found::Unsupported(format!(
            "cannot tell the version of the Python interpreter in {origin}"
        ));
    };
    let (major, minor, micro) = version;
    // A later minor version than the newest table is tried with its _Py_DebugOffsets, read
    // with the newest table's structure (`settle_layout`).
    let newest = newest_layout();
    let Some(layout) = generated_layout(major, minor).or_else(|| {
        (major == newest.major && minor > newest.minor && newest.runtime_debug_offsets != ABSENT).then_some(newest)
    }) else {
        return Found::Unsupported(format!(
            "CPython {major}.{minor}.{micro} ({origin}) is not supported; Python frames are read for 3.8 to 3.{}",
            newest.minor
        ));
    };
    let code_type = scope.symbol(c"PyCode_Type");
    let unicode_type = scope.symbol(c"PyUnicode_Type");
    let bytes_type = scope.symbol(c"PyBytes_Type");
    if code_type == 0 || unicode_type == 0 || bytes_type == 0 {
        return Found::Unsupported(format!("CPython {major}.{minor}.{micro} ({origin}) does not export PyCode_Type/PyUnicode_Type/PyBytes_Type"));
    }
    let eval = EvalCode::find(function_range(scope.symbol(c"_PyEval_EvalFrameDefault")));
    Found::Target(Target {
        layout,
        version,
        runtime,
        code_type,
        unicode_type,
        bytes_type,
        none: scope.symbol(c"_Py_NoneStruct"),
        eval,
        origin,
        api: super::c_api::Api::resolve(&|name| scope.symbol(name)),
        found_at: std::time::Instant::now(),
    })
}

/// `Py_Version` (3.11+, the PY_VERSION_HEX constant) or the text of `Py_GetVersion()`.
fn version(scope: &Scope) -> Option<(u32, u32, u32)> {
    let hex = scope.symbol(c"Py_Version");
    if hex != 0 {
        // SAFETY: Py_Version is a `const unsigned long` in a loaded object.
        let v = unsafe { std::ptr::read_volatile(hex as *const u64) };
        return Some((
            (v >> 24) as u32 & 0xff,
            (v >> 16) as u32 & 0xff,
            (v >> 8) as u32 & 0xff,
        ));
    }
    let get = scope.symbol(c"Py_GetVersion");
    if get == 0 {
        return None;
    }
    // SAFETY: `const char *Py_GetVersion(void)` formats constants into a static buffer; it
    // needs no initialised interpreter and takes no lock.
    let text = unsafe {
        let f: extern "C" fn() -> *const libc::c_char = std::mem::transmute(get as usize);
        let p = f();
        if p.is_null() {
            return None;
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    parse_version(&text)
}

/// "3.9.18 (main, …)" → (3, 9, 18).
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let head = text.split_whitespace().next()?;
    let mut parts = head.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let micro: String = parts
        .next()
        .unwrap_or("0")
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor, micro.parse().unwrap_or(0)))
}

fn object_path(addr: u64) -> Option<String> {
    // SAFETY: dladdr only reads loader data; info is a valid out-pointer.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(addr as *const libc::c_void, &mut info) } == 0
        || info.dli_fname.is_null()
    {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned();
    Some(if name.is_empty() {
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or(name)
    } else {
        name
    })
}

/// [start, start + st_size) of the function at `addr`, from its dynamic symbol.
fn function_range(addr: u64) -> Range<u64> {
    if addr == 0 {
        return 0..0;
    }
    // SAFETY: dladdr1 fills info and points `sym` at the ElfW(Sym) in the object's symbol table.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut sym: *mut libc::c_void = std::ptr::null_mut();
    let ok = unsafe {
        libc::dladdr1(
            addr as *const libc::c_void,
            &mut info,
            &mut sym,
            RTLD_DL_SYMENT,
        )
    };
    if ok == 0 || sym.is_null() {
        return 0..0;
    }
    // SAFETY: with RTLD_DL_SYMENT, `sym` points at an Elf64_Sym owned by the loader.
    let size = unsafe { (*(sym as *const libc::Elf64_Sym)).st_size };
    addr..addr + size
}

/// 3.13+: the layout is what the running interpreter's `_Py_DebugOffsets` says (see
/// `debug_offsets.rs`): with a table for this version, every member read must agree with it;
/// without one (a later minor version), the struct is read at the newest table's positions,
/// must hold together, and the layout built from it replaces the newest table's. Returns how
/// the layout was obtained, for the log. Cold side, after `memory::init`.
pub fn settle_layout(t: &mut Target) -> Result<String, String> {
    if t.layout.runtime_debug_offsets == ABSENT {
        return Ok("the generated table".into());
    }
    let described = debug_offsets::read(t.runtime, t.version, t.layout)?;
    if t.layout.minor == t.version.1 && t.layout.major == t.version.0 {
        described.agrees_with_headers()?;
        return Ok("its _Py_DebugOffsets, which agrees with the generated table".into());
    }
    let newest = t.layout.minor;
    described.holds_together().map_err(|why| {
        format!(
            "no table for this version, and its _Py_DebugOffsets does not have 3.{newest}'s structure ({why}); Python frames are read for 3.8 to 3.{newest}"
        )
    })?;
    t.layout = Box::leak(Box::new(described.layout(t.layout, t.version)));
    Ok(format!("its _Py_DebugOffsets alone (no table for this version; struct read as 3.{newest}'s)"))
}

/// What the live interpreter says about the layout.
pub enum Live {
    /// Not initialised yet, or no thread runs Python code at the moment.
    NotYet,
    /// A thread state points back at its interpreter and a running frame holds a code object.
    Confirmed,
    Mismatch(String),
}

/// Checks the layout against the running interpreter (cold side, any thread).
pub fn check_live(t: &Target) -> Live {
    let l = t.layout;
    let Some(interp) = memory::read_u64(t.runtime + l.runtime_interpreters_head as u64) else {
        return Live::Mismatch("_PyRuntime is not readable".into());
    };
    if interp == 0 {
        return Live::NotYet;
    }
    let Some([mut tstate]) = memory::read_fields(interp, [l.interp_threads_head]) else {
        return Live::Mismatch("the interpreter state is not readable".into());
    };
    let frame_field = if l.tstate_frame != ABSENT {
        l.tstate_frame
    } else {
        l.tstate_cframe
    };
    for _ in 0..256 {
        if tstate == 0 {
            break;
        }
        let Some([next, owner, tid, field]) = memory::read_fields(
            tstate,
            [
                l.tstate_next,
                l.tstate_interp,
                l.tstate_thread_id,
                frame_field,
            ],
        ) else {
            return Live::Mismatch("a thread state is not readable".into());
        };
        if owner != interp || tid == 0 {
            return Live::Mismatch(format!("thread state {tstate:#x} has interp {owner:#x} (expected {interp:#x}) and thread id {tid:#x}"));
        }
        let mut frame = if l.tstate_cframe != ABSENT {
            memory::read_u64(field + l.cframe_current_frame as u64).unwrap_or(0)
        } else {
            field
        };
        // The first frame that is not a C-stack shim must run a code object.
        for _ in 0..16 {
            if frame == 0 {
                break;
            }
            let owner_byte = if l.frame_owner != ABSENT {
                let mut b = [0u8; 1];
                memory::read(frame + l.frame_owner as u64, &mut b);
                b[0] as u32
            } else {
                0
            };
            let Some([executable, previous]) =
                memory::read_fields(frame, [l.frame_code, l.frame_previous])
            else {
                break;
            };
            let code = executable & !(l.frame_code_tag_bits as u64);
            if owner_byte < l.entry_frame_owner {
                let ty = memory::read_u64(code + l.object_type as u64);
                return if ty == Some(t.code_type) {
                    Live::Confirmed
                } else {
                    Live::Mismatch(format!(
                        "the running frame's code {code:#x} has type {ty:x?}, not PyCode_Type"
                    ))
                };
            }
            frame = previous;
        }
        if next == tstate {
            break;
        }
        tstate = next;
    }
    Live::NotYet
}

/// The layout generated from CPython `major.minor`'s headers, if this build has it.
pub fn generated_layout(major: u32, minor: u32) -> Option<&'static Layout> {
    LAYOUTS.iter().find(|l| l.major == major && l.minor == minor)
}

/// The layout of the newest version this build has a table for.
pub fn newest_layout() -> &'static Layout {
    LAYOUTS.iter().max_by_key(|l| (l.major, l.minor)).expect("the table is not empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text_is_parsed() {
        assert_eq!(
            parse_version("3.9.18 (main, Jan  1 2024, 00:00:00) \n[GCC 12.2.0]"),
            Some((3, 9, 18))
        );
        assert_eq!(parse_version("3.10.0rc1 (default)"), Some((3, 10, 0)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn no_interpreter_in_a_plain_program() {
        assert!(matches!(find(), Found::Nothing));
    }
}
