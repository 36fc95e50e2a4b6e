//! `ddprof-report`: top table, merging, thread filter, flame graph and errors, on profiles built
//! here with known stacks and values; plus one run of the real library on a C program.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use ddprof::profile::builder::{encode_gzip, LabelValue, ProfileBuilder};
use ddprof::profile::pprof::Profile;
use ddprof::report::merge::{load_files, ThreadFilter};
use ddprof::report::table::{human, top};
use prost::Message;

const REPORT: &str = env!("CARGO_BIN_EXE_ddprof-report");
const MS: i64 = 1_000_000;

fn tmpdir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ddprof-report-test-{}-{}-{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A frame: (function, file, line).
type F = (&'static str, &'static str, i64);

const MAIN: F = ("main", "app.c", 10);
const COMPUTE: F = ("compute", "app.c", 20);
const HOT: F = ("hot", "app.c", 30);
const RECURSE: F = ("recurse", "app.c", 42);
const RECURSE_LEAF: F = ("recurse", "app.c", 44);
const WORKER: F = ("worker_loop", "worker.c", 7);
const VECTOR: F = ("std::vector<int>::push_back", "vector.h", 99);
const HELPER: F = ("helper", "lib.c", 5);

struct Stack {
    /// Root first.
    frames: Vec<F>,
    /// Per sample type, in the order the profile declares its types.
    values: Vec<i64>,
    thread: (&'static str, i64),
}

fn stack(frames: &[F], values: &[i64], thread: (&'static str, i64)) -> Stack {
    Stack { frames: frames.to_vec(), values: values.to_vec(), thread }
}

/// Builds a profile with `types` and one location per frame; `reverse_ids` registers the
/// functions and locations in reverse order, so ids differ between profiles.
fn build(types: &[(&str, &str)], stacks: &[Stack], reverse_ids: bool) -> Profile {
    let mut b = ProfileBuilder::new(types, UNIX_EPOCH + Duration::from_secs(1_700_000_000), Duration::from_secs(60));
    let m = b.mapping(0x400000, 0x500000, 0, "/usr/bin/app", "abcdef", true);
    let mut all: Vec<F> = stacks.iter().flat_map(|s| s.frames.iter().copied()).collect();
    if reverse_ids {
        all.reverse();
    }
    for (i, f) in all.iter().enumerate() {
        let fid = b.function(f.0, f.0, f.1, 0);
        b.location(m, 0x400000 + i as u64 * 16, &[(fid, f.2)]);
    }
    for s in stacks {
        let mut locs = Vec::new();
        for f in s.frames.iter().rev() {
            // The location registered above for this frame (same key, so the same id).
            let fid = b.function(f.0, f.0, f.1, 0);
            let i = all.iter().position(|g| g == f).unwrap();
            locs.push(b.location(m, 0x400000 + i as u64 * 16, &[(fid, f.2)]));
        }
        let labels = [
            LabelValue::Num { key: "thread id", value: s.thread.1, unit: None },
            LabelValue::Str { key: "thread name", value: s.thread.0 },
        ];
        b.sample(&locs, &s.values, &labels);
    }
    b.build()
}

const CPU_TYPES: &[(&str, &str)] = &[("cpu-samples", "count"), ("cpu-time", "nanoseconds")];

/// 10 samples, 1 s of cpu-time: `hot` 800 ms self; `recurse` 100 ms self and 300 ms total
/// (its recursive stacks count once); `helper` 100 ms self on thread "worker" (tid 200).
fn profile_a() -> Profile {
    let main = ("main", 100);
    let worker = ("worker", 200);
    build(
        CPU_TYPES,
        &[
            stack(&[MAIN, COMPUTE, HOT], &[6, 600 * MS], main),
            stack(&[MAIN, RECURSE, RECURSE, RECURSE, HOT], &[2, 200 * MS], main),
            stack(&[MAIN, RECURSE, RECURSE, RECURSE_LEAF], &[1, 100 * MS], main),
            stack(&[WORKER, VECTOR, HELPER], &[1, 100 * MS], worker),
        ],
        false,
    )
}

/// A second period of the same process: types in another order plus `wall-time`, ids assigned
/// in another order. Adds 400 ms (4 samples) to `hot` via `compute`.
fn profile_b() -> Profile {
    build(
        &[("wall-time", "nanoseconds"), ("cpu-time", "nanoseconds"), ("cpu-samples", "count")],
        &[stack(&[MAIN, COMPUTE, HOT], &[500 * MS, 400 * MS, 4], ("main", 100))],
        true,
    )
}

fn write_gz(dir: &Path, name: &str, p: &Profile) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, encode_gzip(p)).unwrap();
    path
}

fn write_plain(dir: &Path, name: &str, p: &Profile) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, p.encode_to_vec()).unwrap();
    path
}

