//! After each export, the library lets go of its own code pages.
//!
//! An export runs code nothing else runs (symbolization, pprof encoding, compression, HTTP):
//! about 2 MiB of the library's text, which stayed resident — counted in the program's RSS —
//! until the next export needed it again. `MADV_DONTNEED` on the library's executable segment
//! drops those pages from this process's page tables; they stay in the page cache, so the
//! next export maps them back with a few page faults (fault-around maps 16 pages at a time,
//! ~5 µs each here). The hot side's few pages (hooks, signal handler) come back at their
//! next call the same way. Only the read-only, never-written text is dropped: for a private
//! file mapping that nobody wrote, dropping a page and faulting it in again gives back the
//! same bytes, which is what reclaim does to it at any time anyway.

/// Drops the library's text pages from this process's page tables (see the module doc).
pub fn release() {
    let Some(text) = crate::profile::aggregate::own_text() else { return };
    let page = 4096u64;
    let start = text.start & !(page - 1);
    let end = (text.end + page - 1) & !(page - 1);
    // SAFETY: [start, end) covers the library's own executable PT_LOAD segment, a private,
    // read-only file mapping: MADV_DONTNEED only removes page-table entries, and any later
    // access (including the instructions of this very function) faults the same file bytes
    // back in.
    unsafe { libc::madvise(start as *mut libc::c_void, (end - start) as usize, libc::MADV_DONTNEED) };
}
