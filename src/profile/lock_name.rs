//! Cold side: the `lock name` label of lock samples.
//!
//! A lock that is a global or static variable gets the name of the symbol covering its address
//! (`name`, or `name+0x10` inside a larger object such as a struct holding the lock). The
//! loaded object containing the address is found with `dladdr1`; its ELF symbol tables
//! (`.symtab`, then `.dynsym`) are searched with blazesym, so non-exported statics of the main
//! program are named too; `dladdr`'s own answer (exported symbols only) is the fallback. Locks
//! on the heap or the stack are shown as their address in hex. Results are cached.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};

/// Past this many cached addresses the cache starts over (objects may have been unloaded).
const MAX_CACHED: usize = 1 << 16;

thread_local! {
    // Only the exporter thread encodes profiles; a per-thread cache needs no lock.
    static NAMES: RefCell<Names> = RefCell::new(Names::default());
}

#[derive(Default)]
struct Names {
    cache: HashMap<u64, Rc<str>>,
    symbolizer: Option<Symbolizer>,
}

/// The label value for the lock at `addr`.
pub fn describe(addr: u64) -> Rc<str> {
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(name) = names.cache.get(&addr) {
            return name.clone();
        }
        if names.cache.len() >= MAX_CACHED {
            names.cache.clear();
        }
        let name: Rc<str> = names.lookup(addr).unwrap_or_else(|| format!("{addr:#x}")).into();
        names.cache.insert(addr, name.clone());
        name
    })
}

/// `dladdr1` flag: return the object's `struct link_map` (`<dlfcn.h>`).
const RTLD_DL_LINKMAP: libc::c_int = 2;

/// The first fields of glibc's `struct link_map` (public ABI, `<link.h>`).
#[repr(C)]
struct LinkMap {
    l_addr: usize,
    l_name: *const libc::c_char,
}

impl Names {
    fn lookup(&mut self, addr: u64) -> Option<String> {
        // SAFETY: dladdr1 only reads loader data; both out-pointers are valid.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        let mut map: *mut LinkMap = std::ptr::null_mut();
        let found = unsafe {
            libc::dladdr1(addr as *const libc::c_void, &mut info, (&mut map as *mut *mut LinkMap).cast(), RTLD_DL_LINKMAP)
        };
        if found == 0 || map.is_null() {
            return None;
        }
        // SAFETY: the loader returned a live link_map; l_name is a NUL-terminated string.
        let (bias, name) = unsafe { ((*map).l_addr, (*map).l_name) };
        let path = match name.is_null() {
            true => None,
            // SAFETY: as above.
            false => Some(OsStr::from_bytes(unsafe { CStr::from_ptr(name) }.to_bytes())),
        };
        let path = match path {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            // The main program's link_map has an empty name.
            _ => std::fs::read_link("/proc/self/exe").ok()?,
        };
        if let Some(name) = self.in_symbol_tables(path, addr.wrapping_sub(bias as u64)) {
            return Some(name);
        }
        if info.dli_sname.is_null() {
            return None;
        }
        // SAFETY: dladdr returned a NUL-terminated symbol name.
        let symbol = unsafe { CStr::from_ptr(info.dli_sname) }.to_string_lossy().into_owned();
        Some(with_offset(symbol, addr.wrapping_sub(info.dli_saddr as u64)))
    }

    fn in_symbol_tables(&mut self, path: PathBuf, virt: u64) -> Option<String> {
        let symbolizer = self.symbolizer.get_or_insert_with(|| Symbolizer::builder().enable_demangling(true).enable_code_info(false).build());
        let mut elf = Elf::new(path);
        elf.debug_syms = false;
        let source = Source::Elf(elf);
        match symbolizer.symbolize_single(&source, Input::VirtOffset(virt)).ok()? {
            // A sizeless symbol (`__bss_start`…) says nothing about the bytes after it.
            Symbolized::Sym(sym) if sym.offset == 0 || sym.size.is_some_and(|size| sym.offset < size) => {
                Some(with_offset(sym.name.into_owned(), sym.offset as u64))
            }
            Symbolized::Sym(_) | Symbolized::Unknown(_) => None,
        }
    }
}

fn with_offset(name: String, offset: u64) -> String {
    if offset == 0 {
        name
    } else {
        format!("{name}+{offset:#x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[no_mangle]
    static mut DDPROF_TEST_EXPORTED_LOCK: [u64; 8] = [0; 8];
    static mut PRIVATE_LOCK: [u64; 8] = [0; 8];

    #[test]
    fn globals_are_named_and_heap_addresses_are_hex() {
        let exported = std::ptr::addr_of!(DDPROF_TEST_EXPORTED_LOCK) as u64;
        assert_eq!(&*describe(exported), "DDPROF_TEST_EXPORTED_LOCK");
        assert_eq!(&*describe(exported + 16), "DDPROF_TEST_EXPORTED_LOCK+0x10");
        let private = std::ptr::addr_of!(PRIVATE_LOCK) as u64;
        assert!(describe(private).contains("PRIVATE_LOCK"), "{}", describe(private));
        let heap = Box::new([0u64; 8]);
        let addr = &*heap as *const _ as u64;
        assert_eq!(&*describe(addr), format!("{addr:#x}"));
    }
}
