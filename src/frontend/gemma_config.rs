//! Gemma 3's block features from its config (transformers 4.57 `Gemma3TextConfig`).
//!
//! Defaults where a key is absent, each as transformers fills it: `sliding_window` 4096,
//! `query_pre_attn_scalar` 256, `rope_local_base_freq` 10000, no soft-capping, and
//! `layer_types` from the legacy pattern (layer i is global iff (i + 1) % 6 == 0).

use std::path::Path;

use super::config::{BlockFeatures, ConfigError, LayerKind, RawConfig};

/// More layers than any real model has by orders of magnitude.
const MAX_LAYERS: usize = 1 << 16;

fn invalid(file: &Path, field: &str, message: String) -> ConfigError {
    ConfigError::Invalid { file: file.to_path_buf(), field: field.to_string(), message }
}

fn positive_finite(file: &Path, field: &str, v: f64) -> Result<f64, ConfigError> {
    if v.is_finite() && v > 0.0 { Ok(v) } else { Err(invalid(file, field, format!("{v} must be finite and > 0"))) }
}

/// `layer_types` as given, or from the every-n-th-layer rule.
fn layer_kinds(raw: &RawConfig, file: &Path, layers: usize) -> Result<Vec<LayerKind>, ConfigError> {
    if let Some(types) = &raw.layer_types {
        if types.len() != layers {
            return Err(invalid(
                file,
                "layer_types",
                format!("has {} entries but num_hidden_layers is {layers}", types.len()),
            ));
        }
        return types
            .iter()
            .enumerate()
            .map(|(i, t)| match t.as_str() {
                "full_attention" => Ok(LayerKind::Full),
                "sliding_attention" => Ok(LayerKind::Sliding),
                other => Err(invalid(
                    file,
                    &format!("layer_types[{i}]"),
                    format!("{other:?} is not \"full_attention\" or \"sliding_attention\""),
                )),
            })
            .collect();
    }
    // One entry per layer is allocated below: refuse a hostile count first.
    if layers > MAX_LAYERS {
        return Err(invalid(file, "num_hidden_layers", format!("{layers} layers (more than {MAX_LAYERS})")));
    }
    let pattern = raw.sliding_window_pattern.or(raw.sliding_window_pattern_private).unwrap_or(6);
    if pattern == 0 {
        return Err(ConfigError::Zero { file: file.to_path_buf(), field: "sliding_window_pattern".into() });
    }
    Ok((0..layers)
        .map(|i| if (i + 1).is_multiple_of(pattern) { LayerKind::Full } else { LayerKind::Sliding })
        .collect())
}

/// The block features of a Gemma 3 text model.
pub fn features(raw: &RawConfig, file: &Path, layers: usize, hidden: usize) -> Result<BlockFeatures, ConfigError> {
    let kinds = layer_kinds(raw, file, layers)?;
    let window = match raw.sliding_window {
        None => Some(4096),
        Some(w) => w,
    };
    let sliding = kinds.contains(&LayerKind::Sliding);
    let sliding_window = match (sliding, window) {
        (false, _) => None,
        (true, Some(0)) => return Err(ConfigError::Zero { file: file.to_path_buf(), field: "sliding_window".into() }),
        (true, Some(w)) => Some(w),
        (true, None) => {
            return Err(invalid(file, "sliding_window", "is null but layer_types has sliding layers".into()));
        }
    };
    let scalar = positive_finite(file, "query_pre_attn_scalar", raw.query_pre_attn_scalar.unwrap_or(256.0))?;
    let local_theta = positive_finite(file, "rope_local_base_freq", raw.rope_local_base_freq.unwrap_or(10000.0))?;
    let cap = |field: &str, v: Option<Option<f64>>| match v.flatten() {
        None => Ok(None),
        Some(c) => positive_finite(file, field, c).map(Some),
    };
    Ok(BlockFeatures {
        norm_gain_offset: true,
        sandwich_norms: true,
        // transformers: `embed_scale = hidden_size**0.5` held as an f32 tensor and cast to
        // the embedding dtype (f32 for the f32 forward this lowering reproduces).
        embed_scale: Some((hidden as f64).sqrt() as f32 as f64),
        attn_scale: 1.0 / scalar.sqrt(),
        attn_softcap: cap("attn_logit_softcapping", raw.attn_logit_softcapping)?,
        final_softcap: cap("final_logit_softcapping", raw.final_logit_softcapping)?,
        layer_kinds: kinds,
        sliding_window,
        local_rope_theta: Some(local_theta),
        qk_norm: true,
    })
}
