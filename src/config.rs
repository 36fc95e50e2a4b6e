//! `DD_*` environment variables → a validated [`Config`].
//!
//! The profiler is injected into programs that never asked for it, so a typo in an environment
//! variable must never crash or stop the program. Every value is therefore validated here, once,
//! at load time: a bad value becomes exactly one warning (naming the variable, quoting the value,
//! saying what is accepted and which default is used instead) and the default takes its place.
//! The parsing is pure ([`Config::from_lookup`]) so that tests need not touch the process
//! environment, which is shared by every test thread.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::log::Level;

/// Where profiles are uploaded: the Datadog Agent over TCP or over a unix socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentUrl {
    /// `host` is stored without IPv6 brackets, ready for `(host, port)` socket resolution.
    Http { host: String, port: u16 },
    /// An absolute path to the Agent's socket.
    Unix { path: PathBuf },
}

impl fmt::Display for AgentUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // IPv6 literals need brackets, or their colons would be read as the port separator.
            AgentUrl::Http { host, port } if host.contains(':') => {
                write!(f, "http://[{host}]:{port}")
            }
            AgentUrl::Http { host, port } => write!(f, "http://{host}:{port}"),
            AgentUrl::Unix { path } => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Everything the profiler can be told through the environment, already validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub enabled: bool,
    pub service: String,
    pub env: Option<String>,
    pub version: Option<String>,
    /// `DD_TAGS` first, then `DD_PROFILING_TAGS`, in the order written; duplicates are kept.
    pub tags: Vec<(String, String)>,
    pub agent: AgentUrl,
    /// File prefix: profiles go to `<prefix>.<pid>.<seq>.pprof` instead of the Agent.
    pub output_pprof: Option<String>,
    pub upload_period: Duration,
    pub cpu_enabled: bool,
    pub wall_enabled: bool,
    pub memory_enabled: bool,
    pub heap_enabled: bool,
    pub lock_enabled: bool,
    pub exception_enabled: bool,
    /// One throw in this many (on average) is sampled.
    pub exception_sampling_interval: u64,
    /// Samples per CPU-second, per thread.
    pub cpu_frequency_hz: u32,
    pub wall_interval: Duration,
    /// Mean bytes allocated between two allocation samples.
    pub heap_sample_size: u64,
    /// Mean nanoseconds of lock wait between two lock-wait samples.
    pub lock_sample_interval_ns: u64,
    /// One lock acquisition in this many (on average) is followed until its release to
    /// measure hold times.
    pub lock_hold_sample_every: u64,
    pub max_frames: usize,
    pub log_level: Level,
    pub upload_timeout: Duration,
    pub exit_flush_timeout: Duration,
    /// What debug info kept in a separate file (`/usr/lib/debug`) is used for.
    pub separate_debug_info: SeparateDebugInfo,
    /// Which native frames a Python process's stacks keep.
    pub python_native: PythonNative,
    /// Write (or upload) profiles of a process that has recorded no sample yet.
    pub empty_profiles: bool,
}

/// `DD_PROFILING_PYTHON_NATIVE`: in a Python process, `Python` (the default) folds the
/// interpreter's own native frames (evaluation loop, calls, object protocol, allocator) into
/// the Python frame that runs them; native frames outside the interpreter (C extensions, the
/// libraries they call, libc) stay. `All` keeps every native frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PythonNative {
    Python,
    All,
}

impl PythonNative {
    fn parse(s: &str) -> Option<PythonNative> {
        match s.trim().to_ascii_lowercase().as_str() {
            "python" => Some(PythonNative::Python),
            "all" => Some(PythonNative::All),
            _ => None,
        }
    }
}

/// `DD_PROFILING_SEPARATE_DEBUG_INFO`: a library whose debug info was split into its own file
/// (Debian's `libc6-dbg`) is symbolized from that file's symbol table (`Symbols`: function
/// names, ~0.4 ms for libc), or also from its DWARF (`Full`: files, lines and inlined frames,
/// ~20 ms and ~11 MiB for libc, most of it inflating compressed sections, paid once a process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeparateDebugInfo {
    Symbols,
    Full,
}

impl SeparateDebugInfo {
    fn parse(s: &str) -> Option<SeparateDebugInfo> {
        match s.trim().to_ascii_lowercase().as_str() {
            "symbols" => Some(SeparateDebugInfo::Symbols),
            "full" => Some(SeparateDebugInfo::Full),
            _ => None,
        }
    }
}

const DEFAULT_HOST: &str = "localhost";
const DEFAULT_PORT: u16 = 8126;
const FALLBACK_SERVICE: &str = "unnamed-native-app";
const DEFAULT_UPLOAD_PERIOD_S: f64 = 60.0;
pub const DEFAULT_CPU_FREQUENCY_HZ: u32 = 100;
const DEFAULT_WALL_INTERVAL_MS: f64 = 10.0;
const DEFAULT_HEAP_SAMPLE_SIZE: u64 = 512 * 1024;
const DEFAULT_LOCK_SAMPLE_NS: u64 = 100_000;
const DEFAULT_LOCK_HOLD_SAMPLE_EVERY: u64 = 100;
const DEFAULT_MAX_FRAMES: usize = 128;
const DEFAULT_EXCEPTION_SAMPLING_INTERVAL: u64 = 100;
const DEFAULT_UPLOAD_TIMEOUT_S: f64 = 10.0;
const DEFAULT_EXIT_FLUSH_TIMEOUT_S: f64 = 2.0;

/// Longest unix socket path the kernel accepts (`sun_path` is 108 bytes with its NUL).
const MAX_UNIX_PATH: usize = 107;
/// Quoted values are cut to this many characters, so a runaway variable cannot flood stderr.
const MAX_QUOTED_CHARS: usize = 120;

const URL_FORMS: &str = "http://host[:port] or unix:///absolute/path.sock";
const BOOL_FORMS: &str = "a boolean (true/false, 1/0, yes/no, on/off, t/f, y/n)";

impl Default for Config {
    /// All defaults, as if no `DD_*` variable were set. The service still defaults to the
    /// program's name, because that is the default a user would see.
    fn default() -> Config {
        Config {
            enabled: true,
            service: program_name(),
            env: None,
            version: None,
            tags: Vec::new(),
            agent: AgentUrl::Http {
                host: DEFAULT_HOST.to_string(),
                port: DEFAULT_PORT,
            },
            output_pprof: None,
            upload_period: Duration::from_secs_f64(DEFAULT_UPLOAD_PERIOD_S),
            cpu_enabled: true,
            wall_enabled: true,
            memory_enabled: true,
            heap_enabled: true,
            lock_enabled: true,
            exception_enabled: true,
            exception_sampling_interval: DEFAULT_EXCEPTION_SAMPLING_INTERVAL,
            cpu_frequency_hz: DEFAULT_CPU_FREQUENCY_HZ,
            wall_interval: Duration::from_secs_f64(DEFAULT_WALL_INTERVAL_MS / 1000.0),
            heap_sample_size: DEFAULT_HEAP_SAMPLE_SIZE,
            lock_sample_interval_ns: DEFAULT_LOCK_SAMPLE_NS,
            lock_hold_sample_every: DEFAULT_LOCK_HOLD_SAMPLE_EVERY,
            max_frames: DEFAULT_MAX_FRAMES,
            log_level: Level::Warn,
            upload_timeout: Duration::from_secs_f64(DEFAULT_UPLOAD_TIMEOUT_S),
            exit_flush_timeout: Duration::from_secs_f64(DEFAULT_EXIT_FLUSH_TIMEOUT_S),
            separate_debug_info: SeparateDebugInfo::Symbols,
            python_native: PythonNative::Python,
            empty_profiles: false,
        }
    }
}

