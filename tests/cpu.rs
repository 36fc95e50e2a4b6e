//! CPU profiling: the profile agrees with what the programs measure about themselves.
mod common;

use common::{function_is, within, FlatSample};

/// Stacks that reach `main` (the program's own, or CPython's).
fn reaches_main(s: &FlatSample) -> bool {
    s.has_function("main")
}

#[test]
fn cpu_split_between_two_leaf_functions_matches_the_program() {
    // 1000 samples a second: ~2000 samples put the share within 1 point (one standard
    // deviation), so the 3-point check below fails by chance about once in 400 runs; at the
    // default 100 Hz (200 samples) it failed by chance one run in three.
    let out = common::run(common::program("cpu_split.c")).env("DD_PROFILING_CPU_FREQUENCY", "1000").go();
    out.assert_success();
    out.assert_cpu_types();
    let m = out.merged();
    let a: f64 = out.value("burn_a_ns");
    let b: f64 = out.value("burn_b_ns");
    let truth = a / (a + b);
    let pa = m.self_total("cpu-time", "burn_a") as f64;
    let pb = m.self_total("cpu-time", "burn_b") as f64;
    assert!(
        pa + pb > 0.0,
        "no cpu-time in burn_a or burn_b\n{}",
        out.describe()
    );
    let seen = pa / (pa + pb);
    let (na, nb) = (
        m.self_total("cpu-samples", "burn_a") as f64,
        m.self_total("cpu-samples", "burn_b") as f64,
    );
    eprintln!(
        "burn_a share: program {:.2}%, profile cpu-time {:.2}%, profile cpu-samples {:.2}% ({na} vs {nb} samples)",
        100.0 * truth,
        100.0 * seen,
        100.0 * na / (na + nb)
    );
    assert!(
        (seen - truth).abs() <= 0.03,
        "burn_a share in the profile {:.2}% vs {:.2}% measured by the program\n{}",
        100.0 * seen,
        100.0 * truth,
        out.describe()
    );
    let to_main = m.fraction("cpu-samples", reaches_main);
    assert!(
        to_main >= 0.95,
        "only {:.1}% of samples reach main\n{}",
        100.0 * to_main,
        out.describe()
    );
}

#[test]
fn python_stacks_go_through_libpython_and_reach_main() {
    let python = std::path::PathBuf::from(std::env::var("HOME").unwrap())
        .join(".pyenv/versions/3.11.7/bin/python3.11");
    assert!(python.exists(), "{} is not installed", python.display());
    let script = r#"
import time
def inner(n):
    s = 0
    for i in range(n):
        s += i * i
    return s
def outer():
    t0 = time.process_time()
    while time.process_time() - t0 < 2.0:
        inner(20000)
    print(f"cpu_s={time.process_time() - t0}")
outer()
"#;
    // The full native view: this checks the unwinding through the interpreter itself.
    let out = common::run(&python).arg("-c").arg(script).env("DD_PROFILING_PYTHON_NATIVE", "all").go();
    out.assert_success();
    out.assert_cpu_types();
    let m = out.merged();
    // Native frames of the interpreter (whether or not Python frames replace
    // _PyEval_EvalFrameDefault itself in the stack).
    let through_python = m.fraction("cpu-samples", |s| {
        s.stack.iter().any(|f| {
            f.mapping.contains("libpython3.11")
                || function_is(&f.function, "_PyEval_EvalFrameDefault")
        })
    });
    // python3.11's `main` is a single `jmp Py_BytesMain` (a tail call), so it is never on
    // the stack: Py_BytesMain stands for it, and the stack must go on to the entry point.
    let to_main = m.fraction("cpu-samples", |s| {
        s.has_function("Py_BytesMain") && s.has_function("_start")
    });
    eprintln!(
        "through libpython: {:.1}%, to main: {:.1}%",
        100.0 * through_python,
        100.0 * to_main
    );
    assert!(
        through_python >= 0.90,
        "only {:.1}% of samples go through libpython3.11 (mapping) or _PyEval_EvalFrameDefault\n{}",
        100.0 * through_python,
        out.describe()
    );
    assert!(
        to_main >= 0.95,
        "only {:.1}% of samples reach Py_BytesMain and _start\n{}",
        100.0 * to_main,
        out.describe()
    );
}

