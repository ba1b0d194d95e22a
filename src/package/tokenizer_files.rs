//! Tokenizer files next to the packages (ANEMLL step 7): the tokenizer files that exist are
//! copied, and a minimal config.json for iOS tokenizers is written.

use std::path::Path;

/// The files ANEMLL copies, when present.
pub const TOKENIZER_FILES: [&str; 5] =
    ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"];

/// Copies the tokenizer files of `src` into `dst`; returns the names copied.
pub fn copy_tokenizer_files(src: &Path, dst: &Path) -> std::io::Result<Vec<&'static str>> {
    let mut copied = Vec::new();
    for name in TOKENIZER_FILES {
        let from = src.join(name);
        if from.is_file() {
            std::fs::copy(&from, dst.join(name))?;
            copied.push(name);
        }
    }
    Ok(copied)
}

/// The small config.json iOS tokenizers read (`tokenizer_class`, `model_type`).
pub fn ios_config_json(arch: &str) -> String {
    let class = if arch.starts_with("qwen") { "Qwen2Tokenizer" } else { "LlamaTokenizer" };
    format!("{{\n    \"tokenizer_class\": \"{class}\",\n    \"model_type\": \"{arch}\"\n}}\n")
}
