//! Grouped-channel LUT palettization of one tensor: coremltools'
//! `OpPalettizerConfig(mode="kmeans", granularity="per_grouped_channel", group_size=…)`.
//!
//! Axis 0 of the tensor (the output channels of a `linear`/`conv` weight, the rows of an
//! embedding table) is cut into `G = d0 / group_size` groups of `group_size` consecutive
//! rows; each group gets its own lookup table of `2^bits` fp16 entries from the exact 1-D
//! k-means of [`super::kmeans`], and every element becomes the index of its nearest entry.
//! Groups are independent and run in parallel with rayon; each group's result depends only
//! on its own values, so the output is the same for any thread count.

use rayon::prelude::*;

use super::QuantError;
use super::kmeans::{assign, assign_keys, fp16_keys, histogram_of_keys, table_from_histogram};
use super::weighted::{channel_of, check_importance, weighted_histogram_of_keys};

/// Index widths `lut_to_dense` supports (the iOS18 `constexpr_lut_to_dense` widths).
pub const SUPPORTED_BITS: [u32; 6] = [1, 2, 3, 4, 6, 8];

/// A palettized tensor: `dense[i, …] = lut[i / (d0 / G) · 2^bits + indices[i, …]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Palettized {
    /// Shape of the dense tensor.
    pub shape: Vec<usize>,
    pub bits: u32,
    /// Rows of axis 0 per lookup table.
    pub group_size: usize,
    /// One index per element, row-major, each `< 2^bits`.
    pub indices: Vec<u8>,
    /// `[G, 2^bits]` row-major; every entry is an exact fp16 value, each row ascending.
    pub lut: Vec<f32>,
}

impl Palettized {
    /// Number of lookup tables `G = d0 / group_size`.
    pub fn groups(&self) -> usize {
        self.shape[0] / self.group_size
    }

    /// Entries per lookup table, `2^bits`.
    pub fn entries(&self) -> usize {
        1 << self.bits
    }

    /// The dense tensor the indices and tables stand for (row-major).
    pub fn dense(&self) -> Vec<f32> {
        let group_len = self.indices.len() / self.groups();
        let k = self.entries();
        self.indices
            .chunks(group_len)
            .zip(self.lut.chunks(k))
            .flat_map(|(idx, table)| idx.iter().map(move |&i| table[usize::from(i)]))
            .collect()
    }
}

/// Checks `bits` against [`SUPPORTED_BITS`].
pub fn check_bits(bits: u32) -> Result<(), QuantError> {
    if SUPPORTED_BITS.contains(&bits) { Ok(()) } else { Err(QuantError::Bits { bits }) }
}

/// Checks that `shape` can be palettized in groups of `group_size` rows: rank ≥ 1, no zero
/// dimension, `group_size ≥ 1` dividing `d0`. Returns the element count.
pub fn check_grouping(shape: &[usize], group_size: usize) -> Result<usize, QuantError> {
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match (shape.first(), numel) {
        (Some(&d0), Some(n)) if n > 0 && group_size > 0 && d0.is_multiple_of(group_size) => Ok(n),
        (Some(&d0), Some(n)) if n > 0 => Err(QuantError::GroupSize { d0, group_size }),
        _ => Err(QuantError::Shape { shape: shape.to_vec(), message: "needs rank ≥ 1 and no zero dimension".into() }),
    }
}

/// Palettizes `values` (row-major, of `shape`) with one `2^bits`-entry fp16 table per
/// `group_size` rows of axis 0.
///
/// Errors: unsupported `bits`, a shape that does not group (see [`check_grouping`]), a value
/// count that differs from the shape, or a NaN/±inf value (named by flat index). Finite values
/// beyond ±65504 are clustered as ±65504, the fp16 limit.
pub fn palettize_tensor(
    values: &[f32],
    shape: &[usize],
    bits: u32,
    group_size: usize,
) -> Result<Palettized, QuantError> {
    palettize_tensor_weighted(values, shape, bits, group_size, None)
}

