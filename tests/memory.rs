//! Memory stays bounded: a program whose own memory is flat, profiled with every profile type
//! and exporting every 0.5 s, keeps a flat resident set across more than 20 export periods.
//! (How much the library adds is measured by `make bench`, not asserted here: the machines
//! are shared and their page cache varies.)
mod common;

use common::python::*;
use common::Outcome;

const SECONDS: u32 = 14;
/// Readings from here on are after the first few exports: the library's tables and caches
/// have met their steady contents.
const WARM_MS: u64 = 3_000;
/// Growth allowed from WARM_MS to the end: 20+ export periods of a per-period leak of more
/// than ~50 KiB add more than this. (The programs themselves grow by ~0.2 MiB, their
/// allocators settling.)
const MAX_GROWTH_KIB: i64 = 1024;

const EVERY_TYPE: [(&str, &str); 6] = [
    ("DD_PROFILING_WALL_ENABLED", "true"),
    ("DD_PROFILING_MEMORY_ENABLED", "true"),
    ("DD_PROFILING_HEAP_ENABLED", "true"),
    ("DD_PROFILING_LOCK_ENABLED", "true"),
    ("DD_PROFILING_EXCEPTION_ENABLED", "true"),
    ("DD_PROFILING_UPLOAD_PERIOD", "0.5"),
];

/// The program's `t_ms=… rss_kib=…` lines: growth from the first reading after WARM_MS to the
/// largest one after it, with at least 20 export periods (and profiles) in between.
fn assert_flat(out: &Outcome, what: &str) {
    out.assert_success();
    let readings: Vec<(u64, i64)> = out
        .kv_lines()
        .iter()
        .filter_map(|l| Some((l.get("t_ms")?.parse().ok()?, l.get("rss_kib")?.parse().ok()?)))
        .collect();
    let series = readings.iter().map(|(t, r)| format!("{:.1}s:{r}", *t as f64 / 1e3)).collect::<Vec<_>>().join(" ");
    let Some(&(warm_t, warm)) = readings.iter().find(|(t, _)| *t >= WARM_MS) else {
        panic!("{what}: no RSS reading after {WARM_MS} ms\n{}", out.describe());
    };
    let (last_t, _) = *readings.last().unwrap();
    let (peak_t, peak) = readings.iter().filter(|(t, _)| *t >= warm_t).max_by_key(|(_, r)| *r).copied().unwrap();
    let periods = (last_t - warm_t) / 500;
    eprintln!("{what}: RSS {warm} KiB at {warm_t} ms, at most {peak} KiB ({peak_t} ms) over the next {periods} export periods; {} profiles\n  {series}", out.files.len());
    assert!(periods >= 20, "{what}: only {periods} export periods after the warm-up\n{series}");
    assert!(out.files.len() as u64 >= periods, "{what}: {} profiles written over {periods}+ periods\n{}", out.files.len(), out.describe());
    assert!(peak - warm <= MAX_GROWTH_KIB, "{what}: RSS grew by {} KiB over {periods} export periods (from {warm} KiB at {warm_t} ms to {peak} KiB at {peak_t} ms)\n{series}", peak - warm);
}

#[test]
fn a_c_program_stays_flat_across_20_export_periods() {
    let mut run = common::run(common::program("rss_steady.c")).arg("4").arg(SECONDS.to_string()).timeout(u64::from(SECONDS) + 60);
    for (k, v) in EVERY_TYPE {
        run = run.env(k, v);
    }
    let out = run.go();
    assert_flat(&out, "C");
    let m = out.merged();
    for ty in ["cpu-samples", "wall-samples", "alloc-samples", "lock-acquire"] {
        assert!(m.total(ty) > 0, "C: no {ty}\n{}", out.describe());
    }
}

fn python_stays_flat(py: &Python) {
    let path = script("rss_steady.py");
    let seconds = SECONDS.to_string();
    let out = run_python(py, &[path.to_str().unwrap(), &seconds], &EVERY_TYPE);
    let what = format!("Python 3.{}", py.minor);
    assert_flat(&out, &what);
    let m = out.merged();
    for ty in ["cpu-samples", "wall-samples", "alloc-samples", "lock-acquire", "exception-samples"] {
        assert!(m.total(ty) > 0, "{what}: no {ty}\n{}", out.describe());
    }
}

#[test]
fn python_3_11_stays_flat_across_20_export_periods() {
    with_python(Which::Pyenv(11), python_stays_flat);
}

#[test]
fn python_3_14_stays_flat_across_20_export_periods() {
    with_python(Which::DebianRoot(14), python_stays_flat);
}
