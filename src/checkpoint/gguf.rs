//! A GGUF file opened as a [`Checkpoint`]: tensors under their HuggingFace names, with the
//! values transformers' GGUF loader gives them.
//!
//! transformers (`modeling_gguf_pytorch_utils`) dequantises every tensor to f32 and then,
//! per architecture, undoes what llama.cpp's converter did: for `llama` the Q/K rows were
//! interleaved per head (`permute`), and are put back with a row permutation; for Gemma the
//! converter stored norm gains as `1 + w`, and 1 is subtracted. Both are exact (a row
//! reorder; one f32 subtraction per element), so they are applied when rows are decoded and
//! every consumer sees exactly transformers' tensors.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use super::open::{Entry, Place};
use super::{Checkpoint, CheckpointError, StDType, TensorInfo};
use crate::gguf::{GgmlType, GgufFile, RawTensor, dequant};

/// How the rows of a mapped GGUF tensor are produced from the stored ones.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RowMap {
    /// Heads of the llama Q/K un-permutation; `None` keeps the stored row order.
    pub unpermute_heads: Option<usize>,
    /// Added to every value after decoding (Gemma's norm gains: −1).
    pub add: Option<f32>,
}

impl RowMap {
    pub const IDENTITY: RowMap = RowMap { unpermute_heads: None, add: None };

    /// The stored row that becomes row `r` of a tensor with `rows` rows.
    ///
    /// llama.cpp stores head h's row (half j, index i) at h·2d + 2i + j; transformers'
    /// `reverse_permute` puts it back at h·2d + j·d + i (d = rows / heads / 2).
    pub fn source_row(&self, r: usize, rows: usize) -> usize {
        match self.unpermute_heads {
            None => r,
            Some(heads) => {
                let d = rows / heads / 2;
                let (h, rem) = (r / (2 * d), r % (2 * d));
                let (j, i) = (rem / d, rem % d);
                h * 2 * d + 2 * i + j
            }
        }
    }
}

/// The stored row that becomes row `r` of a `rows`-row llama Q/K tensor of `heads` heads
/// (see [`RowMap::source_row`]).
pub fn gguf_row_source(heads: usize, r: usize, rows: usize) -> usize {
    RowMap { unpermute_heads: Some(heads), add: None }.source_row(r, rows)
}

/// Whole-model tensors: (ggml name, HuggingFace name).
pub const TOP_LEVEL_NAMES: [(&str, &str); 3] = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// Per-layer tensor stems of the llama family (llama, qwen2, qwen3): (ggml, HuggingFace).
pub const LLAMA_LAYER_NAMES: [(&str, &str); 11] = [
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
    ("ffn_norm", "post_attention_layernorm"),
];

/// Gemma's stems where they differ from the llama family's (four norms per layer).
const GEMMA_LAYER_NAMES: [(&str, &str); 3] = [
    ("ffn_norm", "pre_feedforward_layernorm"),
    ("post_attention_norm", "post_attention_layernorm"),
    ("post_ffw_norm", "post_feedforward_layernorm"),
];

