//! Lock-contention profiling against programs that measure their own lock waits and holds.
mod common;

use common::*;
use std::process::Command;

/// Sum of `ty` over samples whose stack contains `function`.
fn site_total(m: &Merged, ty: &str, function: &str) -> f64 {
    m.fraction_with(ty, function) * m.total(ty) as f64
}

/// Lock profiling only. `wait_ns` is DD_PROFILING_LOCK_SAMPLE_NS (mean waited or held ns
/// between recorded samples), `every` DD_PROFILING_LOCK_HOLD_SAMPLE_EVERY. The defaults are
/// sized for services; the tests use smaller ones to get enough samples from a few seconds.
fn lock_run(program: &std::path::Path, wait_ns: u64, every: u64) -> Run {
    run(program)
        .env("DD_PROFILING_CPU_ENABLED", "false")
        .env("DD_PROFILING_LOCK_ENABLED", "true")
        .env("DD_PROFILING_LOCK_SAMPLE_NS", &wait_ns.to_string())
        .env("DD_PROFILING_LOCK_HOLD_SAMPLE_EVERY", &every.to_string())
}

fn assert_close(what: &str, got: f64, want: f64, tolerance: f64, ctx: &dyn Fn() -> String) {
    assert!(within(got, want, tolerance), "{what}: profile says {got:.0}, the program measured {want:.0} (±{:.0} %)\n{}", tolerance * 100.0, ctx());
}

#[test]
fn contended_mutex_wait_and_hold_match_the_truth() {
    let out = lock_run(&program("lock_contention.c"), 20_000, 2).arg("1500").go();
    out.assert_success();
    out.assert_known_types();
    let m = out.merged();
    let ctx = || format!("{}\n{}\n{}", m.top("lock-acquire-wait", 8), m.top("lock-release-hold", 8), out.describe_run());

    let wait: f64 = out.value("contended_wait_ns");
    let hold: f64 = out.value("contended_hold_ns");
    let count: f64 = out.value("contended_count");
    assert_close("contended_section lock-acquire-wait", site_total(&m, "lock-acquire-wait", "contended_section"), wait, 0.15, &ctx);
    assert_close("contended_section lock-release-hold", site_total(&m, "lock-release-hold", "contended_section"), hold, 0.15, &ctx);
    assert_close("contended_section lock-release", site_total(&m, "lock-release", "contended_section"), count, 0.10, &ctx);
    // lock-acquire counts the acquisitions that had to wait: some, never more than all.
    let acquires = site_total(&m, "lock-acquire", "contended_section");
    assert!(acquires > 0.0 && acquires <= count * 1.15, "lock-acquire {acquires} for {count} acquisitions\n{}", ctx());

    // The private mutexes are never contended: no wait, but their holds are seen.
    let private_wait = site_total(&m, "lock-acquire-wait", "private_section");
    assert!(private_wait <= 0.01 * wait, "private_section waits {private_wait} ns\n{}", ctx());
    let private_releases = site_total(&m, "lock-release", "private_section");
    let private_count: f64 = out.value("private_count");
    assert_close("private_section lock-release", private_releases, private_count, 0.20, &ctx);

    for s in m.samples.iter().filter(|s| s.has_function("contended_section") && !s.has_function("private_section")) {
        assert_eq!(s.label("lock name"), Some("contended_lock"), "{}", s.stack_text());
        assert!(!s.leaf().contains("ddprof::") && !s.leaf().starts_with("pthread_mutex"), "library frame at the leaf: {}", s.stack_text());
    }
    for s in m.samples.iter().filter(|s| s.has_function("private_section")) {
        let name = s.label("lock name").unwrap_or("");
        assert!(name.starts_with("0x"), "a heap mutex is named by its address, not {name:?}");
    }
}

#[test]
fn rwlock_contention_shows_up() {
    let out = lock_run(&program("lock_kinds.c"), 10_000, 1).arg("rwlock").arg("800").go();
    out.assert_success();
    let m = out.merged();
    let ctx = || format!("{}\n{}\n{}", m.top("lock-acquire-wait", 8), m.top("lock-release-hold", 8), out.describe_run());
    for side in ["writer", "reader"] {
        let function = format!("{side}_section");
        let wait: f64 = out.value(&format!("{side}_wait_ns"));
        let hold: f64 = out.value(&format!("{side}_hold_ns"));
        assert_close(&format!("{function} lock-acquire-wait"), site_total(&m, "lock-acquire-wait", &function), wait, 0.20, &ctx);
        assert_close(&format!("{function} lock-release-hold"), site_total(&m, "lock-release-hold", &function), hold, 0.15, &ctx);
    }
    assert!(m.samples.iter().filter(|s| s.has_function("writer_section")).all(|s| s.label("lock name") == Some("shared_rwlock")), "{}", ctx());
}

