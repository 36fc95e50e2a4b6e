//! Hot side: the Python frames of the interrupted thread, read without the GIL and without
//! calling into Python, inside a signal handler (or a hook).
//!
//! 1. Find the thread's `PyThreadState`: the one remembered for this thread (checked: right
//!    thread id, right interpreter, still linked in its interpreter's list), else a walk of
//!    every interpreter's thread list comparing `thread_id` with `pthread_self()`.
//! 2. Walk its frame chain from the running frame outwards, with a depth limit and cycle
//!    detection, pushing two words per frame (leaf first): word 1 is
//!    `PYTHON_FRAME_TAG | code object address`, word 2 is
//!    `PYTHON_FRAME_TAG | flags | instruction offset in bytes (i32)`.
//!    `FLAG_ENTRY` marks the outermost frame run by one `_PyEval_EvalFrameDefault` call (every
//!    frame before 3.11; `is_entry` on 3.11; on 3.12+ the frame above the entry frame that
//!    call keeps on the C stack, owned by `FRAME_OWNED_BY_CSTACK` on 3.12–3.13 and by
//!    `FRAME_OWNED_BY_INTERPRETER` from 3.14). On 3.14+ `f_executable` is a tagged
//!    `_PyStackRef`: its tag bits are cleared.
//!
//! Interpreter memory is read through `memory` (fault-proof system calls), batched so that a
//! typical sample costs one system call:
//! - the remembered thread state is checked (fields and list linkage) in one scattered read,
//!   which also fetches, speculatively, where this thread's frames were at its previous
//!   sample: the frame stack window (3.11+: frames sit next to each other in the thread's
//!   frame stack chunk, callers below callees) or the heap frame objects (before 3.11);
//! - a frame outside what was fetched costs one more read (3.11+: a new 4 KiB window ending at
//!   it, so its callers come along);
//! - what CPython keeps on the C stack (3.11–3.12 `_PyCFrame`, 3.12+ shim frames) is read
//!   directly, bounded to the live part of this thread's own stack, as the native unwinder
//!   does.
//!
//! Nothing allocates, locks or logs. Code objects are not read here: the cold side validates
//! them.

use std::cell::Cell;
use std::ops::Range;

use super::discover::Target;
use super::layout::ABSENT;
use super::memory::{self, u64_at, u8_at};

/// Frame words with this bit set are Python frames (user-space addresses never have it).
pub const PYTHON_FRAME_TAG: u64 = 1 << 63;

pub const FLAG_ENTRY: u64 = 1 << 32;
pub const FLAG_GENERATOR: u64 = 1 << 33;
const OFFSET_MASK: u64 = 0xffff_ffff;

/// Frames (shim frames included) walked at most.
const MAX_FRAMES: usize = 1024;
const MAX_THREADS: usize = 4096;
const MAX_INTERPRETERS: usize = 64;
/// Largest frame prefix read (the layouts need at most ~110 bytes).
const FRAME_BUF: usize = 128;
/// Bytes of the frame stack read at once (3.11+), and the span after a chunk's start within
/// which a frame is taken to be in that chunk.
const WINDOW: usize = 4096;
const CHUNK_SPAN: u64 = 1 << 20;
/// Frame objects remembered per thread for the next sample's prefetch (before 3.11).
const CHAIN: usize = 32;
/// Bytes of a frame object read before 3.11 (from its `f_back` to its `f_lasti`).
const SPAN_BUF: usize = 96;
/// Bytes fetched speculatively with the thread state.
const PREFETCH: usize = if WINDOW > CHAIN * SPAN_BUF {
    WINDOW
} else {
    CHAIN * SPAN_BUF
};
/// Room kept above the newest frame in the speculative window, for calls made since.
const WINDOW_SLACK: u64 = 1024;

/// The thread state found for this thread at its previous sample.
#[derive(Clone, Copy)]
struct Cached {
    tstate: u64,
    interp: u64,
    prev: u64,
}

/// The single interpreter's thread list as it was when this thread was not in it.
#[derive(Clone, Copy)]
struct NotFound {
    interp: u64,
    head: u64,
    head_tid: u64,
}

