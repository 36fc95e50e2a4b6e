//! Python frames: profiles of Python programs name Python functions (qualified names on
//! 3.11+), files and lines, spliced into the native stacks, for every CPython 3.8–3.13
//! installed under ~/.pyenv, for Debian's /usr/bin/python3, and for CPython 3.14 and 3.15 of
//! a Debian unstable root (built under target/ on first use, run with chroot). A version that
//! is not installed, or a root that cannot be built here, is skipped with a message.
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use common::python::*;

// ---------------------------------------------------------------------------------------------
// The tests, run for each interpreter

/// Work.hot and Work.cold (same body, called 3:1): the profile splits CPU between them as the
/// program measured, within 4 points, naming them by qualified name, file and line.
fn hot_cold_split(py: &Python) {
    let path = script("hot_cold.py");
    let out = run_python(
        py,
        &[path.to_str().unwrap(), "5"],
        // The full native view: the splice under the interpreter's native frames is checked.
        &[("DD_PROFILING_CPU_FREQUENCY", "1000"), ("DD_PROFILING_PYTHON_NATIVE", "all")],
    );
    out.assert_success();
    out.assert_cpu_types();
    let all = samples(&out);
    let hot_ns: f64 = out.value("hot_ns");
    let cold_ns: f64 = out.value("cold_ns");
    let lines: HashMap<String, (i64, i64)> = out
        .kv_lines()
        .iter()
        .filter(|l| l.contains_key("function"))
        .map(|l| {
            (
                l["function"].clone(),
                (
                    l["first_line"].parse().unwrap(),
                    l["last_line"].parse().unwrap(),
                ),
            )
        })
        .collect();
    let file = path.to_string_lossy().to_string();
    let mut seen = HashMap::new();
    let mut bad_lines = vec![];
    for (short, qualified) in [("hot", "Work.hot"), ("cold", "Work.cold")] {
        let name = expected_name(py, qualified);
        let (first, last) = lines[short];
        let mut total = 0;
        for s in &all {
            let Some(leaf) = s.python_leaf() else {
                continue;
            };
            if leaf.function == name && leaf.file == file {
                total += s.value("cpu-time");
                if leaf.line < first || leaf.line > last {
                    bad_lines.push(format!(
                        "{}:{} outside {first}..={last}",
                        leaf.function, leaf.line
                    ));
                }
            }
        }
        seen.insert(short, total as f64);
    }
    let truth = hot_ns / (hot_ns + cold_ns);
    let (hot, cold) = (seen["hot"], seen["cold"]);
    assert!(
        hot > 0.0 && cold > 0.0,
        "no cpu-time under {} and {} in {file}\n{}",
        expected_name(py, "Work.hot"),
        expected_name(py, "Work.cold"),
        show(&all, "cpu-time", 8)
    );
    let share = hot / (hot + cold);
    eprintln!(
        "3.{}: hot share program {:.1}%, profile {:.1}%",
        py.minor,
        100.0 * truth,
        100.0 * share
    );
    assert!(
        bad_lines.is_empty(),
        "lines outside the functions' bodies: {:?}",
        &bad_lines[..bad_lines.len().min(10)]
    );
    assert!(
        (share - truth).abs() <= 0.04,
        "hot share in the profile {:.1}% vs {:.1}% measured by the program\n{}",
        100.0 * share,
        100.0 * truth,
        show(&all, "cpu-time", 8)
    );
    // The Python frames sit where _PyEval_EvalFrameDefault was: under the native root (main),
    // and nothing of the evaluation loop is left between Python frames.
    let in_work: Vec<&Sample> = all
        .iter()
        .filter(|s| {
            s.python_leaf()
                .is_some_and(|f| f.function.ends_with("hot") || f.function.ends_with("cold"))
        })
        .collect();
    let spliced = in_work
        .iter()
        .filter(|s| {
            let first_py = s.stack.iter().position(|f| f.python).unwrap();
            let last_py = s.stack.iter().rposition(|f| f.python).unwrap();
            first_py > 0
                && !s.stack[first_py..=last_py]
                    .iter()
                    .any(|f| f.function == "_PyEval_EvalFrameDefault")
        })
        .count();
    assert!(
        spliced as f64 >= 0.95 * in_work.len() as f64,
        "only {spliced} of {} samples have their Python frames spliced under native frames\n{}",
        in_work.len(),
        show(&all, "cpu-time", 8)
    );
}

