//! The exporter thread: the whole cold side runs here.
//!
//! Every 100 ms it drains the sample ring into the aggregator and refreshes the module list
//! (so code loaded with `dlopen` can be unwound). Every `DD_PROFILING_UPLOAD_PERIOD` it turns
//! the period into a pprof profile and hands it to the destination. At exit it is asked for
//! one final export and the exiting thread waits for it, at most `exit_flush_timeout`.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::profile::aggregate::{self, Aggregator, Period};
use crate::profile::builder::encode_gzip;
use crate::profile::encode::{encode_empty, encode_period, EncodeOptions};
use crate::{log_debug, log_warn};

const DRAIN_INTERVAL: Duration = Duration::from_millis(100);
/// When a drain finds the ring well filled, the next one comes sooner, so bursts of
/// samples (allocation-heavy phases) are not dropped.
const BUSY_DRAIN_INTERVAL: Duration = Duration::from_millis(5);

#[derive(Default)]
struct Control {
    final_requested: bool,
    final_done: bool,
    /// Drains asked for by `drain_now`, and the last one done.
    drains_requested: u64,
    drains_done: u64,
}

/// Shared between the exporter thread and whoever asks for the final export. Replaced (the
/// old one leaked) in a forked child, whose copy may have been locked by a vanished thread.
struct Shared {
    control: Mutex<Control>,
    wake: Condvar,
}

static SHARED: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());

fn shared() -> Option<&'static Shared> {
    let ptr = SHARED.load(Ordering::Acquire);
    // SAFETY: SHARED only ever holds leaked boxes, never freed.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

/// Set while this process's exporter thread runs (from its first instruction to its final
/// export): only then can it take its children's profiles.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// The wall-clock time of this process's last fork (ns since the epoch), recorded by the
/// prepare handler: in the child it is when the child's first period starts.
static LAST_FORK_NS: AtomicU64 = AtomicU64::new(0);
/// When this process's first period starts, in a forked child (0: when its exporter is made).
/// Kept as a number, not as an exporter made at the fork: building one allocates, and every
/// page a child writes costs it a page fault (≈ 5 µs here).
static FIRST_PERIOD_NS: AtomicU64 = AtomicU64::new(0);

