//! Developer aid: prints every sample of a pprof file as `values | thread | root;...;leaf`.
use ddprof::profile::builder::decode;

fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("readable file");
        let profile = decode(&bytes).expect("a pprof file");
        let s = |i: i64| profile.string_table[i as usize].clone();
        let types: Vec<String> = profile.sample_type.iter().map(|t| format!("{}/{}", s(t.r#type), s(t.unit))).collect();
        println!("== {path}: {}", types.join(" "));
        for sample in &profile.sample {
            let mut names = vec![];
            for id in sample.location_id.iter().rev() {
                let loc = &profile.location[*id as usize - 1];
                if loc.line.is_empty() {
                    names.push(format!("{:#x}", loc.address));
                }
                for line in loc.line.iter().rev() {
                    let f = &profile.function[line.function_id as usize - 1];
                    names.push(format!("{}:{}", s(f.name), line.line));
                }
            }
            let labels: Vec<String> = sample.label.iter().map(|l| if l.str != 0 { s(l.str) } else { l.num.to_string() }).collect();
            println!("{:?} | {} | {}", sample.value, labels.join(","), names.join(";"));
        }
        for c in &profile.comment {
            println!("# {}", s(*c));
        }
    }
}
