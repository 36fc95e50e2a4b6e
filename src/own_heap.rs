//! The library's own heap: every Rust allocation of libddprof, and the C allocations made on
//! the library's own threads (glibc's internal ones included), come from here, not from the
//! program's malloc. (C blocks above 64 KiB, the memalign family, and every C block once the
//! reserved range is used up or could not be reserved still go to the next allocator.)
//!
//! Why: glibc gives each thread that first calls malloc an arena of its own, so the profiler's
//! threads (exporter, wall sampler, uploader) each added an arena to the program. At every
//! fork glibc locks and unlocks every arena on both sides of the fork, and once parent and
//! child share their pages each of those writes is a page fault: three more faults in the
//! parent and three in the child for every fork, ≈ 30 µs of a 120 µs fork + exit + wait here.
//! Keeping our memory apart also keeps the profiler out of the program's arenas, heap
//! statistics and fragmentation. The first C allocation on our threads is glibc's own (the
//! registration of a thread-local destructor, `__cxa_thread_atexit_impl`), so routing Rust
//! allocations alone would not do; the malloc hooks send a C allocation here when it is made
//! on one of our threads (`on_own_thread`), and a free here when the block lies in our region
//! (`owns`).
//!
//! The design is deliberately plain (the cold side allocates little and rarely contends):
//! size classes from 16 B to 64 KiB, 16 B apart up to 64 B, then four per doubling (…, 256,
//! 320, 384, 448, 512, …: above 64 B a block wastes less than a fifth of itself, where
//! power-of-two classes wasted up to half — 40 % of the heap of a gunicorn worker, whose sample
//! keys are ~300 bytes), carved from 1 MiB chunks of one reserved address range (so ownership
//! is a range test) and recycled through one free list per class, under one lock that yields
//! while it waits. A request aligned to more than 16 bytes takes the power-of-two class of its
//! alignment or size, whose blocks are carved aligned to their size; the other classes' blocks
//! are aligned to 16. Rust blocks above 64 KiB get a mapping of their own, returned to the
//! kernel when freed; C blocks carry a 16-byte header with their size.
//! Small blocks are kept for reuse, so the heap's size is its peak use.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::yield_lock::Lock;

/// 16, 32, 48, 64, then four classes per doubling up to 64 KiB.
const CLASSES: usize = 4 + 4 * 10;
const LARGEST_CLASS: usize = 64 << 10;
/// Alignment of every block.
const MIN_ALIGN: usize = 16;
const CHUNK: usize = 1 << 20;
const PAGE: usize = 4096;
/// Address space reserved for the chunks (not memory: only committed chunks count); a smaller
/// range if the process's address space is limited (RLIMIT_AS), none if even that fails.
/// Not more: the kernel walks a reserved range's page-table slots at every fork and exit
/// (a 1 GiB reservation measured −3 % on a fork + exit + wait loop, 64 MiB nothing). Past it,
/// chunks are mapped one by one and serve Rust blocks only.
const REGION_SIZES: [usize; 2] = [64 << 20, 16 << 20];
/// In front of each C block: its size class, so that `free` (which gets no size) knows it.
const C_HEADER: usize = 16;

struct FreeBlock {
    next: *mut FreeBlock,
}

struct Heap {
    free: [*mut FreeBlock; CLASSES],
    /// The unused rest of the current chunk.
    bump: usize,
    bump_end: usize,
    /// The next chunk to commit in the region.
    next_chunk: usize,
}

// SAFETY: the raw pointers are only touched under HEAP's lock.
unsafe impl Send for Heap {}

const EMPTY: Heap = Heap { free: [null_mut(); CLASSES], bump: 0, bump_end: 0, next_chunk: 0 };
static HEAP: Lock<Heap> = Lock::new(EMPTY);
/// The reserved region's start and length (0 until reserved, or if it could not be).
static REGION_BASE: AtomicUsize = AtomicUsize::new(0);
static REGION_LEN: AtomicUsize = AtomicUsize::new(0);

