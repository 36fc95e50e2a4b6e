//! Instruction offset → source line, for each version's line table format (cold side).
//!
//! - 3.8–3.9 `co_lnotab`: pairs (bytecode delta: u8, line delta: i8); the line of offset `x`
//!   is the first line plus the line deltas of every pair whose cumulative bytecode offset
//!   is ≤ `x`.
//! - 3.10 `co_linetable`: pairs (bytecode delta: u8, line delta: i8), each one the next range
//!   of `delta` bytes; its line is the running sum of line deltas, except that a line delta
//!   of -128 gives the range no line (and leaves the sum alone).
//! - 3.11+ locations table: entries of a header byte (bit 7 set, a 4-bit code, a 3-bit length
//!   in code units minus one) and code-dependent varints; codes 0–9 short form (same line),
//!   10–12 one-line form (line delta = code − 10), 13 no columns (signed varint line delta),
//!   14 long form (signed varint line delta, then end line, column, end column), 15 no
//!   location.
//!
//! Offsets are in bytes for every version (code units are 2 bytes).

/// The line of the instruction at byte `offset` in a 3.8–3.9 `co_lnotab`.
pub fn lnotab_line(table: &[u8], first_line: i32, offset: i64) -> Option<i32> {
    let mut line = first_line;
    let mut addr: i64 = 0;
    for pair in table.chunks_exact(2) {
        addr += pair[0] as i64;
        if addr > offset {
            break;
        }
        line += pair[1] as i8 as i32;
    }
    Some(line)
}

/// The line of the instruction at byte `offset` in a 3.10 `co_linetable`.
pub fn linetable310_line(table: &[u8], first_line: i32, offset: i64) -> Option<i32> {
    let mut line = first_line;
    let mut end: i64 = 0;
    for pair in table.chunks_exact(2) {
        let (sdelta, ldelta) = (pair[0] as i64, pair[1] as i8);
        let start = end;
        end += sdelta;
        let range_line = if ldelta == -128 {
            None
        } else {
            line += ldelta as i32;
            Some(line)
        };
        if (start..end).contains(&offset) {
            return range_line;
        }
    }
    None
}

/// The line of the instruction at byte `offset` in a 3.11+ locations table.
pub fn locations_line(table: &[u8], first_line: i32, offset: i64) -> Option<i32> {
    if offset < 0 {
        return None;
    }
    let unit = offset / 2;
    let mut line = first_line;
    let mut addr: i64 = 0;
    let mut i = 0;
    while i < table.len() {
        let header = table[i];
        i += 1;
        let code = (header >> 3) & 15;
        let length = (header & 7) as i64 + 1;
        let mut has_line = true;
        match code {
            15 => has_line = false,
            14 => {
                line += svarint(table, &mut i)?;
                for _ in 0..3 {
                    varint(table, &mut i)?;
                }
            }
            13 => line += svarint(table, &mut i)?,
            10..=12 => {
                line += code as i32 - 10;
                i += 2;
            }
            _ => i += 1,
        }
        if (addr..addr + length).contains(&unit) {
            return has_line.then_some(line);
        }
        addr += length;
    }
    None
}

fn varint(table: &[u8], i: &mut usize) -> Option<u32> {
    let mut value: u32 = 0;
    let mut shift = 0;
    loop {
        let b = *table.get(*i)?;
        *i += 1;
        value |= ((b & 63) as u32).checked_shl(shift)?;
        if b & 64 == 0 {
            return Some(value);
        }
        shift += 6;
        if shift > 30 {
            return None;
        }
    }
}

fn svarint(table: &[u8], i: &mut usize) -> Option<i32> {
    let v = varint(table, i)?;
    Some(if v & 1 != 0 {
        -((v >> 1) as i32)
    } else {
        (v >> 1) as i32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lnotab_accumulates_pairs_up_to_the_offset() {
        // offsets 0..6 line 10, 6..10 line 11, 10.. line 9
        let t = [6, 1, 4, (-2i8) as u8];
        assert_eq!(lnotab_line(&t, 10, 0), Some(10));
        assert_eq!(lnotab_line(&t, 10, 5), Some(10));
        assert_eq!(lnotab_line(&t, 10, 6), Some(11));
        assert_eq!(lnotab_line(&t, 10, 12), Some(9));
    }

    #[test]
    fn linetable310_ranges() {
        // [0,4) line 11, [4,10) line 12 (split in two pairs), [10,12) no line, [12,14) line 14
        let t = [4, 1, 2, 1, 4, 0, 2, (-128i8) as u8, 2, 2];
        assert_eq!(linetable310_line(&t, 10, 0), Some(11));
        assert_eq!(linetable310_line(&t, 10, 4), Some(12));
        assert_eq!(linetable310_line(&t, 10, 9), Some(12));
        assert_eq!(linetable310_line(&t, 10, 10), None);
        assert_eq!(linetable310_line(&t, 10, 12), Some(14));
        assert_eq!(linetable310_line(&t, 10, 14), None);
    }

    #[test]
    fn locations_forms() {
        let t = [
            0x80 | (13 << 3),
            2, // 1 unit, no columns, line +1 → 11
            0x80 | (10 << 3) | 1,
            0,
            5, // 2 units, one-line form, +0 → 11
            0x80 | (12 << 3),
            0,
            5,                // 1 unit, one-line form, +2 → 13
            0x80 | (15 << 3), // 1 unit, no location
            0x80 | (14 << 3),
            3,
            0,
            1,
            1, // 1 unit, long form, -1 → 12
            0x80 | (3 << 3),
            7, // 1 unit, short form → 12
        ];
        let line = |unit: i64| locations_line(&t, 10, unit * 2);
        assert_eq!(line(0), Some(11));
        assert_eq!(line(1), Some(11));
        assert_eq!(line(2), Some(11));
        assert_eq!(line(3), Some(13));
        assert_eq!(line(4), None);
        assert_eq!(line(5), Some(12));
        assert_eq!(line(6), Some(12));
        assert_eq!(line(7), None);
    }
}
