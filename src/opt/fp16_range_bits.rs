//! The fp16 range statistics of [`super::fp16_range`] read straight off a checkpoint's
//! stored bits, for weights whose recipe only moves checkpoint values around.
//!
//! Whether a value overflows fp16 (|v| ≥ 65520) or flushes to zero (0 < |v| ≤ 2⁻²⁵) depends
//! only on its magnitude, and for IEEE formats the magnitude order is the integer order of
//! the bits without the sign. So a bf16 or f32 tensor is classified by two integer compares
//! per element on the mapped bytes, with no decoding into an f32 copy: the report then reads
//! each tensor once at memory speed instead of materialising every weight.
//!
//! Recipes handled: `checkpoint` whose stored dtype is the declared one, under any number of
//! `reshape`, `transpose`, `cast` to fp32 (exact for every stored dtype), `slice` along axis 0
//! of such a chain without reshape/transpose in between (rows are contiguous bytes), and
//! `concat` of handled recipes; `scale`, `offset` and `scale_along` over row-streamable
//! recipes are computed on decoded row blocks instead. Anything else — rounding casts, RoPE
//! tables — and tensors holding NaN or ±inf (whose error message the materialising path
//! gives) return `None`, and the caller materialises the weight.

use rayon::prelude::*;

use crate::checkpoint::{Checkpoint, StDType};
use crate::ir::{DType, Recipe};
use crate::weights::rows_of_checkpoint;

use super::fp16_range::RangeStats;

/// Elements per parallel work item.
const RUN: usize = 1 << 16;

/// Bit thresholds on the magnitude bits (sign cleared) of one storage dtype.
struct Thresholds {
    /// Magnitudes at or above this round to ±inf in fp16 (65520).
    overflow: u32,
    /// Nonzero magnitudes at or below this round to 0 in fp16 (2⁻²⁵).
    flush: u32,
    /// Magnitudes at or above this are ±inf or NaN.
    non_finite: u32,
}

fn thresholds(dtype: StDType) -> Thresholds {
    match dtype {
        // bf16 has no value in [65520, 65536): the first that overflows is 65536 (0x4780).
        StDType::BF16 => Thresholds { overflow: 0x4780, flush: 0x3300, non_finite: 0x7f80 },
        StDType::F32 => Thresholds { overflow: 0x477f_f000, flush: 0x3300_0000, non_finite: 0x7f80_0000 },
        // Every finite fp16 value is itself: nothing overflows or flushes.
        StDType::F16 => Thresholds { overflow: 0x7c00, flush: 0, non_finite: 0x7c00 },
    }
}

