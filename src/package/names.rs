//! File names of the parts, exactly as ANEMLL's runtimes look them up
//! (anemll-contract.md §3.3): `{prefix}_embeddings[_lut{b}]`, `{prefix}_lm_head[_lut{b}]`,
//! `{prefix}_FFN_PF[_lut{b}]_chunk_{i:02}of{N:02}` (1-based chunk numbers).

/// `_lut{b}` or nothing.
fn lut_suffix(bits: Option<u32>) -> String {
    bits.map(|b| format!("_lut{b}")).unwrap_or_default()
}

/// Stem of the embeddings package.
pub fn embeddings(prefix: &str, lut: Option<u32>) -> String {
    format!("{prefix}_embeddings{}", lut_suffix(lut))
}

/// Stem of the LM-head package.
pub fn lm_head(prefix: &str, lut: Option<u32>) -> String {
    format!("{prefix}_lm_head{}", lut_suffix(lut))
}

/// Stem of FFN chunk `index` (0-based) of `count`, as the runtimes' `_chunk_(\d+)of(\d+)`
/// regex expects.
pub fn ffn_chunk(prefix: &str, lut: Option<u32>, index: usize, count: usize) -> String {
    format!("{}_chunk_{:02}of{:02}", ffn_base(prefix, lut), index + 1, count)
}

/// The FFN stem without the chunk suffix (what meta.yaml's `ffn` names).
pub fn ffn_base(prefix: &str, lut: Option<u32>) -> String {
    format!("{prefix}_FFN_PF{}", lut_suffix(lut))
}

/// The default prefix for an architecture, as convert_model.sh picks it.
pub fn default_prefix(arch: &str) -> &'static str {
    match arch {
        "qwen2" => "qwen25",
        a if a.starts_with("qwen") => "qwen",
        a if a.starts_with("gemma3") => "gemma3",
        _ => "llama",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names() {
        assert_eq!(embeddings("llama", None), "llama_embeddings");
        assert_eq!(lm_head("llama", Some(6)), "llama_lm_head_lut6");
        assert_eq!(ffn_chunk("DeepSeek", Some(6), 7, 8), "DeepSeek_FFN_PF_lut6_chunk_08of08");
        assert_eq!(ffn_chunk("qwen", None, 0, 1), "qwen_FFN_PF_chunk_01of01");
        assert_eq!(ffn_base("llama", Some(4)), "llama_FFN_PF_lut4");
        assert_eq!(default_prefix("qwen2"), "qwen25");
        assert_eq!(default_prefix("qwen3"), "qwen");
        assert_eq!(default_prefix("llama"), "llama");
    }
}
