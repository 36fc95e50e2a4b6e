//! Exception profiling: C++ throws are counted (sampled 1 in N, weighed N) per type, under the
//! stack of the throw, against a program that throws known numbers of two types.
mod common;

use common::FlatSample;

fn value(m: &common::Merged, s: &FlatSample, ty: &str) -> i64 {
    m.types.get(ty).map_or(0, |&i| s.values[i])
}

#[test]
fn cpp_throws_are_counted_per_type_under_the_throwing_function() {
    let out = common::run(common::program("exceptions.cpp")).go();
    out.assert_success();
    let m = out.merged();
    let truth = [("std::runtime_error", out.value::<f64>("runtime_throws"), "throw_runtime"), ("app::ParseError", out.value::<f64>("parse_throws"), "throw_parse")];
    for (ty, expected, function) in truth {
        let of_type: Vec<&FlatSample> = m.samples.iter().filter(|s| s.label("exception type") == Some(ty)).collect();
        let counted: i64 = of_type.iter().map(|s| value(&m, s, "exception-samples")).sum();
        let under: i64 = of_type.iter().filter(|s| s.has_function(function)).map(|s| value(&m, s, "exception-samples")).sum();
        eprintln!("{ty}: {counted} counted, {expected} thrown, {under} under {function}");
        assert!((counted as f64 - expected).abs() <= 0.1 * expected, "{ty}: {counted} counted, {expected} thrown\n{}", out.describe());
        assert!(under as f64 >= 0.99 * counted as f64, "{ty}: only {under} of {counted} under {function}\n{}", out.describe());
    }
}

#[test]
fn exception_profiling_can_be_turned_off() {
    let out = common::run(common::program("exceptions.cpp")).env("DD_PROFILING_EXCEPTION_ENABLED", "false").go();
    out.assert_success();
    for f in &out.files {
        assert!(common::sample_types(&f.profile).iter().all(|(t, _)| t != "exception-samples"), "{}", out.describe());
    }
}

// ---------------------------------------------------------------------------------------------
// Python (3.12+: sys.monitoring RAISE events)

use common::python::*;

/// raises.py: three types raised at known counts from known functions. 3.12+: counted per
/// qualified type name within 10% (1 in 10 sampled), under the raising function. Before 3.12
/// CPU samples taken while an exception is handled count instead (`handled_exceptions`).
fn python_raises(py: &Python) {
    if py.minor < 12 {
        return handled_exceptions(py);
    }
    let path = script("raises.py");
    let out = run_python(py, &[path.to_str().unwrap()], &[("DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL", "10"), ("RAISES_WAIT_FOR_PROFILER", "1")]);
    out.assert_success();
    let all = samples(&out);
    let count = |ty: &str, function: Option<&str>| -> i64 {
        all.iter()
            .filter(|s| s.exception_type == ty && function.is_none_or(|f| s.python_leaf().is_some_and(|l| l.function == f)))
            .map(|s| s.value("exception-samples"))
            .sum()
    };
    let decode = expected_name(py, "JSONDecoder.raw_decode");
    for (ty, key, function) in [("builtins.ValueError", "ValueError", "raise_value"), ("builtins.KeyError", "KeyError", "raise_key"), ("json.decoder.JSONDecodeError", "JSONDecodeError", decode.as_str())] {
        let truth: f64 = out.value(key);
        let (counted, under) = (count(ty, None), count(ty, Some(function)));
        eprintln!("3.{}: {ty}: {counted} counted, {truth} raised, {under} raised in {function}", py.minor);
        assert!((counted as f64 - truth).abs() <= 0.1 * truth, "3.{}: {ty}: {counted} counted, {truth} raised\n{}", py.minor, show(&all, "exception-samples", 8));
        assert!(under as f64 >= 0.99 * counted as f64, "3.{}: {ty}: only {under} of {counted} raised in {function}\n{}", py.minor, show(&all, "exception-samples", 8));
    }
}