fn report(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(REPORT);
    for a in args {
        cmd.arg(a);
    }
    cmd.stdin(Stdio::null()).output().expect("ddprof-report runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "ddprof-report failed: {:?}\n{}\n{}", o.status, stdout(&o), stderr(&o));
    stdout(&o)
}

#[derive(Debug, PartialEq)]
struct TableRow {
    self_: String,
    self_pct: String,
    total: String,
    total_pct: String,
    function: String,
}

/// The rows of the printed top table (columns are separated by two or more spaces).
fn table_rows(out: &str) -> Vec<TableRow> {
    let mut lines = out.lines().skip_while(|l| !(l.contains("self%") && l.contains("total%")));
    assert!(lines.next().is_some(), "no table header in:\n{out}");
    lines
        .take_while(|l| !l.trim().is_empty() && !l.starts_with('('))
        .map(|l| {
            let cols: Vec<&str> = l.trim().split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
            assert_eq!(cols.len(), 5, "bad table row {l:?}");
            TableRow {
                self_: cols[0].into(),
                self_pct: cols[1].into(),
                total: cols[2].into(),
                total_pct: cols[3].into(),
                function: cols[4].into(),
            }
        })
        .collect()
}

fn row<'a>(rows: &'a [TableRow], function: &str) -> &'a TableRow {
    rows.iter()
        .find(|r| r.function.split(" (").next() == Some(function))
        .unwrap_or_else(|| panic!("no row for {function} in {rows:#?}"))
}

#[test]
fn top_table_self_total_and_percentages() {
    let dir = tmpdir("top");
    let a = write_gz(&dir, "a.pprof", &profile_a());
    let out = ok(report(&[&"--type", &"cpu-time", &a]));
    assert!(out.contains("cpu-samples") && out.contains("cpu-time"), "{out}");
    // Type list with totals, chosen type marked.
    let types: Vec<&str> = out.lines().filter(|l| l.contains("cpu-")).collect();
    assert!(types.iter().any(|l| l.contains("cpu-samples") && l.trim_end().ends_with(" 10")), "{out}");
    assert!(
        types.iter().any(|l| l.trim_start().starts_with("* cpu-time") && l.trim_end().ends_with("1.00 s")),
        "{out}"
    );

    let rows = table_rows(&out);
    assert_eq!(rows[0].function, "hot (app.c:30)", "{out}");
    assert_eq!(
        rows[0],
        TableRow {
            self_: "800.00 ms".into(),
            self_pct: "80.00%".into(),
            total: "800.00 ms".into(),
            total_pct: "80.00%".into(),
            function: "hot (app.c:30)".into()
        }
    );
    // Recursion: counted once per sample in total (300 ms, not 700 ms); hottest line shown.
    let r = row(&rows, "recurse");
    assert_eq!((r.self_.as_str(), r.self_pct.as_str()), ("100.00 ms", "10.00%"), "{out}");
    assert_eq!((r.total.as_str(), r.total_pct.as_str()), ("300.00 ms", "30.00%"), "{out}");
    assert_eq!(r.function, "recurse (app.c:44)");
    assert_eq!(rows[1].function, "recurse (app.c:44)", "self tie broken by total\n{out}");
    let m = row(&rows, "main");
    assert_eq!((m.self_.as_str(), m.total.as_str(), m.total_pct.as_str()), ("0 ns", "900.00 ms", "90.00%"), "{out}");
    let v = row(&rows, "std::vector<int>::push_back");
    assert_eq!((v.total.as_str(), v.total_pct.as_str()), ("100.00 ms", "10.00%"));
    assert_eq!(rows.len(), 7, "{out}");

    // Default type: the first non-zero one (cpu-samples), counts shown plain.
    let out = ok(report(&[&a]));
    assert!(out.lines().any(|l| l.trim_start().starts_with("* cpu-samples")), "{out}");
    let rows = table_rows(&out);
    assert_eq!(
        (rows[0].function.as_str(), rows[0].self_.as_str(), rows[0].self_pct.as_str()),
        ("hot (app.c:30)", "8", "80.00%")
    );

    // --top limits the rows.
    let out = ok(report(&[&"--top", &"2", &a]));
    assert_eq!(table_rows(&out).len(), 2, "{out}");
    assert!(out.contains("5 more"), "{out}");
}