// What this thread's previous sample found. Const initialised, no destructor: plain TLS,
// safe to touch in a signal handler.
thread_local! {
    static CACHED: Cell<Cached> = const { Cell::new(Cached { tstate: 0, interp: 0, prev: 0 }) };
    static NOT_FOUND: Cell<NotFound> = const { Cell::new(NotFound { interp: 0, head: 0, head_tid: 0 }) };
    /// Before 3.11: the frame objects walked at the previous sample.
    static CHAIN_CACHE: Cell<([u64; CHAIN], usize)> = const { Cell::new(([0; CHAIN], 0)) };
    /// 3.11+: the frame stack window that held the frames at the previous sample.
    static LAST_WINDOW: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
}

/// The calling thread's `PyThreadState` as the latest capture on this thread found it (0 if
/// none). Async-signal-safe; meant right after `capture`, in the same handler or hook.
pub fn current_thread_state() -> u64 {
    CACHED.with(|c| c.get().tstate)
}

/// What the thread state says about where the frames are.
struct ThreadView {
    /// `frame` (≤3.10), `cframe` (3.11–3.12) or `current_frame` (3.13+).
    frame_field: u64,
    /// 3.11+: `datastack_chunk`.
    chunk: u64,
}

/// Bytes of thread state fields read before the prefetched pieces.
const HEADER: usize = 48;

/// Memory fetched in the same read as the thread state: (address, length) pieces and their
/// bytes, back to back after `HEADER` bytes of thread state fields. Only the first `got`
/// pieces were read.
struct Prefetch {
    pieces: [(u64, usize); CHAIN],
    n: usize,
    got: usize,
    bytes: [u8; HEADER + PREFETCH],
}

impl Prefetch {
    fn new() -> Self {
        Prefetch {
            pieces: [(0, 0); CHAIN],
            n: 0,
            got: 0,
            bytes: [0; HEADER + PREFETCH],
        }
    }

    fn add(&mut self, addr: u64, len: usize) {
        let used: usize = self.pieces[..self.n].iter().map(|p| p.1).sum();
        if self.n < CHAIN && used + len <= PREFETCH && len > 0 {
            self.pieces[self.n] = (addr, len);
            self.n += 1;
        }
    }

    /// The fetched bytes at [addr, addr + len), if one piece holds them all.
    fn get(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let mut at = HEADER;
        for &(start, size) in &self.pieces[..self.got] {
            if addr >= start && addr + len as u64 <= start + size as u64 {
                let o = at + (addr - start) as usize;
                return Some(&self.bytes[o..o + len]);
            }
            at += size;
        }
        None
    }
}

/// Pushes the frame words of the calling thread; returns the number of frames pushed.
pub fn capture(t: &Target, push: &mut dyn FnMut(u64) -> bool) -> usize {
    let l = t.layout;
    let mut prefetch = Prefetch::new();
    if l.interpreter_frames() {
        let (start, len) = LAST_WINDOW.with(|w| w.get());
        prefetch.add(start, len);
    } else {
        let (chain, n) = CHAIN_CACHE.with(|c| c.get());
        let (lo, span) = frame_object_span(t);
        for &frame in &chain[..n] {
            prefetch.add(frame + lo as u64, span);
        }
    }
    let Some(view) = thread_state(t, &mut prefetch) else {
        return 0;
    };
    if !l.interpreter_frames() {
        return walk_frame_objects(t, &prefetch, view.frame_field, push);
    }
    let mut reader = Reader::new(view.chunk, &prefetch);
    let frame = if l.tstate_cframe == ABSENT {
        view.frame_field
    } else {
        // 3.11–3.12: tstate->cframe->current_frame; the _PyCFrame is on this thread's stack.
        let mut b = [0u8; 8];
        if !reader.read(view.frame_field + l.cframe_current_frame as u64, &mut b) {
            return 0;
        }
        u64::from_ne_bytes(b)
    };
    let pushed = walk_interpreter_frames(t, &mut reader, frame, push);
    LAST_WINDOW.with(|w| w.set(reader.next_window()));
    pushed
}

