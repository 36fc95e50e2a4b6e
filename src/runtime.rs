//! The library's life cycle: start-up in the load-time constructor, thread start and exit,
//! fork, exec and process exit. Hooks call in here; this file decides what happens.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use crate::collect::ring::{Header, Kind};
use crate::config::Config;
use crate::export::exporter;
use crate::sample::{signal, timer, unwind, wall};
use crate::status::{active, config, is_owner_process};
use crate::thread;
use crate::{log_debug, log_info, log_warn};

/// The pthread key whose destructor tells us a thread is exiting.
static THREAD_EXIT_KEY: AtomicI32 = AtomicI32::new(-1);

/// Load-time start-up. The ring and caches are ready before the first timer is armed; the
/// unwinder's module list is the exporter thread's first job (DESIGN.md §3 rule 6 relaxed:
/// a sample taken before it is published has only its leaf address, see `exporter::start`).
pub fn start() {
    let _guard = thread::ReentrancyGuard::enter();
    // The hooks of _exit, exec*, sigaction and signal forward to these even when profiling is off:
    // looked up now, once, not with a dlsym in every forked child that exits.
    crate::real::resolve_next_symbols();
    let config = Arc::new(Config::from_env());
    crate::log::set_level(config.log_level);
    if !config.enabled {
        return;
    }
    let config = crate::status::set_config(config).clone();
    // SAFETY: getpid has no preconditions.
    crate::status::set_owner_pid(unsafe { libc::getpid() });
    crate::family::init();
    crate::sample::modules::note_startup_modules();
    let t0 = std::time::Instant::now();
    crate::collect::init_ring(config.max_frames);
    crate::collect::set_deferred_start(crate::profiler_threads::start_if_due);
    // The module list (~0.5 ms) and the interpreter search (~0.1 ms) are the exporter
    // thread's first work, not the program's: a helper process that lives a few
    // milliseconds (a shell, `readlink`) does not wait for them. Samples taken in the first
    // instants of a process have only their leaf address.
    let t1 = std::time::Instant::now();
    crate::python_gil::set_drain(exporter::drain_now);
    create_thread_exit_key();
    install_fork_handlers();
    start_signal_sampling(&config);
    crate::sample::alloc::configure(config.heap_sample_size, config.memory_enabled, config.heap_enabled);
    crate::sample::lock::configure(config.lock_enabled, config.lock_sample_interval_ns, config.lock_hold_sample_every);
    crate::sample::exception::configure(config.exception_enabled, config.exception_sampling_interval);
    crate::profiler_threads::start_threads(config.clone(), config.wall_interval);
    crate::status::set_active();
    crate::termination::install(on_process_exit);
    // SAFETY: registering a plain extern "C" function with atexit.
    unsafe { libc::atexit(at_exit) };
    on_thread_start();
    let t4 = std::time::Instant::now();
    log_debug!("start-up: ring {:?}, the rest {:?}", t1 - t0, t4 - t1);
    log_info!("profiling started (service {})", config.service);
}

/// CPU and wall sampling share the SIGPROF handler.
fn start_signal_sampling(config: &Config) {
    if !config.cpu_enabled && !config.wall_enabled {
        return;
    }
    if !signal::install() {
        log_warn!("the program already handles SIGPROF; CPU and wall-time profiling are disabled so that its handler keeps working");
        return;
    }
    if config.cpu_enabled {
        timer::CPU_TIMERS_ENABLED.store(true, Ordering::Release);
        signal::CPU_SAMPLING.store(true, Ordering::Release);
    }
    if config.wall_enabled {
        wall::enable();
    }
}

