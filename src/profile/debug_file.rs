//! Cold side: a library's separate debug file, for its symbol table.
//!
//! Distributions strip their libraries and ship the debug info apart (Debian's `libc6-dbg`:
//! `/usr/lib/debug/.build-id/xx/yyyy.debug`, found by GNU build id or `.gnu_debuglink`).
//! Its DWARF sections are zlib-compressed as single streams: naming one libc address from them
//! means inflating ~10 MiB (~20 ms, measured with callgrind and perf on the 2-core dev VM),
//! which a short process pays at exit and every later fork copies. Its `.symtab` has every
//! function's name and size uncompressed, enough for function names (~0.4 ms). So by
//! default such a library is symbolized from the debug file's symbol table alone
//! (`DD_PROFILING_SEPARATE_DEBUG_INFO=symbols`); `full` keeps blazesym's DWARF lookup.
//! Files with DWARF of their own (the program's code, pyenv's libpython) are not affected.

use std::path::{Path, PathBuf};

use super::elf_sections::Sections;

const DEBUG_ROOT: &str = "/usr/lib/debug";

/// The separate debug file whose symbol table should name `path`'s code, if `path` has no
/// DWARF of its own and a matching debug file with a symbol table exists.
pub fn symbols_file(path: &str, build_id: &str) -> Option<PathBuf> {
    let sections = Sections::read(Path::new(path))?;
    if sections.has_data(".debug_info") || sections.has_data(".zdebug_info") {
        return None;
    }
    let candidate = by_build_id(build_id).or_else(|| by_debuglink(path, &sections))?;
    Sections::read(&candidate)?.has_data(".symtab").then_some(candidate)
}

/// `/usr/lib/debug/.build-id/<first byte>/<rest>.debug`: the build id names the exact build.
fn by_build_id(build_id: &str) -> Option<PathBuf> {
    if build_id.len() < 4 || !build_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let p = PathBuf::from(format!("{DEBUG_ROOT}/.build-id/{}/{}.debug", &build_id[..2], &build_id[2..]));
    p.is_file().then_some(p)
}

/// The places gdb looks for a `.gnu_debuglink` name, accepted only with the CRC32 it records.
fn by_debuglink(path: &str, sections: &Sections) -> Option<PathBuf> {
    let link = sections.contents(".gnu_debuglink")?;
    let name_len = link.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&link[..name_len]).ok()?;
    let crc_at = (name_len + 4) & !3;
    let crc = u32::from_le_bytes(link.get(crc_at..crc_at + 4)?.try_into().ok()?);
    let real = std::fs::canonicalize(path).ok()?;
    let dir = real.parent()?;
    [
        PathBuf::from(format!("{DEBUG_ROOT}{}/{name}", dir.display())),
        dir.join(".debug").join(name),
        dir.join(name),
    ]
    .into_iter()
    .find(|c| c != &real && c.is_file() && crc32_of(c) == Some(crc))
}

/// The file's CRC32, read in pieces (debug files can be hundreds of MiB).
fn crc32_of(path: &Path) -> Option<u32> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut crc = flate2::Crc::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Some(crc.sum()),
            Ok(n) => crc.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_dwarf_means_no_separate_file() {
        // This test binary is built with debug info of its own.
        let me = std::env::current_exe().unwrap();
        let sections = Sections::read(&me).unwrap();
        assert!(sections.has_data(".debug_info"));
        assert_eq!(symbols_file(me.to_str().unwrap(), "00112233"), None);
    }

    #[test]
    fn not_elf_or_missing() {
        assert!(Sections::read(Path::new("/proc/self/status")).is_none());
        assert_eq!(symbols_file("/nonexistent/lib.so", ""), None);
        assert_eq!(by_build_id("zz"), None);
        assert_eq!(by_build_id("../../etc/passwd"), None);
    }

    /// A program split as distributions split theirs (objcopy --only-keep-debug, strip -g,
    /// --add-gnu-debuglink): its debug file is found through the link, and only with the
    /// right CRC.
    #[test]
    fn follows_a_debuglink_with_its_crc() {
        let dir = std::env::temp_dir().join(format!("ddprof-debuglink-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (src, prog, debug) = (dir.join("p.c"), dir.join("p"), dir.join("p.debug"));
        std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        let run = |cmd: &str, args: &[&std::ffi::OsStr]| std::process::Command::new(cmd).args(args).status().is_ok_and(|s| s.success());
        let built = run("cc", &["-g".as_ref(), "-o".as_ref(), prog.as_os_str(), src.as_os_str()])
            && run("objcopy", &["--only-keep-debug".as_ref(), prog.as_os_str(), debug.as_os_str()])
            && run("strip", &["-g".as_ref(), prog.as_os_str()])
            && run("objcopy", &[format!("--add-gnu-debuglink={}", debug.display()).as_ref(), prog.as_os_str()]);
        if !built {
            eprintln!("skipped: cc or binutils (objcopy, strip) are not installed");
            return;
        }
        let path = prog.to_str().unwrap();
        assert_eq!(symbols_file(path, ""), Some(std::fs::canonicalize(&debug).unwrap()));
        // A debug file that does not match the recorded CRC is not used.
        let mut bytes = std::fs::read(&debug).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&debug, bytes).unwrap();
        assert_eq!(symbols_file(path, ""), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Where libc's debug file is installed (libc6-dbg), it is found by build id or debuglink.
    #[test]
    fn finds_libcs_debug_file_when_installed() {
        let libc = "/lib/x86_64-linux-gnu/libc.so.6";
        let Some(sections) = Sections::read(Path::new(libc)) else { return };
        if sections.has_data(".debug_info") || !Path::new(DEBUG_ROOT).join(".build-id").is_dir() {
            return;
        }
        let found = by_debuglink(libc, &sections);
        if let Some(file) = found {
            assert!(Sections::read(&file).unwrap().has_data(".symtab"), "{file:?}");
            assert_eq!(symbols_file(libc, "").as_deref(), Some(file.as_path()));
        }
    }
}
