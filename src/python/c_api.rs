//! The few CPython C API functions the library calls, resolved from the interpreter's own
//! object (cold side). They are only ever called from `gil_tasks.rs`, on the interpreter's main
//! thread while it holds the GIL — never from a signal handler or the exporter thread — except
//! `Py_AddPendingCall` and `Py_IsInitialized`, which CPython documents as callable from any
//! thread without the GIL, and `_Py_IsFinalizing`/`Py_IsFinalizing`, which only read a flag.
//!
//! Every function used here exists with the same signature in CPython 3.8 to 3.15 (checked in
//! the 3.14 and 3.15 headers: `PyErr_Fetch`/`PyErr_Restore` are deprecated, not removed).

use std::ffi::CStr;

use libc::{c_char, c_int, c_long, c_void};

pub type Object = *mut c_void;

/// `PyMemAllocatorEx` (pymem.h): unchanged from 3.5 to 3.15.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MemAllocator {
    pub ctx: *mut c_void,
    pub malloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
    pub calloc: unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void,
    pub realloc: unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> *mut c_void,
    pub free: unsafe extern "C" fn(*mut c_void, *mut c_void),
}

/// `PyMemAllocatorDomain` values.
pub const DOMAIN_RAW: c_int = 0;
pub const DOMAIN_MEM: c_int = 1;
pub const DOMAIN_OBJ: c_int = 2;

#[derive(Debug, Clone, Copy)]
pub struct Api {
    pub add_pending_call: unsafe extern "C" fn(extern "C" fn(*mut c_void) -> c_int, *mut c_void) -> c_int,
    pub is_initialized: unsafe extern "C" fn() -> c_int,
    /// `_Py_IsFinalizing` (3.8–3.12) or `Py_IsFinalizing` (3.13+).
    pub is_finalizing: Option<unsafe extern "C" fn() -> c_int>,
    pub mem_get_allocator: unsafe extern "C" fn(c_int, *mut MemAllocator),
    pub mem_set_allocator: unsafe extern "C" fn(c_int, *mut MemAllocator),
    /// `PySys_GetObject`: borrowed, NULL when absent (unlike `PyImport_GetModuleDict`, which
    /// aborts the process when the interpreter has no modules dictionary any more).
    pub sys_get_object: unsafe extern "C" fn(*const c_char) -> Object,
    pub dict_get_item_string: unsafe extern "C" fn(Object, *const c_char) -> Object,
    pub dict_items: unsafe extern "C" fn(Object) -> Object,
    pub list_size: unsafe extern "C" fn(Object) -> isize,
    pub list_get_item: unsafe extern "C" fn(Object, isize) -> Object,
    pub tuple_get_item: unsafe extern "C" fn(Object, isize) -> Object,
    pub object_get_attr_string: unsafe extern "C" fn(Object, *const c_char) -> Object,
    pub unicode_as_utf8: unsafe extern "C" fn(Object) -> *const c_char,
    pub long_as_long: unsafe extern "C" fn(Object) -> c_long,
    pub dec_ref: unsafe extern "C" fn(Object),
    pub err_fetch: unsafe extern "C" fn(*mut Object, *mut Object, *mut Object),
    pub err_restore: unsafe extern "C" fn(Object, Object, Object),
    pub err_clear: unsafe extern "C" fn(),
    /// `PyThread_acquire_lock` / `PyThread_release_lock`: plain locks, callable from any thread;
    /// used only on 3.8, to fill its pending-call queue under the queue's own lock.
    pub thread_acquire_lock: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    pub thread_release_lock: Option<unsafe extern "C" fn(*mut c_void)>,
    /// What registering a Python `atexit` callback takes (`exit_drain.rs`); absent ones only
    /// disable that.
    pub exit_hook: Option<ExitHookApi>,
}

/// `PyMethodDef` (methodobject.h): unchanged from 3.0 to 3.15.
#[repr(C)]
pub struct MethodDef {
    pub name: *const c_char,
    pub function: unsafe extern "C" fn(Object, Object) -> Object,
    pub flags: c_int,
    pub doc: *const c_char,
}

/// `METH_NOARGS`: the function takes (self, NULL).
pub const METH_NOARGS: c_int = 0x0004;