#[test]
fn library_api_numbers() {
    let dir = tmpdir("api");
    let a = write_gz(&dir, "a.pprof", &profile_a());
    let m = load_files(&[&a]).unwrap();
    let t = m.type_index("cpu-time").unwrap();
    assert_eq!(m.total(t), 1000 * MS);
    let top = top(&m, t);
    assert_eq!(top.total, 1000 * MS);
    let hot = &top.rows[0];
    assert_eq!((hot.function.as_str(), hot.file.as_str(), hot.line), ("hot", "app.c", 30));
    assert_eq!((hot.self_value, hot.total_value), (800 * MS, 800 * MS));
    let rec = top.rows.iter().find(|r| r.function == "recurse").unwrap();
    assert_eq!((rec.self_value, rec.total_value), (100 * MS, 300 * MS));
    assert!((top.percent(rec.total_value) - 30.0).abs() < 1e-9);

    assert_eq!(human(0, "nanoseconds"), "0 ns");
    assert_eq!(human(1_500, "nanoseconds"), "1.50 µs");
    assert_eq!(human(2_500_000, "nanoseconds"), "2.50 ms");
    assert_eq!(human(3_250_000_000, "nanoseconds"), "3.25 s");
    assert_eq!(human(512, "bytes"), "512 B");
    assert_eq!(human(1536, "bytes"), "1.50 KiB");
    assert_eq!(human(5 * 1024 * 1024, "bytes"), "5.00 MiB");
    assert_eq!(human(3 * 1024 * 1024 * 1024, "bytes"), "3.00 GiB");
    assert_eq!(human(1234, "count"), "1234");
}

#[test]
fn merges_files_by_name() {
    let dir = tmpdir("merge");
    let a = write_gz(&dir, "a.pprof", &profile_a());
    // The second file is plain (not gzip'd) protobuf.
    let b = write_plain(&dir, "b.pprof", &profile_b());
    let out = ok(report(&[&"--type", &"cpu-time", &a, &b]));
    assert!(out.contains("2 files"), "{out}");
    assert!(out.contains("wall-time"), "types of both files are listed\n{out}");
    let rows = table_rows(&out);
    // hot: 800 + 400 ms of 1.4 s; compute: 1 s total.
    assert_eq!(rows[0].function, "hot (app.c:30)", "{out}");
    assert_eq!((rows[0].self_.as_str(), rows[0].self_pct.as_str()), ("1.20 s", "85.71%"), "{out}");
    let c = row(&rows, "compute");
    assert_eq!((c.total.as_str(), c.total_pct.as_str()), ("1.00 s", "71.43%"), "{out}");
    // Same function from both files is one row.
    assert_eq!(rows.iter().filter(|r| r.function.starts_with("hot ")).count(), 1);

    // cpu-samples matched by name although at another index in b.
    let out = ok(report(&[&"--type", &"cpu-samples", &a, &b]));
    let rows = table_rows(&out);
    assert_eq!((rows[0].self_.as_str(), rows[0].self_pct.as_str()), ("12", "85.71%"), "{out}");
    // A type only b has.
    let out = ok(report(&[&"--type", &"wall-time", &a, &b]));
    let rows = table_rows(&out);
    assert_eq!((rows[0].function.as_str(), rows[0].self_pct.as_str()), ("hot (app.c:30)", "100.00%"), "{out}");
    assert_eq!(rows[0].self_, "500.00 ms");

    // Library side: the merged sample of main;compute;hot carries both files' values.
    let m = load_files(&[&a, &b]).unwrap();
    assert_eq!(m.types.len(), 3);
    assert_eq!(m.total(m.type_index("cpu-time").unwrap()), 1400 * MS);
    assert_eq!(m.total(m.type_index("cpu-samples").unwrap()), 14);
}

