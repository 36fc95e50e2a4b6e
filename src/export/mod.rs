//! Cold side: the exporter thread and where profiles go.
pub mod exporter;
pub mod file;
