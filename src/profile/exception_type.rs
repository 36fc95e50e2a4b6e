//! Cold side: the `exception type` label of exception samples. The hot side recorded the
//! address of the thrown type's mangled name (`std::type_info::name()`, static data of the
//! object that defines the type); it is read here and demangled with cpp_demangle, as
//! `typeinfo name for …` (`_ZTS` + the name) so that the demangler takes a bare type. A
//! Python exception's word is its type object, named under the GIL when it was sampled
//! (`python_gil/exceptions.rs`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Past this many cached names the cache starts over (objects may have been unloaded).
const MAX_CACHED: usize = 4096;
/// Longest mangled name read.
const MAX_NAME: usize = 1024;

thread_local! {
    // Only the exporter thread encodes profiles.
    static NAMES: RefCell<HashMap<u64, Rc<str>>> = RefCell::new(HashMap::new());
}

pub fn describe(type_word: u64) -> Rc<str> {
    use crate::python_gil::exceptions::{type_name, PYTHON_TYPE_TAG};
    if type_word & PYTHON_TYPE_TAG != 0 {
        let type_object = type_word & !PYTHON_TYPE_TAG;
        return type_name(type_object).unwrap_or_else(|| format!("<Python type {type_object:#x}>")).into();
    }
    describe_cpp(type_word)
}

fn describe_cpp(name_address: u64) -> Rc<str> {
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(name) = names.get(&name_address) {
            return name.clone();
        }
        if names.len() >= MAX_CACHED {
            names.clear();
        }
        let name: Rc<str> = match read_name(name_address) {
            Some(mangled) => demangle(&mangled).into(),
            None => format!("{name_address:#x}").into(),
        };
        names.insert(name_address, name.clone());
        name
    })
}

/// The NUL-terminated name at `address`, read fault-proof (the object may be gone), a piece
/// at a time that never crosses a page boundary.
fn read_name(address: u64) -> Option<String> {
    crate::python::memory::init().ok()?;
    let mut name = Vec::new();
    let mut at = address;
    while name.len() < MAX_NAME {
        let piece = (4096 - (at % 4096) as usize).min(64);
        let mut buf = [0u8; 64];
        if !crate::python::memory::read(at, &mut buf[..piece]) {
            return None;
        }
        if let Some(end) = buf[..piece].iter().position(|&b| b == 0) {
            name.extend_from_slice(&buf[..end]);
            return String::from_utf8(name).ok();
        }
        name.extend_from_slice(&buf[..piece]);
        at += piece as u64;
    }
    None
}

/// `St13runtime_error` → `std::runtime_error`; a name the demangler refuses stays as it is.
pub fn demangle(mangled: &str) -> String {
    // libstdc++ marks some names local to an object with a leading '*'.
    let mangled = mangled.trim_start_matches('*');
    cpp_demangle::Symbol::new(format!("_ZTS{mangled}").into_bytes())
        .ok()
        .and_then(|s| s.demangle().ok())
        .and_then(|s| s.strip_prefix("typeinfo name for ").map(str::to_string))
        .unwrap_or_else(|| mangled.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_demangle() {
        assert_eq!(demangle("St13runtime_error"), "std::runtime_error");
        assert_eq!(demangle("N3app10ParseErrorE"), "app::ParseError");
        assert_eq!(demangle("i"), "int");
        assert_eq!(demangle("PKc"), "char const*");
        assert_eq!(demangle("not mangled"), "not mangled");
    }

    #[test]
    fn names_are_read_from_memory() {
        static NAME: &[u8] = b"St11logic_error\0";
        assert_eq!(&*describe(NAME.as_ptr() as u64), "std::logic_error");
    }
}
