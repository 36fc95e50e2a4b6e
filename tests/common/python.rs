//! Python test helpers: the pyenv and Debian interpreters (and CPython 3.14/3.15 in a Debian
//! unstable root), running a script under the library, and profiles decoded into samples with
//! Python frames.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use super::Outcome;

// ---------------------------------------------------------------------------------------------
// Interpreters

#[derive(Clone, Copy, Debug)]
pub enum Which {
    Pyenv(u32),
    Debian,
    /// `/usr/bin/python3.<minor>` of the Debian unstable root that
    /// `scripts/debian-python-root.sh` builds under target/ (3.14 and 3.15, which pyenv here
    /// does not have), run there with chroot.
    DebianRoot(u32),
}

pub struct Python {
    /// The interpreter; inside `root` when there is one.
    pub path: PathBuf,
    pub minor: u32,
    /// The root the interpreter runs in (chroot), for `Which::DebianRoot`.
    pub root: Option<PathBuf>,
}

impl Python {
    /// The interpreter's file as the host sees it.
    pub fn host_path(&self) -> PathBuf {
        match &self.root {
            Some(root) => root.join(self.path.strip_prefix("/").unwrap_or(&self.path)),
            None => self.path.clone(),
        }
    }

    /// A command running the interpreter without the library (inside its root, if any).
    pub fn command(&self) -> Command {
        match &self.root {
            None => Command::new(&self.path),
            Some(root) => {
                let mut c = Command::new("chroot");
                c.arg(root).arg(&self.path);
                c
            }
        }
    }
}

/// The Debian unstable root with CPython 3.14 and 3.15, built on first use (a minute, once:
/// it is kept under target/; the script serializes concurrent builds), or why it cannot be had
/// here (not root, no network: the script exits with status 3).
pub fn debian_root() -> Result<PathBuf, String> {
    static ROOT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let out = Command::new("sh")
            .arg(super::repo().join("scripts/debian-python-root.sh"))
            .output()
            .map_err(|e| format!("cannot run scripts/debian-python-root.sh: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        match out.status.code() {
            Some(0) => {
                let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                // Built earlier (by root), but running it takes a mount namespace and chroot.
                let probe = Command::new("unshare")
                    .args(["--mount", "--propagation", "private", "--", "sh", "-c", r#"mount -t proc proc "$0/proc" && exec chroot "$0" /bin/true"#])
                    .arg(&root)
                    .output()
                    .map_err(|e| format!("cannot run unshare: {e}"))?;
                if !probe.status.success() {
                    return Err(format!(
                        "{} is ready but cannot be entered here (unshare, mount and chroot need root): {}",
                        root.display(),
                        String::from_utf8_lossy(&probe.stderr).trim()
                    ));
                }
                copy_scripts_into(&root);
                Ok(root)
            }
            Some(3) => Err(stderr),
            _ => panic!("scripts/debian-python-root.sh failed ({}):\n{stderr}", out.status),
        }
    })
    .clone()
}

/// The test scripts, at the same absolute path inside `root` as on the host, so that the
/// files named in profiles and printed by the scripts are the host's paths. Each file is
/// written under a temporary name and renamed: another test binary may be reading it.
fn copy_scripts_into(root: &std::path::Path) {
    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let (src, dst) = (entry.path(), to.join(entry.file_name()));
            if src.is_dir() {
                if entry.file_name() != "__pycache__" {
                    copy_dir(&src, &dst);
                }
            } else {
                let partial = dst.with_extension(format!("partial{}", std::process::id()));
                std::fs::copy(&src, &partial).unwrap();
                std::fs::rename(&partial, &dst).unwrap();
            }
        }
    }
    let scripts = super::repo().join("tests/programs/py");
    copy_dir(&scripts, &root.join(scripts.strip_prefix("/").unwrap()));
}

/// The newest ~/.pyenv/versions/3.<minor>.* interpreter, or Debian's python3.
pub fn find(which: Which) -> Option<Python> {
    match which {
        Which::Pyenv(minor) => {
            let home = PathBuf::from(std::env::var_os("HOME")?);
            let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(home.join(".pyenv/versions"))
                .ok()?
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let micro = name.strip_prefix(&format!("3.{minor}."))?.parse().ok()?;
                    let exe = e.path().join(format!("bin/python3.{minor}"));
                    exe.exists().then_some((micro, exe))
                })
                .collect();
            found.sort();
            found.pop().map(|(_, path)| Python { path, minor, root: None })
        }
        Which::Debian => {
            let path = PathBuf::from("/usr/bin/python3");
            let out = Command::new(&path)
                .args(["-c", "import sys; print(sys.version_info[1])"])
                .output()
                .ok()?;
            let minor = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
            (8..=15).contains(&minor).then_some(Python { path, minor, root: None })
        }
        Which::DebianRoot(minor) => {
            let root = debian_root().ok()?;
            let path = PathBuf::from(format!("/usr/bin/python3.{minor}"));
            root.join(path.strip_prefix("/").unwrap()).exists().then_some(Python { path, minor, root: Some(root) })
        }
    }
}

pub fn script(name: &str) -> PathBuf {
    super::repo().join("tests/programs/py").join(name)
}

/// The library built next to this test binary (`<target>/<profile>/libddprof.so`), so a
/// build in another target directory tests its own library; `common::library()` otherwise.
pub fn library_override() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let lib = exe.parent()?.parent()?.join("libddprof.so");
    lib.exists().then_some(lib)
}

