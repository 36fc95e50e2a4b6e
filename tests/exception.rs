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
