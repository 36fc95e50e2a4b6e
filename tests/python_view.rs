//! The Python view (the default in a Python process): interpreter frames folded into the
//! Python functions that run them, stacks that keep `<module>` however deep, and Python locks
//! named where the program made them, with idle waits left out of lock contention. Run for
//! every CPython 3.8–3.13 under ~/.pyenv and Debian's python3.
mod common;

use common::python::*;

/// A native frame of the interpreter itself: libpython, or the python executable when it
/// has the interpreter linked in (a build without --enable-shared: no libpython mapped).
fn interpreter_frame(py: &Python, all: &[Sample], f: &Frame) -> bool {
    let exe = py.path.canonicalize().unwrap_or(py.path.clone());
    // The Python view leaves no libpython frame to look for: a shared build's executable is
    // a few KiB of `main`, a static build's holds the whole interpreter.
    let _ = all;
    let shared = std::fs::metadata(&exe).map_or(true, |m| m.len() < 1 << 20);
    !f.python && !f.mapping.is_empty() && (f.mapping.contains("libpython3") || !shared && std::path::Path::new(&f.mapping) == exe)
}

/// Self cpu-time by leaf function name.
fn self_cpu(all: &[Sample]) -> Vec<(String, i64)> {
    let mut by: std::collections::HashMap<String, i64> = Default::default();
    for s in all {
        if let Some(leaf) = s.stack.last() {
            *by.entry(leaf.function.clone()).or_default() += s.value("cpu-time");
        }
    }
    let mut rows: Vec<(String, i64)> = by.into_iter().collect();
    rows.sort_by_key(|(_, v)| -v);
    rows
}

/// hot_cold.py in the Python view: no interpreter frame anywhere; Work.hot and Work.cold are
/// the top self rows, splitting their self time as the program measured within 4 points.
fn python_view_split(py: &Python) {
    let path = script("hot_cold.py");
    let out = run_python(py, &[path.to_str().unwrap(), "4"], &[("DD_PROFILING_CPU_FREQUENCY", "1000")]);
    out.assert_success();
    let all = samples(&out);
    let leaked: Vec<&Sample> = all.iter().filter(|s| s.stack.iter().any(|f| interpreter_frame(py, &all, f))).collect();
    assert!(leaked.is_empty(), "interpreter frames in the Python view:\n{}", show(&leaked.into_iter().cloned().collect::<Vec<_>>(), "cpu-samples", 5));
    let (hot, cold) = (expected_name(py, "Work.hot"), expected_name(py, "Work.cold"));
    let rows = self_cpu(&all);
    let total: i64 = rows.iter().map(|r| r.1).sum();
    let of = |name: &str| rows.iter().find(|r| r.0 == name).map_or(0, |r| r.1) as f64;
    let (h, c) = (of(&hot), of(&cold));
    let (truth_h, truth_c): (f64, f64) = (out.value("hot_ns"), out.value("cold_ns"));
    let (share, truth) = (h / (h + c), truth_h / (truth_h + truth_c));
    eprintln!("3.{}: self cpu rows {:?}; hot share {:.3} vs {:.3} measured", py.minor, &rows[..rows.len().min(5)], share, truth);
    assert!(rows.len() >= 2 && [&rows[0].0, &rows[1].0].contains(&&hot) && [&rows[0].0, &rows[1].0].contains(&&cold), "top self rows are not Work.hot/Work.cold: {rows:?}");
    assert!((h + c) / total as f64 >= 0.9, "Work.hot and Work.cold have only {:.0}% of the self time: {rows:?}", 100.0 * (h + c) / total as f64);
    assert!((share - truth).abs() <= 0.04, "Work.hot self share {share:.3} vs {truth:.3} measured");
}

