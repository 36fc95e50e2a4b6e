//! The last drain before the interpreter frees its code objects.
//!
//! Python frames are recorded as code-object addresses and named on the cold side, when the
//! exporter drains the ring (every 100 ms). Finalization frees every code object and returns
//! pymalloc's arenas to the system, so the samples of the program's last moments — all of a
//! short script's final function, say — would be drained at exit when nothing can name them
//! any more (seen: a script's last 50 ms lost their innermost Python frame). So a Python
//! `atexit` callback, registered from a GIL task, has the exporter drain everything recorded
//! so far and waits for it (bounded). `atexit` callbacks run at the start of
//! `Py_FinalizeEx`, after non-daemon threads are joined and before modules are torn down,
//! while every code object the program ran is still alive. A process that leaves through
//! `os._exit` frees nothing: its final export names its frames as it is.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::python::c_api::{Api, MethodDef, Object, METH_NOARGS};

/// The callback's own wait for the exporter; the program's exit waits this long at most.
const DRAIN_WAIT: Duration = Duration::from_millis(500);

static REGISTERED: AtomicBool = AtomicBool::new(false);

/// The exporter's "drain now and wait, at most this long" (`exporter::drain_now`),
/// registered at start-up: this layer sits below the exporter and does not call it by name.
static DRAIN: AtomicUsize = AtomicUsize::new(0);

/// Registers what the atexit callback calls to have the exporter drain.
pub fn set_drain(drain_now: fn(Duration)) {
    DRAIN.store(drain_now as usize, Ordering::Release);
}

fn drain(timeout: Duration) {
    let f = DRAIN.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: only `set_drain` stores here, and it stores a `fn(Duration)`.
        unsafe { std::mem::transmute::<usize, fn(Duration)>(f)(timeout) };
    }
}
/// What the callback returns with, saved when it is registered (`Py_IncRef` and `&_Py_NoneStruct`):
/// the Python target may have been given up on since, but the callback must still return None.
static INC_REF: AtomicUsize = AtomicUsize::new(0);
static NONE: AtomicUsize = AtomicUsize::new(0);

/// The method definition CPython keeps a pointer to for the life of the function object.
struct StaticMethodDef(MethodDef);
// SAFETY: immutable after construction; its pointers are to static strings and a function.
unsafe impl Sync for StaticMethodDef {}

static DRAIN_METHOD: StaticMethodDef = StaticMethodDef(MethodDef {
    name: c"ddprof_drain_before_finalization".as_ptr(),
    function: drain_before_finalization,
    flags: METH_NOARGS,
    doc: std::ptr::null(),
});

/// Cold side: whether the callback still needs registering (once per interpreter).
pub fn wanted(api: &Api) -> bool {
    // Asked for again while an import was in progress, for about 10 s of refreshes at most.
    static ASKED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    api.exit_hook.is_some() && !REGISTERED.load(Ordering::Acquire) && ASKED.fetch_add(1, Ordering::Relaxed) < 100
}