#[test]
fn semaphore_contention_shows_up() {
    let out = lock_run(&program("lock_kinds.c"), 10_000, 1).arg("sem").arg("800").go();
    out.assert_success();
    let m = out.merged();
    let ctx = || format!("{}\n{}", m.top("lock-acquire-wait", 8), out.describe_run());
    let wait: f64 = out.value("sem_wait_ns");
    assert_close("sem_section lock-acquire-wait", site_total(&m, "lock-acquire-wait", "sem_section"), wait, 0.20, &ctx);
    assert!(m.samples.iter().filter(|s| s.has_function("sem_section")).all(|s| s.label("lock name") == Some("shared_sem")), "{}", ctx());
    // A semaphore has no owner: no hold is attributed to it.
    assert_eq!(site_total(&m, "lock-release-hold", "sem_section"), 0.0, "{}", ctx());
}

#[test]
fn lock_functions_behave_exactly_as_without_the_library() {
    let exe = program("lock_api.c");
    let plain = Command::new(&exe).output().unwrap();
    let plain_stdout = String::from_utf8_lossy(&plain.stdout).to_string();
    assert!(plain.status.success() && plain_stdout.ends_with("done\n"), "the fixture fails without the library:\n{plain_stdout}");
    // Defaults, then every wait and every hold recorded (all slow paths taken).
    for (wait_ns, every) in [(100_000, 100), (1, 1)] {
        let out = lock_run(&exe, wait_ns, every).go();
        assert_eq!(out.stdout, plain_stdout, "T={wait_ns} N={every}: behaviour differs\n{}", out.describe_run());
        out.assert_success();
    }
}

#[test]
fn condition_waits_keep_working_and_are_not_counted_as_holds() {
    let exe = program("lock_cond.c");
    let out = lock_run(&exe, 1_000, 1).arg("1000").go();
    out.assert_success();
    assert!(out.stdout.contains("checksum_ok=1"), "{}", out.describe_run());
    let m = out.merged();
    let ctx = || format!("{}\n{}", m.top("lock-release-hold", 10), out.describe_run());
    let produce_hold: f64 = out.value("produce_hold_ns");
    let consume_hold: f64 = out.value("consume_hold_ns");
    let cond_wait: f64 = out.value("cond_wait_ns");
    assert!(cond_wait > 3.0 * (produce_hold + consume_hold), "the fixture should sleep in condition waits far longer than it holds the mutex\n{}", ctx());
    assert_close("produce lock-release-hold", site_total(&m, "lock-release-hold", "produce"), produce_hold, 0.15, &ctx);
    assert_close("consume lock-release-hold", site_total(&m, "lock-release-hold", "consume"), consume_hold, 0.15, &ctx);
    let total_hold = m.total("lock-release-hold") as f64;
    assert!(total_hold < 1.3 * (produce_hold + consume_hold), "hold {total_hold} includes condition waits ({cond_wait})\n{}", ctx());
    // Still working with the defaults, and with timed condition waits sampled at N = 3.
    for (wait_ns, every) in [(100_000, 100), (5_000, 3)] {
        let out = lock_run(&exe, wait_ns, every).arg("500").go();
        out.assert_success();
        assert!(out.stdout.contains("produced=1000 consumed=1000 checksum_ok=1"), "{}", out.describe_run());
    }
}

#[test]
fn no_lock_types_when_lock_profiling_is_off() {
    // A 67 ms program that mostly waits may take no CPU sample: its (empty) profile is
    // wanted all the same, to look at its sample types.
    let out = run(program("lock_contention.c")).arg("100").env("DD_PROFILING_LOCK_ENABLED", "false").env("DD_PROFILING_EMPTY_PROFILES", "true").go();
    out.assert_success();
    assert!(!out.files.is_empty(), "{}", out.describe_run());
    for f in &out.files {
        let types = sample_types(&f.profile);
        assert!(types.iter().all(|(t, _)| !t.starts_with("lock-")), "{}: {types:?}", f.path.display());
    }
    let on = lock_run(&program("lock_contention.c"), 100_000, 100).arg("100").go();
    assert!(!on.files.is_empty(), "{}", on.describe_run());
    for f in &on.files {
        let types = sample_types(&f.profile);
        for want in ["lock-acquire", "lock-acquire-wait", "lock-release", "lock-release-hold"] {
            assert!(types.iter().any(|(t, _)| t == want), "{}: {want} missing from {types:?}", f.path.display());
        }
    }
}
