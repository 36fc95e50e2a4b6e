//! The machine code of `_PyEval_EvalFrameDefault`, whose native frames are replaced by the
//! Python frames they run (`profile/python_frames.rs`) and counted when a deep stack is cut
//! (`sample/both_ends.rs`).
//!
//! Its dynamic symbol gives one range. A compiler may move part of the function elsewhere:
//! GCC's hot/cold splitting puts blocks it thinks rarely run into a `.cold` fragment, far away
//! in `.text.unlikely`, with an unwind entry (FDE) of its own and no symbol in a stripped
//! binary. Debian's CPython 3.14 and 3.15 (GCC 16) move almost the whole evaluation loop there
//! — the symbol keeps ~1 KiB of entry and exit code — so a thread running Python code sits in
//! the fragment, and the symbol's range alone would find no evaluation frame in its stack.
//!
//! The fragments are found from the unwind tables, once, on the cold side: the FDEs that
//! contain the target of a direct jump (`jmp rel32`, `jcc rel32`) of the symbol's code, that
//! do not start like a function (their unwind rules redefine the CFA before the first
//! instruction: the frame was set up in the part that jumped there), and that jump back into
//! the symbol's code. The byte scan may see jumps that are not instructions; the last two
//! conditions make such a false match land nowhere.
//!
//! `EvalCode` itself is a fixed array: the hot side tests addresses against it.

use std::fmt;
use std::ops::Range;

/// The symbol's range plus at most this many fragments minus one.
const MAX_PARTS: usize = 4;
/// Longest fragment scanned for its jumps back.
const MAX_FRAGMENT: u64 = 4 << 20;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvalCode {
    /// [start, end) pairs; the first is the symbol's.
    parts: [(u64, u64); MAX_PARTS],
    n: usize,
}

impl From<Range<u64>> for EvalCode {
    fn from(r: Range<u64>) -> Self {
        let mut e = EvalCode::default();
        if !r.is_empty() {
            e.parts[0] = (r.start, r.end);
            e.n = 1;
        }
        e
    }
}

impl EvalCode {
    /// Hot side: whether `addr` is code of the evaluation loop.
    #[inline]
    pub fn contains(&self, addr: u64) -> bool {
        self.parts[..self.n].iter().any(|&(s, e)| s <= addr && addr < e)
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The function's own address (its symbol's), 0 when unknown.
    pub fn entry(&self) -> u64 {
        if self.n == 0 {
            0
        } else {
            self.parts[0].0
        }
    }

    /// The parts moved out of the symbol's range.
    pub fn fragments(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.parts[..self.n].iter().skip(1).map(|&(s, e)| s..e)
    }

    /// Cold side: the symbol's range and the fragments its code jumps to (see the module doc).
    pub fn find(symbol: Range<u64>) -> EvalCode {
        let mut code = EvalCode::from(symbol.clone());
        if symbol.is_empty() {
            return code;
        }
        for fragment in with_image(symbol.start, |image| fragments(image, &symbol)).unwrap_or_default() {
            if code.n < MAX_PARTS {
                code.parts[code.n] = (fragment.start, fragment.end);
                code.n += 1;
            }
        }
        code
    }
}

impl fmt::Display for EvalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.n == 0 {
            return write!(f, "unknown");
        }
        write!(f, "{:#x}..{:#x}", self.parts[0].0, self.parts[0].1)?;
        for r in self.fragments() {
            write!(f, " and a part moved out at {:#x}..{:#x}", r.start, r.end)?;
        }
        Ok(())
    }
}

/// The readable loaded segments of one module, and its `.eh_frame_hdr`.
struct Image {
    bias: u64,
    readable: Vec<Range<u64>>,
    eh_frame_hdr: Range<u64>,
}

impl Image {
    /// The module's bytes at [addr, addr + len), if one readable segment holds them.
    fn bytes(&self, addr: u64, len: u64) -> Option<&[u8]> {
        let end = addr.checked_add(len)?;
        self.readable.iter().find(|r| r.start <= addr && end <= r.end)?;
        // SAFETY: inside a loaded, readable segment of a module that cannot be unloaded while
        // the loader lock is held (we run inside dl_iterate_phdr's callback).
        Some(unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize) })
    }

    /// The module's bytes from `addr` to the end of its segment.
    fn rest(&self, addr: u64) -> Option<&[u8]> {
        let r = self.readable.iter().find(|r| r.start <= addr && addr < r.end)?;
        self.bytes(addr, r.end - addr)
    }
}

