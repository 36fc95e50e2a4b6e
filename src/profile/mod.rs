//! Cold side: turning recorded samples into pprof profiles.
pub mod pprof;
pub mod builder;
pub mod gzip_stored;
pub mod symbolize;
pub mod debug_file;
pub mod elf_sections;
pub mod plt;
pub mod aggregate;
pub mod encode;
pub mod heap;
pub mod sample_key;
pub mod lock_name;
