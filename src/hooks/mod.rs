//! The exported C symbols that interpose libc's: nothing but thin entry points that forward
//! to the library's mechanisms and then to the real function.
pub mod alloc;
pub mod exception;
pub mod lock;
pub mod process;
pub mod signals;