/// The allocator of every Rust allocation in the library.
pub struct OwnHeap;

/// Bytes a request takes: its size, rounded up to its alignment.
fn block_size(layout: Layout) -> usize {
    layout.size().max(layout.align()).max(1)
}

/// The smallest class that holds `size` bytes (1 ≤ size ≤ LARGEST_CLASS).
fn class_of(size: usize) -> usize {
    if size <= 64 {
        return (size.max(1) + 15) / 16 - 1;
    }
    // size in (2^p, 2^(p+1)]: four classes of 2^(p-2) steps.
    let p = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize;
    4 + (p - 6) * 4 + ((size - 1 - (1 << p)) >> (p - 2))
}

fn class_size(class: usize) -> usize {
    if class < 4 {
        return 16 * (class + 1);
    }
    let (p, quarter) = (6 + (class - 4) / 4, (class - 4) % 4 + 1);
    (1 << p) + quarter * (1 << (p - 2))
}

/// The class of a Rust request: by size, or for an alignment above 16 the power-of-two class
/// that holds both size and alignment (such classes' blocks are aligned to their size).
fn class_for(layout: Layout) -> usize {
    if layout.align() <= MIN_ALIGN {
        class_of(layout.size().max(1))
    } else {
        class_of(block_size(layout).next_power_of_two())
    }
}

/// What a new block of `class` is aligned to: its size if a power of two, else 16.
fn carve_alignment(class: usize) -> usize {
    let size = class_size(class);
    if size.is_power_of_two() {
        size
    } else {
        MIN_ALIGN
    }
}

fn round_to_page(size: usize) -> Option<usize> {
    size.checked_add(PAGE - 1).map(|s| s & !(PAGE - 1))
}

/// A fresh private anonymous mapping of `len` bytes (a multiple of the page size), or null.
fn map(len: usize, prot: libc::c_int, extra_flags: libc::c_int) -> *mut u8 {
    // SAFETY: a new anonymous mapping; no existing memory is affected.
    let p = unsafe { libc::mmap(null_mut(), len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags, -1, 0) };
    if p == libc::MAP_FAILED {
        null_mut()
    } else {
        p.cast()
    }
}

/// The region's start, reserving it on first use (inaccessible, so it costs no memory and
/// no commit charge until chunks are made accessible).
fn region_base() -> usize {
    let base = REGION_BASE.load(Ordering::Acquire);
    if base != 0 || REGION_LEN.load(Ordering::Relaxed) == usize::MAX {
        return base;
    }
    // Only called under HEAP's lock: no other thread reserves at the same time.
    for len in REGION_SIZES {
        let p = map(len, libc::PROT_NONE, libc::MAP_NORESERVE) as usize;
        if p != 0 {
            REGION_LEN.store(len, Ordering::Relaxed);
            REGION_BASE.store(p, Ordering::Release);
            return p;
        }
    }
    REGION_LEN.store(usize::MAX, Ordering::Relaxed); // tried: do not try on every chunk
    0
}

/// A block of more than the largest class: its own mapping, aligned as asked (an over-sized
/// mapping trimmed at both ends when the alignment exceeds a page).
fn alloc_large(size: usize, align: usize) -> *mut u8 {
    let Some(len) = round_to_page(size) else { return null_mut() };
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    if align <= PAGE {
        return map(len, rw, 0);
    }
    let Some(padded) = len.checked_add(align) else { return null_mut() };
    let base = map(padded, rw, 0);
    if base.is_null() {
        return base;
    }
    let start = (base as usize + align - 1) & !(align - 1);
    // SAFETY: both ranges lie inside the mapping just made, outside the block handed out.
    unsafe {
        if start > base as usize {
            libc::munmap(base.cast(), start - base as usize);
        }
        let end = start + len;
        let mapped_end = base as usize + padded;
        if mapped_end > end {
            libc::munmap(end as *mut libc::c_void, mapped_end - end);
        }
    }
    start as *mut u8
}

