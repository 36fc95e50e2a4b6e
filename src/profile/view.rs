//! Cold side: what one sample's stack shows, decided when a period is encoded.
//!
//! The aggregator keys samples by the frames as captured (native and Python merged, leaf
//! first); this file turns them into the frames the user reads:
//!
//! 1. **Own frames.** Frames of libddprof at the leaf (the sample hit the profiler's own work)
//!    become one `[libddprof]` frame; elsewhere (a forwarding hook, such as the
//!    `pthread_mutex_lock` interposer, whose callee is the real function) they are dropped.
//! 2. **Python view** (a Python process, `DD_PROFILING_PYTHON_NATIVE=python`, the default).
//!    Native frames of the interpreter's own object (libpython, or the python executable) are
//!    dropped, so their time becomes the self time of the frame that called them: the Python
//!    function, or a C extension that calls the C API. Native frames rootward of the outermost
//!    Python frame (thread start, `Py_RunMain`, `_start`) are dropped too: a Python thread's
//!    root is its outermost Python frame. Native frames outside the interpreter (C extensions,
//!    the libraries they call, libc) stay under their Python caller. A stack with no Python
//!    frame at all keeps its native frames, each run of interpreter frames shown as one
//!    `[CPython]` frame.
//! 3. **Lock waits that are not contention.** A wait whose innermost Python frame waits for
//!    work or an event (`Condition.wait`, `Event.wait`, `Thread.join`, `queue.Queue.get`,
//!    `SimpleQueue.get` — named, or code of the `_queue` module where it has no symbols —,
//!    `Future.result`, …) is an idle thread, not a contended lock: it is
//!    left out of `lock-acquire`/`lock-acquire-wait` (wall time shows where idle threads sit).
//!    A lock sample taken inside `take_gil`/`drop_gil` is the GIL's.
//! 4. **Depth.** A stack longer than `DD_PROFILING_MAX_FRAMES` keeps its innermost and
//!    outermost frames with one `[N frames omitted]` frame between them; a capture that was
//!    itself cut on the hot side (see `sample/both_ends.rs`) carries the same marker.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::python_frames;
use super::symbolize::Symbolized;
use crate::python::PYTHON_FRAME_TAG;
use crate::sample::both_ends::{decode_native_marker, OMITTED_TAG};

/// What the encoder needs to know about the process to show its stacks.
pub struct Context<'a> {
    /// Fold interpreter frames (Python view).
    pub python_view: bool,
    /// The interpreter's executable code (libpython or the python executable).
    pub interpreter: Option<Range<u64>>,
    /// libddprof's own executable code.
    pub own: Option<Range<u64>>,
    /// Executable code of extension modules whose blocking calls all wait for work
    /// (`IDLE_MODULES`).
    pub idle_code: Vec<Range<u64>>,
    pub max_frames: usize,
    /// Native address → its symbols (innermost inlined function first).
    pub symbols: &'a HashMap<u64, Arc<Symbolized>>,
}

