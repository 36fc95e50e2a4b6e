//! Python exceptions (3.12+): a `sys.monitoring` tool of the library's own receives every
//! RAISE event, on the raising thread with the GIL held; each raise is counted by
//! `sample::exception` (1 in N sampled, weighed N) and a sampled one is recorded with the
//! raising stack. The type's qualified name (`builtins.ValueError`,
//! `json.decoder.JSONDecodeError`) is read here, under the GIL, once per type, and kept for the
//! cold side (`type_name`). Registered once, as a GIL task (`gil_tasks.rs`).
//!
//! Before 3.12 CPython has no such hook that costs nothing when unused: there CPU samples
//! taken while a thread handles an exception count as exception samples
//! (`python/handled_exception.rs`), and their types are named here too (`name_unnamed`), found
//! among the live subclasses of `BaseException` so that a type freed since is never touched.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use libc::{c_char, c_long};

use crate::python::c_api::{Api, MethodDef, Object};

/// Set in an exception sample's type word: the rest is a Python type object's address.
pub const PYTHON_TYPE_TAG: u64 = 1 << 63;
/// Tool ids tried, in order (0 debugger, 1 coverage, 2 profiler and 5 optimizer are the ones
/// CPython names; 3 and 4 are free for others).
const TOOL_IDS: [c_long; 3] = [4, 3, 2];
/// `METH_FASTCALL`: the function takes (self, args array, count).
const METH_FASTCALL: libc::c_int = 0x0080;
/// Type names kept; past this the table starts over.
const MAX_TYPES: usize = 4096;

static REGISTERED: AtomicBool = AtomicBool::new(false);
static INC_REF: AtomicUsize = AtomicUsize::new(0);
static NONE: AtomicUsize = AtomicUsize::new(0);
static GET_ATTR: AtomicUsize = AtomicUsize::new(0);
static AS_UTF8: AtomicUsize = AtomicUsize::new(0);
static DEC_REF: AtomicUsize = AtomicUsize::new(0);
static ERR_CLEAR: AtomicUsize = AtomicUsize::new(0);

static NAMES: crate::yield_lock::Lock<Option<HashMap<u64, String>>> = crate::yield_lock::Lock::new(None);
/// Types seen by the cold side (3.8–3.11) and not named yet.
static UNNAMED: crate::yield_lock::Lock<Vec<u64>> = crate::yield_lock::Lock::new(Vec::new());
/// Types waiting for a name at most; more wait for the next round.
const MAX_UNNAMED: usize = 64;
/// Classes visited at most when looking for the unnamed ones.
const MAX_CLASSES: usize = 20_000;

struct Method(MethodDef);
// SAFETY: the definition is immutable static data; CPython only reads it.
unsafe impl Sync for Method {}

static RAISE_METHOD: Method = Method(MethodDef {
    name: c"ddprof_on_raise".as_ptr(),
    // SAFETY: CPython calls a METH_FASTCALL function as (self, args, nargs); the pointer is
    // stored with the generic type, as C does.
    function: unsafe { std::mem::transmute::<unsafe extern "C" fn(Object, *const Object, isize) -> Object, unsafe extern "C" fn(Object, Object) -> Object>(on_raise) },
    flags: METH_FASTCALL,
    doc: std::ptr::null(),
});

/// Cold side: whether registration is still to be done.
pub fn wanted(version: (u32, u32, u32), api: &Api) -> bool {
    (version.0, version.1) >= (3, 12) && crate::sample::exception::enabled() && api.exit_hook.is_some() && !REGISTERED.load(Ordering::Acquire)
}

fn symbol<T>(name: &CStr) -> Option<T> {
    // SAFETY: dlsym on a NUL-terminated name.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize;
    // SAFETY: the caller names a C API function whose signature is T.
    (address != 0).then(|| unsafe { std::mem::transmute_copy::<usize, T>(&address) })
}