fn realtime_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn time_at(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// A new process's exporter waits this long before its start-up work (the module list,
/// ~0.5 ms, and the interpreter search), unless woken: a helper that lives a millisecond
/// (`/bin/true`, `readlink` run by a shell) exits before any of it, and the first CPU or
/// wall sample, which needs the module list, comes after 10 ms of CPU or of wall time.
/// Whoever needs the list sooner wakes the exporter (`unwind::wait_for_modules`), and so do
/// a filling ring and the exit's final export.
const STARTUP_GRACE: Duration = Duration::from_millis(5);

/// Starts the exporter thread. `after_start_up` runs on it once the module list is known
/// (it starts the wall sampler).
pub fn start(config: Arc<Config>, after_start_up: Box<dyn FnOnce() + Send>) {
    let shared = Box::leak(Box::new(Shared { control: Mutex::new(Control::default()), wake: Condvar::new() }));
    SHARED.store(shared, Ordering::Release);
    // Read before the thread exists, so that a wake sent before it sleeps still ends its grace.
    let wakes = crate::collect::wakes_so_far();
    let started = SystemTime::now();
    let spawned = crate::thread::spawn_internal("ddprof-exporter", move || {
        start_up(wakes);
        // Made after the grace: a helper that exits within it never builds (nor faults in
        // the pages of) an aggregator. Its first period still starts when the thread did.
        let exporter = Exporter::new(config, started);
        after_start_up();
        exporter.run(shared);
    });
    if let Err(e) = spawned {
        log_warn!("could not start the exporter thread ({e}); no profile will be written");
    }
}

/// The process's start-up work, done on the exporter thread rather than on the program's,
/// after the grace (a forked child inherits the module list and skips both).
fn start_up(wakes_at_start: u32) {
    RUNNING.store(true, Ordering::Release);
    if crate::sample::unwind::modules_known() {
        return;
    }
    crate::collect::wait_for_work_since(wakes_at_start, STARTUP_GRACE);
    crate::fork_safe::with_loader(|| {
        crate::sample::unwind::with_tracker(|tracker| tracker.refresh());
        crate::python_gil::refresh();
    });
}

/// In the parent's fork prepare handler.
pub fn before_fork() {
    LAST_FORK_NS.store(realtime_ns(), Ordering::Relaxed);
    // Children's empty profiles can be taken while this process's exporter thread runs.
    super::handoff::before_fork(RUNNING.load(Ordering::Acquire));
}

/// In a forked child: the parent's exporter thread is gone, and its `Shared` may have been
/// locked by it at the fork: forgotten (leaked). The child's exporter is made when its thread
/// starts or at its exit; its first period starts at the fork (as the parent's prepare
/// handler read the clock).
pub fn after_fork_in_child() {
    SHARED.store(std::ptr::null_mut(), Ordering::Release);
    if RUNNING.load(Ordering::Relaxed) {
        RUNNING.store(false, Ordering::Relaxed);
    }
    FIRST_PERIOD_NS.store(LAST_FORK_NS.load(Ordering::Relaxed), Ordering::Relaxed);
    super::handoff::after_fork_in_child();
}

/// At the exit of a forked child whose exporter never started: if it recorded nothing, it
/// writes nothing — or, with DD_PROFILING_EMPTY_PROFILES, hands its empty profile to its
/// parent (handoff.rs) — and returns true.
pub fn hand_over_if_quiet() -> bool {
    let forked_at = FIRST_PERIOD_NS.load(Ordering::Relaxed);
    if forked_at == 0 || !quiet_since_fork() {
        return false;
    }
    // Nothing to write at all, unless empty profiles are wanted.
    !crate::status::config().is_some_and(|c| c.empty_profiles) || super::handoff::post(forked_at, realtime_ns_by_syscall())
}

/// The final export of a process that never started its exporter thread (a short-lived
/// forked child, see profiler_threads.rs), done on the calling (exiting) thread: refresh the
/// module list, drain the ring, export. There is nothing to wait for, hence no timeout.
pub fn export_inline(config: Arc<Config>) {
    // With nothing recorded there is nothing to unwind or name: no module list to refresh.
    if !quiet_since_fork() {
        crate::sample::unwind::with_tracker(|tracker| tracker.refresh());
        crate::python_gil::refresh();
        crate::profile::python_frames::check_health();
    }
    let mut exporter = Exporter::new(config, SystemTime::now());
    exporter.drain();
    exporter.export();
}

/// Nothing will be in this image's profile: no record since it started (or since the fork,
/// in a forked child), no inherited live heap sample.
pub fn nothing_recorded() -> bool {
    quiet_since_fork()
}

/// Nothing will be in this forked child's profile: no record since the fork, no inherited
/// live heap sample.
fn quiet_since_fork() -> bool {
    crate::collect::ring().is_none_or(|ring| ring.untouched_since_fork())
        && crate::profile::heap::nothing_live()
        && crate::collect::live_heap::lost() == 0
}

/// The clock read with a system call: in a forked child, the vDSO's page is one more fault.
fn realtime_ns_by_syscall() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer for clock_gettime.
    let rc = unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_REALTIME, &mut ts) };
    if rc != 0 {
        return realtime_ns();
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Asks the exporter for a last export and waits for it, at most `timeout`.
pub fn final_flush(timeout: Duration) {
    ask_and_wait(timeout, |control| {
        control.final_requested = true;
        Some(Box::new(|c: &Control| c.final_done))
    });
}

/// Has the exporter drain the ring now and waits for it, at most `timeout`: whatever was
/// recorded before the call is then aggregated (and its Python frames named). For the
/// interpreter's finalization (python_gil/exit_drain.rs).
pub fn drain_now(timeout: Duration) {
    ask_and_wait(timeout, |control| {
        if control.final_requested {
            return None;
        }
        control.drains_requested += 1;
        let wanted = control.drains_requested;
        Some(Box::new(move |c: &Control| c.drains_done >= wanted || c.final_done))
    });
}

/// A test of the exporter's progress.
type Done = Box<dyn Fn(&Control) -> bool>;

/// Under the control lock, `ask` records a request (None: nothing to ask); then the exporter
/// is woken and the caller waits until the returned test holds, at most `timeout`.
fn ask_and_wait(timeout: Duration, ask: impl FnOnce(&mut Control) -> Option<Done>) {
    let Some(shared) = shared() else { return };
    let Ok(mut control) = shared.control.lock() else { return };
    let Some(done) = ask(&mut control) else { return };
    crate::collect::wake_exporter();
    let deadline = Instant::now() + timeout;
    while !done(&control) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        control = match shared.wake.wait_timeout(control, left) {
            Ok((guard, _)) => guard,
            Err(_) => return,
        };
    }
}