/// Runs `f` on the module containing `addr`, inside `dl_iterate_phdr` (loader lock held).
fn with_image<R>(addr: u64, f: impl FnOnce(&Image) -> R) -> Option<R> {
    struct Search<'a, R> {
        addr: u64,
        f: Option<Box<dyn FnOnce(&Image) -> R + 'a>>,
        out: Option<R>,
    }
    unsafe extern "C" fn visit<R>(info: *mut libc::dl_phdr_info, _: libc::size_t, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: valid for the callback's duration; data is our Search.
        let (info, search) = unsafe { (&*info, &mut *(data as *mut Search<R>)) };
        // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let bias = info.dlpi_addr;
        let span = |p: &libc::Elf64_Phdr| bias + p.p_vaddr..bias + p.p_vaddr + p.p_memsz;
        let here = phdrs.iter().any(|p| p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_X != 0 && span(p).contains(&search.addr));
        if !here {
            return 0;
        }
        let Some(hdr) = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME) else { return 1 };
        let image = Image {
            bias,
            readable: phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_R != 0).map(span).collect(),
            eh_frame_hdr: span(hdr),
        };
        if let Some(f) = search.f.take() {
            search.out = Some(f(&image));
        }
        1
    }
    let mut search = Search { addr, f: Some(Box::new(f)), out: None };
    // SAFETY: the callback only touches the Search we pass, during the call.
    unsafe { libc::dl_iterate_phdr(Some(visit::<R>), (&mut search as *mut Search<R>).cast()) };
    search.out
}

/// Targets of the direct near jumps in `code` (at `addr`), read byte by byte.
fn jump_targets(code: &[u8], addr: u64) -> impl Iterator<Item = u64> + '_ {
    (0..code.len()).filter_map(move |i| {
        let rel = |at: usize| code.get(at..at + 4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64);
        let next = |len: usize| (addr + (i + len) as u64) as i64;
        match code[i] {
            0xe9 => Some((next(5) + rel(i + 1)?) as u64),
            0x0f if code.get(i + 1).is_some_and(|b| (0x80..=0x8f).contains(b)) => Some((next(6) + rel(i + 2)?) as u64),
            _ => None,
        }
    })
}

fn fragments(image: &Image, symbol: &Range<u64>) -> Vec<Range<u64>> {
    let Some(table) = FdeTable::new(image) else { return vec![] };
    let Some(code) = image.bytes(symbol.start, symbol.end - symbol.start) else { return vec![] };
    let mut found: Vec<Range<u64>> = Vec::new();
    let mut rejected: std::collections::HashSet<u64> = Default::default();
    for target in jump_targets(code, symbol.start) {
        if symbol.contains(&target) || found.iter().any(|r| r.contains(&target)) {
            continue;
        }
        let Some(fde) = table.containing(target) else { continue };
        if rejected.contains(&fde.range.start) {
            continue;
        }
        if fde.range.contains(&symbol.start) {
            continue;
        }
        let jumps_back = || {
            let len = (fde.range.end - fde.range.start).min(MAX_FRAGMENT);
            image.bytes(fde.range.start, len).is_some_and(|c| jump_targets(c, fde.range.start).any(|t| symbol.contains(&t)))
        };
        if fde.continues_a_frame && jumps_back() {
            found.push(fde.range);
            if found.len() == MAX_PARTS - 1 {
                break;
            }
        } else {
            rejected.insert(fde.range.start);
        }
    }
    found
}

struct Fde {
    range: Range<u64>,
    /// Its unwind rules redefine the CFA before the first instruction.
    continues_a_frame: bool,
}

/// The binary search table of `.eh_frame_hdr` (initial location → FDE), as GNU ld and lld
/// write it: entries of two `DW_EH_PE_datarel | DW_EH_PE_sdata4` words.
struct FdeTable<'a> {
    image: &'a Image,
    base: u64,
    entries: &'a [u8],
}

const DW_EH_PE_OMIT: u8 = 0xff;

