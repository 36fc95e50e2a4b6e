//! libddprof: a continuous profiler loaded with LD_PRELOAD.
//!
//! The modules form layers; every `use crate::…` points down (checked by
//! `scripts/check-layers.py`, part of `make test`). Top first:
//!
//! - `hooks`        the exported C symbols (malloc family, pthread locks, pthread_create,
//!                  fork/exec/exit, sigaction): the program calls in here
//! - `runtime`      life cycle: start-up, thread start and exit, fork, exec, exit;
//!   `profiler_threads` when the exporter and wall-sampler threads start (a few ms into a
//!   new process; late or never in a forked child of a fork burst);
//!   `termination` the last profile of a process killed by SIGTERM/SIGINT/SIGHUP
//!
//! Cold side (the exporter thread; never imports the hooks or the life cycle):
//! - `export`       exporter thread, file writer, Agent uploader, hand-over of children's profiles
//! - `report`       `ddprof-report` (reads pprof files; not part of the preloaded profiler)
//! - `profile`      aggregation, symbolization, naming Python frames and locks, the shown
//!                  view of each stack (`view`: Python view, own frames, depth), pprof encoding
//! - `python_gil`   work run inside the interpreter under its GIL (allocator hook install,
//!                  `threading` names, exit drain, the `sys.monitoring` raise tool and
//!                  exception type names), requested by the exporter
//!
//! Hot side (runs inside the program's threads: hooks and the SIGPROF handler; never
//! allocates through the program's malloc, blocks or logs):
//! - `sample`       timers, the SIGPROF handler, wall sampler, stack capture (framehop;
//!                  `both_ends` keeps the root of deep stacks), allocation and lock samplers
//! - `python`       finding the interpreter and reading a thread's Python frames (and, on
//!                  3.8–3.11, the type of the exception it handles: `handled_exception`)
//!
//! Below both:
//! - `thread`, `own_heap`, `real_alloc`, `family`, `fork_safe`: per-thread state, the
//!   library's own heap, the next allocator, a page shared with forked children, fork resets
//! - `collect`      the lock-free ring and live-heap table that hand samples to the cold side
//! - `status`       what the life cycle publishes (active, owner pid, config, profile ended)
//! - `config`       DD_* variables, validated
//! - `real`, `real_lock`, `tls_counter`, `yield_lock`, `log`: next symbols, small primitives
//!
//! A lower layer that must reach up (the hand-off starting a forked child's deferred threads,
//! the exit drain asking the exporter to drain) is given a function at start-up by
//! `runtime::start`, never an import.

pub mod profiler_threads;
pub mod collect;
pub mod config;
pub mod export;
pub mod family;
pub mod fast_map;
pub mod fork_safe;
pub mod hooks;
pub mod log;
pub mod own_heap;
pub mod profile;
pub mod python;
pub mod python_gil;
pub mod real;
pub mod report;
pub mod real_alloc;
pub mod real_lock;
pub mod runtime;
pub mod sample;
pub mod status;
pub mod termination;
pub mod thread;
pub mod tls_counter;
pub mod yield_lock;

/// The library's own allocations never go through the program's malloc (own_heap.rs).
#[global_allocator]
static OWN_HEAP: own_heap::OwnHeap = own_heap::OwnHeap;

/// Load-time constructor. It starts the profiler only when this code is running as the
/// preloaded shared library, not when the crate is linked into a program (the tests,
/// `ddprof-report`).
#[ctor::ctor(unsafe)]
fn on_load() {
    if loaded_as_shared_library() {
        runtime::start();
    }
}

/// True when this function lives in a shared object rather than in the main program.
fn loaded_as_shared_library() -> bool {
    let here = on_load as *const () as usize;
    // SAFETY: dladdr only reads loader data for the address; info is a valid out-pointer.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(here as *const libc::c_void, &mut info) } == 0 {
        return false;
    }
    main_program_base() != Some(info.dli_fbase as usize)
}

/// The load address of the main program (the first entry dl_iterate_phdr reports).
fn main_program_base() -> Option<usize> {
    unsafe extern "C" fn first(info: *mut libc::dl_phdr_info, _: libc::size_t, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: valid for the callback's duration; data is our Option<usize>.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Option<usize>)) };
        // SAFETY: dlpi_phdr points at dlpi_phnum headers.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let first_load = phdrs.iter().find(|p| p.p_type == libc::PT_LOAD).map(|p| p.p_vaddr).unwrap_or(0);
        *out = Some((info.dlpi_addr + first_load) as usize);
        1
    }
    let mut base = None;
    // SAFETY: the callback writes only through the pointer we pass.
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut base as *mut Option<usize>).cast()) };
    base
}
