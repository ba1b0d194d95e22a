//! `meta.yaml`, byte-compatible in layout with ANEMLL's generator (2-space nesting, so the
//! `parameters` keys sit at 4 spaces — ANEMLL's prepare_hf.sh reads values with
//! `cut -d' ' -f6`). Unlike ANEMLL on Linux, the file names are those actually written.

/// Everything meta.yaml records.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaYaml {
    /// The source model's name (the checkpoint folder's base name).
    pub model_name: String,
    pub context: usize,
    pub batch: usize,
    pub lut_embeddings: Option<u32>,
    pub lut_ffn: Option<u32>,
    pub lut_lmhead: Option<u32>,
    pub num_chunks: usize,
    pub prefix: String,
    pub arch: String,
    /// File names as written (e.g. `llama_embeddings.mlpackage`).
    pub embeddings: String,
    pub lm_head: String,
    /// The FFN file name without the chunk suffix (runtimes add `_chunk_XXofNN`).
    pub ffn: String,
    pub split_lm_head: usize,
    pub version: String,
    /// Rows of each LM-head piece, in vocabulary order (ANEMLL 0.3.6 `lm_head_chunk_sizes`).
    pub lm_head_chunk_sizes: Vec<usize>,
    /// The LM head returns `argmax_idx`/`argmax_val` per piece instead of logits.
    pub argmax_in_model: bool,
    /// KV length of the sliding-window layers (models that have them).
    pub sliding_window: Option<usize>,
}

fn lut(v: Option<u32>) -> String {
    v.map_or_else(|| "none".to_string(), |b| b.to_string())
}

impl MetaYaml {
    /// The file text.
    pub fn render(&self) -> String {
        format!(
            "model_info:
  name: anemll-{name}-ctx{ctx}
  version: {version}
  description: |
    Demonstrates running {name} on Apple Neural Engine
    Context length: {ctx}
    Batch size: {batch}
    Chunks: {chunks}
  license: MIT
  author: Anemll
  framework: Core ML
  language: Python
  architecture: {arch}
  parameters:
    context_length: {ctx}
    batch_size: {batch}
    lut_embeddings: {lut_emb}
    lut_ffn: {lut_ffn}
    lut_lmhead: {lut_lmh}
    num_chunks: {chunks}
    model_prefix: {prefix}
    embeddings: {embeddings}
    lm_head: {lm_head}
    ffn: {ffn}
    split_lm_head: {split}
",
            name = self.model_name,
            ctx = self.context,
            version = self.version,
            batch = self.batch,
            chunks = self.num_chunks,
            arch = self.arch,
            lut_emb = lut(self.lut_embeddings),
            lut_ffn = lut(self.lut_ffn),
            lut_lmh = lut(self.lut_lmhead),
            prefix = self.prefix,
            embeddings = self.embeddings,
            lm_head = self.lm_head,
            ffn = self.ffn,
            split = self.split_lm_head,
        ) + &self.optional_keys()
    }

    /// ANEMLL 0.3.6's keys after `split_lm_head`, in its order (0.3.4 readers ignore them).
    /// `prefill_dynamic_slice: true` is truthful for every architecture: prefill writes its
    /// rows at `current_pos`; without it 0.3.6's chat.py prefills token by token.
    fn optional_keys(&self) -> String {
        let mut out = String::new();
        if self.argmax_in_model {
            out.push_str("    argmax_in_model: true\n");
        }
        let vocab: usize = self.lm_head_chunk_sizes.iter().sum();
        if vocab > 0 {
            out.push_str(&format!("    vocab_size: {vocab}\n"));
            let sizes: Vec<String> = self.lm_head_chunk_sizes.iter().map(usize::to_string).collect();
            out.push_str(&format!("    lm_head_chunk_sizes: [{}]\n", sizes.join(", ")));
        }
        if let Some(w) = self.sliding_window {
            out.push_str(&format!("    sliding_window: {w}\n"));
        }
        out.push_str("    prefill_dynamic_slice: true\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_anemll() {
        let m = MetaYaml {
            model_name: "Llama-3.2-1B".into(),
            context: 512,
            batch: 64,
            lut_embeddings: None,
            lut_ffn: Some(6),
            lut_lmhead: Some(6),
            num_chunks: 2,
            prefix: "llama".into(),
            arch: "llama".into(),
            embeddings: "llama_embeddings.mlpackage".into(),
            lm_head: "llama_lm_head_lut6.mlpackage".into(),
            ffn: "llama_FFN_PF_lut6.mlpackage".into(),
            split_lm_head: 8,
            version: "0.3.4".into(),
            lm_head_chunk_sizes: vec![16032; 8],
            argmax_in_model: false,
            sliding_window: None,
        };
        let text = m.render();
        assert!(text.starts_with("model_info:\n  name: anemll-Llama-3.2-1B-ctx512\n  version: 0.3.4\n"));
        // prepare_hf.sh: `grep context_length meta.yaml | cut -d' ' -f6`.
        let line = text.lines().find(|l| l.contains("context_length")).unwrap();
        assert_eq!(line.split(' ').nth(5), Some("512"));
        for key in ["batch_size", "lut_ffn", "lut_lmhead", "num_chunks", "model_prefix", "split_lm_head"] {
            let line = text.lines().find(|l| l.trim_start().starts_with(key)).unwrap();
            assert!(line.starts_with("    ") && !line.starts_with("     "), "{key} at 4 spaces");
        }
        assert!(text.contains("    lut_embeddings: none\n"));
        assert!(text.contains("    split_lm_head: 8\n    vocab_size: 128256\n    lm_head_chunk_sizes: [16032, "));
        assert!(text.ends_with("    prefill_dynamic_slice: true\n"));
    }
}