struct Exporter {
    config: Arc<Config>,
    aggregator: Aggregator,
    seq: u64,
    columns: Vec<usize>,
    write_failed: bool,
    /// Created with the first profile to upload (when DD_PROFILING_OUTPUT_PPROF is unset).
    uploader: Option<super::upload::Uploader>,
    /// Sampled allocations the live-heap table had no room for (reported in the profile).
    heap_untracked: u64,
    /// Some period of this process had a sample (see `export`).
    sampled: bool,
}

impl Exporter {
    /// `started`: when this process's first period starts (a forked child's is its fork).
    fn new(config: Arc<Config>, started: SystemTime) -> Self {
        let columns = enabled_columns(&config);
        let aggregator = match FIRST_PERIOD_NS.swap(0, Ordering::Relaxed) {
            0 => Aggregator::starting_at(started),
            forked_at => Aggregator::starting_at(time_at(forked_at)),
        };
        Exporter { config, aggregator, seq: 0, columns, write_failed: false, uploader: None, heap_untracked: 0, sampled: false }
    }

    fn run(mut self, shared: &Shared) {
        let mut next_export = Instant::now() + self.config.upload_period;
        let mut next_refresh = Instant::now();
        let mut busy = false;
        loop {
            // While a Python interpreter starts, its allocator hook is wanted as early as
            // possible: allocations made before it is in place are not seen.
            let python_starting = crate::python_gil::starting();
            let final_requested = wait(shared, if busy || python_starting { BUSY_DRAIN_INTERVAL } else { DRAIN_INTERVAL });
            if final_requested || python_starting || Instant::now() >= next_refresh {
                crate::fork_safe::with_loader(|| {
                    crate::sample::unwind::with_tracker(|tracker| tracker.refresh());
                    crate::python_gil::refresh();
                });
                crate::profile::python_frames::check_health();
                next_refresh = Instant::now() + DRAIN_INTERVAL;
            }
            let asked = drains_asked(shared);
            busy = self.drain() >= crate::collect::BUSY_DRAIN_RECORDS;
            if asked > 0 {
                if let Ok(mut control) = shared.control.lock() {
                    control.drains_done = control.drains_done.max(asked);
                }
                shared.wake.notify_all();
            }
            // Before the final export: its upload flush also sends the children's profiles.
            self.take_children_profiles();
            if final_requested || Instant::now() >= next_export {
                self.export();
                next_export = Instant::now() + self.config.upload_period;
            }
            if final_requested {
                RUNNING.store(false, Ordering::Release);
                if let Ok(mut control) = shared.control.lock() {
                    control.final_done = true;
                }
                shared.wake.notify_all();
                return;
            }
        }
    }

    /// Moves every published record into the aggregator; returns how many there were.
    fn drain(&mut self) -> usize {
        let Some(ring) = crate::collect::ring() else { return 0 };
        let aggregator = &mut self.aggregator;
        let mut records = 0;
        ring.drain(|header, frames| {
            records += 1;
            aggregator.add(header, frames)
        });
        aggregator.end_drain();
        aggregator.add_dropped(ring.take_dropped());
        let lost = crate::collect::live_heap::take_lost();
        if lost > 0 {
            self.heap_untracked += lost;
        }
        records
    }

