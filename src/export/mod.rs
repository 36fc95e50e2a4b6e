//! Cold side: the exporter thread and where profiles go.
pub mod code_pages;
pub mod exporter;
pub mod file;
pub mod handoff;
pub mod http;
pub mod multipart;
pub mod upload;