/// One sample's stack as shown.
#[derive(Debug, PartialEq)]
pub struct Shown {
    /// Frame words, leaf first: native addresses, Python frame words and label words (see
    /// `python_frames::label`).
    pub frames: Vec<u64>,
    /// A lock wait of an idle thread (waiting for work or an event), not contention.
    pub idle_wait: bool,
    /// A lock sample of the interpreter's GIL.
    pub gil: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Item {
    Native(u64),
    Python(u64),
    /// Frames left out: Python frames (`python`) or native ones.
    Omitted { count: usize, python: bool },
    Own,
    Interpreter,
    /// A built-in function of the interpreter, by its Python name.
    Builtin(&'static str),
}

/// Python functions (file name, qualified name) in which a blocked thread waits for work or
/// for an event rather than for a lock someone holds.
const IDLE_PYTHON: &[(&str, &str)] = &[
    ("threading.py", "Condition.wait"),
    ("threading.py", "Condition.wait_for"),
    ("threading.py", "Event.wait"),
    ("threading.py", "Barrier.wait"),
    ("threading.py", "Thread.join"),
    ("threading.py", "Thread._wait_for_tstate_lock"),
    ("threading.py", "_shutdown"),
    ("queue.py", "Queue.get"),
    ("queue.py", "Queue.put"),
    ("queue.py", "Queue.join"),
    ("_base.py", "Future.result"),
    ("_base.py", "Future.exception"),
    ("_base.py", "wait"),
    ("_base.py", "as_completed"),
    ("_base.py", "_AcquireFutures.__enter__"),
];

/// Native functions (C implementations of the same waits) that mark an idle wait.
const IDLE_NATIVE: &[&str] = &["_queue_SimpleQueue_get", "_queue_SimpleQueue_get_impl", "thread_PyThread_join_thread", "_PyEvent_Wait"];

/// Extension modules (file name prefixes) whose only blocking call waits for work: CPython's
/// `_queue` (`SimpleQueue.get`; `put` never blocks). A wait with their code on the stack is
/// idle even where the module is stripped (Debian's builds), so `_queue_SimpleQueue_get` has
/// no name.
pub const IDLE_MODULES: &[&str] = &["_queue."];

/// Native functions whose lock samples are the GIL's (often inlined: all inlined names are
/// looked at).
const GIL_NATIVE: &[&str] = &["take_gil", "drop_gil"];

pub fn show(frames: &[u64], lock_sample: bool, ctx: &Context) -> Shown {
    let (idle_wait, gil) = if lock_sample { (is_idle_wait(frames, ctx), in_gil(frames, ctx)) } else { (false, false) };
    let mut items = items(frames, ctx);
    if ctx.python_view {
        items = python_view(items, ctx);
    }
    let items = limit_depth(items, ctx.max_frames.max(3));
    Shown { frames: words(&items), idle_wait, gil }
}

fn is_python(word: u64) -> bool {
    word & PYTHON_FRAME_TAG != 0
}

/// Frames as items, with libddprof's frames and the capture markers recognised.
fn items(frames: &[u64], ctx: &Context) -> Vec<Item> {
    let own = |w: u64| !is_python(w) && ctx.own.as_ref().is_some_and(|r| r.contains(&w));
    // Leafward of the innermost frame of the profiler's own work, frames are the profiler's
    // (a system call it makes): they go into the `[libddprof]` frame too.
    let work_start = frames.iter().position(|&w| own(w)).filter(|&i| i == 0 || !forwarding(frames[i], ctx));
    let mut out = Vec::with_capacity(frames.len());
    for (i, &w) in frames.iter().enumerate() {
        if work_start.is_some_and(|start| i < start) {
            continue;
        }
        if own(w) {
            // One `[libddprof]` for the leaf run; a forwarding frame elsewhere is dropped.
            if out.is_empty() {
                out.push(Item::Own);
            }
            continue;
        }
        out.push(if let Some((count, _)) = decode_native_marker(w) {
            Item::Omitted { count, python: false }
        } else if is_python(w) && w & OMITTED_TAG != 0 {
            Item::Omitted { count: (w & 0xffff_ffff) as usize, python: true }
        } else if is_python(w) {
            Item::Python(w)
        } else {
            Item::Native(w)
        });
    }
    out
}

/// Whether a libddprof frame with a callee is an interposed function calling the real one
/// (`malloc` → glibc's `malloc`): its callee is the program's work. Otherwise the callee is
/// the profiler's (`process_vm_readv` reading Python frames, a clock read). Told from the
/// innermost function at the call site: a C-ABI hook itself (no Rust path) or code of
/// `hooks/`; library glue (`core::`, `std::`) is looked through.
fn forwarding(address: u64, ctx: &Context) -> bool {
    let Some(name) = native_names(address, ctx).find(|n| !n.starts_with("core::") && !n.starts_with("std::") && !n.starts_with('<')) else {
        return true;
    };
    // Interposers: the C-ABI hooks, `hooks/`, and the Python allocator hooks installed with
    // PyMem_SetAllocator (which forward to pymalloc).
    !name.contains("::") || name.starts_with("ddprof::hooks::") || name.starts_with("ddprof::python_gil::allocator::")
}

/// Folds the interpreter's frames (see the module comment, rule 2).
fn python_view(items: Vec<Item>, ctx: &Context) -> Vec<Item> {
    let Some(interpreter) = &ctx.interpreter else { return items };
    let in_interpreter = |item: &Item| matches!(item, Item::Native(a) if interpreter.contains(a));
    let Some(outermost) = items.iter().rposition(|i| matches!(i, Item::Python(_))) else {
        // No Python frame: each run of interpreter frames becomes one `[CPython]`.
        let mut out: Vec<Item> = Vec::with_capacity(items.len());
        for item in items {
            match (in_interpreter(&item), out.last()) {
                (true, Some(Item::Interpreter)) => {}
                (true, _) => out.push(Item::Interpreter),
                (false, _) => out.push(item),
            }
        }
        return out;
    };
    let python_cut = items.iter().any(|i| matches!(i, Item::Omitted { python: true, .. }));
    let items = with_builtin_leaf(items, interpreter, ctx);
    let outermost = items.iter().rposition(|i| matches!(i, Item::Python(_))).unwrap_or(outermost);
    items
        .into_iter()
        .enumerate()
        .filter(|(i, item)| match item {
            Item::Native(a) => *i < outermost && !in_interpreter(item) && !is_linker_glue(*a, ctx),
            // The Python marker counts the frames a Python developer misses; native frames
            // cut from the same stack were nearly all interpreter frames.
            Item::Omitted { python: false, .. } => !python_cut && *i < outermost,
            _ => true,
        })
        .map(|(_, item)| item)
        .collect()
}

/// The dynamic linker's plumbing (`__tls_get_addr`: libpython's thread-local state on 3.12+,
/// lazy binding): part of the caller's work, folded like interpreter frames.
fn is_linker_glue(address: u64, ctx: &Context) -> bool {
    native_names(address, ctx).any(|n| n.starts_with("__tls_get_addr") || n.starts_with("_dl_runtime_resolve") || n == "_dl_fixup" || n == "update_get_addr")
}

/// The built-in function that the innermost Python frame calls, when the interpreter frames
/// between them include one with a known Python name (`sum`, `time.sleep`, `lock.acquire`):
/// it is kept as one frame, so time in a long built-in call is not the caller's self time.
fn with_builtin_leaf(mut items: Vec<Item>, interpreter: &Range<u64>, ctx: &Context) -> Vec<Item> {
    let Some(innermost) = items.iter().position(|i| matches!(i, Item::Python(_))) else { return items };
    for i in (0..innermost).rev() {
        let Item::Native(address) = items[i] else { break };
        if !interpreter.contains(&address) {
            break;
        }
        if let Some(name) = native_names(address, ctx).find_map(builtin_name) {
            items[i] = Item::Builtin(name);
            break;
        }
    }
    items
}

/// The Python name of an interpreter function implementing a built-in (Argument Clinic's
/// `builtin_<name>[_impl]`, and a few methods that programs wait in).
fn builtin_name(symbol: &str) -> Option<&'static str> {
    const METHODS: &[(&str, &str)] = &[
        ("lock_PyThread_acquire_lock", "lock.acquire"),
        ("rlock_acquire", "RLock.acquire"),
        ("time_sleep", "time.sleep"),
        ("list_sort", "list.sort"),
        ("list_sort_impl", "list.sort"),
        ("unicode_join", "str.join"),
        ("math_factorial", "math.factorial"),
    ];
    const BUILTINS: &[&str] = &[
        "abs", "all", "any", "ascii", "bin", "callable", "chr", "compile", "dir", "divmod", "eval", "exec", "format",
        "getattr", "globals", "hasattr", "hash", "hex", "id", "input", "isinstance", "issubclass", "iter", "len",
        "locals", "max", "min", "next", "oct", "ord", "pow", "print", "repr", "round", "setattr", "sorted", "sum",
        "vars", "__import__", "__build_class__",
    ];
    if let Some(&(_, name)) = METHODS.iter().find(|(s, _)| *s == symbol) {
        return Some(name);
    }
    let name = symbol.strip_prefix("builtin_")?;
    let name = name.strip_suffix("_impl").unwrap_or(name);
    BUILTINS.iter().copied().find(|b| *b == name)
}

/// Keeps the innermost and outermost frames of a stack longer than `max`, with one marker.
fn limit_depth(items: Vec<Item>, max: usize) -> Vec<Item> {
    let mut items = merge_markers(items);
    if items.len() > max {
        let root = (max - 1) / 2;
        let leaf = max - 1 - root;
        let cut: Vec<Item> = items.drain(leaf..items.len() - root).collect();
        let count = cut.iter().map(|i| if let Item::Omitted { count, .. } = i { *count } else { 1 }).sum();
        items.insert(leaf, Item::Omitted { count, python: false });
        items = merge_markers(items);
    }
    items
}

/// Adjacent markers become one.
fn merge_markers(items: Vec<Item>) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::with_capacity(items.len());
    for item in items {
        if let (Item::Omitted { count, .. }, Some(Item::Omitted { count: total, .. })) = (item, out.last_mut()) {
            *total += count;
            continue;
        }
        out.push(item);
    }
    out
}

