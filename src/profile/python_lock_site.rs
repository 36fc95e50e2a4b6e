//! Cold side: naming a Python lock after the place in the program that made it.
//!
//! The hot side records the Python stack at each semaphore initialisation in a Python process
//! (`sample::lock::on_created`). The name is taken from the innermost frame outside Python's
//! own library (threading.py, queue.py… make locks on the program's behalf): `file.py:line`,
//! plus the variable when the source line says it (`cache_lock = threading.Lock()`,
//! `self._lock = RLock()`; a semaphore made where it is waited for reads `with cache_lock:` or
//! `cache_lock.acquire()`).
//! Source lines are read from the file, as `linecache` does, once per creation site.

use std::collections::HashMap;
use std::sync::Arc;

use super::python_frames;
use crate::python::PYTHON_FRAME_TAG;
use crate::sample::both_ends::OMITTED_TAG;

/// Creation sites whose names are kept; past this the cache starts over.
const MAX_SITES: usize = 4096;
/// Lines longer than this are not parsed for a variable name.
const MAX_LINE: usize = 400;

/// Lock names by creation site (file, line): one shared string per site, however many locks
/// are made there (a service makes a lock or two for every request, at a few sites).
#[derive(Default)]
pub struct SiteNames {
    sites: HashMap<(String, u32), Arc<str>>,
}

impl SiteNames {
    fn site_name(&mut self, file: &str, line: u32) -> Arc<str> {
        if let Some(name) = self.sites.get(&(file.to_string(), line)) {
            return name.clone();
        }
        if self.sites.len() >= MAX_SITES {
            self.sites.clear();
        }
        let base = file.rsplit('/').next().unwrap_or(file);
        let name: Arc<str> = match read_line(file, line).as_deref().and_then(variable_of) {
            Some(v) => format!("{base}:{line} {v}").into(),
            None => format!("{base}:{line}").into(),
        };
        self.sites.insert((file.to_string(), line), name.clone());
        name
    }
}

/// Line `line` (from 1) of a source file, read as `linecache` does; only that line is kept.
fn read_line(file: &str, line: u32) -> Option<String> {
    if file.starts_with('<') {
        return None; // <frozen importlib._bootstrap>, <string>, <stdin>
    }
    let text = std::fs::read(file).ok()?;
    let wanted = text.split(|&b| b == b'\n').nth((line as usize).checked_sub(1)?)?;
    Some(String::from_utf8_lossy(wanted).trim_end_matches('\r').to_string())
}

/// The lock's name from its creation stack (merged frame words, leaf first).
pub fn name(frames: &[u64], site_names: &mut SiteNames) -> Option<Arc<str>> {
    let python: Vec<super::symbolize::Frame> = frames
        .iter()
        .filter(|&&w| w & PYTHON_FRAME_TAG != 0 && w & OMITTED_TAG == 0)
        .filter_map(|&w| python_frames::describe(w))
        .collect();
    let site = python.iter().find(|f| !in_python_library(&f.file)).or(python.first())?;
    Some(site_names.site_name(&site.file, site.line))
}

/// Python's own library (not site-packages): the place a program's lock is made on its
/// behalf, not by it.
fn in_python_library(file: &str) -> bool {
    file.starts_with('<') || (file.contains("/lib/python3") && !file.contains("-packages/"))
}

/// The variable a line assigns a new lock to, or uses as a lock.
pub fn variable_of(line: &str) -> Option<String> {
    let line = line.trim();
    if line.len() > MAX_LINE {
        return None;
    }
    if let Some(rest) = line.strip_prefix("with ").or_else(|| line.strip_prefix("async with ")) {
        return dotted_name_at_start(rest);
    }
    if let Some(at) = line.find(".acquire(") {
        return dotted_name_at_end(&line[..at]);
    }
    let eq = assignment(line)?;
    // `x: Lock = ...`: the annotation goes.
    let target = line[..eq].split(':').next()?.trim();
    let name = dotted_name_at_start(target)?;
    (name.len() == target.len()).then_some(name)
}

/// Where the first plain `=` of a line is (not `==`, `<=`, `>=`, `!=`, nor inside a call).
fn assignment(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' | b'[' | b'{' | b'"' | b'\'' => return None,
            b'=' => {
                let before = i.checked_sub(1).map(|j| bytes[j]);
                let after = bytes.get(i + 1).copied();
                if after == Some(b'=') || matches!(before, Some(b'=' | b'<' | b'>' | b'!')) {
                    return None;
                }
                return Some(i);
            }
            _ => {}
        }
    }
    None
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

fn dotted_name_at_start(s: &str) -> Option<String> {
    let s = s.trim_start();
    let end = s.bytes().position(|b| !is_name_byte(b)).unwrap_or(s.len());
    valid(&s[..end])
}

fn dotted_name_at_end(s: &str) -> Option<String> {
    let start = s.bytes().rposition(|b| !is_name_byte(b)).map_or(0, |i| i + 1);
    valid(&s[start..])
}

fn valid(name: &str) -> Option<String> {
    let first = name.bytes().next()?;
    (first.is_ascii_alphabetic() || first == b'_').then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shared_name_per_creation_site() {
        let path = std::env::temp_dir().join(format!("ddprof-site-{}.py", std::process::id()));
        std::fs::write(&path, "import threading\r\ncache_lock = threading.Lock()\nprint(1)\n").unwrap();
        let file = path.to_str().unwrap();
        let base = path.file_name().unwrap().to_str().unwrap();
        let mut names = SiteNames::default();
        let first = names.site_name(file, 2);
        assert_eq!(&*first, format!("{base}:2 cache_lock"));
        assert!(Arc::ptr_eq(&first, &names.site_name(file, 2)));
        assert_eq!(&*names.site_name(file, 3), format!("{base}:3"));
        assert_eq!(&*names.site_name(file, 99), format!("{base}:99"));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn variables_from_source_lines() {
        assert_eq!(variable_of("cache_lock = threading.Lock()").as_deref(), Some("cache_lock"));
        assert_eq!(variable_of("    self._lock = RLock()  # guards x").as_deref(), Some("self._lock"));
        assert_eq!(variable_of("lock: threading.Lock = threading.Lock()").as_deref(), Some("lock"));
        assert_eq!(variable_of("    with cache_lock:").as_deref(), Some("cache_lock"));
        assert_eq!(variable_of("with self.locks.db, other:").as_deref(), Some("self.locks.db"));
        assert_eq!(variable_of("if cache_lock.acquire(timeout=1):").as_deref(), Some("cache_lock"));
        assert_eq!(variable_of("locks[i] = Lock()"), None);
        assert_eq!(variable_of("make(lock=Lock())"), None);
        assert_eq!(variable_of("if a == b:"), None);
        assert_eq!(variable_of("x, y = Lock(), Lock()"), None);
    }

    #[test]
    fn the_library_is_skipped() {
        assert!(in_python_library("/root/.pyenv/versions/3.11.7/lib/python3.11/threading.py"));
        assert!(in_python_library("<frozen importlib._bootstrap>"));
        assert!(!in_python_library("/srv/app/lib/python3.11/site-packages/flask/app.py"));
        assert!(!in_python_library("/srv/app/app.py"));
    }
}
