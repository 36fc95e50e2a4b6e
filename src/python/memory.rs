//! Fault-proof reads of this process's own memory, for data owned by the interpreter that
//! may change or be freed under our feet (thread states, frames, code objects).
//!
//! `process_vm_readv` on our own pid copies what is mapped and returns EFAULT for what is not,
//! instead of raising SIGSEGV. Where a seccomp profile forbids it, `pread` on
//! `/proc/self/mem` (opened at start-up) does the same job. Both are single system calls:
//! async-signal-safe, lock-free, allocation-free. After fork the child reads through its own
//! pid / its own `/proc/self/mem` (a `pthread_atfork` handler refreshes both).

use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::Once;

const UNAVAILABLE: u8 = 0;
const VM_READV: u8 = 1;
const PROC_MEM: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNAVAILABLE);
static PID: AtomicI32 = AtomicI32::new(0);
static MEM_FD: AtomicI32 = AtomicI32::new(-1);
static ATFORK: Once = Once::new();

/// Picks the reading method. Cold side, once. Returns a description, or an error when
/// neither method works here.
pub fn init() -> Result<&'static str, String> {
    if MODE.load(Ordering::Acquire) != UNAVAILABLE {
        return Ok(method());
    }
    // SAFETY: getpid has no preconditions.
    PID.store(unsafe { libc::getpid() }, Ordering::Release);
    MODE.store(VM_READV, Ordering::Release);
    let probe: u64 = 0x5079_7468_6f6e_2121;
    if read_u64(&probe as *const u64 as u64) != Some(probe) {
        let vm_error = std::io::Error::last_os_error();
        MODE.store(PROC_MEM, Ordering::Release);
        open_proc_mem();
        if read_u64(&probe as *const u64 as u64) != Some(probe) {
            MODE.store(UNAVAILABLE, Ordering::Release);
            return Err(format!("neither process_vm_readv ({vm_error}) nor /proc/self/mem can read this process's memory"));
        }
    }
    ATFORK.call_once(|| {
        // SAFETY: registers a plain extern "C" function.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    Ok(method())
}

fn method() -> &'static str {
    match MODE.load(Ordering::Acquire) {
        VM_READV => "process_vm_readv",
        PROC_MEM => "/proc/self/mem",
        _ => "none",
    }
}

fn open_proc_mem() {
    // SAFETY: a NUL-terminated path; the descriptor is ours.
    let fd = unsafe { libc::open(c"/proc/self/mem".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    let old = MEM_FD.swap(fd, Ordering::AcqRel);
    if old >= 0 {
        // SAFETY: closing a descriptor we opened.
        unsafe { libc::close(old) };
    }
}

/// The child must read its own memory, not the parent's: new pid, new `/proc/self/mem`.
/// Only async-signal-safe calls (getpid, open, close).
unsafe extern "C" fn after_fork_in_child() {
    // SAFETY: getpid has no preconditions.
    PID.store(unsafe { libc::getpid() }, Ordering::Release);
    if MODE.load(Ordering::Acquire) == PROC_MEM {
        open_proc_mem();
    }
}

#[inline]
fn plausible(addr: u64, len: usize) -> bool {
    addr >= 4096
        && addr
            .checked_add(len as u64)
            .is_some_and(|end| end < (1 << 47))
}

/// Copies `buf.len()` bytes from `addr`. True only when every byte was read.
/// Async-signal-safe.
pub fn read(addr: u64, buf: &mut [u8]) -> bool {
    if buf.is_empty() || !plausible(addr, buf.len()) {
        return buf.is_empty();
    }
    match MODE.load(Ordering::Relaxed) {
        VM_READV => {
            let local = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let remote = libc::iovec {
                iov_base: addr as *mut libc::c_void,
                iov_len: buf.len(),
            };
            // SAFETY: the local iovec covers `buf`; the remote one is only read by the kernel,
            // which reports unmapped addresses as EFAULT.
            let n = unsafe {
                libc::process_vm_readv(PID.load(Ordering::Relaxed), &local, 1, &remote, 1, 0)
            };
            n == buf.len() as isize
        }
        PROC_MEM => {
            let fd = MEM_FD.load(Ordering::Relaxed);
            // SAFETY: `buf` is valid for its length; the offset is the address to read.
            let n =
                unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), addr as libc::off_t) };
            n == buf.len() as isize
        }
        _ => false,
    }
}

/// One machine word at `addr`. Async-signal-safe.
pub fn read_u64(addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    read(addr, &mut b).then(|| u64::from_ne_bytes(b))
}

/// The words at `base + offsets[i]`, in one system call. None unless every word was read.
/// Async-signal-safe.
pub fn read_fields<const N: usize>(base: u64, offsets: [u32; N]) -> Option<[u64; N]> {
    let mut addrs = [0u64; N];
    for (a, &off) in addrs.iter_mut().zip(offsets.iter()) {
        *a = base.checked_add(off as u64)?;
    }
    read_words(addrs)
}

