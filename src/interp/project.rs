//! [`project`]: multiplies rows of activations by a weight matrix given as [`MatrixRows`]
//! (f32, fp16 or LUT-packed), decoding the weight one tile of rows at a time, in parallel
//! over tiles of output channels. Decode (one activation row) is a matrix–vector product;
//! prefill reuses each decoded weight tile for every activation row.
//!
//! Every output element is one [`dots`] result (plus the bias), so its value does not
//! depend on the number of activation rows, the tiling or the thread count.

use std::cell::RefCell;

use rayon::prelude::*;

use super::dot::dots;
use super::lut_simd::{LutRow, lut_dots};
use super::rows::MatrixRows;

/// Output channels per parallel task.
const TILE: usize = 32;
/// Weight rows decoded and multiplied together.
const GROUP: usize = 4;

thread_local! {
    /// Decoded weight rows of the current task (reused across calls on this thread).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out[o · m + p] = dot(x[p], w[o]) + bias[o]` (bias 0 when absent) for the `m` rows of
/// `x` (each `w.cols()` long) and the `w.rows()` rows of `w`; `out` is `w.rows() · m` long.
/// Panics on mismatched lengths (callers check shapes first).
pub fn project(x: &[f32], m: usize, w: &MatrixRows<'_>, bias: Option<&[f32]>, out: &mut [f32]) {
    let (n, k) = (w.rows(), w.cols());
    assert!(x.len() == m * k && out.len() == n * m && bias.is_none_or(|b| b.len() == n), "project: shapes");
    if m == 0 || n == 0 {
        return;
    }
    let add = |o: usize| bias.map_or(0.0, |b| b[o]);
    out.par_chunks_mut(TILE * m).enumerate().for_each(|(t, chunk)| {
        SCRATCH.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            if buf.len() < GROUP * k {
                buf.resize(GROUP * k, 0.0);
            }
            let first = t * TILE;
            let mut tables = [[0.0f32; 256]; GROUP];
            let rows = chunk.len() / m;
            let mut r = 0;
            while r < rows {
                let o = first + r;
                if r + GROUP <= rows {
                    if m == 1
                        && let Some(d) = fused_lut(x, w, o, &mut tables)
                    {
                        for (i, v) in d.into_iter().enumerate() {
                            chunk[r + i] = v + add(o + i);
                        }
                        r += GROUP;
                        continue;
                    }
                    let ws: [&[f32]; GROUP] = match w.borrow(o) {
                        Some(_) => std::array::from_fn(|i| w.borrow(o + i).unwrap_or(&[])),
                        None => {
                            for (i, row) in buf.chunks_exact_mut(k).take(GROUP).enumerate() {
                                w.fill(o + i, row);
                            }
                            std::array::from_fn(|i| &buf[i * k..(i + 1) * k])
                        }
                    };
                    for p in 0..m {
                        let d = dots(&x[p * k..(p + 1) * k], &ws);
                        for (i, v) in d.into_iter().enumerate() {
                            chunk[(r + i) * m + p] = v + add(o + i);
                        }
                    }
                    r += GROUP;
                } else {
                    let wr: &[f32] = match w.borrow(o) {
                        Some(row) => row,
                        None => {
                            w.fill(o, &mut buf[..k]);
                            &buf[..k]
                        }
                    };
                    for p in 0..m {
                        chunk[r * m + p] = dots(&x[p * k..(p + 1) * k], &[wr])[0] + add(o);
                    }
                    r += 1;
                }
            }
        })
    });
}

/// One activation row times LUT rows `o .. o + GROUP` decoded in registers
/// ([`lut_dots`]); `None` when that path does not apply (then the rows are decoded into a
/// buffer: the same values, the same order, the same result).
fn fused_lut(x: &[f32], w: &MatrixRows<'_>, o: usize, tables: &mut [[f32; 256]; GROUP]) -> Option<[f32; GROUP]> {
    let mut starts = [0usize; GROUP];
    let mut stream = None;
    for (i, table) in tables.iter_mut().enumerate() {
        let (bytes, bits, start) = w.lut_row(o + i, table)?;
        starts[i] = start;
        stream = Some((bytes, bits));
    }
    let (bytes, bits) = stream?;
    let rows: [LutRow<'_>; GROUP] = std::array::from_fn(|i| LutRow { start: starts[i], table: &tables[i] });
    lut_dots(x, bytes, bits, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::dot::dots;

    /// LUT weights: one activation row takes the fused decode-and-multiply path, several
    /// rows decode into a buffer first; both give each element as one `dots` result.
    #[test]
    fn lut_rows_give_the_same_elements_fused_or_buffered() {
        use crate::mil::blob::pack::pack_bits;
        for bits in [4u32, 6] {
            let (n, k) = (72usize, 64usize);
            let idx: Vec<u8> = (0..n * k).map(|i| ((i * 7919 + 13) % (1 << bits)) as u8).collect();
            let packed = pack_bits(idx.iter().copied(), bits);
            let entries = 1usize << bits;
            let table: Vec<f32> = (0..9 * entries).map(|i| ((i * 37) % 101) as f32 * 0.01 - 0.5).collect();
            let rows = MatrixRows::lut(&packed, bits, &table, n, k).unwrap();
            let x: Vec<f32> = (0..2 * k).map(|i| ((i * 31) % 17) as f32 * 0.1 - 0.8).collect();
            let mut two = vec![0.0; n * 2];
            project(&x, 2, &rows, None, &mut two);
            for p in 0..2 {
                let mut one = vec![0.0; n];
                project(&x[p * k..(p + 1) * k], 1, &rows, None, &mut one);
                let mut row = vec![0.0; k];
                for o in 0..n {
                    rows.fill(o, &mut row);
                    let want = dots(&x[p * k..(p + 1) * k], &[&row])[0] + 0.0;
                    assert_eq!(one[o].to_bits(), want.to_bits(), "{bits} bits, row {p}, channel {o}, fused");
                    assert_eq!(two[o * 2 + p].to_bits(), want.to_bits(), "{bits} bits, row {p}, channel {o}");
                }
            }
        }
    }

    #[test]
    fn every_element_is_one_dot_whatever_the_row_count() {
        let (n, k) = (70usize, 37usize);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 211) as f32 * 0.01 - 1.0).collect();
        let x: Vec<f32> = (0..5 * k).map(|i| ((i * 31) % 17) as f32 * 0.1 - 0.8).collect();
        let bias: Vec<f32> = (0..n).map(|o| o as f32 * 0.5).collect();
        let rows = MatrixRows::dense(&w, n, k).unwrap();
        let mut all = vec![0.0; n * 5];
        project(&x, 5, &rows, Some(&bias), &mut all);
        for p in 0..5 {
            let mut one = vec![0.0; n];
            project(&x[p * k..(p + 1) * k], 1, &rows, Some(&bias), &mut one);
            for o in 0..n {
                let want = dots(&x[p * k..(p + 1) * k], &[&w[o * k..(o + 1) * k]])[0] + bias[o];
                assert_eq!(all[o * 5 + p].to_bits(), want.to_bits(), "row {p} channel {o}");
                assert_eq!(one[o].to_bits(), want.to_bits(), "row {p} channel {o} alone");
            }
        }
    }
}
