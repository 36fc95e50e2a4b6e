//! Shared helpers for the integration tests: build the C/C++ fixtures in `tests/programs/`,
//! run them under `LD_PRELOAD=target/release/libddprof.so` with a fresh output directory and a
//! hard timeout, decode every profile they leave, and look at the samples.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ddprof::profile::pprof::Profile;

pub mod python;
use prost::Message;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The library under test. `make test` builds it; a plain `cargo test` needs
/// `cargo build --release` first.
pub fn library() -> PathBuf {
    let lib = repo().join("target/release/libddprof.so");
    assert!(
        lib.exists(),
        "{} is missing: run `cargo build --release` (or `make test`)",
        lib.display()
    );
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        let lib_time = mtime(&lib);
        if newest_mtime(&repo().join("src")) > lib_time {
            eprintln!(
                "warning: {} is older than src/: run `cargo build --release`",
                lib.display()
            );
        }
    });
    lib
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        let t = if p.is_dir() {
            newest_mtime(&p)
        } else {
            mtime(&p)
        };
        newest = newest.max(t);
    }
    newest
}

// ---------------------------------------------------------------------------------------------
// Building fixtures

const CFLAGS: &[&str] = &["-O2", "-g", "-fomit-frame-pointer", "-pthread"];

/// Compiles `tests/programs/<source>` (C, or C++ when it ends in `.cpp`) into
/// `target/test-programs/<stem>`; rebuilt only when the source or `util.h` is newer.
pub fn program(source: &str) -> PathBuf {
    let stem = Path::new(source).file_stem().unwrap().to_str().unwrap();
    compile(source, &repo().join("target/test-programs").join(stem), &[])
}

/// Compiles `tests/programs/<source>` into the shared library `target/test-programs/lib<stem>.so`.
pub fn shared_library(source: &str) -> PathBuf {
    let stem = Path::new(source).file_stem().unwrap().to_str().unwrap();
    let out = repo()
        .join("target/test-programs")
        .join(format!("lib{stem}.so"));
    compile(source, &out, &["-shared", "-fPIC"])
}

fn compile(source: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let dir = repo().join("tests/programs");
    let src = dir.join(source);
    assert!(src.exists(), "fixture source {} is missing", src.display());
    let inputs_time = mtime(&src).max(mtime(&dir.join("util.h")));
    if out.exists() && mtime(out) >= inputs_time {
        return out.to_path_buf();
    }
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    // Build under a unique name and rename, so tests building the same fixture in parallel
    // never see a half-written file.
    let tmp = out.with_extension(format!("tmp{}-{}", std::process::id(), unique()));
    let compiler = if source.ends_with(".cpp") {
        "g++"
    } else {
        "cc"
    };
    let result = Command::new(compiler)
        .args(CFLAGS)
        .args(extra)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .arg("-ldl")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        result.status.success(),
        "{compiler} failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::rename(&tmp, out).unwrap();
    out.to_path_buf()
}

fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// Running a program under the profiler

pub struct Run {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    timeout: Duration,
    /// Run inside this root (`in_root`).
    root: Option<PathBuf>,
}

/// Prepares a run of `program` under the library, writing profiles to a fresh directory.
/// Wall, memory, heap and lock profiling are off unless a test turns them on with `env`.
pub fn run(program: impl AsRef<Path>) -> Run {
    let env = ["WALL", "MEMORY", "HEAP", "LOCK"]
        .iter()
        .map(|k| (format!("DD_PROFILING_{k}_ENABLED"), "false".to_string()))
        .collect();
    Run {
        program: program.as_ref().to_path_buf(),
        args: vec![],
        env,
        timeout: Duration::from_secs(60),
        root: None,
    }
}

/// The shell step of a run inside a root: a private mount namespace (unshare) gets the root
/// its own /proc, which the library reads (/proc/self/exe, thread names, blocked threads'
/// registers) and which goes away with the process; then chroot, and the library and output
/// directory given as paths inside the root.
const IN_ROOT: &str = r#"root=$1 lib=$2 out=$3; shift 3
mount -t proc proc "$root/proc" || exit 125
exec chroot "$root" /usr/bin/env LD_PRELOAD="$lib" DD_PROFILING_OUTPUT_PPROF="$out" "$@""#;

