//! Sensitivity-weighted palettization: every weight `w_ij` of a matmul counts in the k-means
//! objective with the weight `h_j = E[x_j²]`, the calibrated energy of the input channel it
//! multiplies. For one output row, `Σ_j h_j (w_ij − ŵ_ij)²` is the expected squared output
//! error `E[((W − Ŵ) x)_i²]` when the input channels are uncorrelated (the diagonal of the
//! input's second-moment matrix), so minimising it spends the table's entries where the
//! activations make errors visible (the idea behind SqueezeLLM and AWQ's saliency).
//!
//! The exact 1-D solvers of [`super::kmeans`] and [`super::lagrangian`] already work on
//! weighted points (their prefix sums carry `Σh`, `Σh·v`, `Σh·v²`), so weighting changes only
//! the histogram: each distinct fp16 value carries the sum of the importances of the
//! elements that round to it instead of their count. The optimum stays contiguous in value
//! order (for positive weights the interval cost is still Monge), the assignment to the
//! nearest table entry stays optimal per element, and the result stays certified.
//!
//! Invariant: every importance is finite and positive (see [`normalized_importance`]), so no
//! histogram entry has zero weight.

use super::kmeans::{Histogram, order_key};

thread_local! {
    /// Per-thread scratch: one f64 accumulator per fp16 order key and a bitset of the keys
    /// seen; all zero between calls.
    static KEY_WEIGHTS: std::cell::RefCell<(Vec<f64>, Vec<u64>)> =
        std::cell::RefCell::new((vec![0.0; 1 << 16], vec![0; 1 << 10]));
}

/// The histogram of fp16 order `keys` where element `e` weighs `weight(e)` (> 0, finite):
/// distinct values ascending, each with the sum of its elements' weights.
pub fn weighted_histogram_of_keys(keys: &[u16], weight: impl Fn(usize) -> f64) -> Histogram {
    KEY_WEIGHTS.with_borrow_mut(|(sums, seen)| {
        for (e, &key) in keys.iter().enumerate() {
            let k = usize::from(key);
            sums[k] += weight(e);
            seen[k >> 6] |= 1u64 << (k & 63);
        }
        let mut out = Histogram { values: Vec::new(), counts: Vec::new(), keys: Vec::new() };
        for (w, word) in seen.iter_mut().enumerate() {
            let mut bits = std::mem::take(word);
            while bits != 0 {
                let key = (w << 6) | bits.trailing_zeros() as usize;
                bits &= bits - 1;
                out.values.push(from_key(key as u16));
                out.counts.push(std::mem::take(&mut sums[key]));
                out.keys.push(key as u16);
            }
        }
        out
    })
}

fn from_key(key: u16) -> f64 {
    let bits = if key & 0x8000 != 0 { key & 0x7fff } else { !key };
    let v = f64::from(half::f16::from_bits(bits).to_f32());
    debug_assert_eq!(order_key(half::f16::from_f64(v)), key);
    v
}

/// Share of the mean importance added to every channel: a channel that never fired in
/// calibration still counts a little, so its weights are not left to chance (GPTQ-style
/// damping; text never exercises every channel a user's prompts will).
pub const DAMPING: f64 = 0.01;

/// Turns raw per-channel second moments into k-means weights: scaled to mean 1, damped by
/// [`DAMPING`] and rounded to fp16 precision (so the IR text that carries them stays short
/// and exact). Returns `None` when the moments are empty, non-finite, negative or all zero.
pub fn normalized_importance(moments: &[f64]) -> Option<Vec<f64>> {
    if moments.is_empty() || moments.iter().any(|m| !m.is_finite() || *m < 0.0) {
        return None;
    }
    let mean = moments.iter().sum::<f64>() / moments.len() as f64;
    if mean <= 0.0 || !mean.is_finite() {
        return None;
    }
    let out: Vec<f64> = moments
        .iter()
        .map(|m| {
            let v = (m / mean + DAMPING) / (1.0 + DAMPING);
            f64::from(half::f16::from_f64(v.min(60000.0)).to_f32())
        })
        .collect();
    out.iter().all(|v| *v > 0.0 && v.is_finite()).then_some(out)
}

/// Checks an importance vector against the tensor it weights: rank ≥ 2, one entry per index
/// of axis 1, each finite and positive. Returns a message naming the problem.
pub fn check_importance(importance: &[f64], shape: &[usize]) -> Result<(), String> {
    match shape.get(1) {
        None => Err(format!("importance needs a tensor of rank ≥ 2, got shape {shape:?}")),
        Some(&d1) if d1 != importance.len() => {
            Err(format!("importance has {} entries, axis 1 of {shape:?} has {d1}", importance.len()))
        }
        _ => match importance.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            Some(i) => Err(format!("importance entry {i} is {}, must be finite and > 0", importance[i])),
            None => Ok(()),
        },
    }
}

