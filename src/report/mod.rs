//! `ddprof-report`: reads pprof files, prints the sample types and a top table, and draws
//! flame graphs. The binary (`src/bin/ddprof-report.rs`) only calls [`main`].
//!
//! - [`merge`]      reading and merging files by name (types, functions, files, lines)
//! - [`table`]      the top table and human units
//! - [`flamegraph`] folded stacks and the SVG (inferno)

pub mod flamegraph;
pub mod merge;
pub mod table;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use merge::{Merged, ThreadFilter};

pub const USAGE: &str = "\
Usage: ddprof-report [OPTIONS] FILE.pprof...

Reads one or more pprof profiles (gzip'd or plain protobuf, as written by libddprof with
DD_PROFILING_OUTPUT_PPROF), lists their sample types with totals and prints a top table of
functions for one sample type. Several files (e.g. the periods of one process) are merged:
sample types are matched by name, frames by function name, file and line.

Options:
  --type NAME          sample type of the table and flame graph, e.g. cpu-time, wall-time,
                       alloc-space, heap-space, lock-acquire-wait (default: the first type
                       whose total is not zero)
  --thread NAME|ID     keep only the samples of this thread: its `thread name` label, or its
                       `thread id` label (kernel tid) when a number is given; repeat to keep
                       several threads
  --top N              rows in the table (default 20; 0 shows every function)
  --flamegraph FILE    also write an interactive flame graph (SVG, root at the bottom; click
                       to zoom, Ctrl-F to search) of the chosen type and threads to FILE
  -h, --help           print this help
  -V, --version        print the version

The table:
  self     value of the samples whose innermost frame is in the function
  self%    self as a share of the total of the chosen type (after --thread)
  total    value of the samples with the function anywhere on the stack, counted once per
           sample even when the function recurses
  total%   total as a share of the same total
  function name, with the file and the line of the function that holds the most self value
Times are shown in ns/µs/ms/s, sizes in B/KiB/MiB/GiB, counts as plain numbers. Rows are
sorted by self, then total.

Exit status: 0 on success; 1 when a file is missing or not pprof, the type is unknown, or no
sample is left after --thread; 2 for a bad command line.

Examples:
  ddprof-report /tmp/prof/app.1234.*.pprof
  ddprof-report --type alloc-space --top 10 app.pprof
  ddprof-report --thread worker-1 --flamegraph cpu.svg app.pprof
";

/// An error for the user, with the exit status it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportError {
    pub message: String,
    pub status: i32,
}

impl ReportError {
    /// Bad input (missing file, not pprof, unknown type, nothing left): status 1.
    pub fn input(message: impl Into<String>) -> Self {
        ReportError { message: message.into(), status: 1 }
    }
    /// Bad command line: status 2.
    pub fn usage(message: impl Into<String>) -> Self {
        ReportError { message: message.into(), status: 2 }
    }
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub files: Vec<PathBuf>,
    pub sample_type: Option<String>,
    pub threads: Vec<ThreadFilter>,
    pub top: usize,
    pub flamegraph: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Report(Options),
    Help,
    Version,
}

pub const DEFAULT_TOP: usize = 20;

/// Parses the arguments (without the program name).
pub fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command, ReportError> {
    let mut opts = Options { files: vec![], sample_type: None, threads: vec![], top: DEFAULT_TOP, flamegraph: None };
    let mut args = args.into_iter();
    let mut only_files = false;
    while let Some(arg) = args.next() {
        if only_files {
            opts.files.push(arg.into());
            continue;
        }
        let Some(text) = arg.to_str() else {
            opts.files.push(arg.into());
            continue;
        };
        if text == "--" {
            only_files = true;
            continue;
        }
        if !text.starts_with('-') || text == "-" {
            opts.files.push(arg.into());
            continue;
        }
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(OsString::from(v))),
            _ => (text.to_string(), None),
        };
        let mut value = |what: &str| -> Result<OsString, ReportError> {
            match inline.clone().or_else(|| args.next()) {
                Some(v) => Ok(v),
                None => Err(ReportError::usage(format!("{flag} needs a value ({what})"))),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--type" => {
                let v = value("a sample type name")?;
                opts.sample_type = Some(v.to_string_lossy().into_owned());
            }
            "--thread" => {
                let v = value("a thread name or id")?;
                opts.threads.push(ThreadFilter(v.to_string_lossy().into_owned()));
            }
            "--top" => {
                let v = value("a number of rows")?;
                let v = v.to_string_lossy();
                opts.top = v
                    .trim()
                    .parse()
                    .map_err(|_| ReportError::usage(format!("--top needs a number of rows (0 for all), not '{v}'")))?;
            }
            "--flamegraph" => {
                opts.flamegraph = Some(value("an output .svg file")?.into());
            }
            _ => {
                return Err(ReportError::usage(format!("unknown option {flag} (see ddprof-report --help)")));
            }
        }
    }
    if opts.files.is_empty() {
        return Err(ReportError::usage("no pprof file given (see ddprof-report --help)"));
    }
    Ok(Command::Report(opts))
}

