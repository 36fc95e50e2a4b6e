//! Per-thread state and the registry of sampled threads.
//!
//! The state lives in a const-initialised `thread_local!` whose type has no `Drop`: Rust then
//! emits a plain TLS variable with no lazy registration, so the signal handler and hooks can
//! touch it without allocating (DESIGN.md §3 rule 1). Clean-up at thread exit goes through a
//! pthread key destructor instead of a TLS destructor.

use std::cell::Cell;
use std::sync::atomic::AtomicU64;

pub struct ThreadState {
    /// Kernel thread id, 0 until the thread is registered.
    pub tid: Cell<i32>,
    /// Bounds of this thread's stack; the unwinder never reads outside them.
    pub stack_lo: Cell<usize>,
    pub stack_hi: Cell<usize>,
    /// The thread's CPU time (ns) when it was last sampled, to compute consumed CPU.
    pub last_cpu_ns: Cell<u64>,
    /// Set while the library itself runs on this thread (hooks, profiler code), so hooks
    /// reached from inside the library pass straight through.
    pub in_profiler: Cell<bool>,
    /// The library's own threads (exporter) are never sampled, and their C allocations come
    /// from the library's own heap (own_heap.rs).
    pub internal: Cell<bool>,
    /// Set while `spawn_internal` creates a thread: the pthread_create hook marks it internal
    /// from its very first instruction (before Rust's thread start allocates).
    pub spawning_internal: Cell<bool>,
    pub alloc_started: Cell<bool>,
    /// Throws left until this thread's next exception sample; 0 until first drawn.
    pub exception_countdown: Cell<i64>,
    /// xorshift state for this thread's sampling draws; 0 until seeded.
    pub rng: Cell<u64>,
    /// Read by the wall sampler thread: how many wall stacks this thread captured, and its
    /// CPU time when the last one was done (see sample/wall.rs).
    pub wall_captures: AtomicU64,
    pub wall_capture_cpu_ns: AtomicU64,
    /// User pc and sp of the context its last wall stack was captured in.
    pub wall_capture_pc: AtomicU64,
    pub wall_capture_sp: AtomicU64,
    /// Wall time (ns) the sampler handed to this thread's next signal, 0 when none is due.
    /// Taken with a swap, by the handler or by the sampler revoking it: exactly one of them
    /// accounts it, whatever happens to the signal (see sample/wall.rs).
    pub wall_pending_ns: AtomicU64,
    /// Lock sampling (see sample/lock.rs; its acquisition countdown lives in its own
    /// initial-exec TLS word, read on every acquisition).
    pub lock_hold_started: Cell<bool>,
    /// Waited nanoseconds left before the next lock-wait sample.
    pub lock_wait_left: Cell<i64>,
    pub lock_wait_started: Cell<bool>,
    /// Held nanoseconds (of followed holds) left before the next recorded hold.
    pub lock_hold_left: Cell<i64>,
    pub lock_hold_time_started: Cell<bool>,
    /// Holds being followed: how many, and each one's lock address and start (monotonic ns).
    pub lock_held_count: Cell<u8>,
    pub lock_held_addr: [Cell<u64>; LOCK_HELD_MAX],
    pub lock_held_since: [Cell<u64>; LOCK_HELD_MAX],
}

/// Most lock holds one thread follows at once (see sample/lock.rs).
pub const LOCK_HELD_MAX: usize = 4;


// Each thread's `ThreadState`, in initial-exec TLS (see tls_counter.rs): one `mov` from the
// thread pointer finds it. Rust's `thread_local!` goes through `__tls_get_addr` in a shared
// object: a call on every hook, and in a forked child two more pages to fault in (the
// loader's code and our PLT stub). The block is zero-filled in every new thread: every
// field's initial value is a zero or false (checked by a test).
std::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".balign 64",
    ".globl ddprof_thread_state",
    ".hidden ddprof_thread_state",
    ".type ddprof_thread_state, @object",
    ".size ddprof_thread_state, {size}",
    "ddprof_thread_state:",
    ".zero {size}",
    ".popsection",
    size = const std::mem::size_of::<ThreadState>(),
);