fn words(items: &[Item]) -> Vec<u64> {
    items
        .iter()
        .map(|item| match *item {
            Item::Native(w) | Item::Python(w) => w,
            Item::Own => python_frames::label("[libddprof]"),
            Item::Interpreter => python_frames::label("[CPython]"),
            Item::Builtin(name) => python_frames::builtin(name),
            Item::Omitted { count, .. } => python_frames::label(&format!("[{count} frames omitted]")),
        })
        .collect()
}

/// The innermost Python frame waits for work or an event (but not a `Semaphore.acquire`,
/// which waits on a condition for a free unit: contention), or a native idle wait sits
/// between it and the leaf.
fn is_idle_wait(frames: &[u64], ctx: &Context) -> bool {
    let mut python = frames.iter().copied().filter(|&w| is_python(w) && w & OMITTED_TAG == 0);
    let Some(innermost) = python.next() else { return false };
    let leafward = frames.iter().take_while(|&&w| w != innermost);
    if leafward.clone().any(|&w| native_names(w, ctx).any(|name| IDLE_NATIVE.contains(&name)) || ctx.idle_code.iter().any(|r| r.contains(&w))) {
        return true;
    }
    if !python_frame_is(innermost, IDLE_PYTHON) {
        return false;
    }
    !python.next().is_some_and(|caller| python_frame_is(caller, &[("threading.py", "Semaphore.acquire")]))
}

