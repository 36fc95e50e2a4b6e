//! Upload to the Datadog Agent (intake v4), checked against the real receiver
//! `ddapm-test-agent` (installed by `scripts/test-env.sh` into `target/test-venv`), over TCP
//! and a unix socket, and against hostile "agents" written here: nobody listening, a socket
//! that accepts and never answers, one that hangs up at once, and one that answers errors.
//!
//! The test agent validates nothing, so these tests parse what it stored themselves: the
//! headers, the multipart body, `event.json` and the gzipped pprof.
//!
//! Time bound for hostile agents (stated in the README too): a program that runs T seconds
//! finishes within T + DD_PROFILING_EXIT_FLUSH_TIMEOUT + 1 s, whatever the Agent does.
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ddprof::profile::pprof::Profile;

const VERSION: &str = env!("CARGO_PKG_VERSION");

// ---------------------------------------------------------------------------------------------
// The real test agent

struct TestAgent {
    child: Child,
    port: u16,
    socket: Option<PathBuf>,
    log: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn venv() -> PathBuf {
    let out = Command::new("sh")
        .arg(common::repo().join("scripts/test-env.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run scripts/test-env.sh");
    assert!(
        out.status.success(),
        "scripts/test-env.sh failed (it installs ddapm-test-agent)"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

impl TestAgent {
    /// Starts `ddapm-test-agent` on 127.0.0.1 (and on a unix socket when `unix`) and waits
    /// until it answers.
    fn start(unix: bool) -> TestAgent {
        static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let venv = VENV.get_or_init(venv);
        let tag = format!("{}-{}", std::process::id(), free_port());
        let log = std::env::temp_dir().join(format!("ddprof-test-agent-{tag}.log"));
        let socket = unix.then(|| std::env::temp_dir().join(format!("ddprof-agent-{tag}.sock")));
        // Ports can be taken between choosing and binding; try a few times.
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(venv.join("bin/ddapm-test-agent"));
            let log_file = std::fs::File::create(&log).unwrap();
            cmd.args(["--host", "127.0.0.1", "-p", &port.to_string()])
                .args(["--otlp-http-port", &free_port().to_string()])
                .args(["--otlp-grpc-port", &free_port().to_string()])
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file);
            if let Some(s) = &socket {
                let _ = std::fs::remove_file(s);
                cmd.arg("--trace-uds-socket").arg(s);
            }
            let child = cmd.spawn().expect("cannot start ddapm-test-agent");
            let mut agent = TestAgent {
                child,
                port,
                socket: socket.clone(),
                log: log.clone(),
            };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = agent.child.try_wait() {
                    break;
                }
                let socket_ready = agent.socket.as_ref().is_none_or(|s| s.exists());
                if socket_ready && http_get(port, "/test/session/requests").is_ok() {
                    return agent;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!(
                "ddapm-test-agent did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("could not start ddapm-test-agent (log: {})", log.display());
    }

    fn url(&self) -> String {
        match &self.socket {
            Some(s) => format!("unix://{}", s.display()),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// Every profile upload the agent received, decoded.
    fn uploads(&self) -> Vec<Upload> {
        let text =
            http_get(self.port, "/test/session/requests").expect("GET /test/session/requests");
        let requests = Json::parse(&text);
        requests
            .arr()
            .iter()
            .filter(|r| r.get("url").str().ends_with("/profiling/v1/input"))
            .map(|r| {
                assert_eq!(r.get("method").str(), "POST");
                let headers = r
                    .get("headers")
                    .obj()
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.str().to_string()))
                    .collect();
                Upload::parse(headers, &base64_decode(r.get("body").str()))
            })
            .collect()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(s) = &self.socket {
            let _ = std::fs::remove_file(s);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A plain HTTP/1.1 GET with `Connection: close`; the body, when the status is 200.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let end = find(&raw, b"\r\n\r\n").ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head);
    }
    let mut body = raw[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok(String::from_utf8(body).unwrap())
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n").expect("chunk size line");
        let size_text = String::from_utf8_lossy(&data[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// One upload, taken apart

#[derive(Debug)]
struct Upload {
    /// Header names lower-cased.
    headers: BTreeMap<String, String>,
    /// Multipart parts: (name, filename, content type, data).
    parts: Vec<(String, String, String, Vec<u8>)>,
    event: Json,
    tags: Vec<(String, String)>,
    profile: Profile,
}

impl Upload {
    fn parse(headers: BTreeMap<String, String>, body: &[u8]) -> Upload {
        let content_type = headers.get("content-type").expect("a Content-Type header");
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap_or_else(|| panic!("not a multipart form: {content_type}"));
        assert_eq!(
            headers
                .get("content-length")
                .map(|l| l.parse::<usize>().unwrap()),
            Some(body.len())
        );
        let parts = parse_multipart(body, boundary);
        let event_part = parts
            .iter()
            .find(|p| p.0 == "event")
            .expect("an `event` part");
        let event = Json::parse(std::str::from_utf8(&event_part.3).expect("event.json is UTF-8"));
        let tags = event
            .get("tags_profiler")
            .str()
            .split(',')
            .map(|t| {
                let (k, v) = t
                    .split_once(':')
                    .unwrap_or_else(|| panic!("tag {t:?} is not k:v"));
                (k.to_string(), v.to_string())
            })
            .collect();
        let pprof = parts
            .iter()
            .find(|p| p.0 == "profile.pprof")
            .expect("a `profile.pprof` part");
        assert!(
            pprof.3.starts_with(&[0x1f, 0x8b]),
            "profile.pprof is not gzip-compressed"
        );
        let profile = ddprof::profile::builder::decode(&pprof.3)
            .unwrap_or_else(|e| panic!("profile.pprof: {e}"));
        Upload {
            headers,
            parts,
            event,
            tags,
            profile,
        }
    }

    fn tag(&self, key: &str) -> &str {
        let found: Vec<&str> = self
            .tags
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            found.len(),
            1,
            "tag {key} appears {} times in {:?}",
            found.len(),
            self.tags
        );
        found[0]
    }

    fn seq(&self) -> u64 {
        self.tag("profile_seq").parse().unwrap()
    }

    fn pid(&self) -> u32 {
        self.tag("process_id").parse().unwrap()
    }

    fn sample_types(&self) -> Vec<(String, String)> {
        let s = |i: i64| self.profile.string_table[i as usize].clone();
        self.profile
            .sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect()
    }
}

/// Splits a multipart/form-data body into (name, filename, content type, data).
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, String, String, Vec<u8>)> {
    let delimiter = format!("--{boundary}");
    assert!(
        body.starts_with(delimiter.as_bytes()),
        "the body does not start with the boundary"
    );
    let closing = format!("\r\n--{boundary}--\r\n");
    assert!(
        body.ends_with(closing.as_bytes()),
        "the body does not end with the closing boundary"
    );
    let separator = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let mut rest = &body[delimiter.len()..];
    while rest.starts_with(b"\r\n") {
        rest = &rest[2..];
        let head_end = find(rest, b"\r\n\r\n").expect("part headers end");
        let head = String::from_utf8(rest[..head_end].to_vec()).unwrap();
        rest = &rest[head_end + 4..];
        let data_end = find(rest, separator.as_bytes()).expect("part ends with the boundary");
        let data = rest[..data_end].to_vec();
        rest = &rest[data_end + separator.len()..];
        let mut name = None;
        let mut filename = None;
        let mut content_type = String::new();
        for line in head.split("\r\n") {
            let (key, value) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("bad part header {line:?}"));
            match key.to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    assert!(value.starts_with("form-data;"), "{value}");
                    for param in value.split(';').skip(1) {
                        let (k, v) = param.trim().split_once('=').unwrap();
                        let v = v.trim_matches('"').to_string();
                        match k {
                            "name" => name = Some(v),
                            "filename" => filename = Some(v),
                            _ => {}
                        }
                    }
                }
                "content-type" => content_type = value.to_string(),
                _ => {}
            }
        }
        parts.push((
            name.expect("part has a name"),
            filename.unwrap_or_default(),
            content_type,
            data,
        ));
    }
    assert_eq!(rest, b"--\r\n", "trailing bytes after the last part");
    parts
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:?}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|&c| c != b'=').collect();
        let mut n = 0u32;
        for (i, &c) in data.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..data.len().saturating_sub(1)]);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A small JSON reader (the tests have no JSON crate)

#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Json {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing characters in JSON: {text}");
        v
    }
    fn get(&self, key: &str) -> &Json {
        self.obj()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {key:?} in {self:?}"))
    }
    fn obj(&self) -> &[(String, Json)] {
        match self {
            Json::Obj(o) => o,
            _ => panic!("not an object: {self:?}"),
        }
    }
    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => panic!("not an array: {self:?}"),
        }
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }
    fn num(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            _ => panic!("not a number: {self:?}"),
        }
    }
    fn bool(&self) -> bool {
        match self {
            Json::Bool(b) => *b,
            _ => panic!("not a boolean: {self:?}"),
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(
            self.s.get(self.i),
            Some(&c),
            "JSON: expected {:?} at {}",
            c as char,
            self.i
        );
        self.i += 1;
    }
    fn value(&mut self) -> Json {
        self.ws();
        match self.s.get(self.i).copied() {
            Some(b'{') => {
                self.i += 1;
                let mut o = Vec::new();
                self.ws();
                if self.s[self.i] == b'}' {
                    self.i += 1;
                    return Json::Obj(o);
                }
                loop {
                    self.ws();
                    let k = self.string();
                    self.eat(b':');
                    o.push((k, self.value()));
                    self.ws();
                    self.i += 1;
                    match self.s[self.i - 1] {
                        b',' => continue,
                        b'}' => return Json::Obj(o),
                        c => panic!("JSON: unexpected {:?} at {}", c as char, self.i - 1),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.s[self.i] == b']' {
                    self.i += 1;
                    return Json::Arr(a);
                }
                loop {
                    a.push(self.value());
                    self.ws();
                    self.i += 1;
                    match self.s[self.i - 1] {
                        b',' => continue,
                        b']' => return Json::Arr(a),
                        c => panic!("JSON: unexpected {:?} at {}", c as char, self.i - 1),
                    }
                }
            }
            Some(b'"') => Json::Str(self.string()),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'n') => self.word("null", Json::Null),
            _ => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                Json::Num(
                    text.parse()
                        .unwrap_or_else(|_| panic!("JSON: bad value at {start}: {text:?}")),
                )
            }
        }
    }
    fn word(&mut self, w: &str, v: Json) -> Json {
        assert!(
            self.s[self.i..].starts_with(w.as_bytes()),
            "JSON: bad literal at {}",
            self.i
        );
        self.i += w.len();
        v
    }
    fn hex4(&mut self) -> u32 {
        let h = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
        self.i += 4;
        u32::from_str_radix(h, 16).unwrap()
    }
    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = Vec::new();
        loop {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).unwrap(),
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut u = self.hex4();
                            if (0xd800..0xdc00).contains(&u) && self.s[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let low = self.hex4();
                                u = 0x10000 + ((u - 0xd800) << 10) + (low - 0xdc00);
                            }
                            char::from_u32(u).unwrap_or('\u{fffd}')
                        }
                        _ => panic!("JSON: bad escape"),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the tests

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length.
    assert_eq!(
        unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) },
        0
    );
    let len = buf.iter().position(|&b| b == 0).unwrap();
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && s.chars().enumerate().all(|(i, c)| {
            [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` → time since the epoch (checks the shape on the way).
fn parse_rfc3339(s: &str) -> SystemTime {
    let b = s.as_bytes();
    assert!(
        s.len() == 30
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.'
            && b[29] == b'Z',
        "not RFC 3339 with nanoseconds: {s:?}"
    );
    let n = |r: std::ops::Range<usize>| -> u64 {
        s[r].parse()
            .unwrap_or_else(|_| panic!("bad number in {s:?}"))
    };
    let (y, mo, d) = (n(0..4), n(5..7), n(8..10));
    assert!((1..=12).contains(&mo) && (1..=31).contains(&d), "{s}");
    // Days from 1970-01-01, counted the slow, obvious way.
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut days = (1970..y)
        .map(|y| if leap(y) { 366 } else { 365 })
        .sum::<u64>();
    let months = [
        31,
        if leap(y) { 29 } else { 28 },
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
    days += months[..(mo - 1) as usize].iter().sum::<u64>() + d - 1;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    UNIX_EPOCH + Duration::new(secs, n(20..29) as u32)
}

/// What every upload must look like, whatever the program.
fn check_upload(u: &Upload, service: &str, window: (SystemTime, SystemTime)) {
    // Headers.
    assert_eq!(
        u.headers.get("dd-evp-origin").map(String::as_str),
        Some("libddprof"),
        "{:?}",
        u.headers
    );
    assert_eq!(
        u.headers.get("dd-evp-origin-version").map(String::as_str),
        Some(VERSION),
        "{:?}",
        u.headers
    );
    // The two parts, in order.
    let names: Vec<(&str, &str)> = u
        .parts
        .iter()
        .map(|p| (p.0.as_str(), p.1.as_str()))
        .collect();
    assert_eq!(
        names,
        [("event", "event.json"), ("profile.pprof", "profile.pprof")]
    );
    assert_eq!(u.parts[0].2, "application/json");
    // event.json.
    let e = &u.event;
    assert_eq!(
        e.get("attachments"),
        &Json::Arr(vec![Json::Str("profile.pprof".into())])
    );
    // A Python process says so (its stacks are Python stacks); any other is native.
    let family = e.get("family").str();
    assert_eq!(family, if service == "upload-py" { "python" } else { "native" });
    assert_eq!(e.get("version").str(), "4");
    let start = parse_rfc3339(e.get("start").str());
    let end = parse_rfc3339(e.get("end").str());
    assert!(start < end, "start {start:?} is not before end {end:?}");
    assert!(
        start >= window.0 - Duration::from_secs(1) && end <= window.1 + Duration::from_secs(1),
        "{e:?} outside the run"
    );
    // Tags.
    assert_eq!(u.tag("service"), service);
    assert_eq!(u.tag("env"), "upload-test");
    assert_eq!(u.tag("version"), "1.2.3");
    assert_eq!(u.tag("team"), "profiling");
    assert_eq!(u.tag("owner"), "me");
    assert_eq!(u.tag("extra"), "yes");
    assert_eq!(u.tag("language"), family);
    assert_eq!(u.tag("profiler_version"), VERSION);
    assert!(
        is_uuid_v4(u.tag("runtime-id")),
        "runtime-id {} is not a v4 UUID",
        u.tag("runtime-id")
    );
    assert_eq!(u.tag("host"), hostname());
    assert!(u.seq() >= 1);
    // info: the profiler's settings as configured by `profiled`.
    let p = e.get("info").get("profiler");
    assert_eq!(p.get("version").str(), VERSION);
    assert_eq!(p.get("upload_period_s").num(), 1.0);
    assert!(p.get("cpu").get("enabled").bool());
    assert_eq!(p.get("cpu").get("frequency_hz").num(), 100.0);
    assert!(!p.get("wall").get("enabled").bool());
    assert_eq!(p.get("exit_flush_timeout_s").num(), 3.0);
    let up = e.get("info").get("upload");
    assert_eq!(up.get("backlog_limit").num(), 4.0);
    // The profile.
    let types = u.sample_types();
    for want in [("cpu-samples", "count"), ("cpu-time", "nanoseconds")] {
        assert!(
            types
                .iter()
                .any(|(t, unit)| (t.as_str(), unit.as_str()) == want),
            "no {want:?} in {types:?}"
        );
    }
}

/// Checks a whole run: uploads from each pid are numbered 1, 2, 3… with one runtime id, the
/// periodic ones cover about a second, and there are enough of them. Returns the uploads of
/// `pid`, by sequence number.
fn check_run<'a>(
    uploads: &'a [Upload],
    pid: u32,
    service: &str,
    window: (SystemTime, SystemTime),
    at_least: usize,
) -> Vec<&'a Upload> {
    let mut mine: Vec<&Upload> = uploads.iter().filter(|u| u.pid() == pid).collect();
    mine.sort_by_key(|u| u.seq());
    assert!(
        mine.len() >= at_least,
        "{} uploads from pid {pid}, expected at least {at_least}",
        mine.len()
    );
    let seqs: Vec<u64> = mine.iter().map(|u| u.seq()).collect();
    assert_eq!(
        seqs,
        (1..=mine.len() as u64).collect::<Vec<_>>(),
        "profile_seq of pid {pid}"
    );
    let id = mine[0].tag("runtime-id");
    for (i, u) in mine.iter().enumerate() {
        check_upload(u, service, window);
        assert_eq!(
            u.tag("runtime-id"),
            id,
            "runtime-id changes within pid {pid}"
        );
        let start = parse_rfc3339(u.event.get("start").str());
        let end = parse_rfc3339(u.event.get("end").str());
        let length = end.duration_since(start).unwrap();
        if i + 1 < mine.len() {
            assert!(
                length > Duration::from_millis(500) && length < Duration::from_millis(2500),
                "period {} lasts {length:?}",
                u.seq()
            );
        }
        if i > 0 {
            let previous_end = parse_rfc3339(mine[i - 1].event.get("end").str());
            assert_eq!(
                start, previous_end,
                "periods of pid {pid} do not follow each other"
            );
        }
    }
    let cpu: i64 = mine
        .iter()
        .map(|u| {
            let i = u
                .sample_types()
                .iter()
                .position(|(t, _)| t == "cpu-samples")
                .unwrap();
            u.profile.sample.iter().map(|s| s.value[i]).sum::<i64>()
        })
        .sum();
    assert!(cpu > 0, "no cpu-samples uploaded by pid {pid}");
    mine
}

/// Runs `program` under the library with uploads (no files), a 1 s period and the test tags.
fn profiled(program: impl AsRef<Path>, url: &str) -> common::Run {
    common::run(program)
        .env("DD_PROFILING_OUTPUT_PPROF", "")
        .env("DD_TRACE_AGENT_URL", url)
        .env("DD_PROFILING_UPLOAD_PERIOD", "1")
        .env("DD_PROFILING_EXIT_FLUSH_TIMEOUT", "3")
        .env("DD_SERVICE", "upload-svc")
        .env("DD_ENV", "upload-test")
        .env("DD_VERSION", "1.2.3")
        .env("DD_TAGS", "team:profiling,owner:me")
        .env("DD_PROFILING_TAGS", "extra:yes")
}

fn assert_no_upload_warning(out: &common::Outcome) {
    for line in out.stderr.lines() {
        let problem = [
            "cannot upload profiles",
            "not uploaded to",
            "profile uploads to",
        ]
        .iter()
        .any(|w| line.contains(w));
        assert!(
            !problem,
            "unexpected upload warning: {line}\n{}",
            out.describe_run()
        );
    }
}

fn python() -> PathBuf {
    let python =
        PathBuf::from(std::env::var("HOME").unwrap()).join(".pyenv/versions/3.11.7/bin/python3.11");
    assert!(python.exists(), "{} is not installed", python.display());
    python
}

// ---------------------------------------------------------------------------------------------
// The real agent

#[test]
fn c_program_uploads_to_the_test_agent_over_tcp() {
    let agent = TestAgent::start(false);
    let t0 = SystemTime::now();
    let out = profiled(common::program("upload_burn.c"), &agent.url())
        .arg("3")
        .go();
    let window = (t0, SystemTime::now());
    out.assert_success();
    assert_no_upload_warning(&out);
    let uploads = agent.uploads();
    let pid: u32 = out.value("pid");
    // Two full periods and the final one at exit.
    let mine = check_run(&uploads, pid, "upload-svc", window, 3);
    assert_eq!(
        mine.last()
            .unwrap()
            .event
            .get("info")
            .get("upload")
            .get("dropped_profiles_total")
            .num(),
        0.0
    );
    assert_eq!(uploads.len(), mine.len(), "uploads from other processes");
}

#[test]
fn python_program_uploads_to_the_test_agent() {
    let agent = TestAgent::start(false);
    let script = r#"
import os, time
def work(n):
    return sum(i * i for i in range(n))
print(f"pid={os.getpid()}", flush=True)
t0 = time.monotonic()
while time.monotonic() - t0 < 3.0:
    work(10000)
print("done")
"#;
    let t0 = SystemTime::now();
    let out = profiled(python(), &agent.url())
        .env("DD_SERVICE", "upload-py")
        .arg("-c")
        .arg(script)
        .go();
    let window = (t0, SystemTime::now());
    out.assert_success();
    assert!(out.stdout.ends_with("done\n"), "{}", out.describe_run());
    assert_no_upload_warning(&out);
    let uploads = agent.uploads();
    let mine = check_run(&uploads, out.value("pid"), "upload-py", window, 3);
    let version = String::from_utf8(Command::new(python()).args(["-c", "import platform; print(platform.python_version())"]).output().unwrap().stdout).unwrap();
    for u in &mine {
        assert_eq!(u.event.get("family").str(), "python");
        assert_eq!(u.tag("language"), "python");
        assert_eq!(u.tag("runtime"), "CPython");
        assert_eq!(u.tag("runtime_version"), version.trim());
    }
}

#[test]
fn uploads_over_a_unix_socket() {
    let agent = TestAgent::start(true);
    let t0 = SystemTime::now();
    let out = profiled(common::program("upload_burn.c"), &agent.url())
        .arg("3")
        .go();
    let window = (t0, SystemTime::now());
    out.assert_success();
    assert_no_upload_warning(&out);
    let uploads = agent.uploads();
    let mine = check_run(&uploads, out.value("pid"), "upload-svc", window, 3);
    assert_eq!(
        mine[0].headers.get("host").map(String::as_str),
        Some("localhost")
    );
}

#[test]
fn a_forked_child_uploads_with_its_own_runtime_id() {
    let agent = TestAgent::start(false);
    let t0 = SystemTime::now();
    let out = profiled(common::program("upload_fork.c"), &agent.url())
        .arg("3")
        .go();
    let window = (t0, SystemTime::now());
    out.assert_success();
    let uploads = agent.uploads();
    let parent = check_run(&uploads, out.value("parent_pid"), "upload-svc", window, 3);
    let child = check_run(&uploads, out.value("child_pid"), "upload-svc", window, 3);
    assert_ne!(
        parent[0].tag("runtime-id"),
        child[0].tag("runtime-id"),
        "the child kept its parent's runtime-id"
    );
}

/// Quiet children of a fork burst hand their empty profile to the parent, which uploads it
/// under the child's identity: one upload per child (the first child, forked outside a burst,
/// uploads its own), tagged with the child's pid, profile_seq 1 and a runtime-id of its own.
#[test]
fn quiet_forked_children_upload_through_their_parent() {
    let agent = TestAgent::start(false);
    let out = profiled(common::program("fork_quiet.c"), &agent.url())
        .arg("20")
        .arg("wait")
        .env("DD_PROFILING_EMPTY_PROFILES", "true")
        .env("DD_PROFILING_LOG_LEVEL", "debug")
        .go();
    out.assert_success();
    let uploads = agent.uploads();
    let children: Vec<u32> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("child "))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("pid=")).and_then(|v| v.parse().ok()))
        .collect();
    assert_eq!(children.len(), 20, "{}", out.describe_run());
    let parent: u32 = out.stdout.lines().find_map(|l| l.strip_prefix("parent pid=")).unwrap().parse().unwrap();
    let parent_upload = uploads.iter().find(|u| u.pid() == parent).expect("the parent's upload");
    let mut runtime_ids = std::collections::BTreeSet::from([parent_upload.tag("runtime-id").to_string()]);
    for &pid in &children[1..] {
        let mine: Vec<&Upload> = uploads.iter().filter(|u| u.pid() == pid).collect();
        assert_eq!(mine.len(), 1, "child {pid} has {} uploads\n{}", mine.len(), out.describe_run());
        let u = mine[0];
        assert_eq!(u.seq(), 1);
        assert!(is_uuid_v4(u.tag("runtime-id")), "{}", u.tag("runtime-id"));
        assert!(runtime_ids.insert(u.tag("runtime-id").to_string()), "child {pid} shares a runtime-id");
        assert_eq!(u.tag("service"), "upload-svc");
        assert!(u.profile.sample.is_empty(), "quiet child {pid} uploaded samples");
        assert_eq!(u.sample_types(), parent_upload.sample_types());
    }
    let handed_over = out.stderr.lines().filter(|l| l.contains("uploading the profile of quiet child")).count();
    assert!(handed_over >= 15, "only {handed_over} of 19 quiet children handed their profile over\n{}", out.describe_run());
}

// ---------------------------------------------------------------------------------------------
// Hostile agents: the program must not notice

/// The program's own run: `upload_burn SECONDS 7` prints a fixed result and exits with 7.
fn check_unharmed(out: &common::Outcome, seconds: f64, exit_flush: f64) {
    assert_eq!(
        out.status.code(),
        Some(7),
        "exit status changed\n{}",
        out.describe_run()
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.describe_run());
    assert!(
        lines[0].starts_with("pid=") && lines[2].starts_with("elapsed_ms="),
        "{}",
        out.describe_run()
    );
    assert_eq!(lines[1], "result=42");
    let bound = Duration::from_secs_f64(seconds + exit_flush + 1.0);
    assert!(
        out.elapsed < bound,
        "the run took {:?}, more than {bound:?}\n{}",
        out.elapsed,
        out.describe_run()
    );
    eprintln!(
        "run took {:?} for a {seconds} s program (bound {bound:?})",
        out.elapsed
    );
}

fn count(out: &common::Outcome, text: &str) -> usize {
    out.stderr.lines().filter(|l| l.contains(text)).count()
}

/// `upload_burn SECONDS 7` with a short period, a 1 s exit flush and a long upload timeout
/// (so that the exit flush is what bounds the exit).
fn hostile(url: &str, seconds: f64) -> common::Run {
    common::run(common::program("upload_burn.c"))
        .env("DD_PROFILING_OUTPUT_PPROF", "")
        .env("DD_TRACE_AGENT_URL", url)
        .env("DD_PROFILING_UPLOAD_PERIOD", "0.5")
        .env("DD_PROFILING_EXIT_FLUSH_TIMEOUT", "1")
        .env("DD_PROFILING_UPLOAD_TIMEOUT", "30")
        .arg(seconds.to_string())
        .arg("7")
}

#[test]
fn agent_down_costs_the_program_nothing() {
    let port = free_port(); // bound and released: nothing listens there
    let url = format!("http://127.0.0.1:{port}");
    let out = hostile(&url, 2.0).go();
    check_unharmed(&out, 2.0, 1.0);
    // One warning that names the URL and says what to check, not one per period.
    assert_eq!(
        count(&out, "warning: cannot upload profiles"),
        1,
        "{}",
        out.describe_run()
    );
    let w = out
        .stderr
        .lines()
        .find(|l| l.contains("cannot upload profiles"))
        .unwrap();
    assert!(
        w.contains(&format!("{url}/profiling/v1/input")) && w.contains("DD_TRACE_AGENT_URL"),
        "{w}"
    );

    // And the same for a unix socket that does not exist.
    let out = hostile("unix:///nonexistent-dir/agent.sock", 2.0).go();
    check_unharmed(&out, 2.0, 1.0);
    assert_eq!(
        count(&out, "warning: cannot upload profiles"),
        1,
        "{}",
        out.describe_run()
    );
}

/// A fork-heavy program with the Agent down: its short-lived children neither wait on their
/// way out for an Agent that is not there (each waited 100 ms for a retry) nor print one
/// warning each.
#[test]
fn agent_down_costs_forked_children_nothing() {
    let port = free_port(); // bound and released: nothing listens there
    let url = format!("http://127.0.0.1:{port}");
    let out = common::run(common::program("upload_children.c"))
        .env("DD_PROFILING_OUTPUT_PPROF", "")
        .env("DD_TRACE_AGENT_URL", &url)
        // Every child has a profile to send (an empty one).
        .env("DD_PROFILING_EMPTY_PROFILES", "true")
        .arg("30")
        .go();
    out.assert_success();
    assert_eq!(out.value::<u32>("failed"), 0, "{}", out.describe_run());
    // A child's round trip is well under a millisecond of work; the backoff alone was 100 ms.
    let median_us: u64 = out.value("median_child_us");
    assert!(median_us < 50_000, "a child took {median_us} µs from fork to wait (median)\n{}", out.describe_run());
    assert_eq!(count(&out, "warning: cannot upload profiles"), 1, "{}", out.describe_run());
}

/// A socket that accepts connections and never reads or answers.
fn silent_agent() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

#[test]
fn agent_that_never_answers_costs_the_program_nothing() {
    let (listener, url) = silent_agent();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    let listener2 = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        for s in listener2.incoming().flatten() {
            keep.lock().unwrap().push(s); // never read, never closed
        }
    });
    let out = hostile(&url, 2.0).go();
    check_unharmed(&out, 2.0, 1.0);
    // The first upload is still waiting for its answer at exit: the exit flush says so, once.
    assert_eq!(count(&out, "not uploaded to"), 1, "{}", out.describe_run());
    assert!(
        !held.lock().unwrap().is_empty(),
        "the profiler never connected"
    );
    drop(listener);

    // Even when the upload timeout is shorter than the program, warnings stay rate-limited.
    let (listener, url) = silent_agent();
    let out = hostile(&url, 2.0)
        .env("DD_PROFILING_UPLOAD_TIMEOUT", "0.3")
        .go();
    check_unharmed(&out, 2.0, 1.0);
    assert_eq!(
        count(&out, "warning: cannot upload profiles"),
        1,
        "{}",
        out.describe_run()
    );
    assert!(
        out.stderr.contains("timed out") && out.stderr.contains("DD_PROFILING_UPLOAD_TIMEOUT=0.3s"),
        "{}",
        out.stderr
    );
    drop(listener);
}

#[test]
fn agent_that_hangs_up_or_answers_garbage_costs_the_program_nothing() {
    for reply in [&b""[..], b"SSH-2.0-OpenSSH_9.2\r\n", b"HTTP/1.1 200"] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf);
                let _ = s.write_all(reply);
                // Dropped with the request unread: the profiler gets a reset mid-send, and
                // must not take SIGPIPE for it.
            }
        });
        let out = hostile(&url, 2.0).go();
        check_unharmed(&out, 2.0, 1.0);
        assert_eq!(
            count(&out, "warning: cannot upload profiles"),
            1,
            "reply {reply:?}\n{}",
            out.describe_run()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Retries and the backlog, with a scripted agent

struct Received {
    seq: u64,
    pid: u32,
    event: Json,
    status: u16,
    /// When the answer was sent.
    answered: SystemTime,
}

/// An agent that answers each request as `answer(seq, attempt of that seq)` says: after
/// a delay, with a status.
fn scripted_agent(
    answer: impl Fn(u64, usize) -> (Duration, u16) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::<Received>::new()));
    let answer = Arc::new(answer);
    let log2 = log.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let log = log2.clone();
            let answer = answer.clone();
            std::thread::spawn(move || {
                let Some((headers, body)) = read_request(&mut s) else {
                    return;
                };
                let u = Upload::parse(headers, &body);
                let (seq, pid) = (u.seq(), u.pid());
                let attempt = log
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|r| r.seq == seq && r.pid == pid)
                    .count();
                let (delay, status) = answer(seq, attempt);
                std::thread::sleep(delay);
                log.lock().unwrap().push(Received {
                    seq,
                    pid,
                    event: u.event,
                    status,
                    answered: SystemTime::now(),
                });
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            });
        }
    });
    (url, log)
}

fn read_request(s: &mut TcpStream) -> Option<(BTreeMap<String, String>, Vec<u8>)> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let headers: BTreeMap<String, String> = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect();
            let len: usize = headers.get("content-length")?.parse().ok()?;
            if raw.len() >= end + 4 + len {
                return Some((headers, raw[end + 4..end + 4 + len].to_vec()));
            }
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn transient_failures_are_retried_and_others_are_not() {
    // seq 1: 503 at first (transient: retried); seq 2: 400 (not retried, so dropped and
    // counted); everything else: 200.
    let (url, log) = scripted_agent(|seq, attempt| match (seq, attempt) {
        (1, 0) => (Duration::ZERO, 503),
        (2, _) => (Duration::ZERO, 400),
        _ => (Duration::ZERO, 200),
    });
    let out = hostile(&url, 3.2)
        .env("DD_PROFILING_UPLOAD_PERIOD", "1")
        .go();
    check_unharmed(&out, 3.2, 1.0);
    let pid: u32 = out.value("pid");
    let log = log.lock().unwrap();
    let attempts = |seq: u64| {
        log.iter()
            .filter(|r| r.seq == seq && r.pid == pid)
            .map(|r| r.status)
            .collect::<Vec<_>>()
    };
    assert_eq!(attempts(1), [503, 200], "seq 1 is retried after a 503");
    assert_eq!(attempts(2), [400], "a 400 is not retried");
    let third = log
        .iter()
        .find(|r| r.seq == 3 && r.status == 200)
        .expect("seq 3 delivered");
    let up = third.event.get("info").get("upload");
    assert_eq!(
        (
            up.get("dropped_profiles").num(),
            up.get("dropped_profiles_total").num()
        ),
        (1.0, 1.0),
        "the next event reports the dropped profile"
    );
    // One warning for the whole episode.
    assert_eq!(
        count(&out, "warning: cannot upload profiles"),
        1,
        "{}",
        out.describe_run()
    );
    assert!(out.stderr.contains("HTTP 503"), "{}", out.stderr);
}

#[test]
fn unsent_profiles_are_bounded_and_drops_are_reported() {
    // The first request hangs for 2.5 s; meanwhile profiles pile up every 0.2 s, and only the
    // newest 4 may wait. Then everything is accepted.
    let (url, log) = scripted_agent(|seq, _| {
        if seq == 1 {
            (Duration::from_millis(2500), 200)
        } else {
            (Duration::ZERO, 200)
        }
    });
    let out = hostile(&url, 3.5)
        .env("DD_PROFILING_UPLOAD_PERIOD", "0.2")
        .env("DD_PROFILING_EXIT_FLUSH_TIMEOUT", "3")
        .go();
    check_unharmed(&out, 3.5, 3.0);
    let pid: u32 = out.value("pid");
    let log = log.lock().unwrap();
    let mut delivered: Vec<&Received> = log.iter().filter(|r| r.pid == pid).collect();
    delivered.sort_by_key(|r| r.seq);
    let max_seq = delivered.last().unwrap().seq;
    let dropped_reported: f64 = delivered
        .iter()
        .map(|r| {
            r.event
                .get("info")
                .get("upload")
                .get("dropped_profiles")
                .num()
        })
        .sum();
    let total = delivered
        .last()
        .unwrap()
        .event
        .get("info")
        .get("upload")
        .get("dropped_profiles_total")
        .num();
    let seqs: Vec<u64> = delivered.iter().map(|r| r.seq).collect();
    eprintln!("delivered {seqs:?}; dropped {dropped_reported}");
    assert!(
        max_seq >= 8,
        "only {max_seq} profiles in 3.5 s with a 0.2 s period"
    );
    assert!(
        dropped_reported >= 1.0,
        "nothing was dropped while the agent hung: {seqs:?}"
    );
    assert_eq!(dropped_reported, total);
    assert_eq!(
        dropped_reported as u64 + delivered.len() as u64,
        max_seq,
        "every profile is either delivered or counted as dropped: {seqs:?}"
    );
    // While seq 1 hung, at most 4 profiles waited, and they were the newest: those made more
    // than 0.1 s before seq 1 was answered number at most 4, and seq 2 was dropped.
    let unblocked = delivered[0].answered - Duration::from_millis(100);
    let waited: Vec<u64> = delivered[1..]
        .iter()
        .filter(|r| parse_rfc3339(r.event.get("end").str()) < unblocked)
        .map(|r| r.seq)
        .collect();
    assert!(
        waited.len() <= 4,
        "{waited:?} waited behind the first: {seqs:?}"
    );
    assert_eq!(delivered[0].seq, 1);
    assert!(
        seqs[1] > 2,
        "the oldest profiles are dropped first: {seqs:?}"
    );
}