/// The input channel (index on axis 1) of flat element `e` of a tensor of `shape`.
pub fn channel_of(shape: &[usize]) -> impl Fn(usize) -> usize + Sync + use<> {
    let inner: usize = shape.iter().skip(2).product();
    let d1 = shape.get(1).copied().unwrap_or(1).max(1);
    move |e| (e / inner.max(1)) % d1
}

#[cfg(test)]
mod tests {
    use super::super::kmeans::{fp16_keys, histogram_of_keys, optimal_segments, table_from_histogram};
    use super::super::lagrangian::segments_by_penalty;
    use super::*;

    #[test]
    fn unit_weights_give_the_plain_histogram() {
        let vals: Vec<f32> = (0..500).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        let (keys, _) = fp16_keys(&vals);
        assert_eq!(weighted_histogram_of_keys(&keys, |_| 1.0), histogram_of_keys(&keys));
    }

    /// Brute force over every labelling of up to 8 points into k clusters: the weighted
    /// solver's table must reach the minimum of Σ h (v − c)² over all labellings.
    #[test]
    fn weighted_table_is_optimal_against_brute_force() {
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as f64 / (1u64 << 31) as f64
        };
        for case in 0..60 {
            let n = 4 + case % 5;
            let k = 2 + case % 2;
            let vals: Vec<f32> = (0..n).map(|_| half::f16::from_f64(next() * 4.0 - 2.0).to_f32()).collect::<Vec<_>>();
            let w: Vec<f64> = (0..n).map(|_| 0.05 + next() * next() * 20.0).collect();
            let (keys, _) = fp16_keys(&vals);
            let hist = weighted_histogram_of_keys(&keys, |e| w[e]);
            if hist.values.len() <= k {
                continue;
            }
            // The solvers' partition of the weighted histogram, costed with exact means.
            let (xs, ws) = (&hist.values, &hist.counts);
            let partition_cost = |starts: &[usize]| -> f64 {
                (0..starts.len())
                    .map(|c| {
                        let (s, e) = (starts[c], starts.get(c + 1).copied().unwrap_or(xs.len()));
                        let sw: f64 = ws[s..e].iter().sum();
                        let mean = (s..e).map(|p| ws[p] * xs[p]).sum::<f64>() / sw;
                        (s..e).map(|p| ws[p] * (xs[p] - mean).powi(2)).sum::<f64>()
                    })
                    .sum()
            };
            let layered = partition_cost(&optimal_segments(xs, ws, k));
            let penalty = segments_by_penalty(xs, ws, k).map(|s| partition_cost(&s));
            // Brute force: every labelling, centroids = weighted means (unrounded).
            let mut best = f64::INFINITY;
            for code in 0..k.pow(n as u32) {
                let mut sums = vec![(0.0, 0.0); k];
                let mut c = code;
                let mut labels = Vec::with_capacity(n);
                for i in 0..n {
                    let l = c % k;
                    c /= k;
                    labels.push(l);
                    sums[l].0 += w[i];
                    sums[l].1 += w[i] * f64::from(vals[i]);
                }
                let cost: f64 = (0..n)
                    .map(|i| {
                        let (sw, sx) = sums[labels[i]];
                        w[i] * (f64::from(vals[i]) - sx / sw).powi(2)
                    })
                    .sum();
                best = best.min(cost);
            }
            let tol = 1e-9 * (1.0 + best);
            assert!(layered <= best + tol, "case {case}: layered program {layered} > brute force {best}");
            if let Some(p) = penalty {
                assert!(p <= best + tol, "case {case}: penalty search {p} > brute force {best}");
            }
            // And the fp16 table built from it never does worse than rounding allows.
            let table = table_from_histogram(&hist, k);
            let got: f64 = vals
                .iter()
                .zip(&w)
                .map(|(&v, h)| {
                    table.iter().map(|&c| h * (f64::from(v) - f64::from(c)).powi(2)).fold(f64::INFINITY, f64::min)
                })
                .sum();
            let rounding: f64 = w.iter().sum::<f64>() * (4.0f64 * 2f64.powi(-11)).powi(2) * 4.0;
            assert!(got <= best + rounding, "case {case}: table cost {got} vs optimum {best}");
        }
    }

    #[test]
    fn importance_is_normalized_damped_and_checked() {
        let imp = normalized_importance(&[0.0, 1.0, 3.0]).unwrap();
        assert!(imp[0] > 0.0 && imp[0] < 0.011, "{imp:?}");
        assert!((imp[2] / imp[1] - 3.0).abs() < 0.05);
        assert_eq!(normalized_importance(&[0.0, 0.0]), None);
        assert_eq!(normalized_importance(&[1.0, f64::NAN]), None);
        assert!(check_importance(&imp, &[8, 3, 1, 1]).is_ok());
        assert!(check_importance(&imp, &[8, 4]).unwrap_err().contains("axis 1"));
        assert!(check_importance(&[1.0, 0.0, 1.0], &[8, 3]).unwrap_err().contains("entry 1"));
        let ch = channel_of(&[2, 3, 1, 2]);
        assert_eq!((0..12).map(&ch).collect::<Vec<_>>(), vec![0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]);
    }
}