/// Picks the sample type: the named one, or the first with a non-zero total.
pub fn choose_type(m: &Merged, name: Option<&str>) -> Result<usize, ReportError> {
    if m.types.is_empty() {
        return Err(ReportError::input(format!("{} has no sample types", m.files.join(", "))));
    }
    let available = || m.types.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
    match name {
        Some(name) => m.type_index(name).ok_or_else(|| {
            ReportError::input(format!("unknown sample type '{name}'; available types: {}", available()))
        }),
        None => Ok((0..m.types.len()).find(|&t| m.total(t) != 0).unwrap_or(0)),
    }
}

/// Runs the report and writes it to `out`.
pub fn run(opts: &Options, out: &mut dyn Write) -> Result<(), ReportError> {
    let mut m = merge::load_files(&opts.files)?;
    let sample_count = m.samples.len();
    if !opts.threads.is_empty() {
        let threads = m.thread_list(20);
        m.retain_threads(&opts.threads);
        if m.samples.is_empty() {
            let asked = opts.threads.iter().map(|f| f.0.as_str()).collect::<Vec<_>>().join(", ");
            let seen = if threads.is_empty() {
                "the files have no samples at all".to_string()
            } else {
                format!("threads in the files: {}", threads.join(", "))
            };
            return Err(ReportError::input(format!(
                "no samples left after --thread {asked} (the files hold {sample_count} distinct stacks); {seen}"
            )));
        }
    }
    let t = choose_type(&m, opts.sample_type.as_deref())?;

    let mut text = String::new();
    let files = if m.files.len() == 1 { m.files[0].clone() } else { format!("{} files", m.files.len()) };
    text.push_str(&format!("Profile: {files}"));
    if !opts.threads.is_empty() {
        let names = opts.threads.iter().map(|f| f.0.as_str()).collect::<Vec<_>>().join(", ");
        text.push_str(&format!(", thread {names} ({} of {sample_count} distinct stacks)", m.samples.len()));
    }
    text.push_str("\n\n");
    text.push_str(&table::render_types(&m, t));
    text.push('\n');
    let top = table::top(&m, t);
    text.push_str(&table::render_top(&top, &m.types[t], opts.top));
    write_out(out, &text)?;

    if let Some(path) = &opts.flamegraph {
        let ty = &m.types[t];
        let title = format!("{} flame graph", ty.name);
        let mut subtitle = m.files.join(", ");
        if !opts.threads.is_empty() {
            let names = opts.threads.iter().map(|f| f.0.as_str()).collect::<Vec<_>>().join(", ");
            subtitle.push_str(&format!(" — thread {names}"));
        }
        let mut svg = Vec::new();
        flamegraph::write_svg(&m, t, &title, Some(&subtitle), &mut svg).map_err(ReportError::input)?;
        std::fs::write(path, &svg).map_err(|e| ReportError::input(format!("cannot write {}: {e}", path.display())))?;
        write_out(out, &format!("\nFlame graph of {} written to {}\n", ty.name, path.display()))?;
    }
    Ok(())
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), ReportError> {
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // `ddprof-report … | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(ReportError::input(format!("cannot write the report: {e}"))),
    }
}

/// The whole program: parses `args` (without the program name), runs, prints errors to
/// stderr, and returns the exit status.
pub fn main<I: IntoIterator<Item = OsString>>(args: I) -> i32 {
    let result = parse_args(args).and_then(|command| match command {
        Command::Help => write_out(&mut std::io::stdout().lock(), USAGE),
        Command::Version => {
            write_out(&mut std::io::stdout().lock(), &format!("ddprof-report {}\n", env!("CARGO_PKG_VERSION")))
        }
        Command::Report(opts) => run(&opts, &mut std::io::stdout().lock()),
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ddprof-report: error: {e}");
            e.status
        }
    }
}
