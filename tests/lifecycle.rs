//! Life cycle: files and their names, every way out of a process, the kill switch, periodic
//! exports, programs with their own SIGPROF handler, bad configuration.
mod common;

use common::Outcome;

fn short(ms: u32, mode: &str, code: i32) -> Outcome {
    common::run(common::program("short.c"))
        .arg(ms.to_string())
        .arg(mode)
        .arg(code.to_string())
        .go()
}

/// Exactly one profile, named after the program's pid, with CPU samples in it.
fn assert_one_profile_with_samples(out: &Outcome) {
    out.assert_cpu_types();
    let pid: u32 = out.value("pid");
    assert!(
        out.other_files.is_empty(),
        "unexpected files {:?}\n{}",
        out.other_files,
        out.describe()
    );
    assert_eq!(
        out.files.len(),
        1,
        "expected exactly one profile\n{}",
        out.describe()
    );
    let f = &out.files[0];
    assert_eq!(
        f.pid, pid,
        "profile named after pid {}, program's pid is {pid}",
        f.pid
    );
    assert_eq!(
        f.seq,
        1,
        "the first profile of a process should have seq 1: {}",
        f.path.display()
    );
    assert!(
        out.merged().total("cpu-samples") > 0,
        "the profile has no CPU samples\n{}",
        out.describe()
    );
}

#[test]
fn a_50ms_program_leaves_one_profile() {
    let out = short(50, "return", 0);
    out.assert_success();
    assert_one_profile_with_samples(&out);
}

fn exit_mode(mode: &str, code: i32) {
    let out = short(100, mode, code);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code changed ({mode})\n{}",
        out.describe()
    );
    assert_one_profile_with_samples(&out);
}

#[test]
fn exit_3_keeps_its_code_and_leaves_a_profile() {
    exit_mode("exit", 3);
}

#[test]
fn return_from_main_keeps_its_code_and_leaves_a_profile() {
    exit_mode("return", 4);
}

#[test]
fn underscore_exit_leaves_a_profile() {
    exit_mode("_exit", 0);
}

#[test]
fn underscore_exit_keeps_a_nonzero_code() {
    exit_mode("_exit", 7);
}

#[test]
fn underscore_capital_exit_leaves_a_profile() {
    exit_mode("_Exit", 0);
}

#[test]
fn disabled_leaves_nothing_and_starts_no_thread() {
    for value in ["false", "0"] {
        let out = common::run(common::program("tasks.c"))
            .env("DD_PROFILING_ENABLED", value)
            .go();
        out.assert_success();
        assert_eq!(
            out.value::<u32>("preloaded"),
            1,
            "libddprof is not mapped: the test proves nothing\n{}",
            out.describe_run()
        );
        assert_eq!(
            out.value::<u32>("tasks"),
            1,
            "DD_PROFILING_ENABLED={value} still started threads\n{}",
            out.describe_run()
        );
        assert!(
            out.files.is_empty() && out.other_files.is_empty(),
            "DD_PROFILING_ENABLED={value} still wrote {:?} {:?}",
            out.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
            out.other_files
        );
        assert!(
            !out.stderr.contains("libddprof"),
            "DD_PROFILING_ENABLED={value} should be silent:\n{}",
            out.stderr
        );
    }
}

#[test]
fn periodic_exports_have_increasing_seq_and_do_not_overlap() {
    let out = common::run(common::program("short.c"))
        .arg("2200")
        .env("DD_PROFILING_UPLOAD_PERIOD", "0.5")
        .go();
    out.assert_success();
    out.assert_cpu_types();
    let pid: u32 = out.value("pid");
    let seqs: Vec<u64> = out.files.iter().map(|f| f.seq).collect();
    assert!(
        out.files.iter().all(|f| f.pid == pid),
        "profiles from another pid than {pid}\n{}",
        out.describe()
    );
    assert!(
        seqs.len() >= 4,
        "only {} profiles in {:?} with a 0.5 s period\n{}",
        seqs.len(),
        out.elapsed,
        out.describe()
    );
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "seq should count 1, 2, 3, ..."
    );
    // Each period holds its own samples: together they add up to the process's CPU time.
    let process: f64 = out.value("cpu_ns");
    let total = out.merged().total("cpu-time") as f64;
    assert!(
        common::within(total, process, 0.10),
        "cpu-time over all periods {:.3} s vs process CPU {:.3} s\n{}",
        total / 1e9,
        process / 1e9,
        out.describe()
    );
}