/// Under the GIL (from `gil_tasks`): `atexit.register(ddprof_drain_before_finalization)`.
/// Errors are left for `gil_tasks` to clear; it is tried once (nothing is registered when
/// nothing imported `atexit` by then).
pub fn register(api: &Api) {
    let Some(h) = api.exit_hook else { return };
    // A pending call can run inside the main thread's own import: a nested import on the same
    // thread then breaks importlib's bookkeeping (a KeyError in `_ModuleLock.acquire` before
    // 3.12). So `atexit` is taken from sys.modules, or imported only while no thread is in
    // importlib's `_ModuleLock.acquire` (its `_blocking_on` table is empty; from 3.12 a nested
    // import is safe); otherwise this is tried again at a later refresh.
    // SAFETY: GIL held; borrowed references from sys/dict lookups; the import and the items
    // list are new references, released.
    let imported = unsafe {
        let modules = (api.sys_get_object)(c"modules".as_ptr());
        let get = |name: &std::ffi::CStr| if modules.is_null() { std::ptr::null_mut() } else { (api.dict_get_item_string)(modules, name.as_ptr()) };
        let atexit = get(c"atexit");
        if !atexit.is_null() {
            (h.inc_ref)(atexit);
            atexit
        } else if reentrant_imports() || no_import_in_progress(api, get(c"_frozen_importlib")) {
            (h.import_module)(c"atexit".as_ptr())
        } else {
            std::ptr::null_mut()
        }
    };
    if imported.is_null() {
        // SAFETY: GIL held.
        unsafe { (api.err_clear)() };
        return;
    }
    if REGISTERED.swap(true, Ordering::AcqRel) {
        // SAFETY: GIL held; our reference.
        unsafe { (api.dec_ref)(imported) };
        return;
    }
    INC_REF.store(h.inc_ref as usize, Ordering::Release);
    NONE.store(h.none as usize, Ordering::Release);
    // SAFETY: GIL held (gil_tasks runs us as a pending call); every object returned is a new
    // reference, released with Py_DecRef; NULL results are checked before use; the method
    // definition is static, as CPython requires.
    unsafe {
        let atexit = imported;
        if atexit.is_null() {
            return crate::log_debug!("Python: cannot import atexit; samples of the last 100 ms before finalization may lose Python frames");
        }
        let register = (api.object_get_attr_string)(atexit, c"register".as_ptr());
        let function = (h.cfunction_new_ex)(&DRAIN_METHOD.0, std::ptr::null_mut(), std::ptr::null_mut());
        if !register.is_null() && !function.is_null() {
            let result = (h.call_function_obj_args)(register, function, std::ptr::null_mut::<libc::c_void>());
            if !result.is_null() {
                (api.dec_ref)(result);
                crate::log_debug!("Python: atexit drain registered");
            }
        }
        for object in [function, register, atexit] {
            if !object.is_null() {
                (api.dec_ref)(object);
            }
        }
    }
}

/// From 3.12 importlib's module locks take a nested import on the same thread (its
/// `_blocking_on` table holds a list per thread).
fn reentrant_imports() -> bool {
    crate::python::target().is_some_and(|t| (t.version.0, t.version.1) >= (3, 12))
}

/// Before 3.12: whether no thread is inside `_ModuleLock.acquire` (`_blocking_on`, a dict,
/// is empty).
///
/// # Safety
/// GIL held; `bootstrap` is `_frozen_importlib` (borrowed) or NULL.
unsafe fn no_import_in_progress(api: &Api, bootstrap: Object) -> bool {
    if bootstrap.is_null() {
        return false;
    }
    // SAFETY: GIL held; new references released, NULLs checked.
    unsafe {
        let blocking = (api.object_get_attr_string)(bootstrap, c"_blocking_on".as_ptr());
        if blocking.is_null() {
            return false;
        }
        let items = (api.dict_items)(blocking);
        let idle = !items.is_null() && (api.list_size)(items) == 0;
        if !items.is_null() {
            (api.dec_ref)(items);
        }
        (api.dec_ref)(blocking);
        idle
    }
}

/// The atexit callback (main thread, GIL held): drain now, while code objects live.
unsafe extern "C" fn drain_before_finalization(_module: Object, _unused: Object) -> Object {
    let _ = std::panic::catch_unwind(|| drain(DRAIN_WAIT));
    let (inc_ref, none) = (INC_REF.load(Ordering::Acquire), NONE.load(Ordering::Acquire));
    // SAFETY: both were stored by `register` before this function object existed: the
    // interpreter's `Py_IncRef` and its None object. A new reference to None is what a
    // METH_NOARGS function returns when it has nothing to say.
    unsafe {
        let inc_ref: unsafe extern "C" fn(Object) = std::mem::transmute::<usize, unsafe extern "C" fn(Object)>(inc_ref);
        inc_ref(none as Object);
    }
    none as Object
}
