//! `ddprof-report`: top table and flame graph of pprof files. See `ddprof-report --help`;
//! the work is done in `ddprof::report`.

fn main() {
    std::process::exit(ddprof::report::main(std::env::args_os().skip(1)));
}
