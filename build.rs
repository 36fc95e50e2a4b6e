//! Bakes the crate version and the git commit into the library, so every profile says
//! which build of the profiler produced it.
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=DDPROF_COMMIT={commit}");
    // Bind every symbol the library imports at load time (BIND_NOW), not lazily at first
    // call: a forked child would otherwise run the loader's lookup (and fault in its pages)
    // for each function the parent never called — measured as a third of the cost of a
    // fork + _exit child with the library merely loaded. Also hardens the GOT (full RELRO).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,now");
    link_unwinder_statically();
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=build.rs");
}

/// Rust's standard library asks for `-lgcc_s`, the shared unwinder, which would make every
/// process the library is preloaded into map one more object and run its constructor (the
/// CPU feature probe `__cpu_indicator_init`: cpuid instructions, each a hypervisor exit in a
/// VM — with the mapping, ~6 % of an exec'd `/bin/true`'s time under the library, measured
/// with perf). For the shared library only, `-lgcc_s` is pointed at a linker script that
/// links the static unwinder (`libgcc_eh.a`, the one gcc's `-static-libgcc` uses) instead.
/// The library exports only its hooks (rustc's version script makes everything else
/// local), so this copy serves only the library's own panics and never the program's.
fn link_unwinder_statically() {
    let Ok(gcc_eh) = Command::new("cc").arg("-print-file-name=libgcc_eh.a").output() else {
        return;
    };
    let path = String::from_utf8_lossy(&gcc_eh.stdout).trim().to_string();
    if !std::path::Path::new(&path).is_absolute() {
        // cc did not find it (it then prints the bare name): keep the shared unwinder.
        println!("cargo:warning=libgcc_eh.a not found; the library will need libgcc_s.so.1");
        return;
    }
    let dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("static-unwinder");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("libgcc_s.so"), format!("INPUT({path})\n")).unwrap();
    println!("cargo:rustc-cdylib-link-arg=-L{}", dir.display());
}