impl<'a> FdeTable<'a> {
    fn new(image: &'a Image) -> Option<Self> {
        let base = image.eh_frame_hdr.start;
        let hdr = image.bytes(base, image.eh_frame_hdr.end - base)?;
        let (version, ptr_enc, count_enc, table_enc) = (*hdr.first()?, *hdr.get(1)?, *hdr.get(2)?, *hdr.get(3)?);
        if version != 1 || table_enc != 0x3b || ptr_enc == DW_EH_PE_OMIT || count_enc == DW_EH_PE_OMIT {
            return None;
        }
        let mut at = 4;
        let mut cursor = Cursor { bytes: hdr, at: 0, addr: base };
        cursor.at = at;
        cursor.pointer(ptr_enc, image.bias)?;
        let count = cursor.pointer(count_enc & 0x0f, 0)? as usize;
        at = cursor.at;
        let entries = hdr.get(at..at.checked_add(count.checked_mul(8)?)?)?;
        Some(FdeTable { image, base, entries })
    }

    fn entry(&self, i: usize) -> (u64, u64) {
        let word = |at: usize| i32::from_le_bytes(self.entries[at..at + 4].try_into().unwrap()) as i64;
        ((self.base as i64 + word(8 * i)) as u64, (self.base as i64 + word(8 * i + 4)) as u64)
    }

    /// The FDE whose range holds `addr`.
    fn containing(&self, addr: u64) -> Option<Fde> {
        let n = self.entries.len() / 8;
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.entry(mid).0 <= addr {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let (_, fde) = self.entry(lo.checked_sub(1)?);
        let fde = parse_fde(self.image, fde)?;
        fde.range.contains(&addr).then_some(fde)
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Address of `bytes[0]`.
    addr: u64,
}

impl Cursor<'_> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn uleb(&mut self) -> Option<u64> {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= ((b & 0x7f) as u64) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
    }
    fn sleb(&mut self) -> Option<i64> {
        let (mut v, mut shift) = (0i64, 0);
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= ((b & 0x7f) as i64) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1 << shift;
                }
                return Some(v);
            }
        }
    }
    /// A `DW_EH_PE_*`-encoded pointer: absolute values are link-time addresses (plus `bias`),
    /// pc-relative ones are relative to the field's own (loaded) address.
    fn pointer(&mut self, enc: u8, bias: u64) -> Option<u64> {
        let field = self.addr + self.at as u64;
        let raw: i64 = match enc & 0x0f {
            0x00 | 0x04 | 0x0c => i64::from_le_bytes(self.take(8)?.try_into().ok()?),
            0x01 => self.uleb()? as i64,
            0x02 => u16::from_le_bytes(self.take(2)?.try_into().ok()?) as i64,
            0x03 => u32::from_le_bytes(self.take(4)?.try_into().ok()?) as i64,
            0x09 => self.sleb()?,
            0x0a => i16::from_le_bytes(self.take(2)?.try_into().ok()?) as i64,
            0x0b => i32::from_le_bytes(self.take(4)?.try_into().ok()?) as i64,
            _ => return None,
        };
        match enc & 0x70 {
            0x00 => Some((raw as u64).wrapping_add(bias)),
            0x10 => Some(field.wrapping_add(raw as u64)),
            _ => None,
        }
    }
}

