//! [`MatrixRows`]: a weight seen as a matrix `[rows, cols]` (axis 0 × the rest, row-major)
//! whose rows are decoded on demand into f32 — from an f32 tensor, from fp16 bytes, or from
//! packed LUT indices and their tables — so kernels dequantise one tile at a time instead
//! of holding a dense f32 copy of the weight.
//!
//! Invariant (checked by the constructors): the storage holds exactly `rows · cols`
//! elements, and for a LUT every row's group has a table of `entries = 2^bits` values.
//! [`MatrixRows::fill`] writes exactly the f32 values the dense tensor would hold: fp16 →
//! f32 is exact, and `lut_to_dense` copies table entries.

use half::f16;

/// See the module docs.
#[derive(Clone, Copy)]
pub enum MatrixRows<'a> {
    Dense { values: &'a [f32], rows: usize, cols: usize },
    F16 { bytes: &'a [u8], rows: usize, cols: usize },
    Lut { indices: &'a [u8], bits: u32, table: &'a [f32], rows_per_group: usize, rows: usize, cols: usize },
}

impl<'a> MatrixRows<'a> {
    /// f32 values, `rows · cols` of them.
    pub fn dense(values: &'a [f32], rows: usize, cols: usize) -> Result<Self, String> {
        check(rows, cols, values.len(), 1, 1)?;
        Ok(MatrixRows::Dense { values, rows, cols })
    }

    /// fp16 little-endian bytes, `2 · rows · cols` of them.
    pub fn f16(bytes: &'a [u8], rows: usize, cols: usize) -> Result<Self, String> {
        check(rows, cols, bytes.len(), 16, 8)?;
        Ok(MatrixRows::F16 { bytes, rows, cols })
    }

    /// Packed `bits`-bit indices (MIL bit order) and a table of `groups` rows of `2^bits`
    /// values; `rows` must be a multiple of `groups`.
    pub fn lut(indices: &'a [u8], bits: u32, table: &'a [f32], rows: usize, cols: usize) -> Result<Self, String> {
        if !(1..=8).contains(&bits) {
            return Err(format!("{bits}-bit indices are not supported"));
        }
        check(rows, cols, indices.len(), bits as usize, 8)?;
        let entries = 1usize << bits;
        let groups = table.len() / entries;
        if groups == 0 || groups * entries != table.len() || !rows.is_multiple_of(groups) {
            return Err(format!("a table of {} values does not fit {rows} rows of {bits}-bit indices", table.len()));
        }
        Ok(MatrixRows::Lut { indices, bits, table, rows_per_group: rows / groups, rows, cols })
    }

    pub fn rows(&self) -> usize {
        match *self {
            MatrixRows::Dense { rows, .. } | MatrixRows::F16 { rows, .. } | MatrixRows::Lut { rows, .. } => rows,
        }
    }

    pub fn cols(&self) -> usize {
        match *self {
            MatrixRows::Dense { cols, .. } | MatrixRows::F16 { cols, .. } | MatrixRows::Lut { cols, .. } => cols,
        }
    }

    /// Row `r` (< `rows`) as f32 into `out` (`cols` long).
    pub fn fill(&self, r: usize, out: &mut [f32]) {
        match *self {
            MatrixRows::Dense { values, cols, .. } => out.copy_from_slice(&values[r * cols..(r + 1) * cols]),
            MatrixRows::F16 { bytes, cols, .. } => {
                // Through a stack buffer of halves and `half`'s slice conversion (F16C /
                // 8 lanes at a time where the CPU has it): exact, as the scalar `to_f32`,
                // but 5–8× faster on a matrix–vector product (bench/gemm-compare.sh).
                use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
                let row = &bytes[2 * r * cols..2 * (r + 1) * cols];
                // SAFETY: every bit pattern is a valid u16; only the aligned middle is used.
                let (head, bits, _) = unsafe { row.align_to::<u16>() };
                if cfg!(target_endian = "little") && head.is_empty() && bits.len() == cols {
                    // The usual case: blobs in weight.bin are 64-byte aligned in the map.
                    bits.reinterpret_cast::<f16>().convert_to_f32_slice(out);
                    return;
                }
                let mut halves = [f16::ZERO; 512];
                for (out, src) in out.chunks_mut(halves.len()).zip(row.chunks(2 * halves.len())) {
                    let h = &mut halves[..out.len()];
                    for (dst, c) in h.iter_mut().zip(src.chunks_exact(2)) {
                        *dst = f16::from_bits(u16::from_le_bytes([c[0], c[1]]));
                    }
                    h.convert_to_f32_slice(out);
                }
            }
            MatrixRows::Lut { indices, bits, table, rows_per_group, cols, .. } => {
                let entries = 1usize << bits;
                let g = r / rows_per_group;
                let t: &[f32; 256] = &widen(&table[g * entries..(g + 1) * entries]);
                unpack_lookup(indices, bits, r * cols, t, out);
            }
        }
    }

    /// For a LUT matrix whose row `r` starts on a byte: the packed stream, the bit width,
    /// the row's first byte and its group's table padded to 256 entries (into `table`).
    pub fn lut_row(&self, r: usize, table: &mut [f32; 256]) -> Option<(&'a [u8], u32, usize)> {
        let MatrixRows::Lut { indices, bits, table: tables, rows_per_group, cols, .. } = *self else {
            return None;
        };
        let bit = r * cols * bits as usize;
        let entries = 1usize << bits;
        let g = r / rows_per_group;
        table[..entries].copy_from_slice(&tables[g * entries..(g + 1) * entries]);
        bit.is_multiple_of(8).then_some((indices, bits, bit / 8))
    }

    /// Row `r` borrowed without a copy, when the storage is f32.
    pub fn borrow(&self, r: usize) -> Option<&'a [f32]> {
        match *self {
            MatrixRows::Dense { values, cols, .. } => Some(&values[r * cols..(r + 1) * cols]),
            _ => None,
        }
    }
}

