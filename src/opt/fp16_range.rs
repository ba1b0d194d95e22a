//! The fp16 range report of the `precision` pass: which weight values overflow (|v| > 65504)
//! or flush to zero (0 < |v| < 2⁻²⁵, which rounds to 0 in fp16) when converted.
//!
//! Statistics need the weight values, so they are computed only when the module's
//! `checkpoint` attribute names a readable checkpoint folder; otherwise the report says it
//! was skipped and why.

use crate::ir::Module;

/// Largest finite fp16 value.
pub const FP16_MAX: f64 = 65504.0;
/// Values with magnitude below this round to zero in fp16 (half the smallest subnormal).
pub const FP16_FLUSH: f64 = 2.980_232_238_769_531_2e-8;

/// Counts of problematic values in one tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeStats {
    pub total: usize,
    pub overflow: usize,
    pub flush: usize,
}

/// Counts overflowing and flushed values.
pub fn stats(values: &[f32]) -> RangeStats {
    let mut s = RangeStats { total: values.len(), ..Default::default() };
    for &v in values {
        let a = (v as f64).abs();
        if a > FP16_MAX {
            s.overflow += 1;
        } else if a > 0.0 && a < FP16_FLUSH {
            s.flush += 1;
        }
    }
    s
}

/// Report notes for the module's float weights that are not fp16 yet.
pub fn report(m: &Module) -> Vec<String> {
    let result = super::weight_values::map_float_weights(m, |name, values| (name.to_string(), stats(values)));
    let per_weight = match result {
        Err(why) => return vec![format!("fp16 range report skipped: {why}")],
        Ok(v) => v,
    };
    let checked = per_weight.len();
    let notes: Vec<String> = per_weight
        .into_iter()
        .filter(|(_, s)| s.overflow > 0 || s.flush > 0)
        .map(|(name, s)| {
            format!("@{name}: {} of {} values overflow fp16, {} flush to zero", s.overflow, s.total, s.flush)
        })
        .collect();
    if notes.is_empty() {
        vec![format!("fp16 range: all {checked} converted weights fit (no overflow, no flush to zero)")]
    } else {
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_overflow_and_flush() {
        let s = stats(&[0.0, 1.0, 70000.0, -1e6, 1e-9, -2e-8, 6e-8]);
        assert_eq!(s, RangeStats { total: 7, overflow: 2, flush: 2 });
    }
}