/// A thread stuck in `sum(range(N))`, one C call holding the GIL, is sampled at the full rate,
/// with its Python caller and the line of the call.
fn long_c_call(py: &Python) {
    let path = script("c_call.py");
    let out = run_python(
        py,
        &[path.to_str().unwrap(), "60000000"],
        // The full native view: the interpreter's `builtin_sum` below `stuck` is checked (the
        // Python view names it `sum` where the interpreter has a symbol table: python_view.rs).
        &[("DD_PROFILING_CPU_FREQUENCY", "200"), ("DD_PROFILING_PYTHON_NATIVE", "all")],
    );
    out.assert_success();
    out.assert_cpu_types();
    let all = samples(&out);
    let tid: i64 = out.value("tid");
    let cpu_ns: f64 = out.value("cpu_ns");
    let call_line: i64 = out.value("call_line");
    let file = path.to_string_lossy().to_string();
    let thread: Vec<&Sample> = all.iter().filter(|s| s.tid == tid).collect();
    let count: i64 = thread.iter().map(|s| s.value("cpu-samples")).sum();
    let expected = cpu_ns / 5e6;
    let with_caller: i64 = thread
        .iter()
        .filter(|s| {
            s.python_leaf()
                .is_some_and(|f| f.function == "stuck" && f.file == file && f.line == call_line)
        })
        .map(|s| s.value("cpu-samples"))
        .sum();
    eprintln!("3.{}: {count} samples in the thread (expected ~{expected:.0}), {with_caller} under stuck:{call_line}", py.minor);
    assert!(
        count as f64 >= 0.85 * expected,
        "{count} samples for {:.2} s of CPU at 200 Hz (expected ~{expected:.0})\n{}",
        cpu_ns / 1e9,
        show(&all, "cpu-samples", 6)
    );
    assert!(
        with_caller as f64 >= 0.95 * count as f64,
        "only {with_caller} of {count} samples of the thread show stuck ({file}:{call_line})\n{}",
        show(&all, "cpu-samples", 6)
    );
    // The C call is below its Python caller.
    let c_below = thread
        .iter()
        .filter(|s| {
            let last_py = s.stack.iter().rposition(|f| f.python);
            last_py.is_some_and(|i| i + 1 < s.stack.len())
        })
        .count();
    assert!(
        c_below as f64 >= 0.95 * thread.len() as f64,
        "the C call is missing below stuck\n{}",
        show(&all, "cpu-samples", 6)
    );
}

