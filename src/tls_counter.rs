//! Per-thread counters in initial-exec TLS, for the hottest paths (every malloc, every lock).
//!
//! Rust's `thread_local!` in a shared object reaches its variable through `__tls_get_addr`
//! (several nanoseconds a call). This library is always loaded at start-up (LD_PRELOAD), so
//! its TLS block is part of the static TLS area, at a fixed offset from the thread pointer
//! that the dynamic loader writes into a GOT slot (a TPOFF relocation): one `mov` finds it.
//! The counters are plain `i64`s zeroed in every new thread, touched only by their thread.

/// Defines a module `$module` with an initial-exec TLS `i64` named `$symbol` and
/// `subtract_crosses(n)`, `set(v)` and `get()`.
macro_rules! initial_exec_counter {
    ($module:ident, $symbol:literal) => {
        pub mod $module {
            std::arch::global_asm!(
                ".pushsection .tbss,\"awT\",@nobits",
                ".balign 8",
                concat!(".globl ", $symbol),
                concat!(".hidden ", $symbol),
                concat!(".type ", $symbol, ", @object"),
                concat!(".size ", $symbol, ", 8"),
                concat!($symbol, ":"),
                ".zero 8",
                ".popsection",
            );

            /// Subtracts `n`; true when the counter reached zero or below. The flags of the
            /// subtraction feed the caller's branch directly (asm goto), no setcc and test.
            #[inline(always)]
            pub fn subtract_crosses(n: i64) -> bool {
                // SAFETY: the GOT slot holds the variable's offset from the thread pointer;
                // `fs:[offset]` is this thread's own 8 bytes, touched by no other thread.
                unsafe {
                    std::arch::asm!(
                        concat!("mov {off}, qword ptr [rip + ", $symbol, "@GOTTPOFF]"),
                        "sub qword ptr fs:[{off}], {n}",
                        "jle {crossed}",
                        off = out(reg) _,
                        n = in(reg) n,
                        crossed = label { return true; },
                        options(nostack),
                    );
                }
                false
            }

            #[allow(dead_code)]
            pub fn set(value: i64) {
                // SAFETY: as in `subtract_crosses`.
                unsafe {
                    std::arch::asm!(
                        concat!("mov {off}, qword ptr [rip + ", $symbol, "@GOTTPOFF]"),
                        "mov qword ptr fs:[{off}], {value}",
                        off = out(reg) _,
                        value = in(reg) value,
                        options(nostack, preserves_flags),
                    );
                }
            }

            #[allow(dead_code)]
            pub fn get() -> i64 {
                let value: i64;
                // SAFETY: as in `subtract_crosses`.
                unsafe {
                    std::arch::asm!(
                        concat!("mov {off}, qword ptr [rip + ", $symbol, "@GOTTPOFF]"),
                        "mov {value}, qword ptr fs:[{off}]",
                        off = out(reg) _,
                        value = out(reg) value,
                        options(nostack, preserves_flags, readonly),
                    );
                }
                value
            }
        }
    };
}

initial_exec_counter!(alloc_bytes_left, "ddprof_alloc_bytes_left");
initial_exec_counter!(lock_acquisitions_left, "ddprof_lock_acquisitions_left");