#[test]
fn thread_filter_by_name_and_id() {
    let dir = tmpdir("thread");
    let a = write_gz(&dir, "a.pprof", &profile_a());
    for sel in ["worker", "200"] {
        let out = ok(report(&[&"--type", &"cpu-time", &"--thread", &sel, &a]));
        let rows = table_rows(&out);
        assert_eq!(rows[0].function, "helper (lib.c:5)", "--thread {sel}\n{out}");
        assert_eq!((rows[0].self_.as_str(), rows[0].self_pct.as_str()), ("100.00 ms", "100.00%"), "{out}");
        assert!(!out.contains("hot (app.c"), "main thread's frames leak into --thread {sel}\n{out}");
    }
    let out = ok(report(&[&"--type", &"cpu-time", &"--thread", &"main", &a]));
    let rows = table_rows(&out);
    assert_eq!((rows[0].function.as_str(), rows[0].self_pct.as_str()), ("hot (app.c:30)", "88.89%"), "{out}");
    assert!(!out.contains("helper"), "{out}");
    // Repeated --thread keeps both.
    let out = ok(report(&[&"--type", &"cpu-time", &"--thread", &"main", &"--thread", &"200", &a]));
    assert_eq!(table_rows(&out)[0].self_pct, "80.00%", "{out}");

    let mut m = load_files(&[&a]).unwrap();
    m.retain_threads(&[ThreadFilter("100".into())]);
    assert_eq!(m.total(m.type_index("cpu-time").unwrap()), 900 * MS);
}

#[test]
fn flamegraph_is_well_formed_svg_with_the_hot_function() {
    let dir = tmpdir("flame");
    let a = write_gz(&dir, "a.pprof", &profile_a());
    let svg_path = dir.join("out.svg");
    let out = ok(report(&[&"--type", &"cpu-time", &"--flamegraph", &svg_path, &a]));
    assert!(out.contains(&svg_path.display().to_string()), "{out}");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let root = check_xml(&svg).unwrap_or_else(|e| panic!("flame graph is not well-formed XML: {e}"));
    assert_eq!(root, "svg");
    assert!(svg.contains("<title>hot (app.c:30)"), "hot function missing from the flame graph");
    // Escaped, not raw, angle brackets (check_xml would have failed otherwise).
    assert!(svg.contains("std::vector&lt;int&gt;::push_back (vector.h:99)"));
    assert!(svg.contains("<script"), "not interactive");
    // Root at the bottom: "all" is drawn lower (greater y) than main, main lower than hot.
    let y_all = frame_y(&svg, "all (");
    let y_main = frame_y(&svg, "main (app.c:10)");
    let y_hot = frame_y(&svg, "hot (app.c:30)");
    assert!(y_all > y_main && y_main > y_hot, "all {y_all}, main {y_main}, hot {y_hot}");

    // Thread filter applies to the flame graph too.
    let svg2 = dir.join("worker.svg");
    ok(report(&[&"--thread", &"worker", &"--flamegraph", &svg2, &a]));
    let svg = std::fs::read_to_string(&svg2).unwrap();
    check_xml(&svg).unwrap();
    assert!(svg.contains("helper (lib.c:5)") && !svg.contains("hot (app.c:30)"));
}

/// The y of the first frame whose title starts with `title`.
fn frame_y(svg: &str, title: &str) -> f64 {
    let at = svg.find(&format!("<title>{title}")).unwrap_or_else(|| panic!("no frame {title}"));
    let rest = &svg[at..];
    let y = rest.find(" y=\"").unwrap() + 4;
    let end = rest[y..].find('"').unwrap();
    rest[y..y + end].parse().unwrap()
}

