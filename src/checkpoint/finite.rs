//! Streaming NaN/Inf/range scan of a tensor, used to warn about fp16 overflow.

use rayon::prelude::*;

use super::dtype::CHUNK;
use super::{Checkpoint, CheckpointError, StDType};

/// Smallest magnitude that overflows to ±Inf when rounded to f16 (round-to-nearest-even).
///
/// f16's largest finite value is 65504 and the next step would be 65536; the midpoint 65520
/// rounds to the even neighbour 65536, i.e. to infinity.
pub const F16_OVERFLOW: f32 = 65520.0;

/// Summary of a tensor's values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FiniteReport {
    /// Number of elements scanned.
    pub numel: usize,
    /// Number of NaN elements.
    pub nan: usize,
    /// Number of ±Inf elements.
    pub inf: usize,
    /// Largest |value| over the finite elements (0 if there are none).
    pub max_abs: f32,
    /// Number of finite elements that would overflow to ±Inf if cast to f16.
    pub f16_overflow: usize,
}

impl FiniteReport {
    /// No NaN and no Inf.
    pub fn all_finite(&self) -> bool {
        self.nan == 0 && self.inf == 0
    }

    /// All finite, and every value survives a cast to f16 without becoming Inf.
    pub fn fits_f16(&self) -> bool {
        self.all_finite() && self.f16_overflow == 0
    }

    fn merge(self, other: FiniteReport) -> FiniteReport {
        FiniteReport {
            numel: self.numel + other.numel,
            nan: self.nan + other.nan,
            inf: self.inf + other.inf,
            max_abs: self.max_abs.max(other.max_abs),
            f16_overflow: self.f16_overflow + other.f16_overflow,
        }
    }
}

/// Scans one chunk of encoded elements without materialising them.
fn scan(dtype: StDType, bytes: &[u8]) -> FiniteReport {
    let mut report = FiniteReport::default();
    for element in bytes.chunks_exact(dtype.size()) {
        let v = dtype.decode(element);
        report.numel += 1;
        if v.is_nan() {
            report.nan += 1;
        } else if v.is_infinite() {
            report.inf += 1;
        } else {
            let a = v.abs();
            report.max_abs = report.max_abs.max(a);
            if a >= F16_OVERFLOW {
                report.f16_overflow += 1;
            }
        }
    }
    report
}

impl Checkpoint {
    /// Counts NaN/Inf values and the largest finite magnitude of `name`.
    ///
    /// Streams over the mapped bytes in fixed chunks (in parallel); no f32 copy of the tensor
    /// is allocated. The result is deterministic: counts add and `max` is order-independent.
    pub fn check_finite(&self, name: &str) -> Result<FiniteReport, CheckpointError> {
        let view = self.view(name)?;
        let dtype = view.dtype();
        Ok(view
            .data()
            .par_chunks(CHUNK * dtype.size())
            .map(|bytes| scan(dtype, bytes))
            .reduce(FiniteReport::default, FiniteReport::merge))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn overflow_threshold_matches_half() {
        assert!(f16::from_f32(F16_OVERFLOW).is_infinite());
        let below = f32::from_bits(F16_OVERFLOW.to_bits() - 1);
        assert!(f16::from_f32(below).is_finite());
    }

    #[test]
    fn scan_counts() {
        let values = [1.0f32, -70000.0, f32::NAN, f32::INFINITY, 65504.0];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let r = scan(StDType::F32, &bytes);
        assert_eq!(r.numel, 5);
        assert_eq!(r.nan, 1);
        assert_eq!(r.inf, 1);
        assert_eq!(r.max_abs, 70000.0);
        assert_eq!(r.f16_overflow, 1);
        assert!(!r.fits_f16());
    }
}