/// The frames the library reads are the frames Python reports for the same thread
/// (sys._current_frames()) while it spins at a controlled place: same functions, files and
/// lines, in the same order, with the C function (sorted) between its Python caller and the
/// lambda it calls back.
fn frames_match_python(py: &Python, depth: usize, max_frames: &str) {
    let path = script("verify_stack.py");
    let depth_arg = depth.to_string();
    let out = run_python(
        py,
        &[path.to_str().unwrap(), &depth_arg, "1.5"],
        &[
            ("DD_PROFILING_CPU_FREQUENCY", "500"),
            ("DD_PROFILING_MAX_FRAMES", max_frames),
            // The full native view: the native frames between Python frames are checked.
            ("DD_PROFILING_PYTHON_NATIVE", "all"),
        ],
    );
    out.assert_success();
    let truth: Vec<(String, String, i64)> = out
        .kv_lines()
        .iter()
        .filter_map(|l| l.get("frame"))
        .map(|f| {
            let parts: Vec<&str> = f.splitn(3, '|').collect();
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts[2].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        truth.len(),
        depth + 7,
        "unexpected frame count printed\n{}",
        out.stdout
    );
    let tid: i64 = out.value("tid");
    let all = samples(&out);
    let spinning: Vec<&Sample> = all
        .iter()
        .filter(|s| s.tid == tid && s.python_leaf().is_some_and(|f| f.function == "bottom"))
        .collect();
    let total: i64 = spinning.iter().map(|s| s.value("cpu-samples")).sum();
    assert!(
        total >= 100,
        "only {total} samples in bottom\n{}",
        show(&all, "cpu-samples", 6)
    );
    let mut matching = 0;
    let mut first_mismatch = None;
    for s in &spinning {
        let got: Vec<(String, String, i64)> = s
            .python()
            .iter()
            .map(|f| (f.function.clone(), f.file.clone(), f.line))
            .collect();
        if got == truth {
            matching += s.value("cpu-samples");
        } else if first_mismatch.is_none() {
            first_mismatch = Some(got);
        }
    }
    eprintln!(
        "3.{}: depth {depth}: {matching} of {total} samples match Python's own view exactly",
        py.minor
    );
    assert!(
        matching as f64 >= 0.98 * total as f64,
        "{matching} of {total} samples match Python's view of the stack\npython: {truth:#?}\nprofile (first mismatch): {first_mismatch:#?}"
    );
    // Splicing: between Tree.descend (the caller of sorted) and the lambda there are native
    // frames (sorted itself), and no evaluation loop frame is left anywhere above `<module>`.
    let lambda = expected_name(py, "Tree.descend.<locals>.<lambda>");
    for s in spinning.iter().take(20) {
        let at = s
            .stack
            .iter()
            .position(|f| f.python && f.function == lambda)
            .unwrap();
        assert!(
            !s.stack[at - 1].python,
            "no native frame between the lambda and its caller: {}",
            s.text()
        );
        if !py.path.starts_with("/usr") {
            assert!(
                s.stack[..at]
                    .iter()
                    .rev()
                    .take_while(|f| !f.python)
                    .any(|f| f.function == "builtin_sorted"),
                "builtin_sorted is not between the lambda and Tree.descend: {}",
                s.text()
            );
        }
        let module = s.stack.iter().position(|f| f.python).unwrap();
        assert!(module > 0, "no native frames above <module>: {}", s.text());
        assert!(
            !s.stack[module..]
                .iter()
                .any(|f| f.function == "_PyEval_EvalFrameDefault"),
            "an evaluation loop frame was not replaced: {}",
            s.text()
        );
    }
}

/// The three line table decoders agree with CPython's own PyCode_Addr2Line for every
/// instruction of ~700 code objects of the standard library.
fn line_tables_match_cpython(py: &Python) {
    use ddprof::python::linetable;
    let out = py.command().arg(script("line_tables.py")).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut codes, mut offsets, mut wrong) = (0, 0, vec![]);
    for row in text.lines() {
        let parts: Vec<&str> = row.split(' ').collect();
        assert_eq!(parts.len(), 4, "bad row {row}");
        let first: i32 = parts[1].parse().unwrap();
        let table: Vec<u8> = if parts[2] == "-" {
            vec![]
        } else {
            (0..parts[2].len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&parts[2][i..i + 2], 16).unwrap())
                .collect()
        };
        if parts[3] == "-" {
            continue;
        }
        codes += 1;
        for (i, expected) in parts[3].split(',').enumerate() {
            let expected: i32 = expected.parse().unwrap();
            let offset = 2 * i as i64;
            let got = match py.minor {
                8 | 9 => linetable::lnotab_line(&table, first, offset),
                10 => linetable::linetable310_line(&table, first, offset),
                _ => linetable::locations_line(&table, first, offset),
            }
            .unwrap_or(-1);
            offsets += 1;
            if got != expected && wrong.len() < 10 {
                wrong.push(format!("first line {first}, table {}, offset {offset}: decoded {got}, CPython {expected}", parts[2]));
            }
        }
    }
    eprintln!(
        "3.{}: {codes} code objects, {offsets} offsets compared",
        py.minor
    );
    assert!(codes > 300, "only {codes} code objects dumped");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// An interpreter that appears only later, in a libpython loaded with dlopen(RTLD_LOCAL) by