/// Under the GIL: `sys.monitoring.use_tool_id(id, "ddprof")`, `register_callback(id,
/// events.RAISE, ddprof_on_raise)`, `set_events(id, events.RAISE)`. Errors are left for
/// `gil_tasks` to clear.
pub fn register(api: &Api) {
    let Some(h) = api.exit_hook else { return };
    if REGISTERED.swap(true, Ordering::AcqRel) {
        return;
    }
    let (Some(long_from), Some(unicode_from)) = (
        symbol::<unsafe extern "C" fn(c_long) -> Object>(c"PyLong_FromLong"),
        symbol::<unsafe extern "C" fn(*const c_char) -> Object>(c"PyUnicode_FromString"),
    ) else {
        return crate::log_debug!("Python: no PyLong_FromLong/PyUnicode_FromString; no exception samples");
    };
    keep_functions(api, &h);
    // SAFETY: GIL held (a pending call); every new reference is released with Py_DecRef,
    // NULL results are checked before use; the method definition is static.
    unsafe {
        let call = h.call_function_obj_args;
        let attr = |o: Object, name: &CStr| if o.is_null() { o } else { (api.object_get_attr_string)(o, name.as_ptr()) };
        // Not imported (a pending call may run inside an import): sys.monitoring is an
        // attribute of sys; a borrowed reference, taken as our own.
        let monitoring = (api.sys_get_object)(c"monitoring".as_ptr());
        if !monitoring.is_null() {
            (h.inc_ref)(monitoring);
        }
        let events = attr(monitoring, c"events");
        let raise = attr(events, c"RAISE");
        let (use_tool_id, register_callback, set_events) = (attr(monitoring, c"use_tool_id"), attr(monitoring, c"register_callback"), attr(monitoring, c"set_events"));
        let function = (h.cfunction_new_ex)(&RAISE_METHOD.0, std::ptr::null_mut(), std::ptr::null_mut());
        let label = unicode_from(c"ddprof".as_ptr());
        let mut registered = false;
        if ![raise, use_tool_id, register_callback, set_events, function, label].iter().any(|o| o.is_null()) {
            for id in TOOL_IDS {
                let tool = long_from(id);
                let used = call(use_tool_id, tool, label, std::ptr::null_mut::<libc::c_void>());
                if used.is_null() {
                    (api.err_clear)(); // taken by another tool: the next id
                    (api.dec_ref)(tool);
                    continue;
                }
                (api.dec_ref)(used);
                for result in [call(register_callback, tool, raise, function, std::ptr::null_mut::<libc::c_void>()), call(set_events, tool, raise, std::ptr::null_mut::<libc::c_void>())] {
                    if !result.is_null() {
                        (api.dec_ref)(result);
                    }
                }
                (api.dec_ref)(tool);
                registered = true;
                crate::log_debug!("Python: exception samples through sys.monitoring tool {id}");
                break;
            }
        }
        if !registered {
            crate::log_debug!("Python: no free sys.monitoring tool id; no exception samples");
        }
        for o in [label, function, set_events, register_callback, use_tool_id, raise, events, monitoring] {
            if !o.is_null() {
                (api.dec_ref)(o);
            }
        }
    }
}

/// The C API functions the callback and `remember_name` use, for them to find.
fn keep_functions(api: &Api, h: &crate::python::c_api::ExitHookApi) {
    for (cell, value) in [
        (&INC_REF, h.inc_ref as usize),
        (&NONE, h.none as usize),
        (&GET_ATTR, api.object_get_attr_string as usize),
        (&AS_UTF8, api.unicode_as_utf8 as usize),
        (&DEC_REF, api.dec_ref as usize),
        (&ERR_CLEAR, api.err_clear as usize),
    ] {
        cell.store(value, Ordering::Release);
    }
}

/// Cold side (3.8–3.11): an exception type seen in a sample, to be named under the GIL.
pub fn name_later(type_object: u64) {
    if NAMES.lock().as_ref().is_some_and(|n| n.contains_key(&type_object)) {
        return;
    }
    let mut unnamed = UNNAMED.lock();
    if unnamed.len() < MAX_UNNAMED && !unnamed.contains(&type_object) {
        unnamed.push(type_object);
    }
}

/// Cold side: whether some type waits for `name_unnamed`.
pub fn names_wanted() -> bool {
    !UNNAMED.lock().is_empty()
}

/// Under the GIL: names the waiting types. Their addresses came from samples and the types
/// may have been freed since, so none is dereferenced as such: the live subclasses of
/// `BaseException` are walked (`type.__subclasses__()`) and those at a waiting address are
/// named. One not found (freed, or not an exception type) is named by its address.
pub fn name_unnamed(api: &Api) {
    let wanted = std::mem::take(&mut *UNNAMED.lock());
    let Some(h) = api.exit_hook else { return };
    let base = symbol::<usize>(c"PyExc_BaseException").map(|at| {
        // SAFETY: PyExc_BaseException is a `PyObject *` variable of the interpreter, set
        // at start-up and never changed.
        unsafe { *(at as *const Object) }
    });
    let Some(base) = base.filter(|b| !b.is_null()) else { return };
    keep_functions(api, &h);
    let mut left: Vec<u64> = wanted.into_iter().filter(|t| !NAMES.lock().as_ref().is_some_and(|n| n.contains_key(t))).collect();
    let mut stack = vec![base];
    let mut visited = 0;
    while let Some(class) = stack.pop() {
        if left.is_empty() || visited >= MAX_CLASSES {
            break;
        }
        visited += 1;
        if let Some(i) = left.iter().position(|&t| t == class as u64) {
            left.swap_remove(i);
            let _ = std::panic::catch_unwind(|| remember_name(class as u64));
        }
        // SAFETY: GIL held; `class` is a live class (BaseException or an entry of a live
        // __subclasses__() list, borrowed from the list while it is alive — the list holds
        // each entry only while the walk needs it, so entries are inc-ref'd before the list
        // goes). Every new reference is released; NULL results are checked.
        unsafe {
            let method = (api.object_get_attr_string)(class, c"__subclasses__".as_ptr());
            if method.is_null() {
                (api.err_clear)();
                continue;
            }
            let list = (h.call_function_obj_args)(method, std::ptr::null_mut::<libc::c_void>());
            (api.dec_ref)(method);
            if list.is_null() {
                (api.err_clear)();
                continue;
            }
            for i in 0..(api.list_size)(list).max(0) {
                let sub = (api.list_get_item)(list, i);
                if !sub.is_null() {
                    (h.inc_ref)(sub);
                    stack.push(sub);
                }
            }
            (api.dec_ref)(list);
        }
        if class != base {
            // SAFETY: GIL held; the reference taken when it was pushed.
            unsafe { (api.dec_ref)(class) };
        }
    }
    for class in stack {
        if class != base {
            // SAFETY: GIL held; references taken when pushed, not yet released.
            unsafe { (api.dec_ref)(class) };
        }
    }
    let mut names = NAMES.lock();
    let names = names.get_or_insert_with(HashMap::new);
    for t in left {
        names.insert(t, format!("<Python type {t:#x}>"));
    }
}