/// Runs `f` with this thread's state. Never allocates, never calls anything.
#[inline(always)]
pub fn with<R>(f: impl FnOnce(&ThreadState) -> R) -> R {
    let state: usize;
    // SAFETY: fs:[0] holds the thread pointer (the TCB points to itself on x86-64), and the
    // GOT slot holds our block's offset from it, written by the loader (TPOFF relocation).
    unsafe {
        std::arch::asm!(
            "mov {p}, qword ptr fs:[0]",
            "add {p}, qword ptr [rip + ddprof_thread_state@GOTTPOFF]",
            p = out(reg) state,
            options(nostack, readonly, preserves_flags),
        );
    }
    // SAFETY: the block is this thread's, as large and aligned as a ThreadState, zero-filled
    // at thread start (a valid ThreadState: see above), and only ever used through shared
    // references to its Cells and atomics on this thread (and atomics from the wall sampler).
    // `f` cannot keep the reference: its result type does not depend on the borrow.
    f(unsafe { &*(state as *const ThreadState) })
}

/// Kernel thread id of the calling thread (a raw syscall: async-signal-safe).
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// The calling thread's CPU clock in nanoseconds (async-signal-safe).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Marks the calling thread as inside the profiler for the guard's lifetime. Returns `None`
/// when it already is (a hook reached from profiler code must pass through).
pub struct ReentrancyGuard(());

impl ReentrancyGuard {
    #[inline(always)]
    pub fn enter() -> Option<ReentrancyGuard> {
        with(|s| {
            if s.in_profiler.get() {
                None
            } else {
                s.in_profiler.set(true);
                Some(ReentrancyGuard(()))
            }
        })
    }
}

impl Drop for ReentrancyGuard {
    fn drop(&mut self) {
        with(|s| s.in_profiler.set(false));
    }
}

/// Records the calling thread's id and stack bounds. Called on the thread itself, outside
/// any signal handler (pthread_getattr_np may allocate and read /proc for the main thread).
pub fn register_current() {
    let tid = gettid();
    // SAFETY: getpid has no preconditions.
    let main_thread = tid == unsafe { libc::getpid() };
    let bounds = if main_thread { main_stack_bounds() } else { None };
    let (lo, hi) = bounds.or_else(current_stack_bounds).unwrap_or((0, 0));
    with(|s| {
        s.tid.set(tid);
        s.stack_lo.set(lo);
        s.stack_hi.set(hi);
        s.last_cpu_ns.set(thread_cpu_ns());
    });
}

extern "C" {
    /// glibc: the stack pointer at the process's entry; every frame of the main thread lies
    /// below it.
    static __libc_stack_end: *mut libc::c_void;
}

/// The main thread's stack, without the ~0.1–0.5 ms `pthread_getattr_np` spends reading
/// /proc/self/maps for it: from `__libc_stack_end` (rounded up to its page, still inside the
/// stack mapping, which also holds argv and the environment above it) down by the stack
/// size limit (8 MiB when unlimited).
fn main_stack_bounds() -> Option<(usize, usize)> {
    // SAFETY: a glibc data symbol set before any constructor runs.
    let end = unsafe { __libc_stack_end } as usize;
    if end == 0 {
        return None;
    }
    let hi = (end + 4095) & !4095;
    // SAFETY: getrlimit fills the struct.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    let size = if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } == 0 && limit.rlim_cur != libc::RLIM_INFINITY {
        limit.rlim_cur as usize
    } else {
        8 << 20
    };
    Some((hi.saturating_sub(size), hi))
}

fn current_stack_bounds() -> Option<(usize, usize)> {
    // SAFETY: attr is initialised by pthread_getattr_np before use and destroyed after.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let rc = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 || addr.is_null() {
            return None;
        }
        Some((addr as usize, addr as usize + size))
    }
}

