//! A forked child that recorded nothing hands its (empty) profile to its parent, which
//! writes it.
//!
//! Fork-heavy programs (`fork` + `_exit` workers, shells) mostly make children that live for
//! a fraction of a millisecond and record no sample at all. Their profile still has to exist
//! — one per process, under the child's own pid — but creating a file costs such a child more
//! than its whole life (26 µs for the file alone on this machine's ext4, against a
//! 120 µs `fork` + `wait` round trip; far more after a test run deleted thousands of files),
//! and it would also run the whole exporter (symbolizer, encoder) in a process about to vanish.
//! So the child posts three numbers (pid, start, end) to a page it shares with its parent, and
//! the parent's exporter thread writes the profile: byte for byte what the child would have
//! written, with the child's pid in the name (or, with uploads, uploads it tagged with the
//! child's pid and a runtime id of the child's own).
//!
//! The page (`MAP_SHARED`, so both processes see the same memory after the fork) is made by
//! the parent in its fork prepare handler, only while its exporter thread runs. Each slot goes EMPTY → FILLING (a child claimed it) → POSTED → TAKEN (by the
//! parent, or by the child itself taking it back) → EMPTY. The parent stops accepting when its
//! exit begins (`stop_accepting`), and after its final export (or its timeout) the exiting
//! thread takes every posted slot left, whatever its exporter thread managed; a child posts,
//! then reads `accepting`, and if it is clear tries to take its slot back and write its own
//! file. Both sides use sequentially consistent operations, so one of them sees the other, and
//! the slot's compare-and-swap makes exactly one of them write. A parent killed by a signal
//! before it took its children's slots loses their empty profiles (as it loses its own last
//! one); a child checks that its parent is still alive (`getppid`) before posting.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering::SeqCst};

const EMPTY: u32 = 0;
const FILLING: u32 = 1;
const POSTED: u32 = 2;
const TAKEN: u32 = 3;

/// About 48 KiB of slots: at the exporter's 100 ms drain interval, room for 20 000 forks a
/// second. Pages never touched cost nothing (shared anonymous memory is allocated on first use).
const SLOTS: usize = 2047;

#[repr(C)]
struct Slot {
    state: AtomicU32,
    pid: AtomicI32,
    start_ns: AtomicU64,
    end_ns: AtomicU64,
}

#[repr(C)]
struct Page {
    /// The pid of the process whose exporter takes the slots.
    owner: AtomicI32,
    accepting: AtomicBool,
    /// Where the next child starts looking for an empty slot.
    next: AtomicU32,
    slots: [Slot; SLOTS],
}

/// The page this process's children post to (made before its first fork), and the page this
/// process posts to (its parent's, inherited at the fork).
static MINE: AtomicPtr<Page> = AtomicPtr::new(std::ptr::null_mut());
static PARENTS: AtomicPtr<Page> = AtomicPtr::new(std::ptr::null_mut());

/// A quiet child's profile, as posted.
pub struct Posted {
    pub pid: i32,
    pub start_ns: u64,
    pub end_ns: u64,
}

fn page(ptr: &AtomicPtr<Page>) -> Option<&'static Page> {
    let p = ptr.load(SeqCst);
    // SAFETY: non-null pointers here come from `map_page`: a zero-filled shared mapping of a
    // whole `Page`, never unmapped, holding only atomics (valid for any bit pattern).
    (!p.is_null()).then(|| unsafe { &*p })
}

/// In the parent's fork prepare handler: make the page on the first fork, if this process can
/// take its children's profiles (its exporter thread runs).
pub fn before_fork(can_take: bool) {
    if !can_take || !MINE.load(SeqCst).is_null() {
        return;
    }
    let Some(p) = map_page() else { return };
    // SAFETY: getpid has no preconditions.
    p.owner.store(unsafe { libc::getpid() }, SeqCst);
    p.accepting.store(true, SeqCst);
    MINE.store(p as *const Page as *mut Page, SeqCst);
}

fn map_page() -> Option<&'static Page> {
    let p = crate::family::map_shared(std::mem::size_of::<Page>())?;
    // SAFETY: as in `page`: zero-filled, page-aligned, large enough, never unmapped.
    Some(unsafe { &*(p as *const Page) })
}

/// In a forked child: its parent's page is where it posts; its own children get a page of
/// their own when it first forks.
pub fn after_fork_in_child() {
    let parents = MINE.swap(std::ptr::null_mut(), SeqCst);
    PARENTS.store(parents, SeqCst);
}

