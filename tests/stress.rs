//! Stress: 8 threads doing malloc/free, dlopen/dlclose, C++ exceptions and stdio while sampled
//! at 1000 Hz: no crash, no hang, profiles that decode.
mod common;

/// Seconds the threads run; DDPROF_STRESS_SECONDS overrides (the issue asks for 10).
fn seconds() -> u64 {
    std::env::var("DDPROF_STRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

#[test]
fn eight_busy_threads_at_1000_hz_neither_crash_nor_hang() {
    let plugin = common::shared_library("plugin.c");
    let secs = seconds();
    let out = common::run(common::program("stress.cpp"))
        .arg(&plugin)
        .arg(secs.to_string())
        .env("DD_PROFILING_CPU_FREQUENCY", "1000")
        .env("DD_PROFILING_UPLOAD_PERIOD", "2")
        .timeout(secs + 60)
        .go();
    out.assert_success();
    assert!(
        out.stdout.contains("ok iterations="),
        "the program did not finish its work\n{}",
        out.describe()
    );
    out.assert_cpu_types();
    let m = out.merged();
    let samples = m.total("cpu-samples");
    assert!(samples > 0, "no CPU samples\n{}", out.describe());
    let complete = m.fraction("cpu-samples", |s| {
        s.has_function("main") || s.has_function("start_thread")
    });
    let in_plugin = m.fraction_with("cpu-samples", "plugin_work");
    let in_throw = m.fraction_with("cpu-samples", "thrower");
    let cpu_s = m.total("cpu-time") as f64 / 1e9;
    eprintln!(
        "{} profiles, {samples} samples over {cpu_s:.2} s of CPU ({:.0} a CPU-second; 1000 asked); {:.1}% reach main or start_thread, {:.1}% in plugin_work, {:.1}% under thrower",
        out.files.len(),
        samples as f64 / cpu_s,
        100.0 * complete,
        100.0 * in_plugin,
        100.0 * in_throw
    );
    eprintln!("{}", m.top("cpu-time", 12));
}