impl Config {
    /// Builds the configuration from whatever `lookup` returns for each variable name, and
    /// returns one warning per bad value instead of logging it, so that callers (and tests)
    /// decide what to do with them. Reads nothing else except the program name for the default
    /// service.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> (Config, Vec<String>) {
        from_source(|name| lookup(name).map(Raw::Text))
    }

    /// Reads the process environment and logs each warning. The log level chosen by
    /// `DD_PROFILING_LOG_LEVEL` is applied first, so a user who asked for errors only does not
    /// get warnings either.
    pub fn from_env() -> Config {
        let ours = dd_variables();
        let (config, warnings) = from_source(|name| {
            let (_, value) = ours.iter().find(|(var, _)| var.as_slice() == name.as_bytes())?;
            Some(match std::str::from_utf8(value) {
                Ok(text) => Raw::Text(text.to_string()),
                Err(_) => Raw::NotUtf8(String::from_utf8_lossy(value).into_owned()),
            })
        });
        crate::log::set_level(config.log_level);
        for warning in &warnings {
            crate::log_warn!("{warning}");
        }
        config
    }

    /// The Agent's address as a URL: `http://host:port` or `unix:///path`.
    pub fn agent_url_string(&self) -> String {
        self.agent.to_string()
    }
}

/// The `DD_*` variables of the process environment, as (name, value) bytes, read in one pass
/// over `environ` instead of one `getenv` scan for each of the ~30 variables (with the code
/// each lookup runs, ~15 µs of an exec'd process's start here). Called from the load-time
/// constructor, before the program can change its environment from another thread.
fn dd_variables() -> Vec<(Vec<u8>, Vec<u8>)> {
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    let mut found = Vec::new();
    // SAFETY: `environ` is libc's NULL-terminated array of NUL-terminated "NAME=value"
    // strings; nothing modifies it while the constructor runs (no other thread exists yet).
    unsafe {
        let mut entry = std::ptr::read_volatile(std::ptr::addr_of!(environ));
        while !entry.is_null() && !(*entry).is_null() {
            let bytes = std::ffi::CStr::from_ptr(*entry).to_bytes();
            entry = entry.add(1);
            if !bytes.starts_with(b"DD_") {
                continue;
            }
            let eq = bytes.iter().position(|&b| b == b'=').unwrap_or(bytes.len());
            found.push((bytes[..eq].to_vec(), bytes.get(eq + 1..).unwrap_or_default().to_vec()));
        }
    }
    found
}

/// Accepts the spellings people use for booleans in environment variables.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// A variable's value as the environment holds it. Non-UTF-8 values are kept (lossily) only so
/// the warning can show them; they are always rejected.
enum Raw {
    Text(String),
    NotUtf8(String),
}

impl Raw {
    fn shown(&self) -> &str {
        match self {
            Raw::Text(s) | Raw::NotUtf8(s) => s,
        }
    }
}

/// Reads every variable through `read`, in one place, so the order and the defaults are easy
/// to audit against the README table.
fn from_source(read: impl Fn(&str) -> Option<Raw>) -> (Config, Vec<String>) {
    let mut r = Reader {
        read: &read,
        warnings: Vec::new(),
    };
    let mut tags = r.tags("DD_TAGS");
    tags.extend(r.tags("DD_PROFILING_TAGS"));
    let config = Config {
        enabled: r.flag("DD_PROFILING_ENABLED", true),
        service: r
            .text("DD_SERVICE", "a service name", "(the program name)")
            .unwrap_or_else(program_name),
        env: r.text("DD_ENV", "an environment name", "none"),
        version: r.text("DD_VERSION", "a version", "none"),
        tags,
        agent: r.agent(),
        output_pprof: r.text(
            "DD_PROFILING_OUTPUT_PPROF",
            "a file prefix",
            "none (upload to the Agent)",
        ),
        upload_period: r.seconds(
            "DD_PROFILING_UPLOAD_PERIOD",
            0.05,
            86_400.0,
            DEFAULT_UPLOAD_PERIOD_S,
        ),
        cpu_enabled: r.flag("DD_PROFILING_CPU_ENABLED", true),
        wall_enabled: r.flag("DD_PROFILING_WALL_ENABLED", true),
        memory_enabled: r.flag("DD_PROFILING_MEMORY_ENABLED", true),
        heap_enabled: r.flag("DD_PROFILING_HEAP_ENABLED", true),
        lock_enabled: r.flag("DD_PROFILING_LOCK_ENABLED", true),
        exception_enabled: r.flag("DD_PROFILING_EXCEPTION_ENABLED", true),
        exception_sampling_interval: r.integer(
            "DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL",
            "a whole number of throws",
            (1, 1_000_000_000),
            DEFAULT_EXCEPTION_SAMPLING_INTERVAL,
        ),
        cpu_frequency_hz: r.integer(
            "DD_PROFILING_CPU_FREQUENCY",
            "a whole number of samples per second",
            (1, 10_000),
            DEFAULT_CPU_FREQUENCY_HZ.into(),
        ) as u32,
        wall_interval: r.millis(
            "DD_PROFILING_WALL_INTERVAL_MS",
            1.0,
            10_000.0,
            DEFAULT_WALL_INTERVAL_MS,
        ),
        heap_sample_size: r.integer(
            "DD_PROFILING_HEAP_SAMPLE_SIZE",
            "a whole number of bytes",
            (1, 1 << 40),
            DEFAULT_HEAP_SAMPLE_SIZE,
        ),
        lock_sample_interval_ns: r.integer(
            "DD_PROFILING_LOCK_SAMPLE_NS",
            "a whole number of nanoseconds",
            (1, 1_000_000_000_000),
            DEFAULT_LOCK_SAMPLE_NS,
        ),
        lock_hold_sample_every: r.integer(
            "DD_PROFILING_LOCK_HOLD_SAMPLE_EVERY",
            "a whole number of lock acquisitions",
            (1, 1_000_000),
            DEFAULT_LOCK_HOLD_SAMPLE_EVERY,
        ),
        max_frames: r.integer(
            "DD_PROFILING_MAX_FRAMES",
            "a whole number of frames",
            (8, 1024),
            DEFAULT_MAX_FRAMES as u64,
        ) as usize,
        log_level: r.log_level("DD_PROFILING_LOG_LEVEL"),
        upload_timeout: r.seconds(
            "DD_PROFILING_UPLOAD_TIMEOUT",
            0.1,
            300.0,
            DEFAULT_UPLOAD_TIMEOUT_S,
        ),
        exit_flush_timeout: r.seconds(
            "DD_PROFILING_EXIT_FLUSH_TIMEOUT",
            0.0,
            60.0,
            DEFAULT_EXIT_FLUSH_TIMEOUT_S,
        ),
        separate_debug_info: r.setting(
            "DD_PROFILING_SEPARATE_DEBUG_INFO",
            "symbols or full",
            SeparateDebugInfo::Symbols,
            "symbols",
            SeparateDebugInfo::parse,
        ),
        python_native: r.setting(
            "DD_PROFILING_PYTHON_NATIVE",
            "python or all",
            PythonNative::Python,
            "python",
            PythonNative::parse,
        ),
        empty_profiles: r.flag("DD_PROFILING_EMPTY_PROFILES", false),
    };
    (config, r.warnings)
}

