//! RoPE inverse frequencies, computed the way transformers computes them.
//!
//! transformers builds `inv_freq` as a float32 torch tensor (`modeling_rope_utils.py`,
//! 4.57). To reproduce its table we replay the same float32 operations in the same order:
//!
//! - default: `1.0 / (base ** (arange(0, dim, 2).float() / dim))` — the exponent is an f32
//!   division, `base` is cast to f32, the power is an f32 power, and `1.0 / t` is
//!   `t.reciprocal() * 1.0` (f32 reciprocal);
//! - Python scalars taking part in tensor arithmetic are cast to f32 first;
//! - `x / t` with a Python scalar `x` is `t.reciprocal() * x` (torch's `__rtruediv__`).
//!
//! The only step we cannot replay exactly is torch's vectorised f32 `pow` (SLEEF, ≤ 1 ulp);
//! we use the correctly rounded f32 power (computed in f64, rounded once), which agrees
//! with torch except in rare last-bit cases. The results are returned as f64 holding those
//! f32 values.

use super::config::{ModelConfig, RopeScaling};

/// The f32 power `base^exp`, correctly rounded (f64 power of exactly-representable inputs,
/// rounded once to f32).
fn pow_f32(base: f32, exp: f32) -> f32 {
    (base as f64).powf(exp as f64) as f32
}

/// transformers' `_compute_default_rope_parameters`: `1 / base^(2i/dim)`, i < dim/2, in f32.
fn default_inv_freq(base: f32, dim: usize) -> Vec<f32> {
    (0..dim)
        .step_by(2)
        .map(|i| {
            let exponent = i as f32 / dim as f32;
            1.0 / pow_f32(base, exponent)
        })
        .collect()
}

/// transformers' Llama 3.1 band rule, replayed in f32.
fn llama3(inv: &[f32], factor: f64, low: f64, high: f64, old_context: usize) -> Vec<f32> {
    let factor = factor as f32;
    // Python floats, compared against f32 tensors: cast to f32.
    let low_freq_wavelen = (old_context as f64 / low) as f32;
    let high_freq_wavelen = (old_context as f64 / high) as f32;
    let old = old_context as f32;
    let low_f = low as f32;
    let band = (high - low) as f32;
    let two_pi = std::f64::consts::TAU as f32;
    inv.iter()
        .map(|&f| {
            let wavelen = (1.0 / f) * two_pi;
            // Long wavelengths (low frequencies) are divided by the factor.
            let scaled = if wavelen > low_freq_wavelen { f / factor } else { f };
            // torch: ~(wavelen < high) * ~(wavelen > low); wavelen is never NaN here.
            let medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
            if medium {
                let smooth = ((1.0 / wavelen) * old - low_f) / band;
                (1.0 - smooth) * scaled / factor + smooth * scaled
            } else {
                scaled
            }
        })
        .collect()
}

/// The dynamic-NTK base for a sequence of `seq_len` positions, as transformers computes it
/// in the forward pass (where `seq_len` is an int64 tensor, so the arithmetic is f32; the
/// 0-d power runs through the scalar path `std::pow(float, double)`).
fn dynamic_base(theta: f64, factor: f64, seq_len: usize, original_max: usize, dim: usize) -> f32 {
    let seq_len = seq_len.max(original_max) as f32;
    let ratio = (factor as f32 * seq_len) / original_max as f32 - (factor - 1.0) as f32;
    let exponent = dim as f64 / (dim - 2) as f64;
    let grown = (ratio as f64).powf(exponent) as f32;
    theta as f32 * grown
}

fn to_f64(v: Vec<f32>) -> Vec<f64> {
    v.into_iter().map(f64::from).collect()
}

/// The inverse frequencies transformers uses for sequences up to
/// `max_position_embeddings` (its init-time table). Length `head_dim / 2`.
pub fn inv_freq(cfg: &ModelConfig) -> Vec<f64> {
    inv_freq_for_context(cfg, cfg.max_position_embeddings)
}