/// In a quiet child at exit: posts its profile to the parent. False when the parent cannot
/// take it (no page, parent gone or closed, no empty slot): the child writes it itself.
pub fn post(start_ns: u64, end_ns: u64) -> bool {
    let Some(p) = page(&PARENTS) else { return false };
    // SAFETY: getppid and getpid have no preconditions.
    let (parent, pid) = unsafe { (libc::getppid(), libc::getpid()) };
    if parent != p.owner.load(SeqCst) || !p.accepting.load(SeqCst) {
        return false;
    }
    let Some(slot) = claim(p) else { return false };
    slot.pid.store(pid, SeqCst);
    slot.start_ns.store(start_ns, SeqCst);
    slot.end_ns.store(end_ns, SeqCst);
    slot.state.store(POSTED, SeqCst);
    if p.accepting.load(SeqCst) {
        return true;
    }
    // The parent closed meanwhile: whoever takes the slot first writes the profile.
    if slot.state.compare_exchange(POSTED, TAKEN, SeqCst, SeqCst).is_ok() {
        slot.state.store(EMPTY, SeqCst);
        return false;
    }
    true
}

fn claim(p: &Page) -> Option<&Slot> {
    let start = p.next.fetch_add(1, SeqCst) as usize;
    // A few probes: a full page means the parent is far behind, and the child does not wait.
    (0..16).map(|i| &p.slots[(start + i) % SLOTS]).find(|slot| slot.state.compare_exchange(EMPTY, FILLING, SeqCst, SeqCst).is_ok())
}

/// On the parent's exporter thread: takes every posted profile.
pub fn take_posted(mut each: impl FnMut(Posted)) {
    let Some(p) = page(&MINE) else { return };
    // SAFETY: getpid has no preconditions.
    if p.owner.load(SeqCst) != unsafe { libc::getpid() } {
        return;
    }
    for slot in &p.slots {
        if slot.state.load(SeqCst) != POSTED || slot.state.compare_exchange(POSTED, TAKEN, SeqCst, SeqCst).is_err() {
            continue;
        }
        let posted = Posted { pid: slot.pid.load(SeqCst), start_ns: slot.start_ns.load(SeqCst), end_ns: slot.end_ns.load(SeqCst) };
        each(posted);
        // Emptied only once written: the exiting thread waits for TAKEN slots (see below).
        slot.state.store(EMPTY, SeqCst);
    }
}

/// At exit, after taking what was left: waits (at most `limit`) until the profiles the
/// exporter thread took are written, so that exiting does not cut a write short.
pub fn wait_until_written(limit: std::time::Duration) {
    let Some(p) = page(&MINE) else { return };
    let deadline = std::time::Instant::now() + limit;
    while p.slots.iter().any(|slot| slot.state.load(SeqCst) == TAKEN) && std::time::Instant::now() < deadline {
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}

/// When the parent's profile ends (exit, exec): children that post from now on write their
/// own profiles. What was posted before must still be taken (`take_posted`).
pub fn stop_accepting() {
    let Some(p) = page(&MINE) else { return };
    // SAFETY: getpid has no preconditions.
    if p.owner.load(SeqCst) == unsafe { libc::getpid() } {
        p.accepting.store(false, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_posts_once_and_writes_itself_after_close() {
        let p = map_page().expect("maps");
        // SAFETY: getpid has no preconditions.
        p.owner.store(unsafe { libc::getpid() }, SeqCst);
        p.accepting.store(true, SeqCst);
        MINE.store(p as *const Page as *mut Page, SeqCst);
        // SAFETY: the child only touches atomics and its own statics, then leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            after_fork_in_child();
            let first = post(10, 20);
            // SAFETY: ends the child.
            unsafe { libc::_exit(if first { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(libc::WEXITSTATUS(status), 0, "the child could not post");
        let mut taken = Vec::new();
        take_posted(|posted| taken.push((posted.pid, posted.start_ns, posted.end_ns)));
        assert_eq!(taken, [(pid, 10, 20)]);
        take_posted(|_| panic!("a slot was taken twice"));
        stop_accepting();
        take_posted(|_| panic!("nothing is posted"));
        // SAFETY: as above.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            after_fork_in_child();
            let posted = post(10, 20);
            // SAFETY: ends the child.
            unsafe { libc::_exit(if posted { 1 } else { 0 }) };
        }
        // SAFETY: as above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(libc::WEXITSTATUS(status), 0, "a child posted to a closed parent");
        MINE.store(std::ptr::null_mut(), SeqCst);
    }
}