/// Copies `lib` into `root` once per test process (`/tmp/ddprof-it-lib-<pid>/`, written under
/// a temporary name and renamed) and returns its path inside the root. Copies left by test
/// processes that are gone are removed.
fn library_in_root(root: &Path, lib: &Path) -> PathBuf {
    static COPIED: std::sync::Mutex<Vec<(PathBuf, PathBuf, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut copied = COPIED.lock().unwrap();
    if let Some((_, _, inner)) = copied.iter().find(|(r, l, _)| r == root && l == lib) {
        return inner.clone();
    }
    let tmp = root.join("tmp");
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(pid) = name.strip_prefix("ddprof-it-lib-").and_then(|p| p.parse::<u32>().ok()) {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let inner = PathBuf::from(format!("/tmp/ddprof-it-lib-{}/libddprof.so", std::process::id()));
    let host = root.join(inner.strip_prefix("/").unwrap());
    std::fs::create_dir_all(host.parent().unwrap()).unwrap();
    let partial = host.with_extension("partial");
    std::fs::copy(lib, &partial).unwrap_or_else(|e| panic!("cannot copy {} into {}: {e}", lib.display(), root.display()));
    std::fs::rename(&partial, &host).unwrap();
    copied.push((root.to_path_buf(), lib.to_path_buf(), inner.clone()));
    inner
}

impl Run {
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.to_string(), v.to_string()));
        self
    }
    pub fn timeout(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }
    /// Runs the program (a path inside `root`) in `root` with chroot, the library copied into
    /// it and the output directory under its /tmp (read back through the host's path).
    pub fn in_root(mut self, root: &Path) -> Self {
        self.root = Some(root.to_path_buf());
        self
    }

    /// Runs the program to its end (killing it and failing after the timeout), then decodes
    /// every file it left in the output directory.
    pub fn go(self) -> Outcome {
        let lib = library();
        let name = self
            .program
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let leaf = format!("ddprof-it-{}-{}-{name}", std::process::id(), unique());
        let dir = match &self.root {
            Some(root) => root.join("tmp").join(&leaf),
            None => std::env::temp_dir().join(&leaf),
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = match &self.root {
            None => Command::new(&self.program),
            Some(root) => {
                // The library a test asked for (LD_PRELOAD in its env) or the default one.
                let lib = self.env.iter().find(|(k, _)| k == "LD_PRELOAD").map_or(lib.clone(), |(_, v)| PathBuf::from(v));
                let mut cmd = Command::new("unshare");
                cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c", IN_ROOT, "sh"])
                    .arg(root)
                    .arg(library_in_root(root, &lib))
                    .arg(Path::new("/tmp").join(&leaf).join("prof"))
                    .arg(&self.program);
                cmd
            }
        };
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("DD_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("LD_PRELOAD", &lib)
            .env("DD_PROFILING_OUTPUT_PPROF", dir.join("prof"));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if self.root.is_some() {
            // Set inside the root (IN_ROOT); unshare, sh and chroot run without the library.
            cmd.env_remove("LD_PRELOAD").env_remove("DD_PROFILING_OUTPUT_PPROF");
        }
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        let out_reader = reader(child.stdout.take().unwrap());
        let err_reader = reader(child.stderr.take().unwrap());
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = started.elapsed();
        let stdout = out_reader.join().unwrap();
        let stderr = err_reader.join().unwrap();
        let Some(status) = status else {
            panic!(
                "{name} did not finish within {:?} and was killed (hang?)\n--- stdout:\n{stdout}\n--- stderr:\n{}",
                self.timeout,
                tail(&stderr, 4000)
            );
        };
        let mut outcome = Outcome {
            stdout,
            stderr,
            status,
            elapsed,
            dir,
            files: vec![],
            other_files: vec![],
        };
        outcome.collect();
        outcome
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

pub struct ProfileFile {
    pub path: PathBuf,
    pub pid: u32,
    pub seq: u64,
    pub profile: Profile,
}

pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub status: ExitStatus,
    pub elapsed: Duration,
    /// The output directory; removed when the outcome is dropped, unless a test failed
    /// or DDPROF_TEST_KEEP is set.
    pub dir: PathBuf,
    /// Profiles sorted by (pid, seq).
    pub files: Vec<ProfileFile>,
    /// Files in the output directory not named `prof.<pid>.<seq>.pprof`.
    pub other_files: Vec<PathBuf>,
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !std::thread::panicking() && std::env::var_os("DDPROF_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Outcome {
    fn collect(&mut self) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let parts: Vec<&str> = name.split('.').collect();
            let parsed = match parts.as_slice() {
                ["prof", pid, seq, "pprof"] => pid.parse().ok().zip(seq.parse().ok()),
                _ => None,
            };
            let Some((pid, seq)) = parsed else {
                self.other_files.push(path);
                continue;
            };
            let profile = match decode(&path) {
                Ok(p) => p,
                Err(e) => panic!(
                    "{} does not decode: {e}\n{}",
                    path.display(),
                    self.describe_run()
                ),
            };
            if let Err(e) = validate(&profile) {
                panic!(
                    "{} is not a well-formed pprof: {e}\n{}",
                    path.display(),
                    self.describe_run()
                );
            }
            go_tool_pprof(&path);
            self.files.push(ProfileFile {
                path,
                pid,
                seq,
                profile,
            });
        }
        self.files.sort_by_key(|f| (f.pid, f.seq));
    }

    /// Exit code, stdout and the end of stderr, for failure messages.
    pub fn describe_run(&self) -> String {
        format!(
            "status: {:?} after {:?}; output dir {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.status,
            self.elapsed,
            self.dir.display(),
            tail(&self.stdout, 3000),
            tail(&self.stderr, 3000)
        )
    }

    /// `describe_run` plus the profile files and the top functions by cpu-time.
    pub fn describe(&self) -> String {
        let mut s = self.describe_run();
        s += "\n--- profiles:\n";
        for f in &self.files {
            s += &format!(
                "{} ({} samples)\n",
                f.path.display(),
                f.profile.sample.len()
            );
        }
        let m = self.merged();
        if m.types.contains_key("cpu-time") {
            s += &m.top("cpu-time", 15);
        }
        s
    }

    pub fn assert_success(&self) {
        assert!(self.status.success(), "program failed\n{}", self.describe());
    }

    /// Every profile carries `cpu-samples`/count and `cpu-time`/nanoseconds.
    pub fn assert_cpu_types(&self) {
        self.assert_known_types();
        assert!(
            !self.files.is_empty(),
            "no profile was written\n{}",
            self.describe_run()
        );
        for f in &self.files {
            let types = sample_types(&f.profile);
            for want in [("cpu-samples", "count"), ("cpu-time", "nanoseconds")] {
                assert!(
                    types.iter().any(|(t, u)| (t.as_str(), u.as_str()) == want),
                    "{} lacks sample type {want:?}; it has {types:?}",
                    f.path.display()
                );
            }
        }
    }

    /// Every sample type of every profile is one of DESIGN.md's, with its unit.
    pub fn assert_known_types(&self) {
        const KNOWN: &[(&str, &str)] = &[
            ("cpu-samples", "count"),
            ("cpu-time", "nanoseconds"),
            ("wall-samples", "count"),
            ("wall-time", "nanoseconds"),
            ("alloc-samples", "count"),
            ("alloc-space", "bytes"),
            ("heap-live-samples", "count"),
            ("heap-space", "bytes"),
            ("lock-acquire", "count"),
            ("lock-acquire-wait", "nanoseconds"),
            ("lock-release", "count"),
            ("lock-release-hold", "nanoseconds"),
            ("exception-samples", "count"),
        ];
        for f in &self.files {
            for (t, u) in sample_types(&f.profile) {
                assert!(
                    KNOWN.contains(&(t.as_str(), u.as_str())),
                    "{}: unknown sample type {t}/{u}",
                    f.path.display()
                );
            }
        }
    }

    /// All samples of all profiles, as one list.
    pub fn merged(&self) -> Merged {
        let mut m = Merged::default();
        for f in &self.files {
            m.add(&f.profile);
        }
        m
    }

    /// `key=value` pairs of each stdout line, in order.
    pub fn kv_lines(&self) -> Vec<HashMap<String, String>> {
        self.stdout
            .lines()
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|w| w.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    /// The first value printed for `key`, parsed.
    pub fn value<T: std::str::FromStr>(&self, key: &str) -> T {
        self.kv_lines()
            .iter()
            .find_map(|l| l.get(key).and_then(|v| v.parse().ok()))
            .unwrap_or_else(|| panic!("the program printed no `{key}=`\n{}", self.describe_run()))
    }
}

fn decode(path: &Path) -> Result<Profile, String> {
    let raw = std::fs::read(path).map_err(|e| e.to_string())?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Err(format!("not gzip-compressed ({} bytes)", raw.len()));
    }
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut bytes)
        .map_err(|e| format!("gunzip: {e}"))?;
    Profile::decode(&bytes[..]).map_err(|e| format!("protobuf: {e}"))
}

