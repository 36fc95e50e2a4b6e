//! Uploads each profile to the Datadog Agent (intake v4): `POST /profiling/v1/input` with a
//! multipart form holding `event.json` and `profile.pprof`.
//!
//! The exporter hands profiles over with [`Uploader::submit`] and goes straight back to
//! draining samples; a separate thread (`ddprof-upload`) does the network work, so a slow or
//! silent Agent never stalls sampling. The promises to the program:
//! - every request is bounded by `DD_PROFILING_UPLOAD_TIMEOUT` (connect, send and answer);
//! - at most [`BACKLOG`] unsent profiles are kept; when more arrive the oldest is dropped, and
//!   the count of dropped profiles goes into the next event's `info.upload`;
//! - only transient failures (connection refused or reset, no socket yet, HTTP 408/429/5xx) are
//!   retried, at most [`MAX_RETRIES`] times within the period; others drop the profile; at
//!   exit an Agent that is not listening at all is not retried (no process waits for it);
//! - failures cost one warning naming the URL and what to check, then at most one a minute;
//!   forked children do not repeat a warning their family printed (`crate::family`);
//! - at exit, the final upload is waited for at most `DD_PROFILING_EXIT_FLUSH_TIMEOUT`, and
//!   requests made for it end by that deadline too.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::http;
use super::multipart::{self, Part};
use crate::config::Config;
use crate::{log_debug, log_info, log_warn};

/// Where the Agent receives profiles.
pub const INTAKE_PATH: &str = "/profiling/v1/input";
/// Unsent profiles kept while the Agent is unreachable or busy with an earlier one.
pub const BACKLOG: usize = 4;
/// Unsent profiles of quiet forked children (handed over to this process, see handoff.rs)
/// kept besides: each is a few hundred bytes, and a fork burst hands over many at once.
pub const CHILD_BACKLOG: usize = 256;
/// Extra attempts for a transient failure, within one period.
pub const MAX_RETRIES: u32 = 2;
/// Attempts for a transient failure during the exit flush (its deadline is short).
const FLUSH_RETRIES: u32 = 1;
const FLUSH_BACKOFF: Duration = Duration::from_millis(100);
/// After the first warning, upload problems are reported at most this often.
const WARN_INTERVAL: Duration = Duration::from_secs(60);
pub const ORIGIN: &str = "libddprof";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// ---------------------------------------------------------------- runtime id

/// The pid the runtime id below was made for; 0 until made. A forked child sees another pid
/// and makes its own, even if [`reset_after_fork`] was not called.
static RUNTIME_ID_PID: AtomicI32 = AtomicI32::new(0);
static RUNTIME_ID: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Forgets the parent's runtime id in a forked child (async-signal-safe: two atomic stores'
/// worth of work, no allocation, no lock).
pub fn reset_after_fork() {
    RUNTIME_ID_PID.store(0, Ordering::Release);
}

/// This process's runtime id: a random (version 4) UUID, made on first use.
pub fn runtime_id() -> String {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    if RUNTIME_ID_PID.load(Ordering::Acquire) != pid {
        let b = random_bytes();
        RUNTIME_ID[0].store(
            u64::from_be_bytes(b[..8].try_into().unwrap()),
            Ordering::Relaxed,
        );
        RUNTIME_ID[1].store(
            u64::from_be_bytes(b[8..].try_into().unwrap()),
            Ordering::Relaxed,
        );
        RUNTIME_ID_PID.store(pid, Ordering::Release);
    }
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&RUNTIME_ID[0].load(Ordering::Relaxed).to_be_bytes());
    b[8..].copy_from_slice(&RUNTIME_ID[1].load(Ordering::Relaxed).to_be_bytes());
    format_uuid_v4(b)
}