/// Reads variables and collects the warnings for bad ones.
struct Reader<'a> {
    read: &'a dyn Fn(&str) -> Option<Raw>,
    warnings: Vec<String>,
}

impl Reader<'_> {
    /// The variable's value, or `None` when it is unset or blank: both mean "use the default"
    /// and deserve no warning.
    fn value(&self, var: &str) -> Option<Raw> {
        (self.read)(var).filter(|raw| !raw.shown().trim().is_empty())
    }

    /// The common path of every setting: parse the trimmed value, or warn once and use the
    /// default. `accepted` and `default_shown` complete the warning's sentence.
    fn setting<T>(
        &mut self,
        var: &str,
        accepted: &str,
        default: T,
        default_shown: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> T {
        self.setting_with(var, default, parse, || (accepted.to_string(), default_shown.to_string()))
    }

    /// `setting` with the warning's words built only when there is a warning: formatting
    /// them for each of the ~20 variables at every start took ~10 µs of an exec'd process.
    fn setting_with<T>(
        &mut self,
        var: &str,
        default: T,
        parse: impl FnOnce(&str) -> Option<T>,
        describe: impl FnOnce() -> (String, String),
    ) -> T {
        let Some(raw) = self.value(var) else {
            return default;
        };
        if let Raw::Text(text) = &raw {
            if let Some(value) = parse(text.trim()) {
                return value;
            }
        }
        let (accepted, default_shown) = describe();
        self.warnings.push(bad_value(
            var,
            &raw,
            &accepted,
            &format!("the default {default_shown}"),
        ));
        default
    }

    fn flag(&mut self, var: &str, default: bool) -> bool {
        self.setting_with(var, default, parse_bool, || (BOOL_FORMS.to_string(), default.to_string()))
    }

    /// Free text such as a service name; only non-UTF-8 can be wrong with it, and then the
    /// warning says what the text was for and what replaces it.
    fn text(&mut self, var: &str, what: &str, default_shown: &str) -> Option<String> {
        self.setting(var, what, None, default_shown, |s| {
            Some(Some(s.to_string()))
        })
    }

    fn integer(&mut self, var: &str, what: &str, (lo, hi): (u64, u64), default: u64) -> u64 {
        let describe = || (format!("{what} between {lo} and {hi}"), default.to_string());
        self.setting_with(var, default, |s| integer_in(s, lo, hi), describe)
    }

    fn seconds(&mut self, var: &str, lo: f64, hi: f64, default: f64) -> Duration {
        let describe = || (format!("a number of seconds between {lo} and {hi}"), default.to_string());
        let value = self.setting_with(var, default, |s| number_in(s, lo, hi), describe);
        Duration::from_secs_f64(value)
    }

    fn millis(&mut self, var: &str, lo: f64, hi: f64, default: f64) -> Duration {
        let describe = || (format!("a number of milliseconds between {lo} and {hi}"), default.to_string());
        let value = self.setting_with(var, default, |s| number_in(s, lo, hi), describe);
        Duration::from_secs_f64(value / 1000.0)
    }

    fn log_level(&mut self, var: &str) -> Level {
        self.setting(
            var,
            "one of error, warn, info, debug",
            Level::Warn,
            "warn",
            Level::parse,
        )
    }

    /// Tags are kept one by one: a single malformed tag should not cost the user the others.
    fn tags(&mut self, var: &str) -> Vec<(String, String)> {
        match self.value(var) {
            None => Vec::new(),
            Some(Raw::Text(text)) => parse_tags(var, &text, &mut self.warnings),
            Some(raw) => {
                let warning = bad_value(var, &raw, "key:value tags", "no tags from it");
                self.warnings.push(warning);
                Vec::new()
            }
        }
    }

    /// `DD_TRACE_AGENT_URL` wins; host and port are read only when it is unset or bad, so a
    /// stale port next to a good URL does not produce a misleading warning.
    fn agent(&mut self) -> AgentUrl {
        let url = self.value("DD_TRACE_AGENT_URL");
        if let Some(Raw::Text(text)) = &url {
            if let Ok(agent) = parse_agent_url(text.trim()) {
                return agent;
            }
        }
        let fallback = self.host_and_port();
        if let Some(raw) = url {
            let problem = match &raw {
                Raw::Text(text) => parse_agent_url(text.trim()).err(),
                Raw::NotUtf8(_) => None,
            };
            let accepted = match problem {
                Some(UrlProblem::Https) => {
                    format!("a supported URL (https is not supported; use {URL_FORMS})")
                }
                _ => URL_FORMS.to_string(),
            };
            let using =
                format!("the default {fallback} built from DD_AGENT_HOST and DD_TRACE_AGENT_PORT");
            self.warnings
                .push(bad_value("DD_TRACE_AGENT_URL", &raw, &accepted, &using));
        }
        fallback
    }

    fn host_and_port(&mut self) -> AgentUrl {
        let host = self.setting(
            "DD_AGENT_HOST",
            "a host name or IP address (no scheme, port or path)",
            DEFAULT_HOST.to_string(),
            DEFAULT_HOST,
            parse_host,
        );
        let port = self.setting_with("DD_TRACE_AGENT_PORT", DEFAULT_PORT, parse_port, || {
            ("a port number between 1 and 65535".to_string(), DEFAULT_PORT.to_string())
        });
        AgentUrl::Http { host, port }
    }
}

/// One sentence per bad value: `VAR="value" is not <accepted>; using <fallback>`.
fn bad_value(var: &str, raw: &Raw, accepted: &str, using: &str) -> String {
    let quoted = quote(raw.shown());
    match raw {
        Raw::Text(_) => format!("{var}={quoted} is not {accepted}; using {using}"),
        Raw::NotUtf8(_) => {
            format!("{var}={quoted} is not valid UTF-8 (expected {accepted}); using {using}")
        }
    }
}