    fn export(&mut self) {
        let started = Instant::now();
        let period = self.aggregator.take_period();
        // A process that has recorded nothing yet (a shell, a pyenv shim, /bin/true) leaves
        // no file and sends nothing: it would only be noise.
        self.sampled |= !period.samples.is_empty();
        if !self.sampled && !self.config.empty_profiles {
            log_debug!("nothing recorded yet: no profile exported");
            return;
        }
        let profile = self.encode(&period, &self.comments());
        let bytes = encode_gzip(&profile);
        let size = bytes.len();
        self.seq += 1;
        self.deliver(bytes, period.start, period.end, started);
        log_debug!(
            "profile {} exported: {} samples, {} bytes, {:?}",
            self.seq,
            profile.sample.len(),
            size,
            started.elapsed()
        );
        // What the profiler's own bookkeeping costs (drains, symbolization, encoding), for
        // `make bench`: this thread's CPU since it started.
        log_debug!("exporter thread CPU: {:.1} ms in total", crate::thread::thread_cpu_ns() as f64 / 1e6);
        super::code_pages::release();
    }

    /// The profiles quiet children handed over (handoff.rs): written to files, or queued for
    /// upload under each child's identity.
    fn take_children_profiles(&mut self) {
        if self.config.output_pprof.is_some() {
            return write_children_profiles(&self.config);
        }
        let uploader = &mut self.uploader;
        take_children_profiles(&self.config, |pid, period, bytes| {
            log_debug!("uploading the profile of quiet child {pid}");
            let config = self.config.clone();
            uploader.get_or_insert_with(|| super::upload::Uploader::new(config)).submit_child(pid, period.start, period.end, bytes);
        });
    }

    fn encode(&self, period: &Period, comments: &[String]) -> crate::profile::pprof::Profile {
        if period.samples.is_empty() {
            // Nothing to name (a quiet process): the symbolizer is not even made.
            let options = EncodeOptions { columns: &self.columns, cpu_period_ns: cpu_period_ns(&self.config), mappings: &[], comments };
            return encode_empty(period, &options);
        }
        let mappings = crate::sample::unwind::with_tracker(|tracker| tracker.all_mappings().to_vec());
        let options = EncodeOptions { columns: &self.columns, cpu_period_ns: cpu_period_ns(&self.config), mappings: &mappings, comments };
        crate::profile::symbolize::with_shared(|symbolizer| {
            symbolizer.set_separate_debug_info(self.config.separate_debug_info);
            encode_period(period, &options, symbolizer)
        })
    }

    fn comments(&self) -> Vec<String> {
        let mut comments = vec![version_comment()];
        if self.heap_untracked > 0 {
            comments.push(format!(
                "libddprof: {} sampled allocations were not tracked for heap-space (live table full)",
                self.heap_untracked
            ));
        }
        comments
    }

    /// Writes the profile to a file, or hands it to the uploader. The final export (at exit)
    /// also waits for the upload: `final_flush` gives the exiting thread at most
    /// `exit_flush_timeout` from its request, so this wait ends a little earlier (counted from
    /// `export_started`, shortly after the request), leaving time to report a late upload.
    fn deliver(&mut self, bytes: Vec<u8>, start: std::time::SystemTime, end: std::time::SystemTime, export_started: Instant) {
        let Some(prefix) = &self.config.output_pprof else {
            // No exporter thread (an inline export at exit) means this is the final export.
            let is_final = shared().map_or(true, |s| s.control.lock().map(|c| c.final_requested).unwrap_or(false));
            let config = self.config.clone();
            let uploader = self.uploader.get_or_insert_with(|| super::upload::Uploader::new(config));
            uploader.submit(self.seq, start, end, bytes);
            if is_final {
                let timeout = self.config.exit_flush_timeout;
                uploader.flush(export_started + timeout - (timeout / 10).min(Duration::from_millis(100)));
            }
            return;
        };
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        match super::file::write_new_profile(prefix, pid, self.seq, &bytes) {
            Ok((_, seq)) => {
                self.seq = seq;
                self.write_failed = false;
            }
            Err(e) if !self.write_failed => {
                self.write_failed = true;
                let path = super::file::profile_path(prefix, pid, self.seq);
                log_warn!(
                    "cannot write profile {}: {e}; check DD_PROFILING_OUTPUT_PPROF (the directory must be writable)",
                    path.display()
                );
            }
            Err(_) => {}
        }
    }
}