/// `xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx` (Y one of 8, 9, a, b) from 16 random bytes.
pub fn format_uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = multipart::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// 16 bytes from getrandom(2), else /dev/urandom, else (never seen in practice) the clock,
/// the pid and a stack address mixed together: good enough to tell runs apart.
pub fn random_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    // SAFETY: b is valid for 16 bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n == 16 {
        return b;
    }
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        if f.read_exact(&mut b).is_ok() {
            return b;
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u64;
    let mut x = now ^ (pid << 32) ^ (&b as *const _ as u64);
    for chunk in b.chunks_mut(8) {
        // splitmix64 steps
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    b
}

// ---------------------------------------------------------------- formatting

/// RFC 3339 in UTC with nanoseconds: `2026-11-29T02:12:06.123456789Z`. Times before 1970 are
/// shown as the epoch (they do not occur: they come from the system clock).
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_date(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// (year, month 1-12, day 1-31) of the `days`-th day after 1970-01-01 in the proleptic
/// Gregorian calendar. A walk over years then months: at most a few hundred steps.
pub fn civil_date(mut days: u64) -> (u64, u32, u32) {
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut year = 1970;
    // Whole 400-year cycles (146097 days each) first, so far-off dates stay cheap.
    year += 400 * (days / 146_097);
    days %= 146_097;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let lengths = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 1;
    for len in lengths {
        if days < len {
            break;
        }
        days -= len;
        month += 1;
    }
    (year, month, days as u32 + 1)
}

/// A JSON string literal, quotes included.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The machine's host name (gethostname), or "" when it cannot be read.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// Tags are joined with commas, so a comma inside a value (possible in DD_SERVICE, say)
/// would split it in two; such characters become `_`.
fn tag_part(s: &str) -> String {
    s.chars()
        .map(|c| if c == ',' || c.is_control() { '_' } else { c })
        .collect()
}

/// What stays the same for every profile of this process.
struct Identity {
    /// `service:…,env:…,version:…,<DD_TAGS>,<DD_PROFILING_TAGS>,language:native,profiler_version:…`
    fixed_tags: String,
    host: String,
    /// `info` object (JSON) without the upload statistics.
    profiler_info: String,
}

impl Identity {
    fn new(config: &Config) -> Identity {
        let mut tags: Vec<(String, String)> = vec![("service".into(), config.service.clone())];
        if let Some(env) = &config.env {
            tags.push(("env".into(), env.clone()));
        }
        if let Some(version) = &config.version {
            tags.push(("version".into(), version.clone()));
        }
        tags.extend(config.tags.iter().cloned());
        tags.push(("profiler_version".into(), VERSION.into()));
        let fixed_tags = tags
            .iter()
            .map(|(k, v)| format!("{}:{}", tag_part(k), tag_part(v)))
            .collect::<Vec<_>>()
            .join(",");
        Identity {
            fixed_tags,
            host: hostname(),
            profiler_info: profiler_info(config),
        }
    }

    /// The tags of profile `seq` of this process, or of a quiet child's profile uploaded here.
    fn tags(&self, seq: u64, child: Option<&Child>) -> String {
        let (pid, runtime_id) = match child {
            Some(c) => (c.pid, c.runtime_id.clone()),
            // SAFETY: getpid has no preconditions.
            None => (unsafe { libc::getpid() }, runtime_id()),
        };
        let mut tags = format!("{},runtime-id:{runtime_id},process_id:{pid},profile_seq:{seq}", self.fixed_tags);
        tags.push_str(&runtime_tags());
        if !self.host.is_empty() {
            tags.push_str(",host:");
            tags.push_str(&tag_part(&self.host));
        }
        tags
    }
}

/// What the profile is of: `python` once a CPython interpreter is being read (its stacks are
/// Python stacks, as the Datadog Python profiler's are), `native` otherwise.
fn family() -> &'static str {
    if crate::python::active() {
        "python"
    } else {
        "native"
    }
}

/// `language`, and for Python the `runtime` and `runtime_version` tags Datadog's Python
/// profiler sends.
fn runtime_tags() -> String {
    match crate::python::target() {
        Some(t) => {
            let (major, minor, micro) = t.version;
            format!(",language:python,runtime:CPython,runtime_version:{major}.{minor}.{micro}")
        }
        None => ",language:native".to_string(),
    }
}

/// The profiler's settings, as the `info.profiler` object of the event.
fn profiler_info(c: &Config) -> String {
    let secs = |d: Duration| d.as_secs_f64();
    format!(
        concat!(
            "{{\"version\":{},\"commit\":{},\"upload_period_s\":{},",
            "\"cpu\":{{\"enabled\":{},\"frequency_hz\":{}}},",
            "\"wall\":{{\"enabled\":{},\"interval_ms\":{}}},",
            "\"memory\":{{\"enabled\":{},\"sample_size_bytes\":{}}},",
            "\"heap\":{{\"enabled\":{},\"sample_size_bytes\":{}}},",
            "\"lock\":{{\"enabled\":{},\"sample_interval_ns\":{}}},",
            "\"max_frames\":{},\"upload_timeout_s\":{},\"exit_flush_timeout_s\":{},\"agent_url\":{}}}"
        ),
        json_string(VERSION),
        json_string(env!("DDPROF_COMMIT")),
        secs(c.upload_period),
        c.cpu_enabled,
        c.cpu_frequency_hz,
        c.wall_enabled,
        c.wall_interval.as_secs_f64() * 1000.0,
        c.memory_enabled,
        c.heap_sample_size,
        c.heap_enabled,
        c.heap_sample_size,
        c.lock_enabled,
        c.lock_sample_interval_ns,
        c.max_frames,
        secs(c.upload_timeout),
        secs(c.exit_flush_timeout),
        json_string(&c.agent_url_string()),
    )
}

/// Upload statistics reported in `info.upload`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UploadStats {
    /// Profiles lost since the last one delivered (backlog overflow or given up).
    pub dropped_since_last: u64,
    pub dropped_total: u64,
}