#[test]
fn a_program_with_its_own_sigprof_handler_keeps_its_signals() {
    let out = common::run(common::program("own_sigprof.c")).go();
    out.assert_success();
    let own: u32 = out.value("own");
    let foreign: u32 = out.value("foreign");
    assert!(
        own > 0,
        "the program's own ITIMER_PROF signals stopped arriving\n{}",
        out.describe()
    );
    assert_eq!(
        foreign,
        0,
        "the program's handler received SIGPROF it did not ask for\n{}",
        out.describe()
    );
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("libddprof") && l.contains("SIGPROF"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "expected one libddprof warning about SIGPROF\n{}",
        out.describe_run()
    );
    out.assert_known_types();
}

#[test]
fn a_bad_config_value_warns_and_profiling_goes_on() {
    let out = common::run(common::program("short.c"))
        .arg("100")
        .env("DD_PROFILING_UPLOAD_PERIOD", "abc")
        .go();
    out.assert_success();
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("DD_PROFILING_UPLOAD_PERIOD"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "expected one warning naming DD_PROFILING_UPLOAD_PERIOD\n{}",
        out.describe_run()
    );
    assert!(
        warnings[0].contains("libddprof"),
        "the warning should say it comes from libddprof: {}",
        warnings[0]
    );
    assert_one_profile_with_samples(&out);
}

/// A child killed by `sig` (default disposition) after ~1 s of CPU: its profile exists with
/// its samples, and its parent sees it die of that signal.
fn killed_child(sig: &str, number: i32) {
    let out = common::run(common::program("term_child.c")).arg(sig).go();
    out.assert_success();
    assert_eq!(out.value::<i32>("dfl"), 1, "the program does not see SIG_DFL for SIG{sig}\n{}", out.describe());
    assert_eq!((out.value::<i32>("signaled"), out.value::<i32>("signal")), (1, number), "the child did not die of SIG{sig}\n{}", out.describe());
    let child: u32 = out.value("child_pid");
    let mut m = common::Merged::default();
    for f in out.files.iter().filter(|f| f.pid == child) {
        m.add(&f.profile);
    }
    let cpu = m.total("cpu-samples");
    // 1 s of the child's CPU at 100 Hz (the last ~10 ms after the kill are not sampled).
    assert!(cpu >= 85, "the SIG{sig}'d child's profile has {cpu} CPU samples for 1 s of CPU (expected ~100)\n{}", out.describe());
}

#[test]
fn a_sigterm_child_writes_its_profile_and_dies_of_sigterm() {
    killed_child("TERM", libc::SIGTERM);
}

#[test]
fn a_sigint_child_writes_its_profile_and_dies_of_sigint() {
    killed_child("INT", libc::SIGINT);
}

#[test]
fn a_sighup_child_writes_its_profile_and_dies_of_sighup() {
    killed_child("HUP", libc::SIGHUP);
}

/// The program's own SIGTERM handler runs as installed (here it exits 3).
#[test]
fn a_programs_own_sigterm_handler_is_untouched() {
    let out = common::run(common::program("term_child.c")).arg("TERM").arg("own").go();
    out.assert_success();
    assert_eq!((out.value::<i32>("signaled"), out.value::<i32>("handler_ran"), out.value::<i32>("exit_code")), (0, 1, 3), "{}", out.describe());
}

/// Python started through a pyenv shim (bash, `pyenv`, `readlink`… exec'd and forked on the
/// way): only processes that recorded a sample leave a profile, and the Python program's is
/// there with its CPU.
#[test]
fn a_pyenv_shim_start_writes_profiles_only_for_processes_with_samples() {
    let shim = std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".pyenv/shims/python3");
    if !shim.exists() {
        eprintln!("skipped: no pyenv shim at {}", shim.display());
        return;
    }
    let script = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\nprint('done')";
    let out = common::run(&shim).env("PYENV_VERSION", "3.11.7").env("DD_PROFILING_WALL_ENABLED", "true").arg("-c").arg(script).go();
    out.assert_success();
    for f in &out.files {
        let nonzero = f.profile.sample.iter().any(|s| s.value.iter().any(|&v| v != 0));
        assert!(nonzero, "{} has no sample\n{}", f.path.display(), out.describe());
    }
    let python_cpu = out.merged().total("cpu-samples");
    assert!(python_cpu >= 30, "{python_cpu} CPU samples for the 0.5 s Python loop\n{}", out.describe());
    eprintln!("{} profiles written for the shim start", out.files.len());
}
