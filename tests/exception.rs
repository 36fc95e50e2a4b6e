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
/// qualified type name within 10% (1 in 10 sampled), under the raising function; before
/// 3.12 there are no Python exception samples (documented).
fn python_raises(py: &Python) {
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
    if py.minor < 12 {
        let total: i64 = all.iter().map(|s| s.value("exception-samples")).sum();
        assert_eq!(total, 0, "3.{}: exception samples without sys.monitoring?", py.minor);
        return eprintln!("3.{}: no Python exception samples before 3.12 (as documented)", py.minor);
    }
    let decode = expected_name(py, "JSONDecoder.raw_decode");
    for (ty, key, function) in [("builtins.ValueError", "ValueError", "raise_value"), ("builtins.KeyError", "KeyError", "raise_key"), ("json.decoder.JSONDecodeError", "JSONDecodeError", decode.as_str())] {
        let truth: f64 = out.value(key);
        let (counted, under) = (count(ty, None), count(ty, Some(function)));
        eprintln!("3.{}: {ty}: {counted} counted, {truth} raised, {under} raised in {function}", py.minor);
        assert!((counted as f64 - truth).abs() <= 0.1 * truth, "3.{}: {ty}: {counted} counted, {truth} raised\n{}", py.minor, show(&all, "exception-samples", 8));
        assert!(under as f64 >= 0.99 * counted as f64, "3.{}: {ty}: only {under} of {counted} raised in {function}\n{}", py.minor, show(&all, "exception-samples", 8));
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
