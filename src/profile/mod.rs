//! Cold side: turning recorded samples into pprof profiles: `aggregate` (per-stack totals),
//! `python_frames` and `python_lock_site` (naming), `view` (what each stack shows),
//! `symbolize`, `encode`/`builder`/`pprof` (the file).
pub mod pprof;
pub mod builder;
pub mod gzip_stored;
pub mod symbolize;
pub mod debug_file;
pub mod elf_sections;
pub mod plt;
pub mod aggregate;
pub mod encode;
pub mod exception_type;
pub mod heap;
pub mod lock_name;
pub mod python_frames;
pub mod python_lock_site;
pub mod view;
pub mod sample_key;