#[derive(Debug, Clone, Copy)]
pub struct ExitHookApi {
    pub import_module: unsafe extern "C" fn(*const c_char) -> Object,
    pub cfunction_new_ex: unsafe extern "C" fn(*const MethodDef, Object, Object) -> Object,
    pub call_function_obj_args: unsafe extern "C" fn(Object, ...) -> Object,
    pub inc_ref: unsafe extern "C" fn(Object),
    /// `&_Py_NoneStruct`.
    pub none: Object,
}

impl Api {
    /// Looks every function up with `symbol` (an address, 0 when absent).
    pub fn resolve(symbol: &dyn Fn(&CStr) -> u64) -> Option<Api> {
        macro_rules! function {
            ($name:literal) => {{
                let address = symbol($name);
                if address == 0 {
                    return None;
                }
                // SAFETY: the symbol is the C API function of that name in this interpreter,
                // whose signature is the field's type (same in 3.8–3.15).
                unsafe { std::mem::transmute::<usize, _>(address as usize) }
            }};
        }
        let finalizing = match symbol(c"Py_IsFinalizing") {
            0 => symbol(c"_Py_IsFinalizing"),
            address => address,
        };
        Some(Api {
            add_pending_call: function!(c"Py_AddPendingCall"),
            is_initialized: function!(c"Py_IsInitialized"),
            // SAFETY: as above: `int (void)` in every version that has either symbol.
            is_finalizing: (finalizing != 0)
                .then(|| unsafe { std::mem::transmute::<usize, unsafe extern "C" fn() -> c_int>(finalizing as usize) }),
            mem_get_allocator: function!(c"PyMem_GetAllocator"),
            mem_set_allocator: function!(c"PyMem_SetAllocator"),
            sys_get_object: function!(c"PySys_GetObject"),
            dict_get_item_string: function!(c"PyDict_GetItemString"),
            dict_items: function!(c"PyDict_Items"),
            list_size: function!(c"PyList_Size"),
            list_get_item: function!(c"PyList_GetItem"),
            tuple_get_item: function!(c"PyTuple_GetItem"),
            object_get_attr_string: function!(c"PyObject_GetAttrString"),
            unicode_as_utf8: function!(c"PyUnicode_AsUTF8"),
            long_as_long: function!(c"PyLong_AsLong"),
            dec_ref: function!(c"Py_DecRef"),
            err_fetch: function!(c"PyErr_Fetch"),
            err_restore: function!(c"PyErr_Restore"),
            err_clear: function!(c"PyErr_Clear"),
            // SAFETY: as above: the functions of these names, `int (PyThread_type_lock, int)`
            // and `void (PyThread_type_lock)` in every version.
            thread_acquire_lock: match symbol(c"PyThread_acquire_lock") {
                0 => None,
                a => Some(unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(*mut c_void, c_int) -> c_int>(a as usize) }),
            },
            thread_release_lock: match symbol(c"PyThread_release_lock") {
                0 => None,
                a => Some(unsafe { std::mem::transmute::<usize, unsafe extern "C" fn(*mut c_void)>(a as usize) }),
            },
            exit_hook: ExitHookApi::resolve(symbol),
        })
    }
}

impl ExitHookApi {
    fn resolve(symbol: &dyn Fn(&CStr) -> u64) -> Option<ExitHookApi> {
        let all = [
            symbol(c"PyImport_ImportModule"),
            symbol(c"PyCFunction_NewEx"),
            symbol(c"PyObject_CallFunctionObjArgs"),
            symbol(c"Py_IncRef"),
            symbol(c"_Py_NoneStruct"),
        ];
        if all.contains(&0) {
            return None;
        }
        // SAFETY: each symbol is the C API function (or, for `_Py_NoneStruct`, the object) of
        // that name in this interpreter, with the field's signature in 3.8–3.15.
        unsafe {
            Some(ExitHookApi {
                import_module: std::mem::transmute::<usize, unsafe extern "C" fn(*const c_char) -> Object>(all[0] as usize),
                cfunction_new_ex: std::mem::transmute::<usize, unsafe extern "C" fn(*const MethodDef, Object, Object) -> Object>(all[1] as usize),
                call_function_obj_args: std::mem::transmute::<usize, unsafe extern "C" fn(Object, ...) -> Object>(all[2] as usize),
                inc_ref: std::mem::transmute::<usize, unsafe extern "C" fn(Object)>(all[3] as usize),
                none: all[4] as Object,
            })
        }
    }
}
