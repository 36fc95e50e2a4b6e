//! `__cxa_throw`: every C++ `throw` goes through it (libstdc++ and libc++abi). The hook
//! samples the throw (`sample::exception`) and forwards to the real one, which never returns:
//! it unwinds through this frame to the handler, hence the "C-unwind" ABI on both sides.

use std::ffi::c_void;

type CxaThrowFn = unsafe extern "C-unwind" fn(*mut c_void, *mut c_void, Option<unsafe extern "C" fn(*mut c_void)>) -> !;

/// # Safety
/// Called by compiled `throw` expressions with the exception object, its `std::type_info`
/// and destructor, as the Itanium C++ ABI defines.
#[no_mangle]
pub unsafe extern "C-unwind" fn __cxa_throw(object: *mut c_void, type_info: *mut c_void, destructor: Option<unsafe extern "C" fn(*mut c_void)>) -> ! {
    if !type_info.is_null() {
        // SAFETY: a std::type_info is { vtable pointer, const char *name }.
        let name = unsafe { *(type_info as *const *const libc::c_char).add(1) };
        crate::sample::exception::on_throw(name);
    }
    let next = crate::real::CXA_THROW.get();
    if next == 0 {
        // No C++ runtime after us, yet a throw: nothing sane can follow.
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() }
    }
    // SAFETY: the next `__cxa_throw`, found by dlsym(RTLD_NEXT), with the caller's arguments.
    unsafe { std::mem::transmute::<usize, CxaThrowFn>(next)(object, type_info, destructor) }
}
