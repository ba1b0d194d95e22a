//! The fp16 range report of the `precision` pass: which weight values overflow
//! (|v| ≥ 65520, which rounds to ±inf in fp16) or flush to zero (0 < |v| ≤ 2⁻²⁵, which rounds
//! to 0) when converted.
//!
//! Statistics need the weight values, so they are computed only when the module's
//! `checkpoint` attribute names a readable checkpoint folder; otherwise the report says it
//! was skipped and why.

use crate::ir::Module;

/// Values with magnitude at or above this round to ±inf in fp16 (65504, the largest finite
/// value, plus half an ulp).
pub const FP16_OVERFLOW: f64 = 65520.0;
/// Values with magnitude up to this round to zero in fp16 (half the smallest subnormal; the
/// tie goes to the even value, 0).
pub const FP16_FLUSH: f64 = 2.980_232_238_769_531_2e-8;

/// Counts of problematic values in one tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeStats {
    pub total: usize,
    pub overflow: usize,
    pub flush: usize,
}

impl RangeStats {
    /// The counts of two parts together.
    pub fn plus(self, other: RangeStats) -> RangeStats {
        RangeStats {
            total: self.total + other.total,
            overflow: self.overflow + other.overflow,
            flush: self.flush + other.flush,
        }
    }
}

/// Counts overflowing and flushed values (branch-free, so the loop vectorises; both bounds
/// are exact in f32, so comparing in f32 is exact).
pub fn stats(values: &[f32]) -> RangeStats {
    let (overflow_at, flush) = (FP16_OVERFLOW as f32, FP16_FLUSH as f32);
    let (mut overflow, mut flushed) = (0usize, 0usize);
    for &v in values {
        let a = v.abs();
        overflow += usize::from(a >= overflow_at);
        flushed += usize::from(a > 0.0 && a <= flush);
    }
    RangeStats { total: values.len(), overflow, flush: flushed }
}

/// A weight with values that overflow or flush, as one report note says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub weight: String,
    pub stats: RangeStats,
}

impl Finding {
    /// The report note for this finding; [`Finding::parse`] reads it back.
    pub fn note(&self) -> String {
        let s = &self.stats;
        format!("@{}: {} of {} values overflow fp16, {} flush to zero", self.weight, s.overflow, s.total, s.flush)
    }

    /// The finding a report note states, or `None` for the report's other notes (the
    /// summary, or why the report was skipped).
    pub fn parse(note: &str) -> Option<Finding> {
        let (weight, rest) = note.strip_prefix('@')?.rsplit_once(": ")?;
        let (overflow, rest) = rest.split_once(" of ")?;
        let (total, rest) = rest.split_once(" values overflow fp16, ")?;
        let flush = rest.strip_suffix(" flush to zero")?;
        let stats =
            RangeStats { total: total.parse().ok()?, overflow: overflow.parse().ok()?, flush: flush.parse().ok()? };
        Some(Finding { weight: weight.to_string(), stats })
    }
}

/// Report notes for the module's float weights that are not fp16 yet.
pub fn report(m: &Module) -> Vec<String> {
    let per_weight = match weight_stats(m) {
        Err(why) => return vec![format!("fp16 range report skipped: {why}")],
        Ok(v) => v,
    };
    let checked = per_weight.len();
    let notes: Vec<String> = per_weight
        .into_iter()
        .filter(|(_, s)| s.overflow > 0 || s.flush > 0)
        .map(|(weight, stats)| Finding { weight, stats }.note())
        .collect();
    if notes.is_empty() {
        vec![format!("fp16 range: all {checked} converted weights fit (no overflow, no flush to zero)")]
    } else {
        notes
    }
}

/// Statistics of every float, non-fp16 weight of `m`, in module order: from the stored bits
/// where the recipe allows ([`super::fp16_range_bits`]), else from the materialised values.
fn weight_stats(m: &Module) -> Result<Vec<(String, RangeStats)>, String> {
    super::weight_values::map_float_weights_or(
        m,
        |w, ckpt| super::fp16_range_bits::recipe_stats(&w.recipe, ckpt).map(|s| (w.name.clone(), s)),
        |name, values| (name.to_string(), stats(values)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_read_back_from_their_notes() {
        let f = Finding { weight: "a.b: c".into(), stats: RangeStats { total: 70, overflow: 2, flush: 1 } };
        assert_eq!(Finding::parse(&f.note()), Some(f));
        assert_eq!(Finding::parse("fp16 range: all 3 converted weights fit (no overflow, no flush to zero)"), None);
        assert_eq!(Finding::parse("fp16 range report skipped: no checkpoint"), None);
    }

    #[test]
    fn counts_overflow_and_flush() {
        let s = stats(&[0.0, 1.0, 70000.0, -1e6, 1e-9, -2e-8, 6e-8]);
        assert_eq!(s, RangeStats { total: 7, overflow: 2, flush: 2 });
        // The bounds agree with fp16 rounding itself: 2^-25 is a tie that rounds to 0.
        for v in [65504.0f32, 65519.99, 65520.0, f32::from_bits(0x3300_0000), f32::from_bits(0x3300_0001), 1e-30] {
            let h = half::f16::from_f32(v);
            let s = stats(&[v]);
            assert_eq!(s.overflow == 1, h.is_infinite(), "{v:e}");
            assert_eq!(s.flush == 1, h.to_f32() == 0.0, "{v:e}");
        }
    }
}