/// Quotes with escapes, so control characters and stray whitespace are visible, and cuts very
/// long values short.
fn quote(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(MAX_QUOTED_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

fn integer_in(s: &str, lo: u64, hi: u64) -> Option<u64> {
    s.parse::<u64>().ok().filter(|n| (lo..=hi).contains(n))
}

/// Finite numbers in range only: `inf`, `NaN` and overflowing exponents are rejected, so
/// `Duration::from_secs_f64` can never panic on the result. `-0` counts as zero.
fn number_in(s: &str, lo: f64, hi: f64) -> Option<f64> {
    let x = s.parse::<f64>().ok()?;
    (x.is_finite() && x >= lo && x <= hi).then_some(x.abs())
}

fn parse_port(s: &str) -> Option<u16> {
    integer_in(s, 1, u16::MAX.into()).map(|n| n as u16)
}

/// A DNS name or an IP literal. Being strict catches the common mistakes early (a URL or a
/// `host:port` pasted into DD_AGENT_HOST) instead of failing every upload later.
fn parse_host(s: &str) -> Option<String> {
    let unbracketed = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    if unbracketed.parse::<Ipv6Addr>().is_ok() {
        return Some(unbracketed.to_string());
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    (!s.is_empty() && s.len() <= 253 && s.chars().all(name_char)).then(|| s.to_string())
}

#[derive(Debug, PartialEq)]
enum UrlProblem {
    Https,
    Malformed,
}

/// `http://host[:port][/]` (port 8126 when omitted) or `unix:///absolute/path`. The scheme is
/// case-insensitive, as in URLs generally.
fn parse_agent_url(s: &str) -> Result<AgentUrl, UrlProblem> {
    let (scheme, rest) = s.split_once("://").ok_or(UrlProblem::Malformed)?;
    match scheme.to_ascii_lowercase().as_str() {
        "http" => parse_http_authority(rest.strip_suffix('/').unwrap_or(rest)),
        "unix" => parse_unix_path(rest),
        "https" => Err(UrlProblem::Https),
        _ => Err(UrlProblem::Malformed),
    }
}

fn parse_http_authority(authority: &str) -> Result<AgentUrl, UrlProblem> {
    if authority.contains(['/', '?', '#', '@']) {
        return Err(UrlProblem::Malformed);
    }
    let (host, port) = split_host_port(authority).ok_or(UrlProblem::Malformed)?;
    let host = parse_host(host).ok_or(UrlProblem::Malformed)?;
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => parse_port(p).ok_or(UrlProblem::Malformed)?,
    };
    Ok(AgentUrl::Http { host, port })
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; the port text is not checked here.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, after) = authority.split_at(end + 1);
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        None => Some((authority, None)),
        Some((host, port)) => Some((host, Some(port))),
    }
}

fn parse_unix_path(path: &str) -> Result<AgentUrl, UrlProblem> {
    let usable = path.starts_with('/')
        && path.len() > 1
        && path.len() <= MAX_UNIX_PATH
        && !path.contains('\0')
        && !path.ends_with('/');
    if usable {
        Ok(AgentUrl::Unix {
            path: PathBuf::from(path),
        })
    } else {
        Err(UrlProblem::Malformed)
    }
}

/// Splits `k:v` tags separated by commas and/or whitespace. The value may itself contain `:`
/// (URLs, times), so only the first `:` separates. Malformed tags are dropped with a warning.
fn parse_tags(var: &str, text: &str, warnings: &mut Vec<String>) -> Vec<(String, String)> {
    let mut tags = Vec::new();
    for tag in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
    {
        match tag.split_once(':') {
            Some((key, value)) if !key.is_empty() && !value.is_empty() => {
                tags.push((key.to_string(), value.to_string()));
            }
            _ => warnings.push(format!(
                "{var}: tag {} is not key:value with a non-empty key and value; dropping it",
                quote(tag)
            )),
        }
    }
    tags
}

/// The default service: Datadog groups profiles by service, and the program's own name is the
/// name a user will recognise. argv[0] is preferred because `comm` is cut to 15 bytes. It is
/// read from libc's copy of the argv[0] pointer, not from `/proc/self/cmdline`: opening and
/// reading that file was ~15 µs of every exec'd process's start (perf).
fn program_name() -> String {
    let comm = || std::fs::read("/proc/self/comm").unwrap_or_default();
    name_from_cmdline(&argv0())
        .or_else(|| name_from_comm(&comm()))
        .unwrap_or_else(|| FALLBACK_SERVICE.to_string())
}

/// argv[0] as the program was started with it (empty if libc does not know it).
fn argv0() -> Vec<u8> {
    extern "C" {
        /// glibc and musl set this to argv[0] before any constructor runs (GNU extension,
        /// `<errno.h>`); it is never freed.
        static program_invocation_name: *const libc::c_char;
    }
    // SAFETY: libc initialises the pointer before constructors and never changes it; it is
    // null or a NUL-terminated string that lives as long as the process.
    unsafe {
        let name = std::ptr::read_volatile(std::ptr::addr_of!(program_invocation_name));
        if name.is_null() {
            return Vec::new();
        }
        std::ffi::CStr::from_ptr(name).to_bytes().to_vec()
    }
}

/// The basename of the first NUL-terminated argument.
fn name_from_cmdline(cmdline: &[u8]) -> Option<String> {
    let argv0 = cmdline.split(|&b| b == 0).next()?;
    let base = argv0.rsplit(|&b| b == b'/').next()?;
    non_blank(&String::from_utf8_lossy(base))
}

fn name_from_comm(comm: &[u8]) -> Option<String> {
    non_blank(&String::from_utf8_lossy(comm))
}