pub fn run_python(py: &Python, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut run = super::run(&py.path);
    for a in args {
        run = run.arg(*a);
    }
    if let Some(lib) = library_override() {
        run = run.env("LD_PRELOAD", &lib.to_string_lossy());
    }
    for (k, v) in env {
        run = run.env(k, v);
    }
    if let Some(root) = &py.root {
        run = run.in_root(root);
    }
    run.timeout(120).go()
}

// ---------------------------------------------------------------------------------------------
// Samples with Python frames, files and lines

#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: i64,
    /// A Python frame (a location without address or mapping) rather than a native one.
    pub python: bool,
    /// The file of a native frame's mapping ("" for Python frames and labels).
    pub mapping: String,
}

#[derive(Clone, Debug)]
pub struct Sample {
    /// Root first.
    pub stack: Vec<Frame>,
    pub values: HashMap<String, i64>,
    pub tid: i64,
    pub thread: String,
    /// The `lock name` label ("" without one).
    pub lock_name: String,
    /// The `exception type` label ("" without one).
    pub exception_type: String,
}

impl Sample {
    pub fn python(&self) -> Vec<&Frame> {
        self.stack.iter().filter(|f| f.python).collect()
    }
    /// The innermost Python frame.
    pub fn python_leaf(&self) -> Option<&Frame> {
        self.stack.iter().rev().find(|f| f.python)
    }
    pub fn value(&self, ty: &str) -> i64 {
        self.values.get(ty).copied().unwrap_or(0)
    }
    pub fn text(&self) -> String {
        self.stack
            .iter()
            .map(|f| {
                if f.python {
                    format!("{}:{}", f.function, f.line)
                } else {
                    f.function.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(";")
    }
}

pub fn samples(out: &Outcome) -> Vec<Sample> {
    let mut all = vec![];
    for file in &out.files {
        let p = &file.profile;
        let s = |i: i64| p.string_table.get(i as usize).cloned().unwrap_or_default();
        let types: Vec<String> = p.sample_type.iter().map(|t| s(t.r#type)).collect();
        let functions: HashMap<u64, (String, String)> = p
            .function
            .iter()
            .map(|f| (f.id, (s(f.name), s(f.filename))))
            .collect();
        let mappings: HashMap<u64, String> = p.mapping.iter().map(|m| (m.id, s(m.filename))).collect();
        let locations: HashMap<u64, Vec<Frame>> = p
            .location
            .iter()
            .map(|l| {
                // Locations without address are Python frames, but for the profiler's own
                // labels (`[libddprof]`, `[N frames omitted]`) and built-in functions.
                let labelled = |f: &ddprof::profile::pprof::Function| {
                    let (name, file) = (s(f.name), s(f.filename));
                    name.starts_with('[') || file == "<built-in>"
                };
                let python = l.address == 0
                    && l.mapping_id == 0
                    && !l.line.iter().any(|line| p.function.iter().any(|f| f.id == line.function_id && labelled(f)));
                let mut frames: Vec<Frame> = l
                    .line
                    .iter()
                    .map(|line| {
                        let (function, file) = functions[&line.function_id].clone();
                        Frame {
                            function,
                            file,
                            line: line.line,
                            python,
                            mapping: mappings.get(&l.mapping_id).cloned().unwrap_or_default(),
                        }
                    })
                    .collect();
                if frames.is_empty() {
                    frames.push(Frame {
                        function: format!("{:#x}", l.address),
                        file: String::new(),
                        line: 0,
                        python,
                        mapping: mappings.get(&l.mapping_id).cloned().unwrap_or_default(),
                    });
                }
                (l.id, frames)
            })
            .collect();
        for sample in &p.sample {
            let mut stack: Vec<Frame> = sample
                .location_id
                .iter()
                .flat_map(|id| locations[id].iter().cloned())
                .collect();
            stack.reverse();
            let values = types
                .iter()
                .cloned()
                .zip(sample.value.iter().copied())
                .collect();
            let tid = sample
                .label
                .iter()
                .find(|l| s(l.key) == "thread id")
                .map(|l| l.num)
                .unwrap_or(-1);
            let thread = sample
                .label
                .iter()
                .find(|l| s(l.key) == "thread name")
                .map(|l| s(l.str))
                .unwrap_or_default();
            let lock_name = sample
                .label
                .iter()
                .find(|l| s(l.key) == "lock name")
                .map(|l| s(l.str))
                .unwrap_or_default();
            let exception_type = sample
                .label
                .iter()
                .find(|l| s(l.key) == "exception type")
                .map(|l| s(l.str))
                .unwrap_or_default();
            all.push(Sample {
                stack,
                values,
                tid,
                thread,
                lock_name,
                exception_type,
            });
        }
    }
    all
}

pub fn show(samples: &[Sample], ty: &str, n: usize) -> String {
    let mut heavy: Vec<&Sample> = samples.iter().collect();
    heavy.sort_by_key(|s| -s.value(ty));
    heavy
        .iter()
        .take(n)
        .map(|s| format!("  {} {}\n", s.value(ty), s.text()))
        .collect()
}

pub fn expected_name(py: &Python, qualified: &str) -> String {
    // co_qualname exists since 3.11; before, frames carry co_name only.
    if py.minor >= 11 {
        qualified.to_string()
    } else {
        qualified.rsplit('.').next().unwrap().to_string()
    }
}


/// Runs `test` with the interpreter, or says it is skipped when it is not installed.
pub fn with_python(which: Which, test: impl FnOnce(&Python)) {
    if let Which::DebianRoot(minor) = which {
        if let Err(why) = debian_root() {
            return eprintln!("skipped: CPython 3.{minor} (Debian unstable root) cannot be had here: {why}");
        }
    }
    match find(which) {
        Some(py) => test(&py),
        None => eprintln!("skipped: {which:?} is not installed"),
    }
}