/// A 300-deep recursion with the default DD_PROFILING_MAX_FRAMES (128): ≥ 99% of its samples
/// keep `<module>` at the root, each has exactly one `[N frames omitted]` frame, and N plus
/// the recurse frames shown is the real depth.
fn deep_recursion(py: &Python) {
    const DEPTH: usize = 300;
    let path = script("deep_recursion.py");
    let out = run_python(py, &[path.to_str().unwrap(), &DEPTH.to_string(), "2"], &[("DD_PROFILING_CPU_FREQUENCY", "500")]);
    out.assert_success();
    let all = samples(&out);
    let recursing: Vec<&Sample> = all.iter().filter(|s| s.value("cpu-samples") > 0 && s.stack.iter().rev().find(|f| f.python).is_some_and(|f| f.function == "recurse" && f.file.ends_with("deep_recursion.py"))).collect();
    let count: i64 = recursing.iter().map(|s| s.value("cpu-samples")).sum();
    assert!(count >= 300, "only {count} samples in recurse");
    let rooted: i64 = recursing.iter().filter(|s| s.stack.first().is_some_and(|f| f.function == "<module>")).map(|s| s.value("cpu-samples")).sum();
    let shown = |s: &Sample| s.stack.iter().map(|f| if f.python { format!("{}:{}", f.function, f.line) } else { f.function.clone() }).collect::<Vec<_>>().join(";");
    let worst = recursing.iter().find(|s| s.stack.first().is_none_or(|f| f.function != "<module>")).map(|s| shown(s)).unwrap_or_default();
    eprintln!("3.{}: {rooted} of {count} recurse samples reach <module>", py.minor);
    assert!(rooted as f64 >= 0.99 * count as f64, "only {rooted} of {count} samples reach <module>; e.g. {worst}");
    // Exact depth: the frames shown plus the count in the marker. A sample taken while the
    // interpreter pushes or pops a frame-stack chunk may read a few frames less (the hot side
    // reads a chain that is being changed): 99% must be exact.
    let mut exact = 0;
    let mut wrong = String::new();
    for s in &recursing {
        let markers: Vec<&Frame> = s.stack.iter().filter(|f| f.function.ends_with(" frames omitted]")).collect();
        assert_eq!(markers.len(), 1, "{} omitted-frames markers in {}", markers.len(), shown(s));
        assert!(s.stack.len() <= 128, "{} frames shown (limit 128)", s.stack.len());
        let omitted: usize = markers[0].function.trim_start_matches('[').split(' ').next().unwrap().parse().unwrap();
        let kept = s.stack.iter().filter(|f| f.function == "recurse").count();
        if kept + omitted == DEPTH + 1 {
            exact += s.value("cpu-samples");
        } else {
            wrong = format!("{kept} recurse frames shown + {omitted} omitted in {}", shown(s));
        }
    }
    assert!(exact as f64 >= 0.99 * count as f64, "only {exact} of {count} samples show the exact depth; e.g. {wrong}");
}

/// lock_contention.py: cache_lock's waits carry its name (where it is made) and add up to what the contenders measured within 15%; the idle threads add nothing
/// to lock-acquire-wait.
fn python_locks(py: &Python) {
    let path = script("lock_contention.py");
    let out = run_python(py, &[path.to_str().unwrap(), "3"], &[("DD_PROFILING_CPU_ENABLED", "false"), ("DD_PROFILING_LOCK_ENABLED", "true")]);
    out.assert_success();
    let truth: f64 = out.value("waited_ns");
    let line: i64 = out.value("lock_line");
    let expected = format!("lock_contention.py:{line} cache_lock");
    let mut by_name: std::collections::BTreeMap<String, i64> = Default::default();
    let mut idle: std::collections::BTreeMap<String, i64> = Default::default();
    for s in samples(&out) {
        let wait = s.value("lock-acquire-wait");
        *by_name.entry(s.lock_name.clone()).or_default() += wait;
        if s.thread.starts_with("idle-") || s.thread == "MainThread" {
            *idle.entry(format!("{} {}", s.thread, s.stack.iter().rev().find(|f| f.python).map_or("", |f| f.function.as_str()))).or_default() += wait;
        }
    }
    let named = by_name.get(&expected).copied().unwrap_or(0) as f64;
    eprintln!("3.{}: cache_lock wait {:.3} s vs {:.3} s measured; by name {by_name:?}; idle {idle:?}", py.minor, named / 1e9, truth / 1e9);
    assert!((named - truth).abs() <= 0.15 * truth, "{expected}: {:.3} s of wait vs {:.3} s measured; by name: {by_name:?}\n{}", named / 1e9, truth / 1e9, out.describe());
    let idle_wait: i64 = idle.values().sum();
    assert_eq!(idle_wait, 0, "idle threads have lock-acquire-wait: {idle:?}");
}

macro_rules! for_each_python {
    ($($module:ident => $which:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[test]
            fn interpreter_frames_fold_into_the_python_functions() {
                with_python($which, python_view_split);
            }
            #[test]
            fn a_300_deep_recursion_keeps_its_root() {
                with_python($which, deep_recursion);
            }
            #[test]
            fn python_locks_are_named_and_idle_waits_left_out() {
                with_python($which, python_locks);
            }
        }
    )*};
}

for_each_python! {
    cpython_3_8 => Which::Pyenv(8),
    cpython_3_9 => Which::Pyenv(9),
    cpython_3_10 => Which::Pyenv(10),
    cpython_3_11 => Which::Pyenv(11),
    cpython_3_12 => Which::Pyenv(12),
    cpython_3_13 => Which::Pyenv(13),
    debian_python3 => Which::Debian,
}