fn non_blank(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |name| map.get(name).cloned())
    }

    fn load_ok(vars: &[(&str, &str)]) -> Config {
        let (config, warnings) = load(vars);
        assert!(warnings.is_empty(), "{vars:?} gave warnings {warnings:?}");
        config
    }

    /// Asserts that `var=value` gives exactly one warning that names the variable, quotes the
    /// value and mentions `fallback`, and that the config equals the all-defaults one.
    fn assert_one_warning(var: &str, value: &str, fallback: &str) {
        let (config, warnings) = load(&[(var, value)]);
        assert_eq!(warnings.len(), 1, "{var}={value:?}: {warnings:?}");
        let w = &warnings[0];
        assert!(w.contains(var), "{w}");
        assert!(w.contains(&quote(value)), "{w}");
        assert!(w.contains(fallback), "{w}");
        assert!(w.contains("using"), "{w}");
        assert_eq!(config, Config::default(), "{var}={value:?}");
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Inputs that trip up naive parsers; none may panic or be accepted by numeric settings.
    const WEIRD: &[&str] = &[
        "abc",
        "inf",
        "-inf",
        "NaN",
        "nan",
        "1e400",
        "-1e400",
        "-1",
        "-5.5",
        "1e",
        "0x10",
        "½",
        "١٢",
        "💥",
        "1,5",
        "99999999999999999999999999999999",
        "18446744073709551616",
        "\u{202e}12",
        "1 2",
        "--1",
        "+-1",
        "..",
        "\u{0}",
    ];

    #[test]
    fn nothing_set_gives_defaults_and_no_warnings() {
        let config = load_ok(&[]);
        assert_eq!(config, Config::default());
        assert!(config.enabled);
        assert!(config.env.is_none() && config.version.is_none());
        assert!(config.tags.is_empty());
        assert_eq!(
            config.agent,
            AgentUrl::Http {
                host: "localhost".into(),
                port: 8126
            }
        );
        assert_eq!(config.agent_url_string(), "http://localhost:8126");
        assert!(config.output_pprof.is_none());
        assert_eq!(config.upload_period, secs(60.0));
        assert!(config.cpu_enabled && config.wall_enabled && config.memory_enabled);
        assert!(config.heap_enabled && config.lock_enabled);
        assert_eq!(config.cpu_frequency_hz, 100);
        assert_eq!(config.wall_interval, Duration::from_millis(10));
        assert_eq!(config.heap_sample_size, 524_288);
        assert_eq!(config.lock_sample_interval_ns, 100_000);
        assert_eq!(config.lock_hold_sample_every, 100);
        assert_eq!(config.max_frames, 128);
        assert_eq!(config.log_level, Level::Warn);
        assert_eq!(config.upload_timeout, secs(10.0));
        assert_eq!(config.exit_flush_timeout, secs(2.0));
    }

    #[test]
    fn empty_and_blank_values_mean_default_without_warning() {
        for var in ALL_VARS {
            for blank in ["", "   ", "\t\n"] {
                let config = load_ok(&[(var, blank)]);
                assert_eq!(config, Config::default(), "{var}={blank:?}");
            }
        }
    }

    const ALL_VARS: &[&str] = &[
        "DD_PROFILING_ENABLED",
        "DD_SERVICE",
        "DD_ENV",
        "DD_VERSION",
        "DD_TAGS",
        "DD_PROFILING_TAGS",
        "DD_AGENT_HOST",
        "DD_TRACE_AGENT_PORT",
        "DD_TRACE_AGENT_URL",
        "DD_PROFILING_OUTPUT_PPROF",
        "DD_PROFILING_UPLOAD_PERIOD",
        "DD_PROFILING_CPU_ENABLED",
        "DD_PROFILING_WALL_ENABLED",
        "DD_PROFILING_MEMORY_ENABLED",
        "DD_PROFILING_HEAP_ENABLED",
        "DD_PROFILING_LOCK_ENABLED",
        "DD_PROFILING_CPU_FREQUENCY",
        "DD_PROFILING_WALL_INTERVAL_MS",
        "DD_PROFILING_HEAP_SAMPLE_SIZE",
        "DD_PROFILING_LOCK_SAMPLE_NS",
        "DD_PROFILING_LOCK_HOLD_SAMPLE_EVERY",
        "DD_PROFILING_MAX_FRAMES",
        "DD_PROFILING_LOG_LEVEL",
        "DD_PROFILING_UPLOAD_TIMEOUT",
        "DD_PROFILING_EXIT_FLUSH_TIMEOUT",
        "DD_PROFILING_SEPARATE_DEBUG_INFO",
        "DD_PROFILING_PYTHON_NATIVE",
        "DD_PROFILING_EMPTY_PROFILES",
        "DD_PROFILING_EXCEPTION_ENABLED",
        "DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL",
    ];

    #[test]
    fn parse_bool_accepts_common_spellings() {
        for s in [
            "true", "TRUE", "True", "1", "yes", "YES", "on", "On", "t", "T", "y", " Y ", "\ttrue\n",
        ] {
            assert_eq!(parse_bool(s), Some(true), "{s:?}");
        }
        for s in [
            "false", "FALSE", "0", "no", "No", "off", "OFF", "f", "F", "n", " n ",
        ] {
            assert_eq!(parse_bool(s), Some(false), "{s:?}");
        }
        for s in [
            "",
            "2",
            "-1",
            "tru",
            "yess",
            "enable",
            "ｔｒｕｅ",
            "真",
            "İ",
            "1.0",
            "o",
        ] {
            assert_eq!(parse_bool(s), None, "{s:?}");
        }
    }

    const FLAGS: &[&str] = &[
        "DD_PROFILING_ENABLED",
        "DD_PROFILING_CPU_ENABLED",
        "DD_PROFILING_WALL_ENABLED",
        "DD_PROFILING_MEMORY_ENABLED",
        "DD_PROFILING_HEAP_ENABLED",
        "DD_PROFILING_LOCK_ENABLED",
        "DD_PROFILING_EXCEPTION_ENABLED",
    ];

    fn flag_value(config: &Config, var: &str) -> bool {
        match var {
            "DD_PROFILING_ENABLED" => config.enabled,
            "DD_PROFILING_CPU_ENABLED" => config.cpu_enabled,
            "DD_PROFILING_WALL_ENABLED" => config.wall_enabled,
            "DD_PROFILING_MEMORY_ENABLED" => config.memory_enabled,
            "DD_PROFILING_HEAP_ENABLED" => config.heap_enabled,
            "DD_PROFILING_LOCK_ENABLED" => config.lock_enabled,
            "DD_PROFILING_EXCEPTION_ENABLED" => config.exception_enabled,
            _ => unreachable!(),
        }
    }

    #[test]
    fn flags_parse_good_values() {
        for var in FLAGS {
            assert!(!flag_value(&load_ok(&[(var, "false")]), var));
            assert!(!flag_value(&load_ok(&[(var, " Off ")]), var));
            assert!(!flag_value(&load_ok(&[(var, "0")]), var));
            assert!(flag_value(&load_ok(&[(var, "yes")]), var));
            assert!(flag_value(&load(&[]).0, var));
        }
    }

    #[test]
    fn flags_warn_once_on_bad_values() {
        for var in FLAGS {
            for bad in ["maybe", "2", "💥", "truee", "-0", "on off"] {
                assert_one_warning(var, bad, "using the default true");
            }
        }
        let (_, w) = load(&[("DD_PROFILING_ENABLED", "maybe")]);
        assert!(
            w[0].contains("true/false"),
            "says what is accepted: {}",
            w[0]
        );
    }

    #[test]
    fn warning_has_the_documented_shape() {
        let (_, w) = load(&[("DD_PROFILING_UPLOAD_PERIOD", "abc")]);
        assert_eq!(
            w,
            ["DD_PROFILING_UPLOAD_PERIOD=\"abc\" is not a number of seconds between 0.05 and 86400; using the default 60"]
        );
    }

    #[test]
    fn service_defaults_to_a_non_empty_program_name() {
        let config = load_ok(&[]);
        assert!(!config.service.trim().is_empty());
        assert!(!config.service.contains('/'));
        assert_eq!(load_ok(&[("DD_SERVICE", "  web-api ")]).service, "web-api");
        assert_eq!(load_ok(&[("DD_SERVICE", "сервис-😀")]).service, "сервис-😀");
    }

    #[test]
    fn program_name_pieces() {
        assert_eq!(
            name_from_cmdline(b"/usr/bin/python3\0app.py\0").as_deref(),
            Some("python3")
        );
        assert_eq!(name_from_cmdline(b"./run\0").as_deref(), Some("run"));
        assert_eq!(name_from_cmdline(b"plain").as_deref(), Some("plain"));
        assert_eq!(name_from_cmdline(b"").as_deref(), None);
        assert_eq!(name_from_cmdline(b"/usr/bin/\0x\0").as_deref(), None);
        assert_eq!(name_from_cmdline(b"\0arg\0").as_deref(), None);
        assert_eq!(
            name_from_cmdline(b"/bin/\xff\xfe\0").map(|s| s.is_empty()),
            Some(false)
        );
        assert_eq!(name_from_comm(b"python3\n").as_deref(), Some("python3"));
        assert_eq!(name_from_comm(b"\n").as_deref(), None);
        assert!(!program_name().is_empty());
    }

    #[test]
    fn env_and_version_are_optional_text() {
        let config = load_ok(&[("DD_ENV", " prod "), ("DD_VERSION", "1.2.3-rc1")]);
        assert_eq!(config.env.as_deref(), Some("prod"));
        assert_eq!(config.version.as_deref(), Some("1.2.3-rc1"));
    }

    #[test]
    fn output_pprof_empty_is_unset() {
        assert_eq!(
            load_ok(&[("DD_PROFILING_OUTPUT_PPROF", "")]).output_pprof,
            None
        );
        let config = load_ok(&[("DD_PROFILING_OUTPUT_PPROF", "/tmp/prof/app")]);
        assert_eq!(config.output_pprof.as_deref(), Some("/tmp/prof/app"));
    }

    #[test]
    fn non_utf8_values_are_bad_values() {
        let not_utf8 = |var: &'static str| {
            move |name: &str| (name == var).then(|| Raw::NotUtf8("a\u{fffd}b".to_string()))
        };
        let cases = [
            ("DD_SERVICE", "the program name"),
            ("DD_ENV", "the default none"),
            ("DD_PROFILING_OUTPUT_PPROF", "upload to the Agent"),
            ("DD_PROFILING_ENABLED", "the default true"),
            ("DD_PROFILING_MAX_FRAMES", "the default 128"),
            ("DD_TAGS", "no tags"),
            ("DD_TRACE_AGENT_URL", "http://localhost:8126"),
            ("DD_AGENT_HOST", "the default localhost"),
        ];
        for (var, fallback) in cases {
            let (config, warnings) = from_source(not_utf8(var));
            assert_eq!(warnings.len(), 1, "{var}: {warnings:?}");
            let w = &warnings[0];
            assert!(
                w.contains(var) && w.contains("UTF-8") && w.contains(fallback),
                "{w}"
            );
            assert!(w.contains("\"a\u{fffd}b\""), "{w}");
            assert_eq!(config, Config::default());
        }
    }

    #[test]
    fn upload_period() {
        let var = "DD_PROFILING_UPLOAD_PERIOD";
        assert_eq!(load_ok(&[(var, "30")]).upload_period, secs(30.0));
        assert_eq!(load_ok(&[(var, " 0.5 ")]).upload_period, secs(0.5));
        assert_eq!(load_ok(&[(var, "0.05")]).upload_period, secs(0.05));
        assert_eq!(load_ok(&[(var, "86400")]).upload_period, secs(86400.0));
        assert_eq!(load_ok(&[(var, "1e2")]).upload_period, secs(100.0));
        for bad in WEIRD.iter().chain(&["0", "-0", "0.01", "86401", "1e5"]) {
            assert_one_warning(var, bad, "using the default 60");
        }
    }

    #[test]
    fn upload_timeout() {
        let var = "DD_PROFILING_UPLOAD_TIMEOUT";
        assert_eq!(load_ok(&[(var, "2.5")]).upload_timeout, secs(2.5));
        assert_eq!(load_ok(&[(var, "0.1")]).upload_timeout, secs(0.1));
        assert_eq!(load_ok(&[(var, "300")]).upload_timeout, secs(300.0));
        for bad in WEIRD.iter().chain(&["0", "0.05", "300.5"]) {
            assert_one_warning(var, bad, "using the default 10");
        }
    }

    #[test]
    fn exit_flush_timeout() {
        let var = "DD_PROFILING_EXIT_FLUSH_TIMEOUT";
        assert_eq!(load_ok(&[(var, "0")]).exit_flush_timeout, Duration::ZERO);
        assert_eq!(load_ok(&[(var, "-0")]).exit_flush_timeout, Duration::ZERO);
        assert_eq!(load_ok(&[(var, "0.25")]).exit_flush_timeout, secs(0.25));
        assert_eq!(load_ok(&[(var, "60")]).exit_flush_timeout, secs(60.0));
        for bad in WEIRD.iter().chain(&["60.01", "-0.001"]) {
            assert_one_warning(var, bad, "using the default 2");
        }
    }

    #[test]
    fn wall_interval() {
        let var = "DD_PROFILING_WALL_INTERVAL_MS";
        assert_eq!(
            load_ok(&[(var, "20")]).wall_interval,
            Duration::from_millis(20)
        );
        assert_eq!(
            load_ok(&[(var, "1.5")]).wall_interval,
            Duration::from_micros(1500)
        );
        assert_eq!(
            load_ok(&[(var, "1")]).wall_interval,
            Duration::from_millis(1)
        );
        assert_eq!(
            load_ok(&[(var, "10000")]).wall_interval,
            Duration::from_secs(10)
        );
        for bad in WEIRD.iter().chain(&["0", "0.5", "10001"]) {
            assert_one_warning(var, bad, "using the default 10");
        }
    }

    #[test]
    fn cpu_frequency() {
        let var = "DD_PROFILING_CPU_FREQUENCY";
        assert_eq!(load_ok(&[(var, "250")]).cpu_frequency_hz, 250);
        assert_eq!(load_ok(&[(var, "1")]).cpu_frequency_hz, 1);
        assert_eq!(load_ok(&[(var, "10000")]).cpu_frequency_hz, 10_000);
        for bad in WEIRD.iter().chain(&["0", "10001", "99.5", "4294967396"]) {
            assert_one_warning(var, bad, "using the default 100");
        }
    }

    #[test]
    fn heap_sample_size() {
        let var = "DD_PROFILING_HEAP_SAMPLE_SIZE";
        assert_eq!(load_ok(&[(var, "4096")]).heap_sample_size, 4096);
        assert_eq!(load_ok(&[(var, "1")]).heap_sample_size, 1);
        assert_eq!(load_ok(&[(var, "1099511627776")]).heap_sample_size, 1 << 40);
        for bad in WEIRD.iter().chain(&["0", "1099511627777", "512k"]) {
            assert_one_warning(var, bad, "using the default 524288");
        }
    }

    #[test]
    fn lock_sample_interval() {
        let var = "DD_PROFILING_LOCK_SAMPLE_NS";
        assert_eq!(load_ok(&[(var, "5000")]).lock_sample_interval_ns, 5000);
        assert_eq!(
            load_ok(&[(var, "1000000000000")]).lock_sample_interval_ns,
            1_000_000_000_000
        );
        for bad in WEIRD.iter().chain(&["0", "1000000000001"]) {
            assert_one_warning(var, bad, "using the default 100000");
        }
    }

    #[test]
    fn lock_hold_sample_every() {
        let var = "DD_PROFILING_LOCK_HOLD_SAMPLE_EVERY";
        assert_eq!(load_ok(&[(var, "1")]).lock_hold_sample_every, 1);
        assert_eq!(load_ok(&[(var, " 250 ")]).lock_hold_sample_every, 250);
        assert_eq!(load_ok(&[(var, "1000000")]).lock_hold_sample_every, 1_000_000);
        for bad in WEIRD.iter().chain(&["0", "1000001", "100.0", "1e3"]) {
            assert_one_warning(var, bad, "using the default 100");
        }
    }

    #[test]
    fn max_frames() {
        let var = "DD_PROFILING_MAX_FRAMES";
        assert_eq!(load_ok(&[(var, "64")]).max_frames, 64);
        assert_eq!(load_ok(&[(var, "8")]).max_frames, 8);
        assert_eq!(load_ok(&[(var, "1024")]).max_frames, 1024);
        for bad in WEIRD.iter().chain(&["7", "0", "1025"]) {
            assert_one_warning(var, bad, "using the default 128");
        }
    }

    #[test]
    fn log_level() {
        let var = "DD_PROFILING_LOG_LEVEL";
        assert_eq!(load_ok(&[(var, "debug")]).log_level, Level::Debug);
        assert_eq!(load_ok(&[(var, " ERROR ")]).log_level, Level::Error);
        assert_eq!(load_ok(&[(var, "info")]).log_level, Level::Info);
        for bad in ["verbose", "trace", "3", "💥", "warn ing"] {
            assert_one_warning(var, bad, "using the default warn");
        }
    }

    #[test]
    fn separate_debug_info() {
        let var = "DD_PROFILING_SEPARATE_DEBUG_INFO";
        assert_eq!(load_ok(&[(var, "full")]).separate_debug_info, SeparateDebugInfo::Full);
        assert_eq!(load_ok(&[(var, " Symbols ")]).separate_debug_info, SeparateDebugInfo::Symbols);
        for bad in ["dwarf", "yes", "1", "💥", "fu ll"] {
            assert_one_warning(var, bad, "using the default symbols");
        }
    }

    #[test]
    fn exception_sampling_interval() {
        let var = "DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL";
        assert_eq!(load_ok(&[]).exception_sampling_interval, 100);
        assert_eq!(load_ok(&[(var, "1")]).exception_sampling_interval, 1);
        for bad in ["0", "-3", "1.5", "lots"] {
            assert_one_warning(var, bad, "using the default 100");
        }
    }

    #[test]
    fn empty_profiles() {
        assert!(!load_ok(&[]).empty_profiles);
        assert!(load_ok(&[("DD_PROFILING_EMPTY_PROFILES", "true")]).empty_profiles);
        assert_one_warning("DD_PROFILING_EMPTY_PROFILES", "sometimes", "using the default false");
    }

    #[test]
    fn python_native() {
        let var = "DD_PROFILING_PYTHON_NATIVE";
        assert_eq!(load_ok(&[]).python_native, PythonNative::Python);
        assert_eq!(load_ok(&[(var, "all")]).python_native, PythonNative::All);
        assert_eq!(load_ok(&[(var, " Python ")]).python_native, PythonNative::Python);
        for bad in ["full", "native", "1", "al l"] {
            assert_one_warning(var, bad, "using the default python");
        }
    }

    fn tags(vars: &[(&str, &str)]) -> (Vec<(String, String)>, Vec<String>) {
        let (config, warnings) = load(vars);
        (config.tags, warnings)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tags_split_on_commas_spaces_or_both() {
        let expected = pairs(&[("a", "1"), ("b", "2"), ("c", "3")]);
        for text in [
            "a:1,b:2,c:3",
            "a:1 b:2 c:3",
            "a:1, b:2 ,c:3",
            " a:1,,b:2\t\nc:3 ,",
        ] {
            let (got, warnings) = tags(&[("DD_TAGS", text)]);
            assert_eq!(got, expected, "{text:?}");
            assert!(warnings.is_empty(), "{text:?}: {warnings:?}");
        }
    }

    #[test]
    fn tag_value_may_contain_colons() {
        let (got, _) = tags(&[("DD_TAGS", "url:http://x:80,time:12:30")]);
        assert_eq!(got, pairs(&[("url", "http://x:80"), ("time", "12:30")]));
    }

    #[test]
    fn dd_tags_come_before_profiling_tags() {
        let (got, w) = tags(&[("DD_PROFILING_TAGS", "p:2"), ("DD_TAGS", "d:1,team:x")]);
        assert!(w.is_empty());
        assert_eq!(got, pairs(&[("d", "1"), ("team", "x"), ("p", "2")]));
    }

    #[test]
    fn invalid_tags_are_dropped_one_warning_each() {
        for var in ["DD_TAGS", "DD_PROFILING_TAGS"] {
            let (got, warnings) = tags(&[(var, "good:1,novalue:,:nokey,bare,:,ok:2")]);
            assert_eq!(got, pairs(&[("good", "1"), ("ok", "2")]));
            assert_eq!(warnings.len(), 4, "{warnings:?}");
            for (w, tag) in warnings.iter().zip(["novalue:", ":nokey", "bare", ":"]) {
                assert!(w.contains(var) && w.contains(&format!("\"{tag}\"")), "{w}");
                assert!(w.contains("dropping"), "{w}");
            }
        }
    }

    #[test]
    fn weird_tags_do_not_panic() {
        for text in WEIRD
            .iter()
            .chain(&["💥:💥", "k:v:w:x", "::::", "\u{0}:\u{0}", "ķ:ā,ü"])
        {
            let _ = tags(&[("DD_TAGS", text)]);
        }
        let (got, _) = tags(&[("DD_TAGS", "💥:💥")]);
        assert_eq!(got, pairs(&[("💥", "💥")]));
    }

    fn agent(vars: &[(&str, &str)]) -> (AgentUrl, Vec<String>) {
        let (config, warnings) = load(vars);
        (config.agent, warnings)
    }

    fn http(host: &str, port: u16) -> AgentUrl {
        AgentUrl::Http {
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn agent_from_host_and_port() {
        assert_eq!(
            agent(&[("DD_AGENT_HOST", "agent.local")]).0,
            http("agent.local", 8126)
        );
        assert_eq!(
            agent(&[("DD_TRACE_AGENT_PORT", "9000")]).0,
            http("localhost", 9000)
        );
        assert_eq!(
            agent(&[
                ("DD_AGENT_HOST", "10.0.0.5"),
                ("DD_TRACE_AGENT_PORT", " 65535 ")
            ])
            .0,
            http("10.0.0.5", 65535)
        );
        let (v6, w) = agent(&[("DD_AGENT_HOST", "::1")]);
        assert!(w.is_empty());
        assert_eq!(v6, http("::1", 8126));
        assert_eq!(v6.to_string(), "http://[::1]:8126");
        assert_eq!(
            agent(&[("DD_AGENT_HOST", "[fe80::1]")]).0,
            http("fe80::1", 8126)
        );
    }

    #[test]
    fn bad_host_or_port_warns_once() {
        for bad in [
            "http://agent",
            "agent:8126",
            "a b",
            "agent/x",
            "💥",
            "[::1",
            "ag@ent",
        ] {
            assert_one_warning("DD_AGENT_HOST", bad, "using the default localhost");
        }
        for bad in WEIRD.iter().chain(&["0", "65536", "8126.0", "-8126"]) {
            assert_one_warning("DD_TRACE_AGENT_PORT", bad, "using the default 8126");
        }
    }

    #[test]
    fn agent_url_forms() {
        let url = |u: &str| {
            let (a, w) = agent(&[("DD_TRACE_AGENT_URL", u)]);
            assert!(w.is_empty(), "{u}: {w:?}");
            a
        };
        assert_eq!(url("http://agent:9126"), http("agent", 9126));
        assert_eq!(url("http://agent"), http("agent", 8126));
        assert_eq!(url("http://agent/"), http("agent", 8126));
        assert_eq!(url("HTTP://Agent:1"), http("Agent", 1));
        assert_eq!(url("http://[::1]:9000"), http("::1", 9000));
        assert_eq!(url("http://[::1]"), http("::1", 8126));
        assert_eq!(url(" http://127.0.0.1:8126 "), http("127.0.0.1", 8126));
        let sock = url("unix:///var/run/datadog/apm.socket");
        assert_eq!(
            sock,
            AgentUrl::Unix {
                path: "/var/run/datadog/apm.socket".into()
            }
        );
        let config = load_ok(&[("DD_TRACE_AGENT_URL", "unix:///var/run/datadog/apm.socket")]);
        assert_eq!(
            config.agent_url_string(),
            "unix:///var/run/datadog/apm.socket"
        );
        let config = load_ok(&[("DD_TRACE_AGENT_URL", "http://agent")]);
        assert_eq!(config.agent_url_string(), "http://agent:8126");
    }

    #[test]
    fn agent_url_wins_over_host_and_port() {
        let (a, w) = agent(&[
            ("DD_TRACE_AGENT_URL", "http://url-host:1234"),
            ("DD_AGENT_HOST", "host-var"),
            ("DD_TRACE_AGENT_PORT", "4321"),
        ]);
        assert!(w.is_empty());
        assert_eq!(a, http("url-host", 1234));
        let (a, w) = agent(&[
            ("DD_TRACE_AGENT_URL", "unix:///tmp/agent.sock"),
            ("DD_TRACE_AGENT_PORT", "not-a-port"),
        ]);
        assert!(w.is_empty(), "ignored port is not warned about: {w:?}");
        assert_eq!(
            a,
            AgentUrl::Unix {
                path: "/tmp/agent.sock".into()
            }
        );
    }

    #[test]
    fn bad_agent_url_falls_back_to_host_and_port() {
        let bad_urls = [
            "ftp://agent",
            "agent:8126",
            "http://",
            "http://:8126",
            "http://agent:0",
            "http://agent:65536",
            "http://agent:",
            "http://agent:x",
            "http://agent/path",
            "http://user@agent",
            "http://[::1",
            "http://[::1]x",
            "unix://relative.sock",
            "unix://",
            "unix:///",
            "unix:///tmp/dir/",
            "💥://💥",
            "http://💥",
            "://",
        ];
        for bad in bad_urls {
            assert_one_warning("DD_TRACE_AGENT_URL", bad, "http://localhost:8126");
        }
        let long = format!("unix:///{}", "x".repeat(200));
        let (_, w) = agent(&[("DD_TRACE_AGENT_URL", &long)]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].ends_with("from DD_AGENT_HOST and DD_TRACE_AGENT_PORT"),
            "{}",
            w[0]
        );
        assert!(w[0].contains('…'), "long values are cut: {}", w[0]);

        let (a, w) = agent(&[
            ("DD_TRACE_AGENT_URL", "tcp://x"),
            ("DD_AGENT_HOST", "other"),
            ("DD_TRACE_AGENT_PORT", "7777"),
        ]);
        assert_eq!(a, http("other", 7777));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("http://other:7777"), "{}", w[0]);
    }

    #[test]
    fn https_agent_url_is_refused_with_a_reason() {
        let (a, w) = agent(&[("DD_TRACE_AGENT_URL", "https://agent:443")]);
        assert_eq!(a, http("localhost", 8126));
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("DD_TRACE_AGENT_URL") && w[0].contains("https"),
            "{}",
            w[0]
        );
        assert!(
            w[0].contains("not") && w[0].contains("http://localhost:8126"),
            "{}",
            w[0]
        );
    }

    #[test]
    fn bad_url_and_bad_port_give_two_warnings() {
        let (a, w) = agent(&[
            ("DD_TRACE_AGENT_URL", "bogus"),
            ("DD_TRACE_AGENT_PORT", "bogus"),
        ]);
        assert_eq!(a, http("localhost", 8126));
        assert_eq!(w.len(), 2, "{w:?}");
    }

    #[test]
    fn every_variable_survives_weird_input() {
        let long = "9".repeat(10_000);
        for var in ALL_VARS {
            for value in WEIRD
                .iter()
                .copied()
                .chain([long.as_str(), "\u{feff}", "\u{10ffff}"])
            {
                let (_, warnings) = load(&[(var, value)]);
                // Tags warn per dropped tag; "1,5" holds two.
                let most = if var.ends_with("TAGS") { 2 } else { 1 };
                assert!(warnings.len() <= most, "{var}={value:?}: {warnings:?}");
                for w in &warnings {
                    assert!(w.contains(var), "{w}");
                    assert!(w.chars().count() < 600, "warnings stay short: {w}");
                }
            }
        }
    }

    #[test]
    fn many_bad_values_give_one_warning_each() {
        let vars: Vec<(&str, &str)> = ALL_VARS
            .iter()
            .filter(|v| {
                !matches!(
                    **v,
                    "DD_SERVICE" | "DD_ENV" | "DD_VERSION" | "DD_PROFILING_OUTPUT_PPROF"
                )
            })
            .map(|v| (*v, "💥"))
            .collect();
        let (config, warnings) = load(&vars);
        // DD_AGENT_HOST and DD_TRACE_AGENT_PORT count too, since the URL is bad.
        assert_eq!(warnings.len(), vars.len(), "{warnings:#?}");
        assert!(config.tags.is_empty());
    }

    #[test]
    fn from_env_does_not_panic() {
        let config = Config::from_env();
        assert!(!config.service.is_empty());
    }
}
