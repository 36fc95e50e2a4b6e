//! Hot side: producing samples (timers and the SIGPROF handler, stack capture).
pub mod alloc;
pub mod both_ends;
pub mod draw;
pub mod exception;
pub mod lock;
pub mod modules;
pub mod signal;
pub mod stack;
pub mod timer;
pub mod unwind;
pub mod wall;