/// `PyBaseExceptionObject.traceback` and `PyTracebackObject.tb_next`, in words (3.12+: head,
/// dict, args, notes, traceback; head, tb_next).
const TRACEBACK_WORD: usize = 5;
const TB_NEXT_WORD: usize = 2;

/// Whether this RAISE event is the exception's first: CPython reports RAISE again in every
/// frame the exception propagates into, each time after adding that frame to the traceback,
/// so the first one is the only one whose traceback has a single entry.
///
/// # Safety
/// `exception` is a live exception object (the GIL is held).
unsafe fn first_raise(exception: Object) -> bool {
    // SAFETY: the caller's object is a BaseException instance; its traceback, when set, is a
    // live traceback object.
    unsafe {
        let tb = *(exception as *const u64).add(TRACEBACK_WORD);
        tb == 0 || *(tb as *const u64).add(TB_NEXT_WORD) == 0
    }
}

/// The RAISE callback: (code, instruction offset, exception). Raising thread, GIL held.
unsafe extern "C" fn on_raise(_module: Object, args: *const Object, nargs: isize) -> Object {
    // SAFETY: CPython passes `nargs` valid arguments.
    if nargs >= 3 && unsafe { first_raise(*args.add(2)) } && crate::sample::exception::sampled() {
        // SAFETY: CPython passes `nargs` valid arguments; an object's type is its second word.
        let type_object = unsafe { *((*args.add(2)) as *const u64).add(1) };
        let _ = std::panic::catch_unwind(|| remember_name(type_object));
        crate::sample::exception::record(PYTHON_TYPE_TAG | type_object);
    }
    let (inc_ref, none) = (INC_REF.load(Ordering::Acquire), NONE.load(Ordering::Acquire));
    // SAFETY: stored by `register` before the function object existed: Py_IncRef and None.
    unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(Object)>(inc_ref)(none as Object) };
    none as Object
}

/// `module.qualname` of a type, read once (GIL held).
fn remember_name(type_object: u64) {
    if NAMES.lock().as_ref().is_some_and(|n| n.contains_key(&type_object)) {
        return;
    }
    let part = |name: &CStr| -> Option<String> {
        // SAFETY: GIL held; the functions were stored by `register`; the attribute is a new
        // reference, released; an error is cleared (the raise in progress is CPython's own,
        // saved around the callback).
        unsafe {
            let get_attr = std::mem::transmute::<usize, unsafe extern "C" fn(Object, *const c_char) -> Object>(GET_ATTR.load(Ordering::Acquire));
            let as_utf8 = std::mem::transmute::<usize, unsafe extern "C" fn(Object) -> *const c_char>(AS_UTF8.load(Ordering::Acquire));
            let dec_ref = std::mem::transmute::<usize, unsafe extern "C" fn(Object)>(DEC_REF.load(Ordering::Acquire));
            let err_clear = std::mem::transmute::<usize, unsafe extern "C" fn()>(ERR_CLEAR.load(Ordering::Acquire));
            let value = get_attr(type_object as Object, name.as_ptr());
            if value.is_null() {
                err_clear();
                return None;
            }
            let text = as_utf8(value);
            let out = (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned());
            if text.is_null() {
                err_clear();
            }
            dec_ref(value);
            out
        }
    };
    let name = match (part(c"__module__"), part(c"__qualname__")) {
        (Some(module), Some(qualname)) => format!("{module}.{qualname}"),
        (None, Some(qualname)) => qualname,
        _ => return,
    };
    let mut names = NAMES.lock();
    let names = names.get_or_insert_with(HashMap::new);
    if names.len() >= MAX_TYPES {
        names.clear();
    }
    names.insert(type_object, name);
}

/// Cold side: the qualified name of a Python exception type seen by `on_raise`.
pub fn type_name(type_object: u64) -> Option<String> {
    NAMES.lock().as_ref()?.get(&type_object).cloned()
}

/// In a forked child: the table may have been locked by a vanished thread.
pub fn after_fork_in_child() {
    crate::fork_safe::keep_if_consistent(&NAMES);
}