/// Runs on every new thread (and the main thread at start-up) before its own code.
pub fn on_thread_start() {
    if !active() {
        return;
    }
    // The library's own allocations here (stack bounds, timer registry) are not the thread's.
    let _guard = thread::ReentrancyGuard::enter();
    crate::real::resolve_next_symbols();
    thread::register_current();
    let key = THREAD_EXIT_KEY.load(Ordering::Acquire);
    // SAFETY: the key was created by pthread_key_create; any non-null value arms the destructor.
    let exit_seen = key >= 0 && unsafe { libc::pthread_setspecific(key as libc::pthread_key_t, 1 as *const libc::c_void) } == 0;
    arm_cpu_timer();
    // The wall sampler reaches into the thread's TLS until the thread unregisters, which only
    // the exit destructor does: without it the thread is not watched.
    if exit_seen && wall::WALL_SAMPLING.load(Ordering::Acquire) {
        wall::register_current(thread::with(|s| s.tid.get()));
    }
}

fn arm_cpu_timer() {
    let Some(config) = config() else { return };
    if !config.cpu_enabled {
        return;
    }
    let interval_ns = 1_000_000_000 / config.cpu_frequency_hz.max(1) as u64;
    let tid = thread::with(|s| s.tid.get());
    timer::start_for_current_thread(tid, signal::CPU_SIGNAL, interval_ns);
}

fn create_thread_exit_key() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: key is a valid out-pointer; the destructor is a plain extern "C" function.
    if unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } == 0 {
        THREAD_EXIT_KEY.store(key as i32, Ordering::Release);
    }
}

/// pthread key destructor: the thread is exiting. Its timer goes, and its name is sent to
/// the cold side while the kernel still knows it.
unsafe extern "C" fn on_thread_exit(_value: *mut libc::c_void) {
    let tid = thread::with(|s| s.tid.replace(0));
    if tid == 0 {
        return;
    }
    timer::stop_for_thread(tid);
    wall::unregister(tid);
    send_unsampled_cpu(tid);
    send_thread_name(tid);
}

/// The CPU a thread used since its last CPU sample would be lost at its exit (up to one
/// sampling period per thread). It is sent without a stack; the cold side adds it to the
/// thread's last sampled stack.
fn send_unsampled_cpu(tid: i32) {
    if !signal::CPU_SAMPLING.load(Ordering::Acquire) {
        return;
    }
    let tail = thread::with(|s| thread::thread_cpu_ns().saturating_sub(s.last_cpu_ns.get()));
    if tail == 0 {
        return;
    }
    let Some(slot) = crate::collect::claim_patiently() else { return };
    slot.commit(Header { kind: Kind::Cpu, tid, values: [0, tail as i64], extra: [0, 0], native_len: 0 }, 0);
}

fn send_thread_name(tid: i32) {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes into the buffer.
    if unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) } != 0 {
        return;
    }
    let len = name.iter().position(|&b| b == 0).unwrap_or(16);
    let Some(ring) = crate::collect::ring() else { return };
    let Some(slot) = ring.claim() else { return };
    for (i, chunk) in name.chunks(8).enumerate() {
        slot.set_frame(i, u64::from_ne_bytes(chunk.try_into().unwrap()));
    }
    slot.commit(Header { kind: Kind::ThreadName, tid, values: [len as i64, 0], extra: [0, 0], native_len: 0 }, 2);
}

extern "C" fn at_exit() {
    on_process_exit();
}

/// exit(), return from main, _exit(), _Exit(): stop sampling and write the last profile,
/// waiting at most DD_PROFILING_EXIT_FLUSH_TIMEOUT. Only the process that owns the profile
/// does this (a vfork child shares our memory and must not).
pub fn on_process_exit() {
    end_profile(false);
}