/// A minimal XML well-formedness check: balanced and properly nested tags, quoted attributes
/// without duplicates or raw `<`, valid entity references, one root element, comments, CDATA,
/// processing instructions and a DOCTYPE. Returns the root element's name.
fn check_xml(s: &str) -> Result<String, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut root: Option<String> = None;
    let mut i = 0;
    let b = s.as_bytes();
    let find = |from: usize, pat: &str| s[from..].find(pat).map(|p| from + p);
    while i < b.len() {
        if b[i] != b'<' {
            let end = find(i, "<").unwrap_or(b.len());
            let text = &s[i..end];
            if stack.is_empty() && !text.trim().is_empty() {
                return Err(format!("text outside the root element at {i}: {:?}", &text[..text.len().min(40)]));
            }
            check_entities(text).map_err(|e| format!("{e} at {i}"))?;
            i = end;
            continue;
        }
        let rest = &s[i..];
        if rest.starts_with("<?") {
            i = find(i, "?>").ok_or("unterminated <?")? + 2;
        } else if rest.starts_with("<!--") {
            i = find(i + 4, "-->").ok_or("unterminated comment")? + 3;
        } else if rest.starts_with("<![CDATA[") {
            if stack.is_empty() {
                return Err("CDATA outside the root element".into());
            }
            i = find(i, "]]>").ok_or("unterminated CDATA")? + 3;
        } else if rest.starts_with("<!") {
            if root.is_some() {
                return Err("DOCTYPE after the root element".into());
            }
            i = find(i, ">").ok_or("unterminated <!")? + 1;
        } else if let Some(close) = rest.strip_prefix("</") {
            let end = close.find('>').ok_or("unterminated end tag")?;
            let name = close[..end].trim();
            match stack.pop() {
                Some(open) if open == name => {}
                Some(open) => return Err(format!("</{name}> closes <{open}> at {i}")),
                None => return Err(format!("</{name}> without an open element at {i}")),
            }
            i += 2 + end + 1;
        } else {
            // Start tag.
            let mut j = i + 1;
            let name_end = s[j..]
                .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .map(|p| j + p)
                .ok_or("unterminated tag")?;
            let name = &s[j..name_end];
            if name.is_empty() || !name.chars().next().unwrap().is_alphabetic() {
                return Err(format!("bad element name {name:?} at {i}"));
            }
            j = name_end;
            let mut attrs: Vec<&str> = Vec::new();
            let self_closing;
            loop {
                while j < b.len() && (b[j] as char).is_whitespace() {
                    j += 1;
                }
                if s[j..].starts_with("/>") {
                    self_closing = true;
                    j += 2;
                    break;
                }
                if s[j..].starts_with('>') {
                    self_closing = false;
                    j += 1;
                    break;
                }
                let eq = find(j, "=").ok_or("attribute without =")?;
                let attr = s[j..eq].trim();
                if attr.is_empty() || attr.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
                    return Err(format!("bad attribute name {attr:?} in <{name}> at {i}"));
                }
                if attrs.contains(&attr) {
                    return Err(format!("duplicate attribute {attr} in <{name}>"));
                }
                attrs.push(attr);
                let q = eq + 1;
                let quote = *b.get(q).ok_or("attribute without value")?;
                if quote != b'"' && quote != b'\'' {
                    return Err(format!("unquoted attribute {attr} in <{name}> at {i}"));
                }
                let end = s[q + 1..].find(quote as char).map(|p| q + 1 + p).ok_or("unterminated attribute")?;
                let value = &s[q + 1..end];
                if value.contains('<') {
                    return Err(format!("raw < in attribute {attr} of <{name}>"));
                }
                check_entities(value)?;
                j = end + 1;
            }
            if stack.is_empty() {
                if root.is_some() {
                    return Err(format!("second root element <{name}> at {i}"));
                }
                root = Some(name.to_string());
            }
            if !self_closing {
                stack.push(name.to_string());
            }
            i = j;
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> is never closed"));
    }
    root.ok_or_else(|| "no root element".to_string())
}

