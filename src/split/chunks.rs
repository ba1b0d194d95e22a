//! Chunk planning: which contiguous decoder layers go into each FFN package.
//!
//! Invariants of every plan: the chunks are contiguous, non-empty, in order, and cover
//! `0..layers` exactly — no layer is ever dropped (ANEMLL drops `L mod N` layers) — and
//! chunk sizes differ by at most one layer (larger chunks first).

use std::ops::Range;

/// Limits for automatic chunking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest weight payload of one package, in bytes.
    pub max_bytes: u64,
    /// Largest number of decoder layers in one package (an ANE program-size ceiling).
    pub max_layers: usize,
}

impl ChunkLimits {
    /// iOS: ~1 GiB per model file.
    pub const IOS: ChunkLimits = ChunkLimits { max_bytes: 1 << 30, max_layers: 16 };
    /// macOS: ~2 GiB per model file.
    pub const MACOS: ChunkLimits = ChunkLimits { max_bytes: 2 << 30, max_layers: 32 };
}

/// `layers` split into `n` contiguous chunks whose sizes differ by at most one.
pub fn even_chunks(layers: usize, n: usize) -> Vec<Range<usize>> {
    let n = n.clamp(1, layers.max(1));
    let (base, extra) = (layers / n, layers % n);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let len = base + usize::from(i < extra);
        out.push(start..start + len);
        start += len;
    }
    out
}

/// Why no plan fits the limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("layer {layer} alone needs {bytes} bytes, more than the per-package budget of {max} bytes")]
    LayerTooLarge { layer: usize, bytes: u64, max: u64 },
    #[error("--chunks {requested} is invalid for a model with {layers} layers (need 1 ≤ N ≤ {layers})")]
    BadCount { requested: usize, layers: usize },
}

/// The fewest even chunks whose weight bytes fit `limits`, or exactly `forced` chunks.
/// `layer_bytes[i]` is the weight payload of layer i.
pub fn plan_chunks(
    layer_bytes: &[u64],
    limits: ChunkLimits,
    forced: Option<usize>,
) -> Result<Vec<Range<usize>>, ChunkError> {
    let layers = layer_bytes.len();
    if let Some(n) = forced {
        if n == 0 || n > layers {
            return Err(ChunkError::BadCount { requested: n, layers });
        }
        return Ok(even_chunks(layers, n));
    }
    if let Some((layer, &bytes)) = layer_bytes.iter().enumerate().find(|&(_, &b)| b > limits.max_bytes) {
        return Err(ChunkError::LayerTooLarge { layer, bytes, max: limits.max_bytes });
    }
    let bytes = |r: &Range<usize>| layer_bytes[r.clone()].iter().sum::<u64>();
    let start = layers.div_ceil(limits.max_layers.max(1)).max(1);
    for n in start..=layers.max(1) {
        let plan = even_chunks(layers, n);
        if plan.iter().all(|r| bytes(r) <= limits.max_bytes) {
            return Ok(plan);
        }
    }
    Ok(even_chunks(layers, layers.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(plan: &[Range<usize>], layers: usize) -> bool {
        plan.first().map(|r| r.start) == Some(0)
            && plan.last().map(|r| r.end) == Some(layers)
            && plan.windows(2).all(|w| w[0].end == w[1].start)
            && plan.iter().all(|r| !r.is_empty())
    }

    #[test]
    fn uneven_layer_counts_keep_every_layer() {
        for layers in 1..40 {
            for n in 1..=layers {
                let plan = even_chunks(layers, n);
                assert_eq!(plan.len(), n);
                assert!(covers(&plan, layers), "{layers} layers / {n}");
                let sizes: Vec<usize> = plan.iter().map(|r| r.len()).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            }
        }
        assert_eq!(even_chunks(7, 3), vec![0..3, 3..5, 5..7]);
    }

    #[test]
    fn budget_decides_the_count() {
        // Llama-3.2-1B-like at LUT6: 16 layers × ~46 MB → one iOS package.
        let one_b = vec![46_000_000u64; 16];
        assert_eq!(plan_chunks(&one_b, ChunkLimits::IOS, None).unwrap().len(), 1);
        // 8B-like at LUT6: 32 layers × ~164 MB = 5.2 GB → 6 packages under 1 GiB (even split).
        let eight_b = vec![164_000_000u64; 32];
        let plan = plan_chunks(&eight_b, ChunkLimits::IOS, None).unwrap();
        assert!(covers(&plan, 32));
        assert!(plan.iter().all(|r| r.len() as u64 * 164_000_000 <= 1 << 30));
        assert_eq!(plan.len(), 6);
        // The layer ceiling applies even when bytes would allow fewer chunks.
        assert_eq!(plan_chunks(&[1u64; 40], ChunkLimits::IOS, None).unwrap().len(), 3);
        assert_eq!(plan_chunks(&one_b, ChunkLimits::IOS, Some(3)).unwrap(), vec![0..6, 6..11, 11..16]);
        assert!(plan_chunks(&one_b, ChunkLimits::IOS, Some(17)).is_err());
        assert!(plan_chunks(&[2 << 30], ChunkLimits::IOS, None).is_err());
    }
}