/// The calling thread's `PyThreadState`, as far as the frame walk needs it. With a
/// remembered state, `prefetch` is read in the same system call.
fn thread_state(t: &Target, prefetch: &mut Prefetch) -> Option<ThreadView> {
    let l = t.layout;
    // SAFETY: pthread_self has no preconditions (it reads the thread pointer).
    let me = unsafe { libc::pthread_self() } as u64;
    let frame_field = if l.tstate_frame != ABSENT {
        l.tstate_frame
    } else {
        l.tstate_cframe
    };
    let chunk_field = if l.tstate_datastack_chunk != ABSENT {
        l.tstate_datastack_chunk
    } else {
        l.tstate_thread_id
    };
    let cached = CACHED.with(|c| c.get());
    if cached.tstate != 0 {
        // The fields, and the pointer that links the state into its list (a state freed and
        // not yet reused could still show our thread id), then the prefetch pieces.
        let link = if cached.prev == 0 {
            cached.interp + l.interp_threads_head as u64
        } else {
            cached.prev + l.tstate_next as u64
        };
        let ts = cached.tstate;
        let mut pieces = [(0u64, 0usize); 6 + CHAIN];
        for (p, addr) in pieces.iter_mut().zip([
            ts + l.tstate_prev as u64,
            ts + l.tstate_interp as u64,
            ts + l.tstate_thread_id as u64,
            ts + frame_field as u64,
            ts + chunk_field as u64,
            link,
        ]) {
            *p = (addr, 8);
        }
        pieces[6..6 + prefetch.n].copy_from_slice(&prefetch.pieces[..prefetch.n]);
        let read = memory::read_pieces(&pieces[..6 + prefetch.n], &mut prefetch.bytes);
        if read >= HEADER {
            let w = |i: usize| u64_at(&prefetch.bytes, 8 * i as u32);
            let (prev, interp, tid, frame, chunk, linked) = (w(0), w(1), w(2), w(3), w(4), w(5));
            // Another thread started or ended next to ours: its predecessor changed. One
            // more read confirms the new link, rather than a walk of every thread state.
            let relinked = tid == me && interp == cached.interp && prev != cached.prev && {
                let link = if prev == 0 {
                    interp + l.interp_threads_head as u64
                } else {
                    prev + l.tstate_next as u64
                };
                memory::read_u64(link) == Some(ts)
            };
            if relinked {
                CACHED.with(|c| {
                    c.set(Cached {
                        tstate: ts,
                        interp,
                        prev,
                    })
                });
            }
            if relinked
                || (tid == me && interp == cached.interp && prev == cached.prev && linked == ts)
            {
                let mut done = HEADER;
                for p in &prefetch.pieces[..prefetch.n] {
                    if done + p.1 > read {
                        break;
                    }
                    done += p.1;
                    prefetch.got += 1;
                }
                let chunk = if l.tstate_datastack_chunk != ABSENT {
                    chunk
                } else {
                    0
                };
                return Some(ThreadView {
                    frame_field: frame,
                    chunk,
                });
            }
        }
        CACHED.with(|c| {
            c.set(Cached {
                tstate: 0,
                interp: 0,
                prev: 0,
            })
        });
    }
    // A thread without a thread state (a native thread of a Python program) was not found
    // last time: as long as the single interpreter's list has the same head (new states go at
    // the head), it still has none. One read instead of a walk of every thread state.
    let absent = NOT_FOUND.with(|c| c.get());
    if absent.interp != 0 {
        let still = memory::read_words([
            t.runtime + l.runtime_interpreters_head as u64,
            absent.interp + l.interp_threads_head as u64,
            absent.interp + l.interp_next as u64,
            absent.head + l.tstate_thread_id as u64,
        ]);
        if still == Some([absent.interp, absent.head, 0, absent.head_tid]) {
            return None;
        }
        NOT_FOUND.with(|c| {
            c.set(NotFound {
                interp: 0,
                head: 0,
                head_tid: 0,
            })
        });
    }
    let first = memory::read_u64(t.runtime + l.runtime_interpreters_head as u64)?;
    let mut interp = first;
    let mut single: Option<(u64, u64)> = None;
    for _ in 0..MAX_INTERPRETERS {
        if interp == 0 {
            break;
        }
        let [head, next] = memory::read_fields(interp, [l.interp_threads_head, l.interp_next])?;
        if interp == first && next == 0 && head != 0 {
            single = Some((interp, head));
        }
        let mut tstate = head;
        for _ in 0..MAX_THREADS {
            if tstate == 0 {
                break;
            }
            let [tnext, tid, frame, prev, chunk] = memory::read_fields(
                tstate,
                [
                    l.tstate_next,
                    l.tstate_thread_id,
                    frame_field,
                    l.tstate_prev,
                    chunk_field,
                ],
            )?;
            if tid == me {
                CACHED.with(|c| {
                    c.set(Cached {
                        tstate,
                        interp,
                        prev,
                    })
                });
                let chunk = if l.tstate_datastack_chunk != ABSENT {
                    chunk
                } else {
                    0
                };
                return Some(ThreadView {
                    frame_field: frame,
                    chunk,
                });
            }
            if tnext == tstate {
                break;
            }
            tstate = tnext;
        }
        if next == interp {
            break;
        }
        interp = next;
    }
    if let Some((interp, head)) = single {
        if let Some(head_tid) = memory::read_u64(head + l.tstate_thread_id as u64) {
            NOT_FOUND.with(|c| {
                c.set(NotFound {
                    interp,
                    head,
                    head_tid,
                })
            });
        }
    }
    None
}