/// The range of the FDE at `addr` and whether it continues a frame set up elsewhere.
fn parse_fde(image: &Image, addr: u64) -> Option<Fde> {
    let record = |at: u64| -> Option<(Cursor<'_>, u64)> {
        let rest = image.rest(at)?;
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        if len == 0 || len == 0xffff_ffff {
            return None; // terminator, or a 64-bit record (never written for x86-64 code)
        }
        Some((Cursor { bytes: rest.get(..4 + len)?, at: 4, addr: at }, at + 4))
    };
    let (mut fde, id_at) = record(addr)?;
    let cie_pointer = u32::from_le_bytes(fde.take(4)?.try_into().ok()?) as u64;
    if cie_pointer == 0 {
        return None; // a CIE
    }
    let (mut cie, _) = record(id_at.checked_sub(cie_pointer)?)?;
    if cie.take(4)? != [0, 0, 0, 0] {
        return None;
    }
    let version = cie.u8()?;
    let mut augmentation = Vec::new();
    loop {
        match cie.u8()? {
            0 => break,
            c => augmentation.push(c),
        }
    }
    cie.uleb()?; // code alignment
    cie.sleb()?; // data alignment
    if version == 1 {
        cie.u8()?;
    } else {
        cie.uleb()?;
    }
    let mut fde_enc = 0u8;
    let z = augmentation.first() == Some(&b'z');
    if z {
        cie.uleb()?; // augmentation data length: 'R' is all that is read of it
        for &c in &augmentation[1..] {
            match c {
                b'R' => fde_enc = cie.u8()?,
                b'L' => {
                    cie.u8()?;
                }
                b'P' => {
                    let enc = cie.u8()?;
                    cie.pointer(enc & 0x0f, 0)?;
                }
                b'S' | b'B' => {}
                _ => break,
            }
        }
    } else if !augmentation.is_empty() {
        return None;
    }
    let start = fde.pointer(fde_enc, image.bias)?;
    let len = fde.pointer(fde_enc & 0x0f, 0)?;
    if z {
        let skip = fde.uleb()? as usize;
        fde.take(skip)?;
    }
    let continues_a_frame = redefines_cfa_first(&mut fde, fde_enc);
    Some(Fde { range: start..start.checked_add(len)?, continues_a_frame })
}

/// Whether the call frame instructions define the CFA before their first location advance.
fn redefines_cfa_first(c: &mut Cursor, enc: u8) -> bool {
    let mut step = || -> Option<Option<bool>> {
        let op = c.u8()?;
        Some(match op >> 6 {
            1 => Some(false),            // DW_CFA_advance_loc
            2 => c.uleb().map(|_| None)?, // DW_CFA_offset
            3 => None,                   // DW_CFA_restore
            _ => match op {
                0x00 | 0x0a | 0x0b => None,                   // nop, remember_state, restore_state
                0x02..=0x04 => Some(false),                   // advance_loc1/2/4
                0x0c..=0x0f | 0x12 | 0x13 => Some(true),      // def_cfa, _register, _offset, _expression, _sf, _offset_sf
                0x01 => c.pointer(enc, 0).map(|_| Some(false))?, // set_loc
                0x06..=0x08 | 0x2e => c.uleb().map(|_| None)?,
                0x05 | 0x09 | 0x14 | 0x2f => c.uleb().and_then(|_| c.uleb()).map(|_| None)?,
                0x11 | 0x15 => c.uleb().and_then(|_| c.sleb()).map(|_| None)?,
                0x10 | 0x16 => {
                    c.uleb()?;
                    let n = c.uleb()? as usize;
                    c.take(n).map(|_| None)?
                }
                _ => Some(false),
            },
        })
    };
    for _ in 0..64 {
        match step() {
            Some(None) => continue,
            Some(Some(answer)) => return answer,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_targets_decode_rel32() {
        // jmp +0x10 at 0x1000 (next 0x1005), jne -0x20 at 0x1005 (next 0x100b)
        let code = [0xe9, 0x10, 0, 0, 0, 0x0f, 0x85, 0xe0, 0xff, 0xff, 0xff];
        let t: Vec<u64> = jump_targets(&code, 0x1000).collect();
        assert!(t.contains(&0x1015) && t.contains(&(0x100b - 0x20)), "{t:x?}");
    }

    #[test]
    fn ranges_answer_containment() {
        let mut e = EvalCode::from(100..200);
        assert!(e.contains(100) && e.contains(199) && !e.contains(200) && !e.contains(50));
        e.parts[1] = (10, 20);
        e.n = 2;
        assert!(e.contains(15) && e.entry() == 100);
        assert!(EvalCode::from(0..0).is_empty());
    }

    /// In this test binary, a function's FDE starts a frame: nothing in it continues one.
    #[test]
    fn this_binary_has_an_fde_table_and_functions_start_frames() {
        let here = ranges_answer_containment as *const () as u64;
        let fde = with_image(here, |image| {
            let table = FdeTable::new(image).expect(".eh_frame_hdr with a search table");
            table.containing(here).map(|f| (f.range, f.continues_a_frame))
        })
        .flatten()
        .expect("an FDE for a Rust function");
        assert!(fde.0.contains(&here));
        assert!(!fde.1, "a function's FDE redefines the CFA before its first instruction");
    }
}
