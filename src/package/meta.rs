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
        )
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
        assert!(text.ends_with("    split_lm_head: 8\n"));
    }
}