/// The `event.json` part.
pub fn event_json(
    family: &str,
    tags: &str,
    start: SystemTime,
    end: SystemTime,
    profiler_info: &str,
    stats: UploadStats,
) -> String {
    format!(
        concat!(
            "{{\"attachments\":[\"profile.pprof\"],\"tags_profiler\":{},\"start\":\"{}\",\"end\":\"{}\",",
            "\"family\":{},\"version\":\"4\",\"info\":{{\"profiler\":{},",
            "\"upload\":{{\"dropped_profiles\":{},\"dropped_profiles_total\":{},\"backlog_limit\":{}}}}}}}"
        ),
        json_string(tags),
        rfc3339(start),
        rfc3339(end),
        json_string(family),
        profiler_info,
        stats.dropped_since_last,
        stats.dropped_total,
        BACKLOG
    )
}

// ---------------------------------------------------------------- sending one profile

struct Pending {
    seq: u64,
    start: SystemTime,
    end: SystemTime,
    pprof: Vec<u8>,
    /// Set for a quiet forked child's profile, uploaded under the child's identity.
    child: Option<Child>,
}

/// A forked child whose (empty) profile this process uploads: its pid, and the runtime id it
/// would have made for itself (a new one, as every process has its own).
struct Child {
    pid: i32,
    runtime_id: String,
}

/// Why an upload failed, and whether trying again soon may help.
struct Failure {
    what: String,
    hint: String,
    transient: bool,
    /// Nothing listens at the Agent's address (refused, or no such socket).
    nobody_listening: bool,
}