/// Spawns one of the library's own threads. It is never sampled, never registered, and its
/// allocations are never profiled (it is permanently "inside the profiler").
pub fn spawn_internal(name: &str, body: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    // The pthread_create hook sees this flag on the spawning thread and passes straight through.
    let _guard = ReentrancyGuard::enter();
    with(|s| s.spawning_internal.set(true));
    let spawned = std::thread::Builder::new().name(name.to_string()).spawn(move || {
        block_cpu_signal();
        block_termination_signals();
        body();
    });
    with(|s| s.spawning_internal.set(false));
    spawned?;
    Ok(())
}

/// The first thing a library thread runs (from the pthread_create hook's trampoline): it is
/// never sampled, never counted as the program's, and allocates from the library's heap.
pub fn mark_internal() {
    with(|s| {
        s.internal.set(true);
        s.in_profiler.set(true);
    });
    keep_allocations_on_slow_path();
}

/// Every allocation of the calling (library) thread crosses the "sample point", so each takes
/// the hooks' slow path, where an internal thread's block is served from the library's heap.
pub fn keep_allocations_on_slow_path() {
    crate::tls_counter::alloc_bytes_left::set(i64::MIN / 2);
}

/// SIGTERM, SIGINT, SIGHUP: a library thread blocks them, so the kernel hands them to one of
/// the program's threads (see termination.rs).
pub const TERMINATION_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Whether the calling thread is inside the library (a hook, or one of the library's threads).
pub fn in_profiler() -> bool {
    with(|s| s.in_profiler.get())
}

/// Keeps the termination signals away from a library thread.
pub fn block_termination_signals() {
    // SAFETY: sigemptyset/sigaddset fill a local set; the old mask is not wanted.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in TERMINATION_SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Keeps SIGPROF away from the calling thread.
pub fn block_cpu_signal() {
    // SAFETY: the set is valid; the old mask is not wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &sigprof_set(), std::ptr::null_mut()) };
}

/// The signal of CPU and wall samples: the timers and the wall sampler send it, the sampling
/// handler (sample/signal.rs) takes it.
pub const CPU_SIGNAL: i32 = libc::SIGPROF;

/// The signal set holding SIGPROF alone. Built by hand rather than with sigemptyset and
/// sigaddset: a forked child needs it, and their code is one more page to fault in.
pub fn sigprof_set() -> libc::sigset_t {
    let mut bits = [0u64; std::mem::size_of::<libc::sigset_t>() / 8];
    bits[0] = 1 << (libc::SIGPROF - 1);
    // SAFETY: on Linux a sigset_t is a plain bit array (signal n is bit n-1 of the first
    // word), and `bits` has exactly its size.
    unsafe { std::mem::transmute(bits) }
}

/// A uniform draw in (0, 1] from this thread's xorshift generator (async-signal-safe).
pub fn uniform() -> f64 {
    with(|s| {
        let mut x = s.rng.get();
        if x == 0 {
            x = seed();
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.rng.set(x);
        ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    })
}

fn seed() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let mixed = (ts.tv_nsec as u64) ^ (ts.tv_sec as u64) << 30 ^ (gettid() as u64) << 17;
    mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_threads_state_is_the_zero_state() {
        let fresh = std::thread::spawn(|| {
            with(|s| {
                s.tid.get() == 0
                    && s.stack_lo.get() == 0
                    && s.stack_hi.get() == 0
                    && s.last_cpu_ns.get() == 0
                    && !s.in_profiler.get()
                    && !s.internal.get()
                    && !s.spawning_internal.get()
                    && s.wall_captures.load(std::sync::atomic::Ordering::Relaxed) == 0
                    && s.wall_pending_ns.load(std::sync::atomic::Ordering::Relaxed) == 0
                    && s.lock_held_count.get() == 0
                    && s.lock_held_addr.iter().all(|a| a.get() == 0)
            })
        });
        assert!(fresh.join().unwrap());
        // And the state is the thread's own. (Fields the allocation hooks set on the thread's
        // first malloc, such as its random state, are left out: std's thread start allocates.)
        with(|s| s.lock_hold_left.set(12345));
        assert_eq!(std::thread::spawn(|| with(|s| s.lock_hold_left.get())).join().unwrap(), 0);
        assert_eq!(with(|s| s.lock_hold_left.get()), 12345);
    }
}