/// The inverse frequencies of the sliding-window layers of a model that gives them their own
/// RoPE base (Gemma 3's `rope_local_base_freq`): transformers builds them from a config copy
/// with that base and `rope_type: default`, so no scaling applies.
pub fn local_inv_freq_for_context(cfg: &ModelConfig, context: usize) -> Option<Vec<f64>> {
    let theta = cfg.features.local_rope_theta?;
    let local = ModelConfig { rope_theta: theta, rope_scaling: RopeScaling::None, ..cfg.clone() };
    Some(inv_freq_for_context(&local, context))
}

/// The inverse frequencies for a model compiled with a static `context`.
///
/// Only dynamic NTK depends on the context: transformers recomputes `inv_freq` in the
/// forward pass once the sequence (`max(position_ids) + 1`) exceeds
/// `max_position_embeddings`, with the base grown to
/// `theta · (factor·len/max − (factor−1))^(dim/(dim−2))`. For a static graph we apply the
/// formula with `len = context`, which matches transformers when it processes all `context`
/// positions in one forward pass (an incremental transformers run changes frequencies as
/// it grows, which no static table can reproduce). For `context ≤ max_position_embeddings`
/// every scaling type gives its init-time table.
pub fn inv_freq_for_context(cfg: &ModelConfig, context: usize) -> Vec<f64> {
    let dim = cfg.head_dim;
    let theta = cfg.rope_theta as f32;
    let table = match cfg.rope_scaling {
        RopeScaling::None => default_inv_freq(theta, dim),
        RopeScaling::Linear { factor } => {
            let factor = factor as f32;
            default_inv_freq(theta, dim).into_iter().map(|f| f / factor).collect()
        }
        RopeScaling::Dynamic { factor, original_max } => {
            if context > original_max {
                let base = dynamic_base(cfg.rope_theta, factor, context, original_max, dim);
                default_inv_freq(base, dim)
            } else {
                default_inv_freq(theta, dim)
            }
        }
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => llama3(
            &default_inv_freq(theta, dim),
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        ),
    };
    to_f64(table)
}

/// Whether RoPE tables of `len` positions built from `inv_freq` are finite: every inverse
/// frequency and every angle `p · f` (p < len) must be finite in f32, the precision the
/// tables are computed in (see `weights::rope_table`). A hostile `rope_theta` or scaling
/// factor (say 1e-300) breaks this, and the tables would silently be NaN.
pub fn finite_tables(inv_freq: &[f64], len: usize) -> bool {
    let last = len.saturating_sub(1) as f32;
    inv_freq.iter().all(|&f| {
        let f = f as f32;
        f.is_finite() && (last * f).is_finite()
    })
}