fn check(rows: usize, cols: usize, len: usize, bits_per: usize, unit: usize) -> Result<(), String> {
    let need = rows.checked_mul(cols).and_then(|n| n.checked_mul(bits_per)).map(|b| b.div_ceil(unit));
    if need != Some(len) {
        return Err(format!("storage of {len} units does not hold a {rows}×{cols} matrix"));
    }
    Ok(())
}

/// A table padded to 256 entries, so that any `u8` index is in bounds without a check (the
/// unpacked indices are below `2^bits` by construction).
fn widen(table: &[f32]) -> [f32; 256] {
    let mut t = [0.0f32; 256];
    t[..table.len()].copy_from_slice(table);
    t
}

/// Writes `table[index]` for the `out.len()` indices starting at element `first` of the
/// packed stream. Straight-line code for 4, 6 and 8 bits on byte-aligned starts.
fn unpack_lookup(bytes: &[u8], bits: u32, first: usize, t: &[f32; 256], out: &mut [f32]) {
    let bit = first * bits as usize;
    if bit.is_multiple_of(8) {
        let done = super::lut_simd::lookup_rows(bytes, bits, bit / 8, t, out);
        if done > 0 {
            return unpack_lookup(bytes, bits, first + done, t, &mut out[done..]);
        }
        let b = &bytes[bit / 8..];
        match bits {
            8 => {
                for (o, &i) in out.iter_mut().zip(b) {
                    *o = t[i as usize];
                }
                return;
            }
            4 if out.len().is_multiple_of(2) => {
                for (o, &v) in out.chunks_exact_mut(2).zip(b) {
                    o[0] = t[(v & 0x0f) as usize];
                    o[1] = t[(v >> 4) as usize];
                }
                return;
            }
            6 if out.len().is_multiple_of(4) => {
                for (o, v) in out.chunks_exact_mut(4).zip(b.chunks_exact(3)) {
                    let w = u32::from(v[0]) | u32::from(v[1]) << 8 | u32::from(v[2]) << 16;
                    o[0] = t[(w & 0x3f) as usize];
                    o[1] = t[((w >> 6) & 0x3f) as usize];
                    o[2] = t[((w >> 12) & 0x3f) as usize];
                    o[3] = t[(w >> 18) as usize];
                }
                return;
            }
            _ => {}
        }
    }
    let mask = (1u32 << bits) - 1;
    for (k, o) in out.iter_mut().enumerate() {
        let at = bit + k * bits as usize;
        let (byte, shift) = (at / 8, at % 8);
        let lo = u32::from(bytes[byte]);
        let hi = bytes.get(byte + 1).map_or(0, |&v| u32::from(v));
        *o = t[(((lo | hi << 8) >> shift) & mask) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mil::blob::pack::pack_bits;

    /// fp16 rows decode to `f16::to_f32` of every element, whether the bytes are 2-byte
    /// aligned (the slice-conversion fast path) or not (through the stack buffer), for
    /// rows shorter and longer than the buffer.
    #[test]
    fn f16_rows_equal_the_scalar_conversion_aligned_or_not() {
        for (rows, cols) in [(3usize, 5usize), (2, 512), (2, 1300)] {
            let bits: Vec<u16> = (0..rows * cols).map(|i| (i as u16).wrapping_mul(40503) ^ 0x3c00).collect();
            let mut store = vec![0u8; 2 * rows * cols + 2];
            for shift in [0usize, 1] {
                // One of the two offsets is odd, whatever the allocation's alignment.
                let bytes = &mut store[shift..shift + 2 * rows * cols];
                for (b, v) in bytes.chunks_exact_mut(2).zip(&bits) {
                    b.copy_from_slice(&v.to_le_bytes());
                }
                let m = MatrixRows::f16(bytes, rows, cols).unwrap();
                let mut out = vec![0f32; cols];
                for r in 0..rows {
                    m.fill(r, &mut out);
                    for (c, o) in out.iter().enumerate() {
                        let want = f16::from_bits(bits[r * cols + c]).to_f32();
                        assert!(o.to_bits() == want.to_bits(), "{rows}×{cols}, shift {shift}, ({r}, {c})");
                    }
                }
            }
        }
    }

    #[test]
    fn lut_rows_equal_the_table_entries_at_every_width_and_offset() {
        for bits in [1u32, 2, 3, 4, 6, 8] {
            let entries = 1usize << bits;
            // Odd column counts put row starts off byte boundaries (the general loop).
            // (8, 64) and (2, 40) take the vector path for most groups of 16.
            for (rows, cols) in [(4usize, 12usize), (6, 7), (2, 16), (4, 5), (8, 64), (2, 40)] {
                let idx: Vec<u8> = (0..rows * cols).map(|i| ((i * 37 + 11) % entries) as u8).collect();
                let packed = pack_bits(idx.iter().copied(), bits);
                let table: Vec<f32> = (0..2 * entries).map(|i| i as f32 * 0.5 - 3.0).collect();
                let m = MatrixRows::lut(&packed, bits, &table, rows, cols).unwrap();
                let mut row = vec![0.0; cols];
                for r in 0..rows {
                    m.fill(r, &mut row);
                    let g = r / (rows / 2);
                    let want: Vec<f32> =
                        idx[r * cols..(r + 1) * cols].iter().map(|&i| table[g * entries + i as usize]).collect();
                    assert_eq!(row, want, "{bits} bits, {rows}×{cols}, row {r}");
                }
            }
        }
    }

    #[test]
    fn f16_rows_decode_exactly_and_sizes_are_checked() {
        let values = [1.5f32, -0.25, 65504.0, 0.0, 3.0, -7.0];
        let bytes: Vec<u8> = values.iter().flat_map(|&v| f16::from_f32(v).to_bits().to_le_bytes()).collect();
        let m = MatrixRows::f16(&bytes, 2, 3).unwrap();
        let mut row = [0.0; 3];
        m.fill(1, &mut row);
        assert_eq!(row, [0.0, 3.0, -7.0]);
        assert!(MatrixRows::f16(&bytes[..10], 2, 3).is_err());
        assert!(MatrixRows::lut(&[0; 3], 6, &[0.0; 64], 3, 2).is_err(), "36 bits need 5 bytes");
        assert!(MatrixRows::lut(&[0; 5], 6, &[0.0; 100], 3, 2).is_err(), "not whole tables");
        assert!(MatrixRows::lut(&[0; 5], 6, &[0.0; 128], 3, 2).is_err(), "3 rows in 2 groups");
    }
}