impl Heap {
    fn alloc(&mut self, class: usize) -> *mut u8 {
        let head = self.free[class];
        if !head.is_null() {
            // SAFETY: blocks on a free list are unused blocks of this class, each holding the
            // link written when it was freed.
            self.free[class] = unsafe { (*head).next };
            return head.cast();
        }
        self.carve(class_size(class), carve_alignment(class))
    }

    /// A new block from the current chunk, aligned to `align` (a power of two), starting a
    /// new chunk when this one is used up.
    fn carve(&mut self, size: usize, align: usize) -> *mut u8 {
        let aligned = |at: usize| (at + align - 1) & !(align - 1);
        let mut start = aligned(self.bump);
        if self.bump == 0 || start + size > self.bump_end {
            let chunk = self.commit_chunk();
            if chunk == 0 {
                return null_mut();
            }
            self.bump_end = chunk + CHUNK;
            // Chunks are page aligned: only blocks above a page may skip a little of it.
            start = aligned(chunk);
        }
        self.bump = start + size;
        start as *mut u8
    }

    /// Makes the region's next chunk accessible; 0 when the region is used up or the kernel
    /// refuses (out of memory).
    fn commit_chunk(&mut self) -> usize {
        let base = region_base();
        if base == 0 || self.next_chunk + CHUNK > REGION_LEN.load(Ordering::Relaxed) {
            // No region (or used up): a chunk of its own; its blocks serve Rust only.
            return map(CHUNK, libc::PROT_READ | libc::PROT_WRITE, 0) as usize;
        }
        let chunk = base + self.next_chunk;
        // SAFETY: the chunk lies in our reserved region, which nothing else uses.
        let rc = unsafe { libc::mprotect(chunk as *mut libc::c_void, CHUNK, libc::PROT_READ | libc::PROT_WRITE) };
        if rc != 0 {
            return 0;
        }
        self.next_chunk += CHUNK;
        chunk
    }

    /// # Safety
    /// `ptr` is an unused block of `class`, from this heap.
    unsafe fn free(&mut self, ptr: *mut u8, class: usize) {
        let block = ptr.cast::<FreeBlock>();
        // SAFETY: the block is at least 16 bytes, aligned to its size, and unused.
        unsafe { (*block).next = self.free[class] };
        self.free[class] = block;
    }
}

// SAFETY: blocks are distinct, at least `layout.size()` bytes, aligned to `layout.align()`
// (every class block to 16; a request aligned to more takes a power-of-two class ≥ its
// alignment, whose blocks are aligned to their size; large blocks as mapped), and are handed
// out again only after `dealloc`, which finds the same class from the same layout.
unsafe impl GlobalAlloc for OwnHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = block_size(layout);
        if size > LARGEST_CLASS {
            return alloc_large(layout.size(), layout.align());
        }
        HEAP.lock().alloc(class_for(layout))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = block_size(layout);
        if size > LARGEST_CLASS {
            if let Some(len) = round_to_page(layout.size()) {
                // SAFETY: a large block is exactly the mapping `alloc_large` kept.
                unsafe { libc::munmap(ptr.cast(), len) };
            }
            return;
        }
        // SAFETY: GlobalAlloc's contract: ptr came from `alloc` with this layout, hence from
        // this class, and the caller no longer uses it.
        unsafe { HEAP.lock().free(ptr, class_for(layout)) };
    }
}

// ---------------------------------------------------------------- C blocks (malloc hooks)

/// Whether the calling thread is one of the library's own: its C allocations come from here.
pub fn on_own_thread() -> bool {
    crate::thread::with(|s| s.internal.get())
}

/// Whether `ptr` is a block of this heap (a C block, as handed out by `c_malloc`).
#[inline]
pub fn owns(ptr: *mut libc::c_void) -> bool {
    let base = REGION_BASE.load(Ordering::Relaxed);
    base != 0 && (ptr as usize).wrapping_sub(base) < REGION_LEN.load(Ordering::Relaxed)
}