fn cpu_period_ns(config: &Config) -> Option<i64> {
    config.cpu_enabled.then(|| 1_000_000_000 / config.cpu_frequency_hz.max(1) as i64)
}

/// Writes the profiles that quiet children handed over (handoff.rs) to files: what each
/// child's own final export would have written, without the symbolizer (there is nothing to
/// name), so that the exiting thread can do it too when the exporter thread did not finish in
/// time. (Uploads need the exporter's uploader: children's profiles still posted when it did
/// not finish are lost with the parent's own last profile.)
pub fn write_children_profiles(config: &Config) {
    let Some(prefix) = &config.output_pprof else { return };
    take_children_profiles(config, |pid, _, bytes| match super::file::write_new_profile(prefix, pid, 1, &bytes) {
        Ok(_) => log_debug!("wrote the profile of quiet child {pid}"),
        Err(e) => log_debug!("cannot write the profile of quiet child {pid}: {e}"),
    });
}

/// Takes each posted child profile, encoded (gzipped pprof of its empty life period), and
/// hands it to `deliver` before its slot is released.
fn take_children_profiles(config: &Config, mut deliver: impl FnMut(i32, &Period, Vec<u8>)) {
    let columns = enabled_columns(config);
    let comments = [version_comment()];
    let options = EncodeOptions { columns: &columns, cpu_period_ns: cpu_period_ns(config), mappings: &[], comments: &comments };
    super::handoff::take_posted(|child| {
        let period = Period {
            start: time_at(child.start_ns),
            end: time_at(child.end_ns.max(child.start_ns)),
            samples: Default::default(),
            thread_names: Default::default(),
            lock_names: Default::default(),
            dropped: 0,
        };
        let bytes = encode_gzip(&encode_empty(&period, &options));
        deliver(child.pid, &period, bytes);
    });
}

fn version_comment() -> String {
    format!("libddprof {} ({})", env!("CARGO_PKG_VERSION"), env!("DDPROF_COMMIT"))
}

/// Sleeps until the drain interval passes, the ring asks for a drain, or the final export is
/// requested; returns whether it was requested.
fn wait(shared: &Shared, interval: Duration) -> bool {
    if final_requested(shared) {
        return true;
    }
    crate::collect::wait_for_work(interval);
    final_requested(shared)
}

/// The drains asked for so far, when some are not done yet (else 0).
fn drains_asked(shared: &Shared) -> u64 {
    shared.control.lock().map(|c| if c.drains_requested > c.drains_done { c.drains_requested } else { 0 }).unwrap_or(0)
}

fn final_requested(shared: &Shared) -> bool {
    shared.control.lock().map(|c| c.final_requested).unwrap_or(true)
}

/// The sample types this build produces and the configuration enables.
fn enabled_columns(config: &Config) -> Vec<usize> {
    let mut columns = Vec::new();
    if config.cpu_enabled {
        columns.extend([aggregate::CPU_SAMPLES, aggregate::CPU_TIME]);
    }
    if config.wall_enabled {
        columns.extend([aggregate::WALL_SAMPLES, aggregate::WALL_TIME]);
    }
    if config.memory_enabled {
        columns.extend([aggregate::ALLOC_SAMPLES, aggregate::ALLOC_SPACE]);
    }
    if config.heap_enabled {
        columns.extend([aggregate::HEAP_LIVE_SAMPLES, aggregate::HEAP_SPACE]);
    }
    if config.lock_enabled {
        columns.extend([aggregate::LOCK_ACQUIRE, aggregate::LOCK_ACQUIRE_WAIT, aggregate::LOCK_RELEASE, aggregate::LOCK_RELEASE_HOLD]);
    }
    if config.exception_enabled {
        columns.push(aggregate::EXCEPTION_SAMPLES);
    }
    columns
}