/// a C program (its symbols are not in the global scope), is found and read.
fn embedded_with_dlopen(py: &Python) {
    const EMBED: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    void (*init)(int) = (void (*)(int))dlsym(h, "Py_InitializeEx");
    int (*run)(const char *) = (int (*)(const char *))dlsym(h, "PyRun_SimpleString");
    void (*fin)(void) = (void (*)(void))dlsym(h, "Py_Finalize");
    init(0);
    int rc = run("import time\n"
                 "def embedded_work():\n"
                 "    t0 = time.process_time()\n"
                 "    while time.process_time() - t0 < 1.5:\n"
                 "        sum(i * i for i in range(1000))\n"
                 "embedded_work()\n");
    fin();
    return rc;
}
"#;
    let Some(prefix) = py.path.parent().and_then(|p| p.parent()) else {
        return;
    };
    // pyenv's prefix/lib, or Debian's multiarch folder (inside the root, for 3.14/3.15).
    let name = format!("libpython3.{}.so.1.0", py.minor);
    let lib = [prefix.join("lib").join(&name), prefix.join("lib/x86_64-linux-gnu").join(&name)]
        .into_iter()
        .find(|l| match &py.root {
            Some(root) => root.join(l.strip_prefix("/").unwrap()).exists(),
            None => l.exists(),
        });
    let Some(lib) = lib else {
        eprintln!("skipped: no {name} under {}", prefix.display());
        return;
    };
    // The program is built on the host (it needs only glibc); in a root, it is built there.
    let dir = match &py.root {
        Some(root) => root.join("tmp"),
        None => common::repo().join("target/test-programs"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join(format!("py_embed_{}.c", std::process::id()));
    let exe = dir.join(format!("py_embed_3{}_{}", py.minor, std::process::id()));
    std::fs::write(&src, EMBED).unwrap();
    let cc = Command::new("cc")
        .args(["-O1", "-g", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-ldl")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&src);
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let mut run = match &py.root {
        Some(root) => common::run(Path::new("/").join(exe.strip_prefix(root).unwrap())).in_root(root),
        None => common::run(&exe),
    }
    .arg(&lib)
    .timeout(60);
    if let Some(l) = library_override() {
        run = run.env("LD_PRELOAD", &l.to_string_lossy());
    }
    let out = run.go();
    let _ = std::fs::remove_file(&exe);
    out.assert_success();
    let all = samples(&out);
    let total: i64 = all.iter().map(|s| s.value("cpu-samples")).sum();
    let named: i64 = all
        .iter()
        .filter(|s| {
            s.python()
                .iter()
                .any(|f| f.function == "embedded_work" && f.file == "<string>" && f.line == 5)
        })
        .map(|s| s.value("cpu-samples"))
        .sum();
    eprintln!(
        "3.{}: embedded: {named} of {total} samples under embedded_work",
        py.minor
    );
    // The first drain (up to 100 ms) may pass before the library is seen.
    assert!(
        named as f64 >= 0.8 * total as f64,
        "{named} of {total} samples under embedded_work\n{}",
        show(&all, "cpu-samples", 6)
    );
}

/// Allocation profiling alone, one sample every 32 KiB on average.
const ALLOCATIONS_ONLY: &[(&str, &str)] = &[
    ("DD_PROFILING_MEMORY_ENABLED", "true"),
    ("DD_PROFILING_HEAP_SAMPLE_SIZE", "32768"),
    ("DD_PROFILING_CPU_ENABLED", "false"),
];

/// alloc-space of the samples whose innermost Python frame is `function`.
fn alloc_space_under(all: &[Sample], function: &str) -> i64 {
    all.iter().filter(|s| s.python_leaf().is_some_and(|f| f.function == function)).map(|s| s.value("alloc-space")).sum()
}

/// small_tuples() allocates only pymalloc blocks (tuples of 2), big_bytearrays() only malloc
/// blocks of 1 MiB: both are estimated within 20 % of what the script counted.
fn python_allocations(py: &Python) {
    let path = script("alloc_small_large.py");
    let out = run_python(py, &[path.to_str().unwrap(), "30"], ALLOCATIONS_ONLY);
    out.assert_success();
    let all = samples(&out);
    for (function, truth) in [
        ("small_tuples", out.value::<f64>("small_bytes")),
        ("big_bytearrays", out.value::<f64>("large_bytes")),
    ] {
        let seen = alloc_space_under(&all, function);
        let ratio = seen as f64 / truth;
        eprintln!(
            "3.{}: {function}: alloc-space {seen} vs {truth} allocated ({ratio:.3})",
            py.minor
        );
        assert!(
            (0.8..=1.2).contains(&ratio),
            "{function}: alloc-space {seen} vs {truth} bytes allocated by the script\n{}",
            show(&all, "alloc-space", 8)
        );
    }
}

/// final_burst() allocates in the script's last milliseconds; finalization frees its code
/// object right after. Its samples are still named: the library drains before finalization.
fn last_moment_allocations(py: &Python) {
    let path = script("last_moment.py");
    let out = run_python(py, &[path.to_str().unwrap(), "200"], ALLOCATIONS_ONLY);
    out.assert_success();
    let all = samples(&out);
    let truth: f64 = out.value("burst_bytes");
    let seen = alloc_space_under(&all, "final_burst");
    let ratio = seen as f64 / truth;
    eprintln!("3.{}: final_burst: alloc-space {seen} vs {truth} allocated ({ratio:.3})", py.minor);
    assert!(
        (0.8..=1.2).contains(&ratio),
        "final_burst: alloc-space {seen} vs {truth} bytes allocated just before finalization\n{}",
        show(&all, "alloc-space", 6)
    );
}

/// A `threading.Thread` named napper-7 sleeping in nap(): its wall time is under nap() and
/// carries the thread's Python name.
fn named_thread_wall(py: &Python) {
    let path = script("named_sleeper.py");
    let out = run_python(
        py,
        &[path.to_str().unwrap(), "1.5"],
        &[("DD_PROFILING_WALL_ENABLED", "true")],
    );
    out.assert_success();
    let all = samples(&out);
    let nap_ns: f64 = out.value("nap_ns");
    let in_nap: i64 = all
        .iter()
        .filter(|s| s.python().iter().any(|f| f.function == "nap"))
        .map(|s| s.value("wall-time"))
        .sum();
    let named: i64 = all
        .iter()
        .filter(|s| s.thread == "napper-7" && s.python().iter().any(|f| f.function == "nap"))
        .map(|s| s.value("wall-time"))
        .sum();
    eprintln!(
        "3.{}: wall under nap() {in_nap} ns, of which labelled napper-7 {named} ns; nap measured {nap_ns} ns",
        py.minor
    );
    let threads: std::collections::BTreeSet<&str> = all.iter().map(|s| s.thread.as_str()).collect();
    assert!(
        in_nap as f64 >= 0.85 * nap_ns && in_nap as f64 <= 1.1 * nap_ns,
        "wall time under nap(): {in_nap} ns, the thread slept {nap_ns} ns\n{}",
        show(&all, "wall-time", 6)
    );
    assert!(
        named as f64 >= 0.95 * in_nap as f64,
        "only {named} of {in_nap} ns under nap() carry thread name napper-7; names seen: {threads:?}"
    );
}

macro_rules! for_each_python {
    ($($module:ident => $which:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[test]
            fn hot_and_cold_functions_split_cpu_as_measured() {
                with_python($which, hot_cold_split);
            }
            #[test]
            fn a_long_c_call_is_sampled_with_its_python_caller() {
                with_python($which, long_c_call);
            }
            #[test]
            fn frames_read_match_pythons_own_view() {
                with_python($which, |py| frames_match_python(py, 3, "128"));
            }
            #[test]
            fn frames_read_match_pythons_own_view_in_a_deep_recursion() {
                with_python($which, |py| frames_match_python(py, 60, "1024"));
            }
            #[test]
            fn a_libpython_loaded_later_with_dlopen_is_found() {
                // Debian's /usr/bin/python3 on the host comes without libpython3.X.so
                // (libpython3.X-dev is not installed); the root has it for 3.14/3.15.
                if !matches!($which, Which::Debian) {
                    with_python($which, embedded_with_dlopen);
                }
            }
            #[test]
            fn small_and_large_python_allocations_are_estimated() {
                with_python($which, python_allocations);
            }
            #[test]
            fn allocations_just_before_finalization_keep_their_python_frames() {
                with_python($which, last_moment_allocations);
            }
            #[test]
            fn a_named_thread_sleeping_shows_in_wall_time_under_its_name() {
                with_python($which, named_thread_wall);
            }
            #[test]
            fn line_tables_decode_as_cpython_does() {
                with_python($which, line_tables_match_cpython);
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
    cpython_3_14 => Which::DebianRoot(14),
    cpython_3_15 => Which::DebianRoot(15),
}
