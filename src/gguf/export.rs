//! Writing a llama-architecture HuggingFace checkpoint as a GGUF file, the way llama.cpp's
//! converter lays it out (ggml tensor names, Q/K rows interleaved per head, metadata keys),
//! for benchmarks and round-trip tests of the GGUF reader on model-sized inputs
//! (`anemllc gguf-export`, hidden). Tensors stream one at a time: peak memory is one tensor
//! in f32 plus its encoding.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::parse::DEFAULT_ALIGNMENT;
use super::types::GgmlType;
use super::value::Value;
use super::write::{GgufBuilder, encode_f16, quantize_q8_0};
use crate::checkpoint::{Checkpoint, LLAMA_LAYER_NAMES, TOP_LEVEL_NAMES, gguf_row_source};
use crate::frontend::config::{Arch, ModelConfig};

/// The ggml name of HF tensor `name` (the inverse of the reader's llama-family mapping).
fn ggml_name(name: &str) -> Option<String> {
    if let Some((g, _)) = TOP_LEVEL_NAMES.iter().find(|(_, hf)| *hf == name) {
        return Some(g.to_string());
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (stem, suffix) = rest.rsplit_once('.')?;
    let (g, _) = LLAMA_LAYER_NAMES.iter().find(|(_, hf)| *hf == stem)?;
    Some(format!("blk.{layer}.{g}.{suffix}"))
}

/// llama.cpp's Q/K interleave: each HF row r goes to the stored row the reader takes it
/// from (`gguf_row_source`), so the reader's un-permutation is its exact inverse.
fn interleave_rows(values: &[f32], rows: usize, heads: usize) -> Vec<f32> {
    let cols = values.len() / rows.max(1);
    let mut out = vec![0f32; values.len()];
    for r in 0..rows {
        let g = gguf_row_source(heads, r, rows);
        out[g * cols..(g + 1) * cols].copy_from_slice(&values[r * cols..(r + 1) * cols]);
    }
    out
}

/// Writes the llama checkpoint at `model` to `out` with matrices encoded as `matrix_type`
/// (F16 or Q8_0) and 1-D tensors as F32. The file is written beside `out` and renamed.
pub fn export_llama(model: &Path, out: &Path, matrix_type: GgmlType) -> Result<u64, String> {
    if !matches!(matrix_type, GgmlType::F16 | GgmlType::Q8_0) {
        return Err(format!("gguf-export writes F16 or Q8_0 matrices, not {matrix_type}"));
    }
    let cfg = ModelConfig::from_model_path(model).map_err(|e| e.to_string())?;
    if cfg.arch != Arch::Llama {
        return Err(format!("gguf-export handles llama checkpoints, not {}", cfg.arch.name()));
    }
    let ckpt = Checkpoint::open(model).map_err(|e| e.to_string())?;
    let mut meta = GgufBuilder::new();
    let u32v = |v: usize| Value::U32(v as u32);
    meta.meta("general.architecture", Value::String("llama".into()))
        .meta("general.alignment", Value::U32(DEFAULT_ALIGNMENT as u32))
        .meta("llama.block_count", u32v(cfg.layers))
        .meta("llama.context_length", u32v(cfg.max_position_embeddings))
        .meta("llama.embedding_length", u32v(cfg.hidden))
        .meta("llama.feed_forward_length", u32v(cfg.intermediate))
        .meta("llama.attention.head_count", u32v(cfg.heads))
        .meta("llama.attention.head_count_kv", u32v(cfg.kv_heads))
        .meta("llama.attention.key_length", u32v(cfg.head_dim))
        .meta("llama.rope.freq_base", Value::F32(cfg.rope_theta as f32))
        .meta("llama.attention.layer_norm_rms_epsilon", Value::F32(cfg.rms_eps as f32))
        .meta("llama.vocab_size", u32v(cfg.vocab));
    let mut plan = Vec::new();
    for name in ckpt.names() {
        let Some(g) = ggml_name(name) else { continue };
        let shape = ckpt.info(name).expect("listed").shape.clone();
        let ty = if shape.len() >= 2 && matrix_type.row_bytes(*shape.last().unwrap()).is_some() {
            matrix_type
        } else {
            GgmlType::F32
        };
        plan.push((name.to_string(), g, ty, shape));
    }
    // Header with every tensor's info, then the data, tensor by tensor.
    let header = meta.header_bytes(plan.iter().map(|(_, g, ty, shape)| {
        let dims: Vec<usize> = shape.iter().rev().copied().collect();
        let rows: usize = dims[1..].iter().product();
        (g.as_str(), *ty, dims.clone(), ty.row_bytes(dims[0]).expect("whole blocks") * rows)
    }));
    let tmp = out.with_extension(format!("gguf.tmp-{}", std::process::id()));
    let result = (|| -> Result<u64, String> {
        let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut w = BufWriter::with_capacity(8 << 20, file);
        let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
        w.write_all(&header).map_err(io)?;
        let mut written = header.len() as u64;
        for (name, g, ty, shape) in &plan {
            let mut values = ckpt.to_f32(name).map_err(|e| e.to_string())?;
            ckpt.release(name);
            if g.contains(".attn_q.") || g.contains(".attn_k.") {
                let heads = if g.contains(".attn_q.") { cfg.heads } else { cfg.kv_heads };
                values = interleave_rows(&values, shape[0], heads);
            }
            let bytes = match ty {
                GgmlType::F16 => encode_f16(&values),
                GgmlType::Q8_0 => quantize_q8_0(&values),
                _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            w.write_all(&bytes).map_err(io)?;
            let pad = bytes.len().div_ceil(DEFAULT_ALIGNMENT as usize) * DEFAULT_ALIGNMENT as usize - bytes.len();
            w.write_all(&vec![0u8; pad]).map_err(io)?;
            written += (bytes.len() + pad) as u64;
        }
        w.flush().map_err(io)?;
        std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))?;
        Ok(written)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_is_undone_by_the_reader() {
        let (rows, cols, heads) = (12, 3, 2);
        let values: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let stored = interleave_rows(&values, rows, heads);
        for r in 0..rows {
            let g = gguf_row_source(heads, r, rows);
            assert_eq!(&stored[g * cols..(g + 1) * cols], &values[r * cols..(r + 1) * cols]);
        }
    }
}