/// 3.8–3.11, handles.py: handlers burn known shares of CPU time (ValueError 50 %, KeyError
/// 30 %, JSONDecodeError 20 %, measured by the program with the thread's CPU clock) inside
/// their `except` blocks, and as much again outside any. Each CPU sample taken while a type
/// is handled is one exception sample of that type: the split between the three types must
/// match the measured one within 4 points or 3.5 standard errors of the sample count,
/// whichever is wider; the samples must sit under their type's handler (none outside one);
/// the total must match the handling time over the sampling period within 10 %.
fn handled_exceptions(py: &Python) {
    let path = script("handles.py");
    let out = run_python(py, &[path.to_str().unwrap(), "3"], &[("DD_PROFILING_CPU_FREQUENCY", "250")]);
    out.assert_success();
    let all = samples(&out);
    let kinds = [("builtins.ValueError", "ValueError", "handle_value"), ("builtins.KeyError", "KeyError", "handle_key"), ("json.decoder.JSONDecodeError", "JSONDecodeError", "handle_decode")];
    let measured: Vec<f64> = kinds.iter().map(|k| out.value::<f64>(k.1)).collect();
    let counted: Vec<i64> = kinds.iter().map(|k| all.iter().filter(|s| s.exception_type == k.0).map(|s| s.value("exception-samples")).sum()).collect();
    let total: i64 = all.iter().map(|s| s.value("exception-samples")).sum();
    let (m_total, c_total) = (measured.iter().sum::<f64>(), counted.iter().sum::<i64>());
    // Other types: at most 1 % (one in 648 seen once in CI on Debian's 3.11, type and stack not
    // recorded then; they are printed now).
    let others: Vec<String> = all
        .iter()
        .filter(|s| s.value("exception-samples") > 0 && !kinds.iter().any(|k| s.exception_type == k.0))
        .map(|s| format!("{} × '{}' at {}", s.value("exception-samples"), s.exception_type, s.stack.iter().map(|f| f.function.as_str()).collect::<Vec<_>>().join(";")))
        .collect();
    assert!((total - c_total) as f64 <= 0.01 * total as f64, "3.{}: exception samples of other types: {others:?}\n{}", py.minor, show(&all, "exception-samples", 8));
    let expected = m_total / 4e6; // one CPU sample per 4 ms of CPU at 250 Hz
    eprintln!("3.{}: {c_total} exception samples, {expected:.0} expected from {:.2} s handling", py.minor, m_total / 1e9);
    assert!((c_total as f64 - expected).abs() <= 0.1 * expected, "3.{}: {c_total} exception samples, {expected:.0} expected\n{}", py.minor, show(&all, "exception-samples", 8));
    for (i, (ty, _, handler)) in kinds.iter().enumerate() {
        let (seen, truth) = (counted[i] as f64 / c_total as f64, measured[i] / m_total);
        let tolerance = (3.5 * (truth * (1.0 - truth) / c_total as f64).sqrt()).max(0.04);
        let under: i64 = all.iter().filter(|s| s.exception_type == *ty && s.stack.iter().any(|f| f.function == *handler)).map(|s| s.value("exception-samples")).sum();
        eprintln!("3.{}: {ty}: {:.1}% of the samples, {:.1}% of the handling time (tolerance {:.1} points); {under} of {} under {handler}", py.minor, 100.0 * seen, 100.0 * truth, 100.0 * tolerance, counted[i]);
        assert!((seen - truth).abs() <= tolerance, "3.{}: {ty}: {:.1}% of the samples, {:.1}% of the handling time\n{}", py.minor, 100.0 * seen, 100.0 * truth, show(&all, "exception-samples", 8));
        // (Not all: one sample in a few hundred, on 3.11, was seen without its handler frame.)
        assert!(counted[i] > 0 && under as f64 >= 0.98 * counted[i] as f64, "3.{}: {ty}: {under} of {} samples under {handler}\n{}", py.minor, counted[i], show(&all, "exception-samples", 8));
    }
}

macro_rules! for_each_python {
    ($($module:ident => $which:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[test]
            fn python_raises_are_counted_per_type_under_the_raising_function() {
                with_python($which, python_raises);
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
    cpython_3_14 => Which::DebianRoot(14),
    cpython_3_15 => Which::DebianRoot(15),
    debian_python3 => Which::Debian,
}