/// [`palettize_tensor`] with an optional sensitivity weight per input channel (axis 1):
/// element `[i, j, …]` counts in the k-means objective with `importance[j]` (see
/// [`super::weighted`]). `None` is the plain, unweighted palettization.
///
/// Errors as [`palettize_tensor`], plus an importance vector that does not match axis 1 or
/// holds a non-finite or non-positive entry.
pub fn palettize_tensor_weighted(
    values: &[f32],
    shape: &[usize],
    bits: u32,
    group_size: usize,
    importance: Option<&[f64]>,
) -> Result<Palettized, QuantError> {
    check_bits(bits)?;
    if let Some(imp) = importance {
        check_importance(imp, shape).map_err(|message| QuantError::Shape { shape: shape.to_vec(), message })?;
    }
    let numel = check_grouping(shape, group_size)?;
    if numel != values.len() {
        return Err(QuantError::Shape {
            shape: shape.to_vec(),
            message: format!("has {numel} elements but {} values were given", values.len()),
        });
    }
    if let Some(index) = crate::util::first_non_finite(values) {
        return Err(QuantError::NonFinite { index, value: values[index] });
    }
    let k = 1usize << bits;
    let groups = shape[0] / group_size;
    let group_len = numel / groups;
    let mut indices = vec![0u8; numel];
    let mut lut = vec![0f32; groups * k];
    let channel = channel_of(shape);
    values.par_chunks(group_len).zip(indices.par_chunks_mut(group_len)).zip(lut.par_chunks_mut(k)).for_each(
        |((vals, idx), table)| {
            // One rounding pass gives the keys for both the histogram and the assignment.
            let (keys, exact) = fp16_keys(vals);
            let hist = match importance {
                // Groups are whole rows, so element e of a group is element e of its first row
                // onwards: the channel pattern restarts at every group.
                Some(imp) => weighted_histogram_of_keys(&keys, |e| imp[channel(e)]),
                None => histogram_of_keys(&keys),
            };
            table.copy_from_slice(&table_from_histogram(&hist, k));
            if exact {
                assign_keys(&keys, &hist, table, idx);
            } else {
                assign(vals, &hist, table, idx);
            }
        },
    );
    Ok(Palettized { shape: shape.to_vec(), bits, group_size, indices, lut })
}

/// ‖a − b‖ / ‖a‖ in f64 (0 when both are zero).
pub fn relative_error(reference: &[f32], approx: &[f32]) -> f64 {
    let num: f64 = reference.iter().zip(approx).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
    let den: f64 = reference.iter().map(|&a| f64::from(a).powi(2)).sum();
    if num == 0.0 { 0.0 } else { (num / den).sqrt() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect()
    }

    #[test]
    fn groups_get_their_own_tables() {
        // Two groups of 2 rows: group 0 holds small values, group 1 large ones.
        let mut vals = vec![0.0f32; 4 * 8];
        for (i, v) in vals.iter_mut().enumerate() {
            *v = if i < 16 { (i % 4) as f32 } else { 100.0 + (i % 4) as f32 };
        }
        let p = palettize_tensor(&vals, &[4, 8], 2, 2).unwrap();
        assert_eq!(p.groups(), 2);
        assert_eq!(p.lut, vec![0.0, 1.0, 2.0, 3.0, 100.0, 101.0, 102.0, 103.0]);
        assert_eq!(p.dense(), vals);
    }

    #[test]
    fn result_does_not_depend_on_the_thread_count() {
        let vals = ramp(64 * 48);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let a = one.install(|| palettize_tensor(&vals, &[64, 48], 4, 8).unwrap());
        let b = palettize_tensor(&vals, &[64, 48], 4, 8).unwrap();
        assert_eq!(a, b);
        assert!(a.indices.iter().all(|&i| i < 16));
    }

    #[test]
    fn errors_are_specific() {
        let vals = ramp(24);
        assert_eq!(palettize_tensor(&vals, &[4, 6], 5, 2), Err(QuantError::Bits { bits: 5 }));
        assert_eq!(palettize_tensor(&vals, &[6, 4], 4, 4), Err(QuantError::GroupSize { d0: 6, group_size: 4 }));
        assert!(matches!(palettize_tensor(&vals, &[5, 4], 4, 1), Err(QuantError::Shape { .. })));
        assert!(matches!(palettize_tensor(&vals, &[], 4, 1), Err(QuantError::Shape { .. })));
        let mut bad = vals.clone();
        bad[9] = f32::NAN;
        assert!(matches!(palettize_tensor(&bad, &[4, 6], 4, 2), Err(QuantError::NonFinite { index: 9, .. })));
    }

    #[test]
    fn huge_values_saturate_instead_of_becoming_infinite() {
        let vals = [1e6f32, -1e6, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let p = palettize_tensor(&vals, &[2, 4], 1, 2).unwrap();
        assert!(p.lut.iter().all(|v| v.is_finite()));
        assert!(p.dense().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn six_bits_is_close_on_gaussian_like_data() {
        let n = 32 * 256;
        let vals: Vec<f32> = (0..n).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * 0.1).collect();
        let p = palettize_tensor(&vals, &[32, 256], 6, 8).unwrap();
        let err = relative_error(&vals, &p.dense());
        // Uniform data, 64 levels: error ≈ (1/64)/√12 / (1/√12) ≈ 1.6 %.
        assert!(err < 0.02, "{err}");
    }
}
