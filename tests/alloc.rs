//! Allocation and live-heap profiling against programs whose allocation totals are known.
mod common;

use common::*;
use std::process::Command;

/// Sum of `ty` over samples whose stack contains `function`.
fn site_total(m: &Merged, ty: &str, function: &str) -> f64 {
    m.fraction_with(ty, function) * m.total(ty) as f64
}

fn alloc_run(program: &std::path::Path) -> Run {
    run(program)
        .env("DD_PROFILING_CPU_ENABLED", "false")
        .env("DD_PROFILING_MEMORY_ENABLED", "true")
        .env("DD_PROFILING_HEAP_ENABLED", "true")
        // A smaller mean interval than the default gives enough samples for a 10 % bound;
        // the estimator is the same at any interval.
        .env("DD_PROFILING_HEAP_SAMPLE_SIZE", "65536")
}

#[test]
fn per_site_estimates_match_the_truth() {
    let out = alloc_run(&program("alloc_sites.c")).go();
    out.assert_success();
    let m = out.merged();
    let ctx = || format!("{}\n{}", m.top("alloc-space", 10), out.describe_run());
    for site in ["small", "big"] {
        let function = format!("{site}_site");
        let bytes = site_total(&m, "alloc-space", &function);
        let count = site_total(&m, "alloc-samples", &function);
        let want_bytes: f64 = out.value(&format!("{site}_bytes"));
        let want_count: f64 = out.value(&format!("{site}_count"));
        assert!(within(bytes, want_bytes, 0.10), "{function}: alloc-space {bytes} vs {want_bytes}\n{}", ctx());
        assert!(within(count, want_count, 0.10), "{function}: alloc-samples {count} vs {want_count}\n{}", ctx());
        let live = site_total(&m, "heap-space", &function);
        assert!(live <= 0.01 * want_bytes, "{function} freed everything but heap-space is {live}\n{}", ctx());
    }
    let kept: f64 = out.value("keep_bytes");
    let live = site_total(&m, "heap-space", "keep_site");
    assert!(within(live, kept, 0.10), "keep_site heap-space {live} vs {kept}\n{}", ctx());
    let allocated = site_total(&m, "alloc-space", "keep_site");
    assert!(within(allocated, kept, 0.10), "keep_site alloc-space {allocated} vs {kept}\n{}", ctx());
    // The hooks themselves must not appear at the leaf of allocation stacks.
    for s in &m.samples {
        assert!(!s.leaf().contains("ddprof::"), "library frame at the leaf: {}", s.stack_text());
    }
}

#[test]
fn cpp_new_is_seen_through_malloc() {
    let out = alloc_run(&program("alloc_cpp.cpp")).go();
    out.assert_success();
    let m = out.merged();
    let want: f64 = out.value("new_bytes");
    let got = site_total(&m, "alloc-space", "new_site");
    assert!(within(got, want, 0.10), "new_site alloc-space {got} vs {want}\n{}", m.top("alloc-space", 10));
}

#[test]
fn malloc_family_semantics_are_unchanged() {
    let exe = program("alloc_api.c");
    let plain = Command::new(&exe).output().unwrap();
    let plain_stdout = String::from_utf8_lossy(&plain.stdout).to_string();
    assert!(plain.status.success(), "the fixture fails even without the library:\n{plain_stdout}");
    // At the default interval and at a 1-byte interval (every allocation sampled).
    for interval in ["524288", "1"] {
        let out = alloc_run(&exe).env("DD_PROFILING_HEAP_SAMPLE_SIZE", interval).go();
        assert_eq!(out.stdout, plain_stdout, "interval {interval}: behaviour differs\n{}", out.describe_run());
        out.assert_success();
    }
}

#[test]
fn four_threads_churning_stay_accurate_and_small() {
    let exe = program("alloc_threads.c");
    let plain = Command::new(&exe).arg("5000000").output().unwrap();
    assert!(plain.status.success());
    let plain_rss: f64 = String::from_utf8_lossy(&plain.stdout)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("maxrss_kib=").and_then(|v| v.parse().ok()))
        .unwrap();
    // 40 GB of churn: the default interval already gives ~80 000 samples.
    let out = alloc_run(&exe).arg("5000000").env("DD_PROFILING_HEAP_SAMPLE_SIZE", "524288").timeout(120).go();
    out.assert_success();
    let m = out.merged();
    let want_bytes: f64 = out.value("churn_bytes");
    let want_count: f64 = out.value("churn_count");
    let bytes = site_total(&m, "alloc-space", "churn");
    let count = site_total(&m, "alloc-samples", "churn");
    assert!(within(bytes, want_bytes, 0.10), "alloc-space {bytes} vs {want_bytes}\n{}", m.top("alloc-space", 10));
    assert!(within(count, want_count, 0.10), "alloc-samples {count} vs {want_count}\n{}", m.top("alloc-space", 10));
    let rss: f64 = out.value("maxrss_kib");
    let overhead_mib = (rss - plain_rss) / 1024.0;
    println!("RSS without the library {plain_rss} KiB, with {rss} KiB: +{overhead_mib:.1} MiB");
    assert!(overhead_mib <= 16.0, "the library added {overhead_mib:.1} MiB of RSS");
}

#[test]
fn works_together_with_jemalloc() {
    let jemalloc = ["/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(jemalloc) = jemalloc else {
        println!("SKIPPED: libjemalloc.so.2 is not installed (scripts/test-env.sh installs it as root)");
        return;
    };
    // Our hooks first, then jemalloc: the hooks must forward to jemalloc, not glibc.
    let preload = format!("{} {jemalloc}", library().display());
    let out = alloc_run(&program("alloc_sites.c")).env("LD_PRELOAD", &preload).go();
    out.assert_success();
    let m = out.merged();
    let kept: f64 = out.value("keep_bytes");
    let live = site_total(&m, "heap-space", "keep_site");
    assert!(within(live, kept, 0.10), "keep_site heap-space {live} vs {kept}\n{}", m.top("alloc-space", 10));
    // malloc_usable_size is not interposed, so it is jemalloc's: it only works (and the
    // fixture only passes) if our hooks handed out jemalloc's blocks, not glibc's.
    let api = program("alloc_api.c");
    let plain = Command::new(&api).arg("portable").env("LD_PRELOAD", jemalloc).output().unwrap();
    let out = alloc_run(&api).arg("portable").env("LD_PRELOAD", &preload).env("DD_PROFILING_HEAP_SAMPLE_SIZE", "1").go();
    assert_eq!(out.stdout, String::from_utf8_lossy(&plain.stdout), "{}", out.describe_run());
    out.assert_success();
}