fn check_entities(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(p) = rest.find('&') {
        let after = &rest[p + 1..];
        let end = after.find(';').ok_or_else(|| format!("bare & in {:?}", &rest[p..rest.len().min(p + 20)]))?;
        let name = &after[..end];
        let ok = matches!(name, "lt" | "gt" | "amp" | "quot" | "apos")
            || name.strip_prefix("#x").is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            || name.strip_prefix('#').is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            return Err(format!("bad entity &{name};"));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

#[test]
fn xml_checker_rejects_bad_documents() {
    assert_eq!(check_xml("<?xml version=\"1.0\"?><a x=\"1\"><b/><![CDATA[<&>]]>t&amp;</a>").unwrap(), "a");
    for bad in [
        "<a><b></a></b>",
        "<a>",
        "<a x=1/>",
        "<a>&nbsp</a>",
        "<a x=\"<\"/>",
        "<a/><b/>",
        "<a x=\"1\" x=\"2\"/>",
        "</a>",
    ] {
        assert!(check_xml(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn errors_are_clear_and_non_zero() {
    let dir = tmpdir("errors");
    let a = write_gz(&dir, "a.pprof", &profile_a());

    // Missing file: named.
    let missing = dir.join("missing.pprof");
    let o = report(&[&a, &missing]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing.pprof") && stderr(&o).contains("no such file"), "{}", stderr(&o));

    // Not pprof: text, broken gzip, empty.
    let text = dir.join("notes.txt");
    std::fs::write(&text, "this is a text file, not a profile\n").unwrap();
    let gz = dir.join("broken.pprof");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4]).unwrap();
    let empty = dir.join("empty.pprof");
    std::fs::write(&empty, b"").unwrap();
    for (path, name) in [(&text, "notes.txt"), (&gz, "broken.pprof"), (&empty, "empty.pprof")] {
        let o = report(&[path]);
        let e = stderr(&o);
        assert!(!o.status.success(), "{name} accepted");
        assert!(e.contains(name), "error does not name {name}: {e}");
        assert!(e.contains("not a pprof profile") && e.contains("neither gzip'd nor plain protobuf pprof"), "{e}");
        assert!(o.stdout.is_empty(), "{name}: partial output {}", stdout(&o));
    }

    // Unknown type: lists the available ones.
    let o = report(&[&"--type", &"cpu-tme", &a]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("cpu-tme") && e.contains("cpu-samples") && e.contains("cpu-time"), "{e}");

    // No samples after the thread filter: says so and lists the threads.
    let o = report(&[&"--thread", &"nobody", &a]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("no samples") && e.contains("nobody") && e.contains("worker (200)"), "{e}");

    // Command-line mistakes: status 2.
    for args in [vec!["--top", "many"], vec!["--frobnicate"], vec![], vec!["--type"]] {
        let mut cmd = Command::new(REPORT);
        cmd.args(&args);
        if !args.is_empty() && args[0] != "--type" {
            cmd.arg(&a);
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty());
    }

    // Flame graph to a directory that does not exist: named.
    let o = report(&[&"--flamegraph", &dir.join("no/such/dir/x.svg"), &a]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("x.svg"), "{}", stderr(&o));
}

#[test]
fn help_documents_every_option() {
    let out = ok(report(&[&"--help"]));
    for word in
        ["--type", "--thread", "--top", "--flamegraph", "self", "total", "recurses", "gzip", "merged", "Exit status"]
    {
        assert!(out.contains(word), "--help does not mention {word}:\n{out}");
    }
}

// ---------------------------------------------------------------------------------------------
// The real library

const HOT_C: &str = r#"
#include <stdint.h>
#include <stdio.h>
#include <time.h>
static volatile uint64_t sink;
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
__attribute__((noinline)) void hot_function(uint64_t rounds) {
    uint64_t h = 1469598103934665603ULL;
    for (uint64_t i = 0; i < rounds; i++) {
        h ^= i;
        h *= 1099511628211ULL;
    }
    sink = h;
}
__attribute__((noinline)) void cool_function(uint64_t rounds) {
    uint64_t s = 0;
    for (uint64_t i = 0; i < rounds; i++) s += i * i;
    sink = s;
}
int main(void) {
    double t0 = now();
    while (now() - t0 < 1.5) {
        hot_function(2000000);
        cool_function(200000);
    }
    printf("done\n");
    return 0;
}
"#;

/// The library built with this test (next to ddprof-report), else `target/release/libddprof.so`.
fn library() -> PathBuf {
    let sibling = Path::new(REPORT).with_file_name("libddprof.so");
    if sibling.exists() {
        return sibling;
    }
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/libddprof.so");
    assert!(lib.exists(), "{} is missing: run `cargo build --release` (or `make test`)", lib.display());
    lib
}

#[test]
fn real_library_profile_names_hot_function_first() {
    let dir = tmpdir("real");
    let src = dir.join("hot.c");
    std::fs::write(&src, HOT_C).unwrap();
    let exe = dir.join("hot");
    let cc = Command::new("cc").args(["-O2", "-g", "-o"]).arg(&exe).arg(&src).output().expect("cc runs");
    assert!(cc.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&cc.stderr));

    let mut cmd = Command::new(&exe);
    for (k, _) in std::env::vars() {
        if k.starts_with("DD_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .env("LD_PRELOAD", library())
        .env("DD_PROFILING_OUTPUT_PPROF", dir.join("p"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the profiled program did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "program failed under the library: {status:?}\n{err}");

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pprof"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no profile written to {}\n{err}", dir.display());

    for ty in [None, Some("cpu-time")] {
        let mut cmd = Command::new(REPORT);
        if let Some(ty) = ty {
            cmd.args(["--type", ty]);
        }
        let o = cmd.args(&files).output().unwrap();
        let out = ok(o);
        let rows = table_rows(&out);
        assert!(
            rows.first().is_some_and(|r| r.function.starts_with("hot_function (") && r.function.contains("hot.c:")),
            "hot_function is not first ({ty:?}):\n{out}"
        );
        let pct: f64 = rows[0].self_pct.trim_end_matches('%').parse().unwrap();
        assert!(pct > 50.0, "hot_function only {pct}%\n{out}");
    }
    let svg = dir.join("hot.svg");
    ok(report(&[&"--flamegraph", &svg, &files[0]]));
    let svg = std::fs::read_to_string(&svg).unwrap();
    check_xml(&svg).unwrap();
    assert!(svg.contains("hot_function"));
}
