//! The exporter thread: the whole cold side runs here.
//!
//! Every 100 ms it drains the sample ring into the aggregator and refreshes the module list
//! (so code loaded with `dlopen` can be unwound). Every `DD_PROFILING_UPLOAD_PERIOD` it turns
//! the period into a pprof profile and hands it to the destination. At exit it is asked for
//! one final export and the exiting thread waits for it, at most `exit_flush_timeout`.

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::profile::aggregate::{self, Aggregator};
use crate::profile::builder::encode_gzip;
use crate::profile::encode::{encode_period, EncodeOptions};
use crate::profile::symbolize::Symbolizer;
use crate::sample::unwind::ModuleTracker;
use crate::{log_debug, log_warn};

const DRAIN_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Control {
    final_requested: bool,
    final_done: bool,
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

/// Starts the exporter thread. `tracker` has already published the first module list.
pub fn start(config: Arc<Config>, tracker: Option<ModuleTracker>) {
    let shared = Box::leak(Box::new(Shared { control: Mutex::new(Control::default()), wake: Condvar::new() }));
    SHARED.store(shared, Ordering::Release);
    let spawned = crate::thread::spawn_internal("ddprof-exporter", move || {
        let tracker = tracker.unwrap_or_else(|| {
            let mut t = ModuleTracker::new();
            t.refresh();
            t
        });
        Exporter::new(config, tracker).run(shared);
    });
    if let Err(e) = spawned {
        log_warn!("could not start the exporter thread ({e}); no profile will be written");
    }
}

/// Asks the exporter for a last export and waits for it, at most `timeout`.
pub fn final_flush(timeout: Duration) {
    let Some(shared) = shared() else { return };
    let Ok(mut control) = shared.control.lock() else { return };
    control.final_requested = true;
    shared.wake.notify_all();
    let deadline = Instant::now() + timeout;
    while !control.final_done {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        control = match shared.wake.wait_timeout(control, left) {
            Ok((guard, _)) => guard,
            Err(_) => return,
        };
    }
}

struct Exporter {
    config: Arc<Config>,
    tracker: ModuleTracker,
    aggregator: Aggregator,
    symbolizer: Symbolizer,
    seq: u64,
    columns: Vec<usize>,
    write_failed: bool,
}

impl Exporter {
    fn new(config: Arc<Config>, tracker: ModuleTracker) -> Self {
        let columns = enabled_columns(&config);
        Exporter { config, tracker, aggregator: Aggregator::new(), symbolizer: Symbolizer::new(), seq: 0, columns, write_failed: false }
    }

    fn run(mut self, shared: &Shared) {
        let mut next_export = Instant::now() + self.config.upload_period;
        loop {
            let final_requested = wait(shared, DRAIN_INTERVAL);
            self.tracker.refresh();
            self.drain();
            if final_requested || Instant::now() >= next_export {
                self.export();
                next_export = Instant::now() + self.config.upload_period;
            }
            if final_requested {
                if let Ok(mut control) = shared.control.lock() {
                    control.final_done = true;
                }
                shared.wake.notify_all();
                return;
            }
        }
    }

    fn drain(&mut self) {
        let Some(ring) = crate::collect::ring() else { return };
        let aggregator = &mut self.aggregator;
        ring.drain(|header, frames| aggregator.add(header, frames));
        aggregator.add_dropped(ring.take_dropped());
    }

    fn export(&mut self) {
        let started = Instant::now();
        let period = self.aggregator.take_period();
        let cpu_period_ns = self.config.cpu_enabled.then(|| 1_000_000_000 / self.config.cpu_frequency_hz.max(1) as i64);
        let options = EncodeOptions {
            columns: &self.columns,
            cpu_period_ns,
            mappings: self.tracker.all_mappings(),
            comments: &[format!("libddprof {} ({})", env!("CARGO_PKG_VERSION"), env!("DDPROF_COMMIT"))],
        };
        let profile = encode_period(&period, &options, &mut self.symbolizer);
        let bytes = encode_gzip(&profile);
        self.seq += 1;
        self.deliver(&bytes);
        log_debug!(
            "profile {} exported: {} samples, {} bytes, {:?}",
            self.seq,
            profile.sample.len(),
            bytes.len(),
            started.elapsed()
        );
    }

    fn deliver(&mut self, bytes: &[u8]) {
        let Some(prefix) = &self.config.output_pprof else { return };
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let path = super::file::profile_path(prefix, pid, self.seq);
        match super::file::write_profile(&path, bytes) {
            Ok(()) => self.write_failed = false,
            Err(e) if !self.write_failed => {
                self.write_failed = true;
                log_warn!(
                    "cannot write profile {}: {e}; check DD_PROFILING_OUTPUT_PPROF (the directory must be writable)",
                    path.display()
                );
            }
            Err(_) => {}
        }
    }
}

/// Sleeps until the drain interval passes or the final export is requested; returns whether
/// it was requested.
fn wait(shared: &Shared, interval: Duration) -> bool {
    let Ok(control) = shared.control.lock() else { return true };
    if control.final_requested {
        return true;
    }
    match shared.wake.wait_timeout(control, interval) {
        Ok((control, _)) => control.final_requested,
        Err(_) => true,
    }
}

/// The sample types this build produces and the configuration enables.
fn enabled_columns(config: &Config) -> Vec<usize> {
    let mut columns = Vec::new();
    if config.cpu_enabled {
        columns.extend([aggregate::CPU_SAMPLES, aggregate::CPU_TIME]);
    }
    columns
}