/// Reads frames of this thread (3.11+): from the prefetched window or a window of the frame
/// stack chunk when the frame is there, directly from this thread's own live stack for
/// objects CPython keeps on the C stack, with a system call otherwise.
struct Reader<'a> {
    prefetch: &'a Prefetch,
    window: [u8; WINDOW],
    start: u64,
    len: usize,
    chunk: u64,
    stack: Range<u64>,
    /// Highest end of a frame found in the frame stack chunk (for the next prefetch).
    chunk_top: u64,
}

impl<'a> Reader<'a> {
    fn new(chunk: u64, prefetch: &'a Prefetch) -> Self {
        let marker = 0u8;
        // Everything from this frame of ours up to the top of the thread's stack is mapped
        // (the live part of the stack, the interrupted code's frames included) unless we
        // run on an alternate signal stack, which lies outside the thread's stack bounds.
        let here = std::hint::black_box(&marker) as *const u8 as u64;
        let (lo, hi) = crate::thread::with(|s| (s.stack_lo.get() as u64, s.stack_hi.get() as u64));
        let stack = if lo < here && here < hi {
            here..hi
        } else {
            0..0
        };
        Reader {
            prefetch,
            window: [0; WINDOW],
            start: 0,
            len: 0,
            chunk,
            stack,
            chunk_top: 0,
        }
    }

    fn in_chunk(&self, addr: u64) -> bool {
        self.chunk != 0 && addr >= self.chunk && addr - self.chunk < CHUNK_SPAN
    }

    fn read(&mut self, addr: u64, out: &mut [u8]) -> bool {
        let size = out.len() as u64;
        let Some(end) = addr.checked_add(size) else {
            return false;
        };
        if self.in_chunk(addr) {
            self.chunk_top = self.chunk_top.max(end);
        }
        if let Some(bytes) = self.prefetch.get(addr, out.len()) {
            out.copy_from_slice(bytes);
            return true;
        }
        if addr >= self.start && end <= self.start + self.len as u64 {
            let o = (addr - self.start) as usize;
            out.copy_from_slice(&self.window[o..o + out.len()]);
            return true;
        }
        if addr >= self.stack.start && end <= self.stack.end {
            // SAFETY: inside the live part of this thread's own stack (see `new`).
            unsafe {
                std::ptr::copy_nonoverlapping(addr as *const u8, out.as_mut_ptr(), out.len())
            };
            return true;
        }
        // A window ending at the object: its callers' frames lie just below it. It starts no
        // lower than the chunk's start, or than the object's own page outside the chunk.
        let lower = if self.in_chunk(addr) {
            self.chunk
        } else {
            addr & !4095
        };
        let start = end.saturating_sub(WINDOW as u64).max(lower);
        let len = (end - start) as usize;
        if len <= WINDOW && memory::read(start, &mut self.window[..len]) {
            self.start = start;
            self.len = len;
            let o = (addr - start) as usize;
            out.copy_from_slice(&self.window[o..o + out.len()]);
            return true;
        }
        memory::read(addr, out)
    }

