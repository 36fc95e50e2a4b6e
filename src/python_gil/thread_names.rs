//! Python thread names. `threading.Thread(name="worker")` does not name the OS thread in
//! CPython 3.8–3.13 (the kernel keeps calling every thread "python3.11"), yet that name is the
//! one users know. 3.14 names the OS thread too, but the kernel keeps 15 bytes of it. A task
//! under the GIL (`gil_tasks.rs`) reads `threading._active` — the
//! running `Thread` objects — and keeps `native_id → name`; the exporter labels samples with
//! it. The exporter asks for a fresh read when it sees a thread it has no Python name for.
//!
//! Only `sys.modules["threading"]` is read (a program that never imported `threading` has
//! only its main thread), through attribute reads of `_name` and `_native_id`, which run no
//! Python code for plain `Thread` objects.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::python::c_api::{Api, Object};

/// Python's name for each native thread id, as last read.
static NAMES: crate::yield_lock::Lock<Option<HashMap<i32, String>>> = crate::yield_lock::Lock::new(None);

/// Cold side: the Python name of thread `tid`, if it is a `threading` thread.
pub fn lookup(tid: i32) -> Option<String> {
    NAMES.lock().as_ref()?.get(&tid).cloned()
}

/// Cold side: forgets the threads for which `gone(tid)` holds.
pub fn forget(gone: impl Fn(i32) -> bool) {
    if let Some(names) = NAMES.lock().as_mut() {
        names.retain(|&tid, _| !gone(tid));
    }
    UNNAMED.lock().retain(|&tid| !gone(tid));
}

/// A forked child keeps the names if they were not being updated at the fork (the main
/// thread's name is still right; other threads do not exist in the child and are pruned).
pub fn after_fork_in_child() {
    crate::fork_safe::keep_if_consistent(&NAMES);
    // Kept when consistent (read only, no page written): the parent's tids in them are
    // dropped like any gone thread's.
    crate::fork_safe::forget_if_locked(&WANTED);
    crate::fork_safe::forget_if_locked(&UNNAMED);
}

/// Under the GIL (from `gil_tasks`): reads every running `threading.Thread`.
pub fn read(api: &Api) {
    let found = running_threads(api);
    let mut names = NAMES.lock();
    let names = names.get_or_insert_with(HashMap::new);
    names.extend(found);
    // A thread can be running before `threading` lists it (it registers itself a moment
    // after it starts): it is looked for again, a few times, at least 100 ms apart.
    let mut wanted = WANTED.lock();
    let mut unnamed = UNNAMED.lock();
    wanted.retain_mut(|(tid, attempts)| {
        *attempts += 1;
        let keep = !names.contains_key(tid) && *attempts < MAX_ATTEMPTS;
        if !keep && !names.contains_key(tid) {
            if unnamed.len() >= MAX_UNNAMED {
                unnamed.clear();
            }
            unnamed.push(*tid);
        }
        keep
    });
    LAST_READ_NS.store(crate::sample::wall::monotonic_ns(), Ordering::Release);
}

/// Threads seen in samples whose Python name is not known, with the reads that missed them.
static WANTED: crate::yield_lock::Lock<Vec<(i32, u8)>> = crate::yield_lock::Lock::new(Vec::new());
const MAX_WANTED: usize = 256;
const MAX_ATTEMPTS: u8 = 3;
static LAST_READ_NS: AtomicU64 = AtomicU64::new(0);
const MIN_READ_SPACING_NS: u64 = 100_000_000;

/// Threads `threading` does not know (native threads, or every thread of a program that never
/// imported `threading`): not looked for again, so they cost no further reads.
static UNNAMED: crate::yield_lock::Lock<Vec<i32>> = crate::yield_lock::Lock::new(Vec::new());
const MAX_UNNAMED: usize = 4096;

/// Cold side: `tid` was seen without a Python name.
pub fn want(tid: i32) {
    if UNNAMED.lock().contains(&tid) {
        return;
    }
    let mut wanted = WANTED.lock();
    if wanted.len() < MAX_WANTED && !wanted.iter().any(|&(t, _)| t == tid) {
        wanted.push((tid, 0));
    }
}

/// Cold side: a read is due (some thread wants a name and the last read is 100 ms old).
pub fn read_due() -> bool {
    let since = crate::sample::wall::monotonic_ns().saturating_sub(LAST_READ_NS.load(Ordering::Acquire));
    since >= MIN_READ_SPACING_NS && !WANTED.lock().is_empty()
}

fn running_threads(api: &Api) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    // SAFETY: GIL held. Borrowed references (module dict, threading module, list items,
    // tuple items) are used while their owner is alive; new references are released with
    // Py_DecRef exactly once.
    unsafe {
        let modules = (api.sys_get_object)(c"modules".as_ptr());
        if modules.is_null() {
            return found;
        }
        let threading = (api.dict_get_item_string)(modules, c"threading".as_ptr());
        if threading.is_null() {
            return found;
        }
        let active = (api.object_get_attr_string)(threading, c"_active".as_ptr());
        if active.is_null() {
            return found;
        }
        // A copy of the items: attribute reads below cannot disturb the iteration.
        let items = (api.dict_items)(active);
        (api.dec_ref)(active);
        if items.is_null() {
            return found;
        }
        for i in 0..(api.list_size)(items).max(0) {
            let item = (api.list_get_item)(items, i);
            let thread = if item.is_null() { item } else { (api.tuple_get_item)(item, 1) };
            if let Some(named) = name_of(api, thread) {
                found.push(named);
            }
        }
        (api.dec_ref)(items);
    }
    found
}

/// (native id, name) of a `Thread` object.
///
/// # Safety
/// GIL held; `thread` is null or a borrowed reference.
unsafe fn name_of(api: &Api, thread: Object) -> Option<(i32, String)> {
    if thread.is_null() {
        return None;
    }
    // SAFETY: per the contract. Each failed call's exception is cleared at once, so the next
    // call never runs with an error set.
    let named = unsafe { read_name(api, thread) };
    if named.is_none() {
        unsafe { (api.err_clear)() };
    }
    named
}

/// # Safety
/// As `name_of`; new references are released exactly once.
unsafe fn read_name(api: &Api, thread: Object) -> Option<(i32, String)> {
    // SAFETY: per the contract.
    unsafe {
        let id = (api.object_get_attr_string)(thread, c"_native_id".as_ptr());
        if id.is_null() {
            return None;
        }
        let tid = (api.long_as_long)(id);
        (api.dec_ref)(id);
        let tid = i32::try_from(tid).ok().filter(|&t| t > 0)?;
        let name = (api.object_get_attr_string)(thread, c"_name".as_ptr());
        if name.is_null() {
            return None;
        }
        let utf8 = (api.unicode_as_utf8)(name);
        let text = (!utf8.is_null()).then(|| CStr::from_ptr(utf8).to_string_lossy().into_owned());
        (api.dec_ref)(name);
        Some((tid, text?))
    }
}
