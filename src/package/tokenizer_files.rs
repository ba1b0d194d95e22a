//! Tokenizer files next to the packages (ANEMLL step 7): the model's tokenizer, chat
//! template and generation files (copied from a folder, rebuilt from a GGUF file), and a
//! minimal config.json for iOS tokenizers.

use std::path::Path;

use crate::chat::ModelFiles;

/// Writes the tokenizer, chat-template and generation files of the model at `model` into
/// `dst`; returns the names written.
pub fn copy_tokenizer_files(model: &Path, dst: &Path) -> std::io::Result<Vec<&'static str>> {
    let files = ModelFiles::read(model).map_err(|e| std::io::Error::other(e.to_string()))?;
    files.write_to(dst)
}

/// The small config.json iOS tokenizers read (`tokenizer_class`, `model_type`).
pub fn ios_config_json(arch: &str) -> String {
    let class = if arch.starts_with("qwen") { "Qwen2Tokenizer" } else { "LlamaTokenizer" };
    format!("{{\n    \"tokenizer_class\": \"{class}\",\n    \"model_type\": \"{arch}\"\n}}\n")
}