    /// The window to prefetch at the next sample: the top of the frame stack chunk as seen
    /// now, with room for a few more calls.
    fn next_window(&self) -> (u64, usize) {
        if self.chunk_top == 0 {
            return (0, 0);
        }
        let end = self.chunk_top + WINDOW_SLACK;
        let start = end.saturating_sub(WINDOW as u64).max(self.chunk);
        (start, (end - start) as usize)
    }
}

/// Brent's cycle detection over a pointer chain, without memory.
struct Cycle {
    tortoise: u64,
    power: u32,
    steps: u32,
}

impl Cycle {
    fn new(start: u64) -> Self {
        Cycle {
            tortoise: start,
            power: 1,
            steps: 0,
        }
    }
    /// True when `next` closes a loop.
    fn step(&mut self, next: u64) -> bool {
        if next == self.tortoise {
            return true;
        }
        self.steps += 1;
        if self.steps == self.power {
            self.tortoise = next;
            self.power = self.power.saturating_mul(2);
            self.steps = 0;
        }
        false
    }
}

fn encode(code: u64, offset: i64, flags: u64) -> (u64, u64) {
    let offset = offset.clamp(i32::MIN as i64, i32::MAX as i64) as i32 as u32 as u64;
    (
        PYTHON_FRAME_TAG | code,
        PYTHON_FRAME_TAG | flags | (offset & OFFSET_MASK),
    )
}

/// Decodes word 2: (offset in bytes, flags).
pub fn decode_offset(word: u64) -> (i64, u64) {
    (
        (word & OFFSET_MASK) as u32 as i32 as i64,
        word & (FLAG_ENTRY | FLAG_GENERATOR),
    )
}

fn emit(push: &mut dyn FnMut(u64) -> bool, words: (u64, u64)) -> bool {
    push(words.0) && push(words.1)
}

fn plausible_pointer(p: u64) -> bool {
    p >= 4096 && p.is_multiple_of(8) && p < (1 << 47)
}

/// Where the fields read from a frame object before 3.11 lie: (first offset, length).
fn frame_object_span(t: &Target) -> (u32, usize) {
    let l = t.layout;
    let lo = l.frame_previous.min(l.frame_code).min(l.frame_lasti);
    let hi = (l.frame_previous + 8)
        .max(l.frame_code + 8)
        .max(l.frame_lasti + 4);
    (lo, ((hi - lo) as usize).min(SPAN_BUF))
}

/// Before 3.11: a chain of heap `PyFrameObject`s, one per `_PyEval_EvalFrameDefault` call.
/// Frames fetched with the thread state (those of the previous sample: callers rarely change
/// between samples) cost nothing more; the others are read one by one.
fn walk_frame_objects(
    t: &Target,
    prefetch: &Prefetch,
    mut frame: u64,
    push: &mut dyn FnMut(u64) -> bool,
) -> usize {
    let l = t.layout;
    let (lo, span) = frame_object_span(t);
    let (back_at, code_at, lasti_at) =
        (l.frame_previous - lo, l.frame_code - lo, l.frame_lasti - lo);
    let mut chain = [0u64; CHAIN];
    let mut chain_len = 0;
    let mut single = [0u8; SPAN_BUF];
    let mut cycle = Cycle::new(frame);
    let mut pushed = 0;
    for _ in 0..MAX_FRAMES {
        if !plausible_pointer(frame) {
            break;
        }
        let data: &[u8] = match prefetch.get(frame + lo as u64, span) {
            Some(bytes) => bytes,
            None => {
                if !memory::read(frame + lo as u64, &mut single[..span]) {
                    break;
                }
                &single[..span]
            }
        };
        let code = u64_at(data, code_at);
        let back = u64_at(data, back_at);
        let lasti = memory::u32_at(data, lasti_at) as i32 as i64;
        if chain_len < CHAIN {
            chain[chain_len] = frame;
            chain_len += 1;
        }
        if plausible_pointer(code) {
            if !emit(push, encode(code, lasti * l.lasti_unit as i64, FLAG_ENTRY)) {
                break;
            }
            pushed += 1;
        }
        if back == 0 || cycle.step(back) {
            break;
        }
        frame = back;
    }
    CHAIN_CACHE.with(|c| c.set((chain, chain_len)));
    pushed
}