fn send(
    config: &Config,
    identity: &Identity,
    item: &Pending,
    stats: UploadStats,
    deadline: Instant,
) -> Result<(), Failure> {
    let event = event_json(
        family(),
        &identity.tags(item.seq, item.child.as_ref()),
        item.start,
        item.end,
        &identity.profiler_info,
        stats,
    );
    let form = multipart::build(
        &[
            Part {
                name: "event",
                filename: "event.json",
                content_type: "application/json",
                data: event.as_bytes(),
            },
            Part {
                name: "profile.pprof",
                filename: "profile.pprof",
                content_type: "application/octet-stream",
                data: &item.pprof,
            },
        ],
        random_bytes,
    );
    let user_agent = format!("{ORIGIN}/{VERSION}");
    let headers = [
        ("Content-Type", form.content_type.as_str()),
        ("User-Agent", user_agent.as_str()),
        ("DD-EVP-ORIGIN", ORIGIN),
        ("DD-EVP-ORIGIN-VERSION", VERSION),
    ];
    let url_hint = "check DD_TRACE_AGENT_URL, or DD_AGENT_HOST and DD_TRACE_AGENT_PORT (or set DD_PROFILING_OUTPUT_PPROF to write profiles to files instead)";
    match http::post(&config.agent, INTAKE_PATH, &headers, &form.body, deadline) {
        Ok(r) if (200..300).contains(&r.status) => Ok(()),
        Ok(r) => {
            let mut what = format!("the Agent answered HTTP {} {}", r.status, r.reason);
            if !r.body_excerpt.is_empty() {
                let _ = write!(what, " ({:?})", r.body_excerpt);
            }
            let transient = r.status >= 500 || r.status == 429 || r.status == 408;
            let hint = match r.status {
                404 => "is a Datadog Agent with APM enabled listening there? (404 means it does not know the profiling intake)".to_string(),
                413 => "the profile is larger than the Agent accepts".to_string(),
                _ if transient => "the Agent is busy or failing; the upload is retried".to_string(),
                _ => "the Agent refused the profile".to_string(),
            };
            Err(Failure {
                what,
                hint,
                transient,
                nobody_listening: false,
            })
        }
        Err(e) => {
            let hint = match &e {
                http::Error::Timeout { .. } => format!(
                    "the Agent did not answer within DD_PROFILING_UPLOAD_TIMEOUT={}s; is it overloaded, or is something else listening there? {url_hint}",
                    config.upload_timeout.as_secs_f64()
                ),
                http::Error::BadResponse(_) => format!("is a Datadog Agent (and not another service) listening there? {url_hint}"),
                _ => format!("is the Datadog Agent running and reachable there? {url_hint}"),
            };
            Err(Failure {
                what: e.to_string(),
                transient: e.is_transient(),
                nobody_listening: e.is_nobody_listening(),
                hint,
            })
        }
    }
}

/// One warning at the first failure, then at most one every [`WARN_INTERVAL`].
struct Warnings {
    shared: Arc<Shared>,
    url: String,
    last_warning: Option<Instant>,
    failures_since_warning: u64,
    failing: bool,
}

impl Warnings {
    fn failure(&mut self, f: &Failure) {
        self.failing = true;
        match self.last_warning {
            None if crate::family::set_once(|f| &f.upload_warned) => {
                // Another process of the family (the parent, or a sibling forked from the
                // same parent) warned already: a fork-heavy program gets one warning, not
                // one per child. The once-a-minute reminders below still come.
                self.shared.warned.store(true, Ordering::Release);
                log_debug!("profile upload to {} failed: {}", self.url, f.what);
                self.last_warning = Some(Instant::now());
            }
            None => {
                self.shared.warned.store(true, Ordering::Release);
                log_warn!(
                    "cannot upload profiles to {}: {}; {}. The program is not affected; further upload problems are reported at most once a minute",
                    self.url,
                    f.what,
                    f.hint
                );
                self.last_warning = Some(Instant::now());
                self.failures_since_warning = 0;
            }
            Some(at) if at.elapsed() >= WARN_INTERVAL => {
                log_warn!(
                    "profile uploads to {} still fail: {} ({} more failures in the last {}s); {}",
                    self.url,
                    f.what,
                    self.failures_since_warning,
                    at.elapsed().as_secs(),
                    f.hint
                );
                self.last_warning = Some(Instant::now());
                self.failures_since_warning = 0;
            }
            Some(_) => {
                self.failures_since_warning += 1;
                log_debug!("profile upload to {} failed: {}", self.url, f.what);
            }
        }
    }

    fn success(&mut self) {
        if self.failing {
            self.failing = false;
            log_info!("profile uploads to {} work again", self.url);
        }
    }
}

// ---------------------------------------------------------------- the upload thread

#[derive(Default)]
struct Queue {
    items: VecDeque<Pending>,
    /// A profile arrived since the worker last looked.
    new_work: bool,
    /// The worker is sending (and has taken an item out of `items`).
    sending: bool,
    /// When to try the backlog again after a transient failure; None when no retry is due.
    retry_at: Option<Instant>,
    /// Set by the exit flush: no request may go on past it.
    flush_deadline: Option<Instant>,
    stats: UploadStats,
    thread_failed: bool,
}