/// Whether a Python frame is one of `functions` (file name, qualified name). Before 3.11
/// frames carry the bare name, compared with the qualified name's last part.
fn python_frame_is(word: u64, functions: &[(&str, &str)]) -> bool {
    let Some(f) = python_frames::describe(word) else { return false };
    let file = f.file.rsplit('/').next().unwrap_or("");
    functions.iter().any(|&(in_file, qualified)| {
        file == in_file && (f.function == qualified || !f.function.contains('.') && qualified.rsplit('.').next() == Some(f.function.as_str()))
    })
}

fn in_gil(frames: &[u64], ctx: &Context) -> bool {
    frames.iter().any(|&w| !is_python(w) && native_names(w, ctx).any(|name| GIL_NATIVE.contains(&name)))
}

/// The function names (inlined ones included) at a native address, without the suffix of a
/// compiler's clone of a function (`take_gil.constprop.0`, `list_sort.cold`): an ELF symbol
/// table names the clone, DWARF the function.
fn native_names<'c>(address: u64, ctx: &'c Context) -> impl Iterator<Item = &'c str> {
    ctx.symbols.get(&address).into_iter().flat_map(|s| s.frames.iter().map(|f| without_clone_suffix(&f.function)))
}

fn without_clone_suffix(name: &str) -> &str {
    const CLONES: &[&str] = &[".constprop.", ".isra.", ".part.", ".cold", ".lto_priv.", ".localalias"];
    match CLONES.iter().filter_map(|c| name.find(c)).min() {
        Some(at) => &name[..at],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::symbolize::Frame;
    use crate::sample::both_ends::native_marker;

    fn py(name: &str, file: &str) -> u64 {
        python_frames::intern_for_test(name, file, 1)
    }

    fn ctx<'a>(symbols: &'a HashMap<u64, Arc<Symbolized>>, python_view: bool, max_frames: usize) -> Context<'a> {
        Context { python_view, interpreter: Some(0x1000..0x2000), own: Some(0x9000..0xa000), idle_code: vec![0xc000..0xc800], max_frames, symbols }
    }

    fn named(addr: u64, name: &str) -> (u64, Arc<Symbolized>) {
        (addr, Arc::new(Symbolized { frames: vec![Frame { function: name.into(), file: String::new(), line: 0 }] }))
    }

    #[test]
    fn interpreter_frames_fold_into_their_python_caller() {
        let symbols = HashMap::new();
        let (f, main) = (py("f", "app.py"), py("<module>", "app.py"));
        // leaf: libc memcpy, interpreter, f, interpreter, extension, interpreter, <module>, interpreter, libc start
        let stack = [0x5000, 0x1100, f, 0x1200, 0x6000, 0x1300, main, 0x1400, 0x7000];
        let shown = show(&stack, false, &ctx(&symbols, true, 128));
        assert_eq!(shown.frames, vec![0x5000, f, 0x6000, main]);
        let full = show(&stack, false, &ctx(&symbols, false, 128));
        assert_eq!(full.frames, stack.to_vec());
    }

    #[test]
    fn stacks_without_python_frames_show_one_cpython_frame_per_run() {
        let symbols = HashMap::new();
        let shown = show(&[0x5000, 0x1100, 0x1200, 0x7000], false, &ctx(&symbols, true, 128));
        assert_eq!(shown.frames, vec![0x5000, python_frames::label("[CPython]"), 0x7000]);
    }

    #[test]
    fn a_compiler_clone_is_named_as_its_function() {
        assert_eq!(without_clone_suffix("take_gil.constprop.0"), "take_gil");
        assert_eq!(without_clone_suffix("list_sort.cold"), "list_sort");
        assert_eq!(without_clone_suffix("drop_gil.isra.0.part.0"), "drop_gil");
        assert_eq!(without_clone_suffix("ddprof::hooks::lock::on_wait"), "ddprof::hooks::lock::on_wait");
    }

    #[test]
    fn own_frames_are_one_leaf_frame_or_nothing() {
        let symbols = HashMap::new();
        let c = ctx(&symbols, false, 128);
        assert_eq!(show(&[0x9100, 0x9200, 0x5000], false, &c).frames, vec![python_frames::label("[libddprof]"), 0x5000]);
        // A forwarding hook (libc's futex under our pthread_mutex_lock) vanishes.
        assert_eq!(show(&[0x7100, 0x9100, 0x5000], false, &c).frames, vec![0x7100, 0x5000]);
        // A system call of the profiler's own work is the profiler's.
        let symbols: HashMap<u64, Arc<Symbolized>> = [named(0x9300, "ddprof::python::memory::read"), named(0x9100, "pthread_mutex_lock")].into();
        let c = ctx(&symbols, false, 128);
        assert_eq!(show(&[0x7100, 0x9300, 0x9400, 0x5000], false, &c).frames, vec![python_frames::label("[libddprof]"), 0x5000]);
        assert_eq!(show(&[0x7100, 0x9100, 0x5000], false, &c).frames, vec![0x7100, 0x5000]);
    }

    #[test]
    fn deep_stacks_keep_both_ends() {
        let symbols = HashMap::new();
        let stack: Vec<u64> = (0..300).map(|i| 0x5000 + i).collect();
        let shown = show(&stack, false, &ctx(&symbols, false, 9));
        let omitted = python_frames::label("[292 frames omitted]");
        assert_eq!(shown.frames, vec![0x5000, 0x5001, 0x5002, 0x5003, omitted, 0x5000 + 296, 0x5000 + 297, 0x5000 + 298, 0x5000 + 299]);
        // A marker from the capture joins the one made here.
        let mut captured: Vec<u64> = (0..10).map(|i| 0x5000 + i).collect();
        captured.insert(5, native_marker(1000, 0));
        let shown = show(&captured, false, &ctx(&symbols, false, 9));
        assert_eq!(shown.frames[4], python_frames::label("[1002 frames omitted]"));
        assert_eq!(shown.frames.len(), 9);
    }

    #[test]
    fn a_builtin_called_from_python_is_one_leaf_frame() {
        let symbols: HashMap<u64, Arc<Symbolized>> = [named(0x1100, "builtin_sum"), named(0x1200, "cfunction_vectorcall_FASTCALL")].into();
        let f = py("stuck", "app.py");
        let shown = show(&[0x1050, 0x1100, 0x1200, f, 0x1300], false, &ctx(&symbols, true, 128));
        assert_eq!(shown.frames, vec![python_frames::builtin("sum"), f]);
    }

    #[test]
    fn idle_waits_and_the_gil_are_recognised() {
        let symbols: HashMap<u64, Arc<Symbolized>> = [named(0x7100, "sem_clockwait"), named(0x6100, "_queue_SimpleQueue_get_impl"), named(0x1100, "take_gil")].into();
        let c = ctx(&symbols, true, 128);
        let wait = py("Condition.wait", "/usr/lib/python3.11/threading.py");
        let user = py("handler", "app.py");
        assert!(show(&[0x7100, wait, user], true, &c).idle_wait);
        assert!(show(&[0x7100, 0x6100, user], true, &c).idle_wait);
        assert!(show(&[0x7100, 0xc100, user], true, &c).idle_wait, "stripped _queue module");
        assert!(!show(&[0x7100, user, wait], true, &c).idle_wait, "the innermost Python frame decides");
        let semaphore = py("Semaphore.acquire", "/usr/lib/python3.11/threading.py");
        assert!(!show(&[0x7100, wait, semaphore, user], true, &c).idle_wait, "a semaphore is contention");
        let bare = py("wait", "/usr/lib/python3.9/threading.py");
        assert!(show(&[0x7100, bare, user], true, &c).idle_wait, "3.8-3.10 names");
        assert!(show(&[0x7100, 0x1100, user], true, &c).gil);
        assert!(!show(&[0x7100, user], true, &c).gil);
    }
}