/// 3.11+: a chain of `_PyInterpreterFrame`s, several per `_PyEval_EvalFrameDefault` call.
/// A frame is pushed once the next one is known, so that a following shim frame (3.12+)
/// can still mark it as the entry frame.
fn walk_interpreter_frames(
    t: &Target,
    reader: &mut Reader,
    mut frame: u64,
    push: &mut dyn FnMut(u64) -> bool,
) -> usize {
    let l = t.layout;
    let size = (l.frame_size as usize).min(FRAME_BUF);
    let mut buf = [0u8; FRAME_BUF];
    let mut cycle = Cycle::new(frame);
    let mut pending: Option<(u64, u64)> = None;
    let mut pushed = 0;
    for _ in 0..MAX_FRAMES {
        if !plausible_pointer(frame) || !reader.read(frame, &mut buf[..size]) {
            break;
        }
        // 3.14+: f_executable is a _PyStackRef, its low bits tags.
        let code = u64_at(&buf, l.frame_code) & !(l.frame_code_tag_bits as u64);
        let previous = u64_at(&buf, l.frame_previous);
        let owner = u8_at(&buf, l.frame_owner) as u32;
        if owner >= l.entry_frame_owner {
            // 3.12+: the entry frame a _PyEval_EvalFrameDefault call puts on the C stack below
            // its first frame (and, on 3.15, the thread's base frame).
            if let Some(p) = pending.as_mut() {
                p.1 |= FLAG_ENTRY;
            }
        } else if plausible_pointer(code) {
            if let Some(p) = pending.take() {
                if !emit(push, p) {
                    return pushed;
                }
                pushed += 1;
            }
            let instr = u64_at(&buf, l.frame_instr_ptr);
            let offset = instr.wrapping_sub(code + l.code_adaptive as u64) as i64;
            let mut flags = 0;
            if l.frame_is_entry != ABSENT && u8_at(&buf, l.frame_is_entry) != 0 {
                flags |= FLAG_ENTRY;
            }
            if owner == l.owned_by_generator {
                flags |= FLAG_GENERATOR;
            }
            pending = Some(encode(code, offset, flags));
        }
        if previous == 0 || cycle.step(previous) {
            break;
        }
        frame = previous;
    }
    if let Some(mut p) = pending {
        // The outermost frame read ends its call's frames whatever its flag says.
        p.1 |= FLAG_ENTRY;
        if emit(push, p) {
            pushed += 1;
        }
    }
    pushed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brent_finds_cycles_and_passes_chains() {
        let mut c = Cycle::new(1);
        assert!((2..100).all(|n| !c.step(n)));
        let mut c = Cycle::new(1);
        let chain = [2, 3, 4, 2, 3, 4, 2, 3, 4, 2, 3, 4];
        assert!(chain.iter().any(|&n| c.step(n)));
    }

    #[test]
    fn offsets_round_trip_with_flags() {
        let (w1, w2) = encode(0x7f00_1234_5678, -2, FLAG_ENTRY);
        assert_eq!(w1 & !PYTHON_FRAME_TAG, 0x7f00_1234_5678);
        assert_eq!(decode_offset(w2), (-2, FLAG_ENTRY));
        let (_, w2) = encode(1, 123456, FLAG_GENERATOR);
        assert_eq!(decode_offset(w2), (123456, FLAG_GENERATOR));
    }
}