/// The end of this image's profile: at exit, or before an exec (`exec`).
fn end_profile(exec: bool) {
    if !active() || !is_owner_process() || !crate::status::end_profile() {
        return;
    }
    let _guard = thread::ReentrancyGuard::enter();
    // Taken first: accounting the last wall time below claims ring slots, which would
    // otherwise start a deferred child's threads at its very exit.
    let export_here = crate::profiler_threads::take_for_exit();
    // Not before an exec: the new image (same pid) would write its first profile before the
    // parent wrote this one, and the older profile would get the later sequence number.
    if export_here && !exec && exporter::hand_over_if_quiet() {
        // A forked child that recorded nothing: its parent writes its profile (handoff.rs).
        // Its timer goes with the process; anything sampled from now on (a CPU signal, the
        // program's later atexit handlers) lands in a ring nobody drains, and claims fail fast
        // once the profile has ended (collect::claim_patiently).
        return;
    }
    if !config().is_some_and(|c| c.empty_profiles) && exporter::nothing_recorded() {
        // Nothing to write (a shell, /bin/true): no final export to wait for.
        signal::CPU_SAMPLING.store(false, Ordering::Release);
        timer::stop_all();
        return;
    }
    // Children that exit from now on write their own profiles; those that handed theirs
    // over already are written below, whatever the exporter thread manages.
    crate::export::handoff::stop_accepting();
    signal::CPU_SAMPLING.store(false, Ordering::Release);
    timer::stop_all();
    wall::stop_and_account();
    crate::sample::alloc::stop();
    crate::sample::lock::stop();
    crate::sample::exception::stop();
    if export_here {
        // A forked child whose exporter never started: export right here rather than start
        // a thread only to wait for it.
        if let Some(config) = config() {
            exporter::export_inline(config.clone());
        }
        return;
    }
    let timeout = config().map(|c| c.exit_flush_timeout).unwrap_or_default();
    exporter::final_flush(timeout);
    if let Some(config) = config() {
        exporter::write_children_profiles(config);
        // A child's file is a few hundred bytes: this waits for one write, not for the Agent.
        crate::export::handoff::wait_until_written(std::time::Duration::from_millis(50));
    }
}

/// exec replaces the image: write what this image sampled so far.
pub fn before_exec() {
    end_profile(true);
}

/// exec failed and the program goes on: profiling of this image has ended; say so.
pub fn after_failed_exec() {
    if active() && is_owner_process() {
        // A quiet child's hand-over left its timer running: nothing exports its samples now.
        signal::CPU_SAMPLING.store(false, Ordering::Release);
        timer::stop_all();
        log_warn!("exec failed after the profile was flushed; this process is no longer profiled");
    }
}

/// The program takes SIGPROF for itself: stop CPU sampling before its handler is installed.
pub fn yield_cpu_signal() {
    // A vfork/posix_spawn child shares our memory: CPython's subprocess child resets every
    // handler, SIGPROF included, to SIG_DFL before exec. That concerns its own signal table,
    // not the parent's sampling, and it must write nothing here.
    if !is_owner_process() {
        return;
    }
    let cpu = signal::CPU_SAMPLING.swap(false, Ordering::AcqRel);
    let wall = wall::WALL_SAMPLING.swap(false, Ordering::AcqRel);
    if !cpu && !wall {
        return;
    }
    timer::stop_all();
    log_warn!("the program installs its own SIGPROF handler; CPU profiling stops so that its handler works as it expects");
}

// ---------------------------------------------------------------- fork

fn install_fork_handlers() {
    // SAFETY: registering plain extern "C" functions.
    unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork_in_parent), Some(after_fork_in_child)) };
}

/// The forking thread must not take SIGPROF during fork: in big processes the signal can
/// keep restarting clone() (DESIGN.md §3 rule 11).
unsafe extern "C" fn before_fork() {
    // SAFETY: both sets are valid; `old` receives the thread's mask before the change.
    let was_blocked = unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &thread::sigprof_set(), &mut old) == 0 && libc::sigismember(&old, libc::SIGPROF) == 1
    };
    // glibc runs prepare handler, fork and parent/child handlers of one fork under its atfork
    // lock, so a single flag is enough even when several threads fork.
    SIGPROF_BLOCKED_BEFORE_FORK.store(was_blocked, Ordering::Relaxed);
    // A fork while the exporter thread reads the module list at start-up (inside the loader's
    // dl_iterate_phdr, under its lock) would leave the child a loader lock nobody releases:
    // the fork waits for that first read (about a millisecond, bounded).
    if active() {
        unwind::wait_for_modules();
        // Last: from here to the fork the library's threads stay out of the loader.
        crate::fork_safe::hold_loader_for_fork();
        LOADER_HELD_FOR_FORK.store(true, Ordering::Relaxed);
    }
    crate::profiler_threads::before_fork();
    if active() {
        exporter::before_fork();
    }
}