/// The HuggingFace name of GGUF tensor `name` for architecture `arch`, or `None` for
/// tensors transformers does not load either (e.g. llama3's precomputed `rope_freqs`).
pub(crate) fn hf_name(arch: &str, name: &str) -> Option<String> {
    if let Some((_, hf)) = TOP_LEVEL_NAMES.iter().find(|(g, _)| *g == name) {
        return Some(hf.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (stem, suffix) = rest.rsplit_once('.')?;
    let gemma: &[(&str, &str)] = if arch.starts_with("gemma") { &GEMMA_LAYER_NAMES } else { &[] };
    let (_, hf) = gemma.iter().chain(&LLAMA_LAYER_NAMES).find(|(g, _)| *g == stem)?;
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// The value transform transformers applies to GGUF tensor `name` of `arch`.
fn row_map(file: &GgufFile, arch: &str, name: &str) -> Result<RowMap, CheckpointError> {
    let mut map = RowMap::IDENTITY;
    if arch == "llama" && (name.contains(".attn_q.") || name.contains(".attn_k.")) {
        let key = if name.contains(".attn_q.") { "head_count" } else { "head_count_kv" };
        let heads = file
            .get_u64(&format!("llama.attention.{key}"))
            .ok()
            .flatten()
            .or_else(|| file.get_u64("llama.attention.head_count").ok().flatten())
            .filter(|&h| h > 0)
            .ok_or_else(|| {
                gguf_error(
                    file,
                    format!("metadata llama.attention.{key} is missing or 0 (needed to un-permute {name:?})"),
                )
            })?;
        map.unpermute_heads = Some(heads as usize);
    }
    if arch.starts_with("gemma") && name.ends_with("norm.weight") {
        map.add = Some(-1.0);
    }
    Ok(map)
}

fn gguf_error(file: &GgufFile, reason: String) -> CheckpointError {
    CheckpointError::Gguf { file: file.path().to_path_buf(), reason }
}

impl Checkpoint {
    /// Opens a GGUF file; tensors are named and valued as transformers loads them.
    pub(super) fn open_gguf(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let file = GgufFile::open(path).map_err(|e| CheckpointError::Gguf { file: e.file, reason: e.reason })?;
        let arch = file
            .get_str("general.architecture")
            .map_err(|e| CheckpointError::Gguf { file: e.file, reason: e.reason })?
            .ok_or_else(|| gguf_error(&file, "metadata general.architecture is missing".into()))?
            .to_string();
        let mut entries = BTreeMap::new();
        for (index, t) in file.tensors().iter().enumerate() {
            let Some(name) = hf_name(&arch, &t.name) else { continue };
            let rows = row_map(&file, &arch, &t.name)?;
            let shape = t.shape();
            if let Some(heads) = rows.unpermute_heads {
                let r = shape.first().copied().unwrap_or(0);
                if heads.checked_mul(2).is_none_or(|two_heads| two_heads == 0 || !r.is_multiple_of(two_heads)) {
                    return Err(gguf_error(
                        &file,
                        format!("tensor {:?}: {r} rows cannot be split into {heads} heads of two halves", t.name),
                    ));
                }
            }
            let dtype = match t.ty {
                GgmlType::F16 if rows.add.is_none() => StDType::F16,
                GgmlType::BF16 if rows.add.is_none() => StDType::BF16,
                _ => StDType::F32,
            };
            let info = TensorInfo { dtype, shape, file: path.to_path_buf() };
            if entries.insert(name.clone(), Entry { info, place: Place::Gguf { tensor: index, rows } }).is_some() {
                return Err(gguf_error(&file, format!("two tensors map to {name:?}")));
            }
        }
        Ok(Checkpoint { shards: Vec::new(), gguf: Some(file), entries })
    }

    /// The GGUF file behind this checkpoint, if it was opened from one.
    pub fn gguf(&self) -> Option<&GgufFile> {
        self.gguf.as_ref()
    }
}

/// Decodes rows `start..end` (of axis 0 of the row-major shape) of GGUF tensor `t` into
/// `out` (exactly `(end − start) × row_len` long), applying `map`. Rows decode in parallel;
/// each output value depends only on its own block, so the result is deterministic.
pub(super) fn decode_rows(file: &GgufFile, t: &RawTensor, map: &RowMap, start: usize, end: usize, out: &mut [f32]) {
    let shape = t.shape();
    let rows = shape.first().copied().unwrap_or(1);
    let data = file.data(t);
    if t.dims.len() == 1 {
        // One ggml row; axis-0 "rows" are single elements, which blocks cannot give alone.
        let mut all = vec![0f32; t.row_len()];
        dequant::dequantize_into(t.ty, data, &mut all);
        for (k, dst) in out.iter_mut().enumerate() {
            *dst = all[map.source_row(start + k, rows)];
        }
    } else {
        // An axis-0 slab is a whole number of ggml rows, contiguous in the file.
        let slab = shape[1..].iter().product::<usize>();
        let slab_bytes = slab / t.row_len() * t.ty.row_bytes(t.row_len()).expect("checked when parsed");
        debug_assert_eq!(out.len(), (end - start) * slab);
        let min_slabs = (1usize << 14).div_ceil(slab.max(1)).max(1);
        out.par_chunks_mut(slab.max(1)).with_min_len(min_slabs).enumerate().for_each(|(k, dst)| {
            let src = map.source_row(start + k, rows);
            dequant::dequantize_into(t.ty, &data[src * slab_bytes..(src + 1) * slab_bytes], dst);
        });
    }
    if let Some(add) = map.add {
        out.par_iter_mut().for_each(|v| *v += add);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_matches_transformers_reverse_permute() {
        // transformers: w.reshape(heads, d, 2, …).swapaxes(1, 2).reshape(rows, …); check
        // against that index arithmetic written out for 2 heads of d = 3.
        let (heads, d) = (2, 3);
        let rows = heads * 2 * d;
        let map = RowMap { unpermute_heads: Some(heads), add: None };
        let mut expected = Vec::new();
        for h in 0..heads {
            for j in 0..2 {
                for i in 0..d {
                    expected.push(h * 2 * d + i * 2 + j);
                }
            }
        }
        let got: Vec<usize> = (0..rows).map(|r| map.source_row(r, rows)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn names_follow_transformers_mapping() {
        assert_eq!(hf_name("llama", "blk.3.attn_q.weight").as_deref(), Some("model.layers.3.self_attn.q_proj.weight"));
        assert_eq!(
            hf_name("llama", "blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(
            hf_name("gemma3", "blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.pre_feedforward_layernorm.weight")
        );
        assert_eq!(hf_name("qwen2", "blk.1.attn_k.bias").as_deref(), Some("model.layers.1.self_attn.k_proj.bias"));
        assert_eq!(hf_name("llama", "rope_freqs.weight"), None);
        assert_eq!(hf_name("llama", "blk.x.attn_q.weight"), None);
    }
}