/// Checks what a pprof reader relies on: string indices in range, ids that resolve, one
/// value per sample type in every sample.
fn validate(p: &Profile) -> Result<(), String> {
    let nstr = p.string_table.len() as i64;
    if p.string_table.first().map(String::as_str) != Some("") {
        return Err("string_table[0] must be \"\"".into());
    }
    let s = |i: i64, what: &str| {
        if (0..nstr).contains(&i) {
            Ok(())
        } else {
            Err(format!("{what}: string {i} out of range"))
        }
    };
    for t in &p.sample_type {
        s(t.r#type, "sample_type")?;
        s(t.unit, "sample_type unit")?;
    }
    let functions: BTreeSet<u64> = p.function.iter().map(|f| f.id).collect();
    let mappings: BTreeSet<u64> = p.mapping.iter().map(|m| m.id).collect();
    let locations: BTreeSet<u64> = p.location.iter().map(|l| l.id).collect();
    for f in &p.function {
        s(f.name, "function name")?;
        s(f.system_name, "function system_name")?;
        s(f.filename, "function filename")?;
    }
    for m in &p.mapping {
        s(m.filename, "mapping filename")?;
        s(m.build_id, "mapping build_id")?;
    }
    for l in &p.location {
        if l.mapping_id != 0 && !mappings.contains(&l.mapping_id) {
            return Err(format!(
                "location {} names missing mapping {}",
                l.id, l.mapping_id
            ));
        }
        for line in &l.line {
            if !functions.contains(&line.function_id) {
                return Err(format!(
                    "location {} names missing function {}",
                    l.id, line.function_id
                ));
            }
        }
    }
    for (i, sample) in p.sample.iter().enumerate() {
        if sample.value.len() != p.sample_type.len() {
            return Err(format!(
                "sample {i} has {} values for {} types",
                sample.value.len(),
                p.sample_type.len()
            ));
        }
        for id in &sample.location_id {
            if !locations.contains(id) {
                return Err(format!("sample {i} names missing location {id}"));
            }
        }
        for l in &sample.label {
            s(l.key, "label key")?;
            s(l.str, "label str")?;
        }
    }
    Ok(())
}

pub fn sample_types(p: &Profile) -> Vec<(String, String)> {
    let s = |i: i64| p.string_table.get(i as usize).cloned().unwrap_or_default();
    p.sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect()
}

/// When Go is installed, `go tool pprof -raw` must read the file too.
fn go_tool_pprof(path: &Path) {
    let has_go = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("go").is_file()))
        .unwrap_or(false);
    if !has_go {
        return;
    }
    let out = Command::new("go")
        .args(["tool", "pprof", "-raw"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go tool pprof -raw {} failed:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Looking at samples

#[derive(Clone, Debug)]
pub struct Frame {
    /// Function name, or `0x<address>` when the location has no symbol.
    pub function: String,
    /// File name of the mapping (binary or library) the address falls in; may be empty.
    pub mapping: String,
}

#[derive(Clone, Debug)]
pub struct FlatSample {
    /// Outermost frame first; inlined frames expanded.
    pub stack: Vec<Frame>,
    /// Indexed like `Merged::types`; 0 where the profile lacked the type.
    pub values: Vec<i64>,
    /// (key, value); numeric labels as decimal text.
    pub labels: Vec<(String, String)>,
}

impl FlatSample {
    pub fn has_function(&self, name: &str) -> bool {
        self.stack.iter().any(|f| function_is(&f.function, name))
    }
    pub fn leaf(&self) -> &str {
        self.stack
            .last()
            .map(|f| f.function.as_str())
            .unwrap_or("<empty stack>")
    }
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub fn thread_id(&self) -> Option<i64> {
        self.label("thread id").and_then(|v| v.parse().ok())
    }
    pub fn stack_text(&self) -> String {
        self.stack
            .iter()
            .map(|f| f.function.as_str())
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// `name` is `want`, or a compiler clone of it (`want.cold`, `want.constprop.0`) or a
/// demangled signature (`want(int)`).
pub fn function_is(name: &str, want: &str) -> bool {
    name.strip_prefix(want)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('('))
}

#[derive(Default)]
pub struct Merged {
    /// Sample type name → index into `FlatSample::values`.
    pub types: HashMap<String, usize>,
    pub samples: Vec<FlatSample>,
}

impl Merged {
    pub fn add(&mut self, p: &Profile) {
        let s = |i: i64| p.string_table.get(i as usize).cloned().unwrap_or_default();
        let index: Vec<usize> = sample_types(p)
            .into_iter()
            .map(|(name, _)| {
                let next = self.types.len();
                *self.types.entry(name).or_insert(next)
            })
            .collect();
        let functions: HashMap<u64, String> =
            p.function.iter().map(|f| (f.id, s(f.name))).collect();
        let mappings: HashMap<u64, String> =
            p.mapping.iter().map(|m| (m.id, s(m.filename))).collect();
        let locations: HashMap<u64, Vec<Frame>> = p
            .location
            .iter()
            .map(|l| {
                let mapping = mappings.get(&l.mapping_id).cloned().unwrap_or_default();
                let mut frames: Vec<Frame> = l
                    .line
                    .iter()
                    .map(|line| Frame {
                        function: functions[&line.function_id].clone(),
                        mapping: mapping.clone(),
                    })
                    .collect();
                if frames.is_empty() || frames.iter().all(|f| f.function.is_empty()) {
                    frames = vec![Frame {
                        function: format!("{:#x}", l.address),
                        mapping,
                    }];
                }
                (l.id, frames)
            })
            .collect();
        for sample in &p.sample {
            // location_id is leaf first and each location's lines innermost first, so the
            // whole list is leaf first: reverse it once.
            let mut stack: Vec<Frame> = sample
                .location_id
                .iter()
                .flat_map(|id| locations[id].iter().cloned())
                .collect();
            stack.reverse();
            let mut values = vec![0; self.types.len()];
            for (i, v) in sample.value.iter().enumerate() {
                values[index[i]] = *v;
            }
            let labels = sample
                .label
                .iter()
                .map(|l| {
                    (
                        s(l.key),
                        if l.str != 0 {
                            s(l.str)
                        } else {
                            l.num.to_string()
                        },
                    )
                })
                .collect();
            self.samples.push(FlatSample {
                stack,
                values,
                labels,
            });
        }
    }

    fn index(&self, ty: &str) -> usize {
        *self
            .types
            .get(ty)
            .unwrap_or_else(|| panic!("no sample type {ty:?} in {:?}", self.types.keys()))
    }

    fn value(&self, s: &FlatSample, i: usize) -> i64 {
        s.values.get(i).copied().unwrap_or(0)
    }

    pub fn total(&self, ty: &str) -> i64 {
        let i = self.index(ty);
        self.samples.iter().map(|s| self.value(s, i)).sum()
    }

    /// Share of `ty` in samples for which `pred` holds (0 when there is no `ty` at all).
    pub fn fraction(&self, ty: &str, pred: impl Fn(&FlatSample) -> bool) -> f64 {
        let i = self.index(ty);
        let total = self.total(ty);
        let part: i64 = self
            .samples
            .iter()
            .filter(|s| pred(s))
            .map(|s| self.value(s, i))
            .sum();
        if total == 0 {
            0.0
        } else {
            part as f64 / total as f64
        }
    }

    /// Share of `ty` in samples whose stack contains function `name`.
    pub fn fraction_with(&self, ty: &str, name: &str) -> f64 {
        self.fraction(ty, |s| s.has_function(name))
    }

    /// `ty` summed by leaf function, largest first.
    pub fn self_totals(&self, ty: &str) -> Vec<(String, i64)> {
        let i = self.index(ty);
        let mut m: HashMap<String, i64> = HashMap::new();
        for s in &self.samples {
            *m.entry(s.leaf().to_string()).or_default() += self.value(s, i);
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// `ty` of samples whose leaf is function `name`.
    pub fn self_total(&self, ty: &str, name: &str) -> i64 {
        self.self_totals(ty)
            .iter()
            .filter(|(f, _)| function_is(f, name))
            .map(|(_, v)| v)
            .sum()
    }

    /// `ty` summed by `thread id` label (samples without one under -1).
    pub fn by_thread(&self, ty: &str) -> BTreeMap<i64, i64> {
        let i = self.index(ty);
        let mut m = BTreeMap::new();
        for s in &self.samples {
            *m.entry(s.thread_id().unwrap_or(-1)).or_default() += self.value(s, i);
        }
        m
    }

    /// Every `thread name` seen with each `thread id`.
    pub fn thread_names(&self) -> BTreeMap<i64, BTreeSet<String>> {
        let mut m: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        for s in &self.samples {
            if let (Some(tid), Some(name)) = (s.thread_id(), s.label("thread name")) {
                m.entry(tid).or_default().insert(name.to_string());
            }
        }
        m
    }

    /// A table of the top `n` functions by self and by inclusive `ty`, and a few whole stacks.
    pub fn top(&self, ty: &str, n: usize) -> String {
        let total = self.total(ty).max(1) as f64;
        let i = self.index(ty);
        let mut out = format!("top functions by self {ty} (total {}):\n", self.total(ty));
        for (f, v) in self.self_totals(ty).iter().take(n) {
            out += &format!("  {:6.2}%  {f}\n", 100.0 * *v as f64 / total);
        }
        let mut inclusive: HashMap<&str, i64> = HashMap::new();
        for s in &self.samples {
            let names: BTreeSet<&str> = s.stack.iter().map(|f| f.function.as_str()).collect();
            for name in names {
                *inclusive.entry(name).or_default() += self.value(s, i);
            }
        }
        let mut inclusive: Vec<_> = inclusive.into_iter().collect();
        inclusive.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        out += &format!("top functions by inclusive {ty}:\n");
        for (f, v) in inclusive.iter().take(n) {
            out += &format!("  {:6.2}%  {f}\n", 100.0 * *v as f64 / total);
        }
        let mut heavy: Vec<&FlatSample> = self.samples.iter().collect();
        heavy.sort_by_key(|s| -self.value(s, i));
        out += "heaviest stacks (root first):\n";
        for s in heavy.iter().take(5) {
            out += &format!("  {}  {}\n", self.value(s, i), s.stack_text());
        }
        out
    }
}

/// |measured - expected| <= tolerance * expected
pub fn within(measured: f64, expected: f64, tolerance: f64) -> bool {
    (measured - expected).abs() <= tolerance * expected
}