struct ThreadTruth {
    tid: i64,
    name: String,
    cpu_ns: f64,
}

fn thread_truth(out: &common::Outcome) -> Vec<ThreadTruth> {
    let threads: Vec<ThreadTruth> = out
        .kv_lines()
        .iter()
        .filter(|l| l.contains_key("tid"))
        .map(|l| ThreadTruth {
            tid: l["tid"].parse().unwrap(),
            name: l["name"].clone(),
            cpu_ns: l["cpu_ns"].parse().unwrap(),
        })
        .collect();
    assert_eq!(
        threads.len(),
        4,
        "expected 4 thread lines\n{}",
        out.describe_run()
    );
    threads
}

#[test]
fn per_thread_cpu_time_and_names_match_each_thread() {
    let out = common::run(common::program("threads.c")).go();
    out.assert_success();
    out.assert_cpu_types();
    let m = out.merged();
    let by_thread = m.by_thread("cpu-time");
    let samples_by_thread = m.by_thread("cpu-samples");
    let names = m.thread_names();
    let mut failures = vec![];
    for t in thread_truth(&out) {
        let seen = *by_thread.get(&t.tid).unwrap_or(&0) as f64;
        eprintln!(
            "thread {} ({}): measured {:.3} s, profile {:.3} s in {} samples",
            t.tid,
            t.name,
            t.cpu_ns / 1e9,
            seen / 1e9,
            samples_by_thread.get(&t.tid).unwrap_or(&0)
        );
        if !within(seen, t.cpu_ns, 0.10) {
            failures.push(format!(
                "thread {} ({}): profile {:.3} s vs measured {:.3} s",
                t.tid,
                t.name,
                seen / 1e9,
                t.cpu_ns / 1e9
            ));
        }
        if !names.get(&t.tid).is_some_and(|n| n.contains(&t.name)) {
            failures.push(format!(
                "thread {}: `thread name` {:?}, expected {:?}",
                t.tid,
                names.get(&t.tid),
                t.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\ncpu-time by thread id: {by_thread:?}\nnames: {names:?}\n{}",
        failures.join("\n"),
        out.describe()
    );
}

#[test]
fn total_cpu_time_matches_the_process_cpu_time() {
    let out = common::run(common::program("threads.c")).go();
    out.assert_success();
    out.assert_cpu_types();
    let process: f64 = out.value("process_cpu_ns");
    let total = out.merged().total("cpu-time") as f64;
    eprintln!(
        "process CPU {:.3} s, profile cpu-time {:.3} s",
        process / 1e9,
        total / 1e9
    );
    assert!(
        within(total, process, 0.10),
        "profile cpu-time {:.3} s vs process CPU {:.3} s\n{}",
        total / 1e9,
        process / 1e9,
        out.describe()
    );
}

#[test]
fn a_library_loaded_with_dlopen_is_unwound() {
    let plugin = common::shared_library("plugin.c");
    let out = common::run(common::program("dlopen_burn.c"))
        .arg(&plugin)
        .go();
    out.assert_success();
    out.assert_cpu_types();
    let m = out.merged();
    let in_plugin = m.fraction_with("cpu-samples", "plugin_spin");
    let complete = m.fraction("cpu-samples", |s| {
        s.has_function("plugin_spin") && s.has_function("plugin_burn_ns") && reaches_main(s)
    });
    eprintln!(
        "in plugin_spin: {:.1}%, through plugin_burn_ns to main: {:.1}%",
        100.0 * in_plugin,
        100.0 * complete
    );
    assert!(
        in_plugin >= 0.80,
        "only {:.1}% of samples in plugin_spin\n{}",
        100.0 * in_plugin,
        out.describe()
    );
    assert!(
        complete >= 0.90 * in_plugin,
        "only {:.1}% of samples unwind from plugin_spin through plugin_burn_ns to main ({:.1}% are in plugin_spin)\n{}",
        100.0 * complete,
        100.0 * in_plugin,
        out.describe()
    );
}

/// The path of libc's separate debug file (Debian's libc6-dbg), if installed.
fn libc_debug_file() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("readelf").args(["-n", "/lib/x86_64-linux-gnu/libc.so.6"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.lines().find_map(|l| l.trim().strip_prefix("Build ID: "))?.trim().to_string();
    let path = std::path::PathBuf::from(format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]));
    path.exists().then_some(path)
}

/// qsort's sorting loop is libc's static `msort_with_tmp`, absent from libc's dynamic symbols:
/// it is named from the symbol table of libc's separate debug file, by default without its
/// DWARF, and also with `DD_PROFILING_SEPARATE_DEBUG_INFO=full`.
#[test]
fn libc_internals_are_named_from_its_separate_debug_file() {
    let Some(debug_file) = libc_debug_file() else {
        eprintln!("skipped: libc's separate debug file is not installed (apt-get install libc6-dbg)");
        return;
    };
    for mode in ["symbols", "full"] {
        let out = common::run(common::program("cpu_qsort.c")).env("DD_PROFILING_SEPARATE_DEBUG_INFO", mode).go();
        out.assert_success();
        let m = out.merged();
        let named = m.fraction("cpu-samples", |s| s.has_function("msort_with_tmp"));
        let ours = m.fraction("cpu-samples", |s| s.has_function("compare"));
        assert!(
            named >= 0.5 && ours >= 0.05,
            "{mode}: msort_with_tmp in {:.0}% and compare in {:.0}% of the samples ({} installed)\n{}",
            100.0 * named,
            100.0 * ours,
            debug_file.display(),
            out.describe()
        );
    }
}

/// A C recursion 1000 deep with the default DD_PROFILING_MAX_FRAMES (128): the samples of the
/// burn at the bottom keep `main` (and `_start`) at the root, with one `[N frames omitted]`
/// frame, N being the descend frames not shown.
#[test]
fn a_1000_deep_c_recursion_keeps_its_root() {
    let out = common::run(common::program("deep_c.c")).env("DD_PROFILING_CPU_FREQUENCY", "500").go();
    out.assert_success();
    let m = out.merged();
    let burning = |s: &FlatSample| s.stack.last().is_some_and(|f| function_is(&f.function, "burn"));
    let in_burn = m.fraction("cpu-samples", burning);
    assert!(in_burn > 0.9, "only {:.0}% of the samples in burn", 100.0 * in_burn);
    let rooted = m.fraction("cpu-samples", |s| burning(s) && s.has_function("main") && s.has_function("_start")) / in_burn;
    eprintln!("{:.1}% of the burn samples reach main", 100.0 * rooted);
    assert!(rooted >= 0.99, "only {:.1}% of the burn samples reach main", 100.0 * rooted);
    let exact = m.fraction("cpu-samples", |s| {
        let markers: Vec<&common::Frame> = s.stack.iter().filter(|f| f.function.ends_with(" frames omitted]")).collect();
        let shown = s.stack.iter().filter(|f| function_is(&f.function, "descend")).count();
        burning(s)
            && s.stack.len() <= 128
            && markers.len() == 1
            && markers[0].function.trim_start_matches('[').split(' ').next().and_then(|n| n.parse::<usize>().ok()) == Some(1001 - shown)
    }) / in_burn;
    assert!(exact >= 0.99, "only {:.1}% of the burn samples show 1001 descend frames (shown + omitted) in at most 128", 100.0 * exact);
}