/// The words at each of `addrs`, in one system call. None unless every word was read.
/// Async-signal-safe.
pub fn read_words<const N: usize>(addrs: [u64; N]) -> Option<[u64; N]> {
    const { assert!(N <= MAX_PIECES) };
    let mut pieces = [(0u64, 0usize); N];
    for (p, &a) in pieces.iter_mut().zip(addrs.iter()) {
        *p = (a, 8);
    }
    let mut out = [0u64; N];
    // SAFETY: viewing the u64 array as bytes (any bit pattern is a valid u64).
    let bytes = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), 8 * N) };
    (read_pieces(&pieces, bytes) == 8 * N).then_some(out)
}

/// Most pieces in one scattered read.
pub const MAX_PIECES: usize = 64;

/// Reads each `(address, length)` piece, in order, into consecutive bytes of `out`, in one
/// system call where possible. Returns how many bytes were read: reading stops at the first
/// piece that is not entirely readable, so the pieces before it are complete.
/// Async-signal-safe.
pub fn read_pieces(pieces: &[(u64, usize)], out: &mut [u8]) -> usize {
    let pieces = &pieces[..pieces.len().min(MAX_PIECES)];
    let total: usize = pieces.iter().map(|p| p.1).sum();
    if total > out.len() {
        return 0;
    }
    // Only the plausible prefix is attempted.
    let usable = pieces.iter().take_while(|p| plausible(p.0, p.1)).count();
    let pieces = &pieces[..usable];
    match MODE.load(Ordering::Relaxed) {
        VM_READV => {
            let mut remote = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_PIECES];
            for (r, &(addr, len)) in remote.iter_mut().zip(pieces.iter()) {
                *r = libc::iovec {
                    iov_base: addr as *mut libc::c_void,
                    iov_len: len,
                };
            }
            let want: usize = pieces.iter().map(|p| p.1).sum();
            let local = libc::iovec {
                iov_base: out.as_mut_ptr().cast(),
                iov_len: want,
            };
            // SAFETY: the local iovec covers the first `want` bytes of `out`; the remote
            // addresses are only read by the kernel, which stops at unmapped memory.
            let n = unsafe {
                libc::process_vm_readv(
                    PID.load(Ordering::Relaxed),
                    &local,
                    1,
                    remote.as_ptr(),
                    pieces.len() as libc::c_ulong,
                    0,
                )
            };
            if n <= 0 {
                return 0;
            }
            // Keep only whole pieces.
            let mut done = 0;
            for p in pieces {
                if done + p.1 > n as usize {
                    break;
                }
                done += p.1;
            }
            done
        }
        PROC_MEM => {
            let mut done = 0;
            for &(addr, len) in pieces {
                if !read(addr, &mut out[done..done + len]) {
                    break;
                }
                done += len;
            }
            done
        }
        _ => 0,
    }
}

/// Little helpers to pick fields out of a struct read as bytes.
#[inline]
pub fn u64_at(buf: &[u8], off: u32) -> u64 {
    let o = off as usize;
    buf.get(o..o + 8)
        .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
        .unwrap_or(0)
}

#[inline]
pub fn u32_at(buf: &[u8], off: u32) -> u32 {
    let o = off as usize;
    buf.get(o..o + 4)
        .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
        .unwrap_or(0)
}

#[inline]
pub fn u8_at(buf: &[u8], off: u32) -> u8 {
    buf.get(off as usize).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mapped_memory_and_refuses_unmapped_memory() {
        init().unwrap();
        let data: [u64; 4] = [1, 2, 3, 4];
        let base = data.as_ptr() as u64;
        assert_eq!(read_u64(base + 8), Some(2));
        assert_eq!(read_fields(base, [24, 0, 16]), Some([4, 1, 3]));
        assert_eq!(read_u64(0), None);
        assert_eq!(read_u64(8), None);
        // A page that cannot be read: the read must fail, not crash. (Kept mapped without
        // access rather than unmapped: other tests' threads map memory meanwhile, and an
        // unmapped address can be handed out again before it is read.)
        // SAFETY: a fresh anonymous mapping, never accessed directly.
        let page = unsafe {
            libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) as u64
        };
        assert_eq!(read_u64(page), None);
        assert_eq!(read_fields(page, [0, 8]), None);
        // Scattered pieces stop at the first unreadable one.
        let mut out = [0u8; 24];
        assert_eq!(
            read_pieces(&[(base, 8), (base + 16, 8), (page, 8)], &mut out),
            16
        );
        assert_eq!(
            &out[..16],
            &[1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(read_words([base + 24, base]), Some([4, 1]));
        // SAFETY: the mapping made above, no longer used.
        unsafe { libc::munmap(page as *mut libc::c_void, 4096) };
    }
}