/// malloc for the library's own threads: None when the block would exceed the largest class
/// (the caller then uses the next allocator), null when out of memory.
pub fn c_malloc(size: usize) -> Option<*mut libc::c_void> {
    // malloc(0) gets a block of its own (at least one byte): its address must be distinct.
    let total = size.max(1).checked_add(C_HEADER).filter(|&t| t <= LARGEST_CLASS)?;
    let class = class_of(total);
    let block = {
        let mut heap = HEAP.lock();
        let block = heap.alloc(class);
        if !block.is_null() && !owns(block.cast()) {
            // A block from outside the region (it could not be reserved, or is used up): C
            // blocks must be recognisable by address, so this request goes elsewhere.
            // SAFETY: the block was just taken from this class's list, unused.
            unsafe { heap.free(block, class) };
            return None;
        }
        block
    };
    if block.is_null() {
        // SAFETY: errno location is valid for this thread; malloc reports ENOMEM.
        unsafe { *libc::__errno_location() = libc::ENOMEM };
        return Some(null_mut());
    }
    // SAFETY: the block has at least `total` bytes; its first word records its class.
    unsafe { block.cast::<usize>().write(class) };
    // Sampled-or-special blocks are found by one filter test in the free hook: pin this one.
    let user = block.wrapping_add(C_HEADER).cast::<libc::c_void>();
    crate::collect::live_heap::pin(user as u64);
    Some(user)
}

/// The usable size of a C block of this heap.
///
/// # Safety
/// `ptr` is a live block from `c_malloc`.
pub unsafe fn c_usable_size(ptr: *mut libc::c_void) -> usize {
    // SAFETY: the caller's guarantee: the header lies just before ptr.
    let class = unsafe { ptr.cast::<u8>().sub(C_HEADER).cast::<usize>().read() };
    class_size(class) - C_HEADER
}

/// free for a block of this heap.
///
/// # Safety
/// `ptr` is a live block from `c_malloc`, not used after this call.
pub unsafe fn c_free(ptr: *mut libc::c_void) {
    // SAFETY: the caller's guarantee: the header lies just before ptr.
    let block = unsafe { ptr.cast::<u8>().sub(C_HEADER) };
    // SAFETY: as above; the header holds the class the block was allocated from.
    let class = unsafe { block.cast::<usize>().read() };
    // SAFETY: the block is unused from now on and belongs to `class`.
    unsafe { HEAP.lock().free(block, class) };
}