impl Queue {
    /// Drops the oldest profiles beyond each backlog: this process's own (`BACKLOG`) and its
    /// children's (`CHILD_BACKLOG`), so a fork burst cannot push out the process's own.
    fn drop_oldest_beyond_backlogs(&mut self) {
        for (children, limit) in [(false, BACKLOG), (true, CHILD_BACKLOG)] {
            let of_kind = |item: &Pending| item.child.is_some() == children;
            while self.items.iter().filter(|i| of_kind(i)).count() > limit {
                let Some(at) = self.items.iter().position(of_kind) else { break };
                if let Some(old) = self.items.remove(at) {
                    log_debug!("dropping unsent profile {} (backlog of {limit} is full)", old.seq);
                }
                self.count_dropped(1);
            }
        }
    }

    fn count_dropped(&mut self, n: u64) {
        self.stats.dropped_since_last += n;
        self.stats.dropped_total += n;
    }
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Set once an upload warning was printed, so the exit flush does not add a second one.
    warned: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue inconsistent in a way that
        // matters more than losing uploads; keep going.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The exporter's handle. Created in each process (a forked child makes its own, with its
/// own thread), and the thread starts with the first profile.
pub struct Uploader {
    shared: Arc<Shared>,
    config: Arc<Config>,
    started: bool,
}

impl Uploader {
    pub fn new(config: Arc<Config>) -> Uploader {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            warned: AtomicBool::new(false),
        });
        Uploader {
            shared,
            config,
            started: false,
        }
    }

    /// Queues profile `seq` (gzipped pprof covering `start..end`) and returns at once.
    pub fn submit(&mut self, seq: u64, start: SystemTime, end: SystemTime, pprof: Vec<u8>) {
        self.enqueue(Pending { seq, start, end, pprof, child: None });
    }

    /// Queues the (empty) profile of quiet forked child `pid`, which handed it over.
    pub fn submit_child(&mut self, pid: i32, start: SystemTime, end: SystemTime, pprof: Vec<u8>) {
        let child = Child { pid, runtime_id: format_uuid_v4(random_bytes()) };
        self.enqueue(Pending { seq: 1, start, end, pprof, child: Some(child) });
    }

    fn enqueue(&mut self, item: Pending) {
        if !self.started {
            self.started = true;
            self.start_thread();
        }
        let mut q = self.shared.lock();
        if q.thread_failed {
            q.count_dropped(1);
            return;
        }
        q.items.push_back(item);
        q.drop_oldest_beyond_backlogs();
        q.new_work = true;
        drop(q);
        self.shared.wake.notify_all();
    }

    /// Exit flush: requests end by `deadline`, and this waits until the backlog is sent, or
    /// the worker gives up on it, or the deadline passes. When profiles remain unsent, says so
    /// (once: not when an upload warning was already printed).
    pub fn flush(&mut self, deadline: Instant) -> bool {
        let dropped_before = self.shared.lock().stats.dropped_total;
        self.wait_idle(deadline);
        let unsent = {
            let q = self.shared.lock();
            q.items.len() as u64 + q.sending as u64 + (q.stats.dropped_total - dropped_before)
        };
        if unsent > 0 {
            let message = format!(
                "{unsent} profile(s) not uploaded to {} before exit: DD_PROFILING_EXIT_FLUSH_TIMEOUT={}s passed first",
                self.config.agent_url_string(),
                self.config.exit_flush_timeout.as_secs_f64()
            );
            if self.shared.warned.swap(true, Ordering::AcqRel) {
                log_debug!("{message}");
            } else {
                log_warn!("{message}");
            }
        }
        unsent == 0
    }

    /// Waits until the backlog is empty, or the worker has given up on it for now, or the
    /// deadline passes.
    fn wait_idle(&mut self, deadline: Instant) {
        let mut q = self.shared.lock();
        q.flush_deadline = Some(deadline);
        self.shared.wake.notify_all();
        loop {
            let idle = !q.sending && !q.new_work && q.retry_at.is_none();
            if q.items.is_empty() && !q.sending || idle || q.thread_failed {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            q = match self.shared.wake.wait_timeout(q, left) {
                Ok((q, _)) => q,
                Err(_) => return,
            };
        }
    }

    fn start_thread(&mut self) {
        let worker = Worker {
            shared: self.shared.clone(),
            identity: Identity::new(&self.config),
            warnings: Warnings {
                shared: self.shared.clone(),
                url: format!("{}{INTAKE_PATH}", self.config.agent_url_string()),
                last_warning: None,
                failures_since_warning: 0,
                failing: false,
            },
            config: self.config.clone(),
        };
        if let Err(e) = crate::thread::spawn_internal("ddprof-upload", move || worker.run()) {
            log_warn!("could not start the upload thread ({e}); profiles will not be uploaded");
            self.shared.lock().thread_failed = true;
        }
    }
}