/// Factor transformers multiplies cos/sin by. It is 1.0 for every supported scaling type
/// (only YaRN and LongRoPE, which are rejected at config time, change it).
pub fn attention_scaling(cfg: &ModelConfig) -> f64 {
    match cfg.rope_scaling {
        RopeScaling::None | RopeScaling::Linear { .. } | RopeScaling::Dynamic { .. } | RopeScaling::Llama3 { .. } => {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(extra: &str) -> ModelConfig {
        let json = format!(
            r#"{{"model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
                "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 10 {extra}}}"#
        );
        ModelConfig::from_json_str(&json, Path::new("config.json")).unwrap()
    }

    fn close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.abs(), "index {i}: got {g}, want {w}");
        }
    }

    /// Distance in f32 units-in-the-last-place between two positive f32 values.
    fn ulps(a: f64, b: f32) -> u32 {
        (a as f32).to_bits().abs_diff(b.to_bits())
    }

    /// Compares against f32 bit patterns printed from transformers: all entries within
    /// 1 ulp, at most `max_off` entries not bit-exact (torch's SLEEF `pow` is not
    /// correctly rounded; ours is).
    fn matches_torch(got: &[f64], want_bits: &[u32], max_off: usize) {
        assert_eq!(got.len(), want_bits.len());
        let mut off = 0;
        for (i, (g, w)) in got.iter().zip(want_bits).enumerate() {
            let d = ulps(*g, f32::from_bits(*w));
            assert!(d <= 1, "index {i}: {g} vs {} ({d} ulps)", f32::from_bits(*w));
            off += usize::from(d != 0);
        }
        assert!(off <= max_off, "{off} entries differ by 1 ulp");
    }

    #[test]
    fn default_by_hand() {
        let c = cfg(r#", "head_dim": 4, "rope_theta": 10000.0"#);
        close(&inv_freq(&c), &[1.0, 0.01]);
        assert_eq!(attention_scaling(&c), 1.0);
    }

    #[test]
    fn linear_by_hand() {
        let c = cfg(r#", "head_dim": 4, "rope_scaling": {"rope_type": "linear", "factor": 2.0}"#);
        close(&inv_freq(&c), &[0.5, 0.005]);
    }

    #[test]
    fn llama3_bands_by_hand() {
        // theta 10000, dim 8: inv = [1, 0.1, 0.01, 0.001], wavelen = 2π/inv =
        // [6.28, 62.8, 628.3, 6283]. old context 1024, low 1, high 4: low_freq_wavelen 1024,
        // high_freq_wavelen 256. Entries 0-1 unchanged, entry 3 divided by 8, entry 2 smoothed
        // with s = (1024/628.3 - 1)/3.
        let c = cfg(r#", "head_dim": 8, "max_position_embeddings": 8192,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 1024}"#);
        let wavelen = std::f64::consts::TAU / 0.01;
        let s = (1024.0 / wavelen - 1.0) / 3.0;
        let smoothed = (1.0 - s) * 0.01 / 8.0 + s * 0.01;
        close(&inv_freq(&c), &[1.0, 0.1, smoothed, 0.001 / 8.0]);
    }

    #[test]
    fn dynamic_by_hand() {
        // ratio = 2·200/100 − 1 = 3; exponent dim/(dim−2) = 2; base = 10000·9 = 90000.
        let c = cfg(r#", "head_dim": 4, "max_position_embeddings": 100,
            "rope_scaling": {"type": "dynamic", "factor": 2.0}"#);
        close(&inv_freq_for_context(&c, 200), &[1.0, 1.0 / 300.0]);
        // Within the original context the table is the default one.
        close(&inv_freq_for_context(&c, 100), &[1.0, 0.01]);
        assert_eq!(inv_freq(&c), inv_freq_for_context(&c, 50));
    }

    // The constants below are f32 bit patterns of `inv_freq` printed from transformers 4.57.6
    // / torch 2.15.0 (CPU, AVX512) with
    //   cfg = LlamaConfig(hidden_size=4*d, num_attention_heads=4, head_dim=d, rope_theta=…,
    //                     max_position_embeddings=…, rope_scaling=…)
    //   inv, _ = ROPE_INIT_FUNCTIONS[rope_type](cfg, None[, seq_len=torch.tensor(ctx)])
    //   inv.view(torch.int32)
    // Over 48 such tables (2624 entries: default θ ∈ {1e4, 1.5e5, 5e5, 1e6, 5e6, 1e7} ×
    // d ∈ {32, 64, 80, 96, 128, 256}, linear, llama3, dynamic) 26 entries differ by 1 ulp,
    // none by more; all differences come from torch's vectorised pow.

    #[test]
    fn default_matches_transformers() {
        const WANT: [u32; 32] = [
            0x3f800000, 0x3f3ff911, 0x3f0ff59a, 0x3ed7e89b, 0x3ea1e89b, 0x3e72d423, 0x3e361887, 0x3e088d77, 0x3dcccccd,
            0x3d99940d, 0x3d6655c2, 0x3d2cba15, 0x3d0186e3, 0x3cc2434f, 0x3c91ad39, 0x3c5a7bf2, 0x3c23d70a, 0x3bf5b9b0,
            0x3bb8449c, 0x3b8a2e77, 0x3b4f3e38, 0x3b1b690d, 0x3ae91528, 0x3aaec98e, 0x3a83126f, 0x3a44948c, 0x3a136a16,
            0x39dd1725, 0x39a5cb60, 0x3978a815, 0x393a7753, 0x390bd472,
        ];
        let c = cfg(r#", "head_dim": 64, "rope_theta": 10000.0"#);
        matches_torch(&inv_freq(&c), &WANT, 0);
    }

    #[test]
    fn linear_matches_transformers() {
        const WANT: [u32; 64] = [
            0x3e800000, 0x3e5dafd7, 0x3e3ff911, 0x3e263de0, 0x3e0ff59a, 0x3df953cf, 0x3dd7e89b, 0x3dbaf81b, 0x3da1e89b,
            0x3d8c3504, 0x3d72d423, 0x3d5247ed, 0x3d361887, 0x3d1db040, 0x3d088d77, 0x3cec7fd6, 0x3ccccccd, 0x3cb15978,
            0x3c99940d, 0x3c84fe4d, 0x3c6655c2, 0x3c47763f, 0x3c2cba15, 0x3c159348, 0x3c0186e3, 0x3be054d2, 0x3bc2434f,
            0x3ba8398b, 0x3b91ad39, 0x3b7c4d33, 0x3b5a7bf2, 0x3b3d3311, 0x3b23d70a, 0x3b0de12d, 0x3af5b9b0, 0x3ad4ca15,
            0x3ab8449c, 0x3a9f91cc, 0x3a8a2e77, 0x3a6f520e, 0x3a4f3e38, 0x3a33770f, 0x3a1b690d, 0x3a06946f, 0x39e91528,
            0x39c9d75c, 0x39aec98e, 0x39975c0e, 0x3983126f, 0x396301e2, 0x3944948c, 0x392a3b44, 0x39136a16, 0x38ff4fac,
            0x38dd1725, 0x38bf74d7, 0x38a5cb60, 0x388f9272, 0x3878a815, 0x385753e4, 0x383a7753, 0x38217916, 0x380bd472,
            0x37f22ce2,
        ];
        let c = cfg(r#", "head_dim": 128, "rope_theta": 10000.0,
            "rope_scaling": {"rope_type": "linear", "factor": 4.0}"#);
        matches_torch(&inv_freq(&c), &WANT, 0);
    }

    #[test]
    fn llama3_matches_transformers() {
        // Llama 3.2 style: θ 500000, factor 32, low 1, high 4, original context 8192.
        const WANT: [u32; 32] = [
            0x3f800000, 0x3f29e1c6, 0x3ee177bc, 0x3e959ee3, 0x3e4693b0, 0x3e03c6a0, 0x3daee4ad, 0x3d681e67, 0x3d1a08c8,
            0x3ccc6f49, 0x3c87a9c3, 0x3c340d6d, 0x3beef74f, 0x3b9e9402, 0x3b527720, 0x3aa9279b, 0x39e13620, 0x38cb98f7,
            0x37a3418d, 0x3758ac81, 0x370fc8f8, 0x36bed4f4, 0x367d45c3, 0x3628126b, 0x35df10c4, 0x359406cb, 0x35447610,
            0x35025f34, 0x34ad07a7, 0x3465a54d, 0x341864a7, 0x33ca41b0,
        ];
        let c = cfg(r#", "head_dim": 64, "rope_theta": 500000.0,
            "max_position_embeddings": 131072,
            "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#);
        matches_torch(&inv_freq(&c), &WANT, 0);
    }

    #[test]
    fn dynamic_matches_transformers() {
        // factor 4, max_position_embeddings 4096, sequence of 16384 positions.
        const WANT: [u32; 32] = [
            0x3f800000, 0x3f30ba77, 0x3ef401d7, 0x3ea87300, 0x3e689385, 0x3e208ed2, 0x3dddae47, 0x3d990948, 0x3d534bb4,
            0x3d11ddf3, 0x3cc965ae, 0x3c8b0899, 0x3c3ff65c, 0x3c048532, 0x3bb6f832, 0x3b7c9fd0, 0x3b2e65e1, 0x3af0ca24,
            0x3aa63a5c, 0x3a658266, 0x3a1e70d2, 0x39dac1f1, 0x399704ac, 0x3950826d, 0x390ff18b, 0x38c6bdd0, 0x38893342,
            0x383d6e59, 0x3802c5d8, 0x37b48e8a, 0x37794b06, 0x372c1929,
        ];
        let c = cfg(r#", "head_dim": 64, "rope_theta": 10000.0,
            "max_position_embeddings": 4096,
            "rope_scaling": {"rope_type": "dynamic", "factor": 4.0}"#);
        matches_torch(&inv_freq_for_context(&c, 16384), &WANT, 1);
    }
}