/// Range statistics of little-endian `bytes` of `dtype`, or `None` if a value is NaN/±inf.
pub fn stats_of_bits(dtype: StDType, bytes: &[u8]) -> Option<RangeStats> {
    let t = thresholds(dtype);
    let size = dtype.size();
    // (overflow, flush, non-finite) per run, branch-free so each loop vectorises.
    let count = |run: &[u8]| -> (usize, usize, usize) {
        let classify = |mag: u32| {
            (usize::from(mag >= t.overflow), usize::from(mag > 0 && mag <= t.flush), usize::from(mag >= t.non_finite))
        };
        let add = |a: (usize, usize, usize), b: (usize, usize, usize)| (a.0 + b.0, a.1 + b.1, a.2 + b.2);
        match size {
            2 => run
                .chunks_exact(2)
                .map(|b| classify(u32::from(u16::from_le_bytes([b[0], b[1]]) & 0x7fff)))
                .fold((0, 0, 0), add),
            _ => run
                .chunks_exact(4)
                .map(|b| classify(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff))
                .fold((0, 0, 0), add),
        }
    };
    let (overflow, flush, non_finite) =
        bytes.par_chunks(RUN * size).map(count).reduce(|| (0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    // Overflow counted ±inf too; a tensor with NaN/inf is the materialising path's error.
    (non_finite == 0).then_some(RangeStats { total: bytes.len() / size, overflow, flush })
}

/// Whether `declared` (a recipe's checkpoint dtype) is exactly the stored dtype.
fn same_dtype(declared: DType, stored: StDType) -> bool {
    matches!((declared, stored), (DType::BF16, StDType::BF16) | (DType::F16, StDType::F16) | (DType::F32, StDType::F32))
}

/// Statistics of the stored bits of `r` — a checkpoint tensor under casts to fp32 only (the
/// chain `materialize` also reads rows of) — limited to rows `rows` of axis 0 when given.
/// Releases the mapped pages read.
fn checkpoint_stats(r: &Recipe, ckpt: &Checkpoint, rows: Option<(usize, usize)>) -> Option<RangeStats> {
    let (tensor, ty, casts) = rows_of_checkpoint(r)?;
    if casts.iter().any(|&d| d != DType::F32) {
        return None;
    }
    let view = match ckpt.view(tensor) {
        Ok(view) => view,
        Err(crate::checkpoint::CheckpointError::Encoded { .. }) => return decoded_stats(tensor, ty, ckpt, rows),
        Err(_) => return None,
    };
    if !same_dtype(ty.dtype, view.dtype()) || view.shape() != ty.shape.as_slice() {
        return None;
    }
    let data = view.data();
    let bytes = match rows {
        None => data,
        Some((start, end)) => {
            let d0 = ty.shape[0];
            if start > end || end > d0 || d0 == 0 {
                return None;
            }
            let row = data.len() / d0;
            &data[start * row..end * row]
        }
    };
    let stats = stats_of_bits(view.dtype(), bytes);
    ckpt.release(tensor);
    stats
}

/// Statistics of a tensor stored in a block encoding (GGUF): its rows decoded (as f32, the
/// dtype such tensors declare) a block at a time and counted like stored F32 bits.
fn decoded_stats(
    tensor: &str,
    ty: &crate::ir::TensorType,
    ckpt: &Checkpoint,
    rows: Option<(usize, usize)>,
) -> Option<RangeStats> {
    let info = ckpt.info(tensor)?;
    if ty.dtype != DType::F32 || info.dtype != StDType::F32 || info.shape != ty.shape || info.shape.is_empty() {
        return None;
    }
    let d0 = info.shape[0];
    let (start, end) = rows.unwrap_or((0, d0));
    if start > end || end > d0 {
        return None;
    }
    let row = info.numel() / d0.max(1);
    let step = ((1usize << 20) / row.max(1)).max(1);
    let mut total = RangeStats::default();
    for s in (start..end).step_by(step) {
        let values = ckpt.rows_to_f32(tensor, s, (s + step).min(end)).ok()??;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        total = total.plus(stats_of_bits(StDType::F32, &bytes)?);
    }
    ckpt.release(tensor);
    Some(total)
}

/// Range statistics of the values `recipe` produces, from the stored bits, or `None` when
/// the recipe is not one handled here (see the module docs).
pub fn recipe_stats(recipe: &Recipe, ckpt: &Checkpoint) -> Option<RangeStats> {
    match recipe {
        Recipe::Reshape { input, .. } | Recipe::Transpose { input, .. } => recipe_stats(input, ckpt),
        Recipe::Concat { inputs, .. } => {
            inputs.iter().try_fold(RangeStats::default(), |acc, r| Some(acc.plus(recipe_stats(r, ckpt)?)))
        }
        Recipe::Slice { input, axis: 0, start, end } => checkpoint_stats(input, ckpt, Some((*start, *end))),
        Recipe::Scale { .. } | Recipe::Offset { .. } | Recipe::ScaleAlong { .. } => streamed_stats(recipe, ckpt),
        _ => checkpoint_stats(recipe, ckpt, None),
    }
}

/// Statistics of a row-streamable recipe ([`crate::weights::RowStream`]: a scaled embedding
/// table, a projection with its norm gain folded in, …) computed on row blocks read from the
/// checkpoint, each element rounded exactly as materialising the recipe rounds it, so the
/// tensor never exists whole in f32.
fn streamed_stats(recipe: &Recipe, ckpt: &Checkpoint) -> Option<RangeStats> {
    let stream = crate::weights::RowStream::of(recipe)?;
    let step = ((1usize << 20) / stream.row_len.max(1)).max(1);
    let mut total = RangeStats::default();
    for s in (0..stream.rows).step_by(step) {
        let values = stream.rows(ckpt, s, (s + step).min(stream.rows)).ok()?;
        total = total.plus(super::fp16_range::stats(&values));
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;
    use crate::opt::fp16_range::stats;

    /// Values around every threshold plus pseudo-random bit patterns (finite only).
    fn values() -> Vec<f32> {
        let mut out = vec![0.0f32, -0.0, 65504.0, 65519.99, 65520.0, -65520.0, 65536.0, 1e30, -3e38];
        let tiny = f32::from_bits(0x3300_0000);
        out.extend([tiny, -tiny, f32::from_bits(0x3300_0001), f32::from_bits(0x32ff_ffff), 1e-45, 6e-8]);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        while out.len() < 3 * RUN + 77 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = f32::from_bits((state >> 16) as u32);
            if v.is_finite() {
                out.push(v);
            }
        }
        out
    }

    #[test]
    fn bit_statistics_equal_value_statistics_for_every_stored_dtype() {
        let vals = values();
        for dtype in [StDType::F32, StDType::BF16, StDType::F16] {
            // The values each dtype actually stores (bf16/fp16 rounding of the f32 values;
            // fp16 overflow becomes inf, which is left out).
            let stored: Vec<f32> = match dtype {
                StDType::F32 => vals.clone(),
                StDType::BF16 => vals.iter().map(|&v| bf16::from_f32(v).to_f32()).filter(|v| v.is_finite()).collect(),
                StDType::F16 => vals.iter().map(|&v| f16::from_f32(v).to_f32()).filter(|v| v.is_finite()).collect(),
            };
            let bytes: Vec<u8> = stored
                .iter()
                .flat_map(|&v| match dtype {
                    StDType::F32 => v.to_le_bytes().to_vec(),
                    StDType::BF16 => bf16::from_f32(v).to_le_bytes().to_vec(),
                    StDType::F16 => f16::from_f32(v).to_le_bytes().to_vec(),
                })
                .collect();
            let want = stats(&stored);
            assert_eq!(stats_of_bits(dtype, &bytes), Some(want), "{dtype}");
            if dtype != StDType::F16 {
                assert!(want.overflow > 0 && want.flush > 0, "{dtype}: the data must exercise both counts");
            }
        }
        // A non-finite value defers to the materialising path.
        let mut bad = 1.0f32.to_le_bytes().to_vec();
        bad.extend(f32::NAN.to_le_bytes());
        assert_eq!(stats_of_bits(StDType::F32, &bad), None);
        assert_eq!(stats_of_bits(StDType::BF16, &bf16::INFINITY.to_le_bytes()), None);
    }
}