enum Outcome {
    /// The backlog is empty, or the flush deadline passed.
    Done,
    /// The Agent could not be reached; the backlog is kept for later.
    Transient { nobody_listening: bool },
}

struct Worker {
    shared: Arc<Shared>,
    config: Arc<Config>,
    identity: Identity,
    warnings: Warnings,
}

impl Worker {
    fn run(mut self) {
        let mut retries_left = 0;
        let mut attempt = 0;
        loop {
            {
                let mut q = self.shared.lock();
                loop {
                    if q.new_work {
                        q.new_work = false;
                        q.retry_at = None;
                        retries_left = if q.flush_deadline.is_some() {
                            FLUSH_RETRIES
                        } else {
                            MAX_RETRIES
                        };
                        attempt = 0;
                        break;
                    }
                    let now = Instant::now();
                    q = match q.retry_at {
                        Some(at) if at <= now => {
                            q.retry_at = None;
                            break;
                        }
                        Some(at) => match self.shared.wake.wait_timeout(q, at - now) {
                            Ok((q, _)) => q,
                            Err(e) => e.into_inner().0,
                        },
                        None => self.shared.wake.wait(q).unwrap_or_else(|e| e.into_inner()),
                    };
                }
                q.sending = true;
            }
            let outcome = self.send_backlog();
            let mut q = self.shared.lock();
            q.sending = false;
            if let Outcome::Transient { nobody_listening } = outcome {
                // At exit, an Agent that is not listening is not waited for: it will not start
                // within the flush deadline often enough to make every short-lived process
                // (a forked worker, a shell command) pay the backoff on its way out.
                let exiting_alone = nobody_listening && q.flush_deadline.is_some();
                if retries_left > 0 && !q.items.is_empty() && !exiting_alone {
                    retries_left -= 1;
                    attempt += 1;
                    let backoff = if q.flush_deadline.is_some() {
                        FLUSH_BACKOFF
                    } else {
                        self.backoff(attempt)
                    };
                    let at = Instant::now() + backoff;
                    if q.flush_deadline.is_none_or(|d| at < d) {
                        q.retry_at = Some(at);
                    }
                }
            }
            drop(q);
            self.shared.wake.notify_all();
        }
    }

    /// Spread the retries over the start of the period: a quarter of it (at most a second)
    /// for the first, twice that for the second.
    fn backoff(&self, attempt: u32) -> Duration {
        (self.config.upload_period / 4).min(Duration::from_secs(1)) * attempt
    }

