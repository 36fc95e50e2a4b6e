//! Writes each profile to `<prefix>.<pid>.<seq>.pprof` (DD_PROFILING_OUTPUT_PPROF).
//!
//! The file is written under a temporary name and renamed into place, so a reader never sees
//! half a profile. Missing directories are created.

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn profile_path(prefix: &str, pid: i32, seq: u64) -> PathBuf {
    PathBuf::from(format!("{prefix}.{pid}.{seq}.pprof"))
}

pub fn write_profile(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_into_new_directory_atomically() {
        let dir = std::env::temp_dir().join(format!("ddprof-file-test-{}", std::process::id()));
        let path = profile_path(dir.join("sub/prof").to_str().unwrap(), 42, 3);
        assert!(path.ends_with("sub/prof.42.3.pprof"));
        write_profile(&path, b"abc").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        assert!(!path.with_extension("pprof.tmp").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