/// Whether the forking thread had SIGPROF blocked already: then it stays blocked after the
/// fork, on both sides (the program's signal mask is the program's business).
static SIGPROF_BLOCKED_BEFORE_FORK: AtomicBool = AtomicBool::new(false);

/// The prepare handler holds the loader for the fork (see `fork_safe::with_loader`).
static LOADER_HELD_FOR_FORK: AtomicBool = AtomicBool::new(false);

fn release_loader_after_fork() {
    if LOADER_HELD_FOR_FORK.swap(false, Ordering::Relaxed) {
        crate::fork_safe::release_loader_after_fork();
    }
}

unsafe extern "C" fn after_fork_in_parent() {
    release_loader_after_fork();
    restore_cpu_signal_after_fork();
}

/// In the child only the forking thread exists. Every lock and buffer shared with the
/// parent's other threads is reset, the parent's unexported samples are dropped, and the
/// child gets its own timer, and its own exporter and wall sampler threads at once or, in a
/// fork burst, when it turns out to live on (profiler_threads.rs), so it leaves profiles under
/// its own pid.
unsafe extern "C" fn after_fork_in_child() {
    release_loader_after_fork();
    crate::own_heap::after_fork_in_child();
    if !active() {
        restore_cpu_signal_after_fork();
        return;
    }
    // The library's own allocations here (exporter, timers) are not the program's.
    let _guard = thread::ReentrancyGuard::enter();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    crate::status::set_owner_pid(pid);
    crate::status::reopen_profile();
    // The forking thread is the child's main thread: its tid is the pid.
    thread::with(|s| s.tid.set(pid));
    // Every page this handler touches costs a child page fault (≈ 5 µs on this machine,
    // against ≈ 120 µs for a whole fork + _exit + wait): no allocation, no clock read.
    let forked_at = crate::profiler_threads::forked_at_ns();
    if let Some(ring) = crate::collect::ring() {
        ring.reset();
    }
    unwind::reset_after_fork();
    timer::reset_after_fork();
    crate::profile::heap::after_fork_in_child();
    crate::export::upload::reset_after_fork();
    crate::python::after_fork_in_child();
    crate::profile::python_frames::after_fork_in_child();
    crate::python_gil::after_fork_in_child();
    crate::profile::symbolize::after_fork_in_child();
    unwind::tracker_after_fork_in_child();
    exporter::after_fork_in_child();
    // A new process's thread CPU clock starts at zero.
    thread::with(|s| s.last_cpu_ns.set(0));
    arm_cpu_timer();
    // In a fork burst the child's wall watching waits for its threads, like the sampler.
    let deferred = crate::profiler_threads::fork_was_in_burst();
    wall::after_fork_in_child(pid, (!deferred).then_some(forked_at));
    if let Some(config) = config() {
        crate::profiler_threads::after_fork_in_child(config, forked_at);
    }
    restore_cpu_signal_after_fork();
}

fn restore_cpu_signal_after_fork() {
    if !SIGPROF_BLOCKED_BEFORE_FORK.load(Ordering::Relaxed) {
        unblock_cpu_signal();
    }
}

fn unblock_cpu_signal() {
    // SAFETY: the set is valid; the old mask is not wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &thread::sigprof_set(), std::ptr::null_mut()) };
}