    /// Sends the backlog oldest first, until it is empty or the Agent is unreachable.
    fn send_backlog(&mut self) -> Outcome {
        loop {
            let (item, stats, deadline) = {
                let mut q = self.shared.lock();
                let mut deadline = Instant::now() + self.config.upload_timeout;
                if let Some(flush) = q.flush_deadline {
                    if flush <= Instant::now() {
                        return Outcome::Done;
                    }
                    deadline = deadline.min(flush);
                }
                let Some(item) = q.items.pop_front() else {
                    return Outcome::Done;
                };
                (item, q.stats, deadline)
            };
            // A child's profile reports nothing of this process's upload statistics.
            let stats = if item.child.is_some() { UploadStats::default() } else { stats };
            let started = Instant::now();
            let result = send(&self.config, &self.identity, &item, stats, deadline);
            let mut q = self.shared.lock();
            match result {
                Ok(()) => {
                    q.stats.dropped_since_last -=
                        stats.dropped_since_last.min(q.stats.dropped_since_last);
                    drop(q);
                    log_debug!(
                        "profile {} uploaded ({} bytes) in {:?}",
                        item.seq,
                        item.pprof.len(),
                        started.elapsed()
                    );
                    self.warnings.success();
                }
                Err(f) if f.transient => {
                    // Back to the front; if newer profiles filled the backlog meanwhile, this
                    // one is the oldest and goes.
                    q.items.push_front(item);
                    q.drop_oldest_beyond_backlogs();
                    drop(q);
                    self.warnings.failure(&f);
                    return Outcome::Transient { nobody_listening: f.nobody_listening };
                }
                Err(f) => {
                    q.count_dropped(1);
                    drop(q);
                    self.warnings.failure(&f);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(31), (1970, 2, 1));
        assert_eq!(civil_date(365), (1971, 1, 1));
        assert_eq!(civil_date(365 + 365 + 59), (1972, 2, 29));
        assert_eq!(civil_date(365 + 365 + 60), (1972, 3, 1));
        assert_eq!(civil_date(10957), (2000, 1, 1));
        assert_eq!(civil_date(11016), (2000, 2, 29));
        assert_eq!(civil_date(19782), (2024, 2, 29));
        assert_eq!(civil_date(20451), (2025, 12, 29));
        assert_eq!(civil_date(47541), (2100, 3, 1)); // 2100 is not a leap year
        assert_eq!(civil_date(47540), (2100, 2, 28));
        // Cross-check every day of 1970..2400 against a day-by-day count.
        let (mut y, mut m, mut d) = (1970u64, 1u32, 1u32);
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        for days in 0..157_000 {
            assert_eq!(civil_date(days), (y, m, d), "day {days}");
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn rfc3339_with_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_764_382_326, 5);
        assert_eq!(rfc3339(t), "2025-11-29T02:12:06.000000005Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::new(951_782_399, 999_999_999)),
            "2000-02-28T23:59:59.999999999Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn uuid_v4_shape() {
        assert_eq!(
            format_uuid_v4([0xff; 16]),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        assert_eq!(
            format_uuid_v4([0; 16]),
            "00000000-0000-4000-8000-000000000000"
        );
        let id = runtime_id();
        assert_eq!(id, runtime_id(), "stable within a process");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        reset_after_fork();
        assert_ne!(runtime_id(), id, "a new one after fork");
        assert_ne!(random_bytes(), random_bytes());
    }

    #[test]
    fn json_escapes() {
        assert_eq!(
            json_string("a\"b\\c\nd\u{1}é"),
            "\"a\\\"b\\\\c\\nd\\u0001é\""
        );
    }

    #[test]
    fn event_shape() {
        let t0 = UNIX_EPOCH + Duration::new(1_764_382_326, 1);
        let t1 = t0 + Duration::from_secs(60);
        let stats = UploadStats {
            dropped_since_last: 2,
            dropped_total: 5,
        };
        let e = event_json("native", "a:b,c:d", t0, t1, "{\"x\":1}", stats);
        assert_eq!(
            e,
            "{\"attachments\":[\"profile.pprof\"],\"tags_profiler\":\"a:b,c:d\",\"start\":\"2025-11-29T02:12:06.000000001Z\",\
             \"end\":\"2025-11-29T02:13:06.000000001Z\",\"family\":\"native\",\"version\":\"4\",\
             \"info\":{\"profiler\":{\"x\":1},\"upload\":{\"dropped_profiles\":2,\"dropped_profiles_total\":5,\"backlog_limit\":4}}}"
        );
    }

    #[test]
    fn tags_of_a_config() {
        let c = Config {
            service: "svc,x".into(),
            env: Some("prod".into()),
            tags: vec![("team".into(), "a".into())],
            ..Config::default()
        };
        let id = Identity::new(&c);
        let tags = id.tags(7, None);
        assert!(
            tags.starts_with("service:svc_x,env:prod,team:a,profiler_version:") && tags.contains(",language:native,"),
            "{tags}"
        );
        // (The runtime id itself may change under us: another test resets it.)
        let rid = tags
            .split(',')
            .find_map(|t| t.strip_prefix("runtime-id:"))
            .unwrap();
        assert_eq!((rid.len(), &rid[14..15]), (36, "4"), "{tags}");
        assert!(
            tags.contains(&format!(",process_id:{},profile_seq:7", std::process::id())),
            "{tags}"
        );
        assert!(tags.ends_with(&format!(",host:{}", hostname())), "{tags}");
        assert!(!tags.contains("version:,"));
        assert!(
            id.profiler_info.contains("\"upload_period_s\":60"),
            "{}",
            id.profiler_info
        );
    }
}