/// In a forked child: a heap the parent's threads were changing at the fork may be half
/// updated; it is abandoned (its blocks stay readable, live ones are freed into the new
/// lists, which is sound: a block's class comes from its layout or header, not the lists).
pub fn after_fork_in_child() {
    if !HEAP.is_locked() {
        return;
    }
    // SAFETY: the holder was a parent thread, which does not exist in the child.
    unsafe { HEAP.force_unlock() };
    let mut heap = HEAP.lock();
    // The chunks already committed stay ours; carving resumes after them.
    let next_chunk = heap.next_chunk;
    *heap = Heap { next_chunk, ..EMPTY };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_hold_their_sizes() {
        assert_eq!(class_of(1), 0);
        assert_eq!(class_of(16), 0);
        assert_eq!(class_of(17), 1);
        assert_eq!(class_of(LARGEST_CLASS), CLASSES - 1);
        assert_eq!(class_size(CLASSES - 1), LARGEST_CLASS);
        assert_eq!((class_size(class_of(300)), class_size(class_of(65)), class_size(class_of(129))), (320, 80, 160));
        for size in 1..=LARGEST_CLASS {
            let class = class_of(size);
            assert!(class_size(class) >= size, "{size}");
            assert!(class == 0 || class_size(class - 1) < size, "{size}: a smaller class holds it");
            assert!(class_size(class) % MIN_ALIGN == 0);
            assert!(size <= 64 || class_size(class) * 4 < size * 5, "{size}: over a fifth wasted");
        }
        for class in 1..CLASSES {
            assert!(class_size(class) > class_size(class - 1));
        }
    }

    #[test]
    fn blocks_are_aligned_distinct_and_reused() {
        // The global heap serves the other tests' threads too: the reuse check uses a heap of
        // its own (sharing the region); sizes above the largest class go through OwnHeap.
        let mut heap = Heap { next_chunk: 0, ..EMPTY };
        {
            // Reserve chunks of the region for this heap alone, past the global heap's.
            let mut global = HEAP.lock();
            region_base();
            heap.next_chunk = global.next_chunk;
            global.next_chunk += 8 * CHUNK;
        }
        let mut blocks = Vec::new();
        for (size, align) in [(1, 1), (24, 8), (100, 64), (4000, 4096), (70_000, 8), (200_000, 65536), (3, 2048), (20_000, 16384), (300, 8), (80, 16), (48, 32), (5000, 8)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            let class_block = block_size(layout) <= LARGEST_CLASS;
            let p = if class_block {
                heap.alloc(class_for(layout))
            } else {
                // SAFETY: a valid, non-zero layout.
                unsafe { OwnHeap.alloc(layout) }
            };
            assert!(!p.is_null() && p as usize % align == 0, "{size}/{align}");
            // SAFETY: the block has `size` bytes.
            unsafe { std::ptr::write_bytes(p, 0xa5, size) };
            blocks.push((p, layout, class_block));
        }
        for (i, &(p, l, _)) in blocks.iter().enumerate() {
            for &(q, m, _) in &blocks[i + 1..] {
                let (a, b) = (p as usize, q as usize);
                assert!(a + l.size() <= b || b + m.size() <= a, "blocks overlap");
            }
        }
        let (p, layout, _) = blocks[1];
        // SAFETY: allocated above from this class, no longer used.
        unsafe { heap.free(p, class_for(layout)) };
        assert_eq!(heap.alloc(class_of(32)), p, "a freed block of the class is reused");
        for (p, layout, class_block) in blocks {
            if !class_block {
                // SAFETY: allocated above with this layout.
                unsafe { OwnHeap.dealloc(p, layout) };
            }
        }
    }

    #[test]
    fn an_internal_thread_keeps_allocating_from_the_own_heap() {
        // Through the malloc hooks (this test binary links them in, as the library does).
        std::thread::spawn(|| {
            crate::thread::mark_internal();
            // SAFETY: plain C allocations, each freed once.
            unsafe {
                let big = libc::calloc(1, 100_000); // above the largest class: the next allocator's
                assert!(!big.is_null() && !owns(big));
                let small = libc::malloc(32);
                assert!(owns(small), "after a block the own heap could not serve, the thread drifted back to malloc");
                let zero = libc::malloc(0);
                let zero2 = libc::malloc(0);
                assert!(owns(zero) && zero != zero2 && libc::malloc_usable_size(zero) >= 1);
                let grown = libc::realloc(small, 1000);
                assert!(owns(grown) && libc::malloc_usable_size(grown) >= 1000);
                for p in [grown, zero, zero2, big] {
                    libc::free(p);
                }
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn c_blocks_are_owned_sized_and_freed() {
        let p = c_malloc(100).expect("a class block").cast::<u8>();
        assert!(!p.is_null() && p as usize % 16 == 0);
        assert!(owns(p.cast()));
        // SAFETY: p is a live C block.
        assert!(unsafe { c_usable_size(p.cast()) } >= 100);
        // SAFETY: p has 100 bytes.
        unsafe { std::ptr::write_bytes(p, 1, 100) };
        assert!(crate::collect::live_heap::maybe_tracked(p as u64), "the free hook would not look at it");
        // SAFETY: p is a live C block, not used after.
        unsafe { c_free(p.cast()) };
        assert!(c_malloc(LARGEST_CLASS).is_none(), "too big for a class");
        let on_stack = 0u64;
        assert!(!owns(&on_stack as *const u64 as *mut libc::c_void));
    }
}
