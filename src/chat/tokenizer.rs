//! The model's tokenizer (tokenizer.json via the `tokenizers` crate) and the special-token
//! facts a runner needs (EOS ids from config.json and tokenizer_config.json).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::model_files::ModelFiles;

/// Why the tokenizer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("{file}: {message}")]
    File { file: PathBuf, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template ({file}): {message}")]
    Template { file: PathBuf, message: String },
}

/// A loaded tokenizer plus its configuration.
pub struct ChatTokenizer {
    tokenizer: tokenizers::Tokenizer,
    /// tokenizer_config.json, if present.
    pub config: Option<Value>,
    pub config_path: PathBuf,
    /// The chat template and the file it came from (see [`ModelFiles::chat_template`]).
    pub template: Option<(String, PathBuf)>,
    /// Token ids that end generation.
    pub eos_ids: Vec<u32>,
}

/// A special token given as a string or as `{"content": "…"}`.
pub fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

impl ChatTokenizer {
    /// Loads the tokenizer of the model at `model` (a folder with `tokenizer.json`, or a
    /// GGUF file); `config_eos` are the EOS ids from the model config.
    pub fn load(model: &Path, config_eos: &[u32]) -> Result<ChatTokenizer, ChatError> {
        Self::from_files(&ModelFiles::read(model)?, config_eos)
    }

    /// The tokenizer described by `files`. Generation ends on `config_eos`, on every id
    /// generation_config.json lists, and on tokenizer_config.json's `eos_token`.
    pub fn from_files(files: &ModelFiles, config_eos: &[u32]) -> Result<ChatTokenizer, ChatError> {
        let path = files.path_of("tokenizer.json");
        let missing = if crate::gguf::is_gguf_path(&files.origin) {
            "carries no tokenizer metadata (tokenizer.ggml.*) to tokenize the prompt; pass --tokens instead"
        } else {
            "missing (needed to tokenize the prompt)"
        };
        let text = files
            .get("tokenizer.json")
            .ok_or_else(|| ChatError::File { file: path.clone(), message: missing.into() })?;
        let tokenizer: tokenizers::Tokenizer = text
            .parse()
            .map_err(|e: tokenizers::Error| ChatError::File { file: path.clone(), message: e.to_string() })?;
        let config_path = files.path_of("tokenizer_config.json");
        let config = files.json("tokenizer_config.json")?;
        let mut eos_ids: Vec<u32> = config_eos.to_vec();
        for id in files.generation_eos()? {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        if let Some(text) = token_text(config.as_ref().and_then(|c| c.get("eos_token")))
            && let Some(id) = tokenizer.token_to_id(&text)
            && !eos_ids.contains(&id)
        {
            eos_ids.push(id);
        }
        let template = files.chat_template()?;
        Ok(ChatTokenizer { tokenizer, config, config_path, template, eos_ids })
    }

    /// Token ids of `text`, without adding special tokens (a chat template adds its own).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, ChatError> {
        let enc = self.tokenizer.encode(text, add_special).map_err(|e| ChatError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, skipping special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String, ChatError> {
        self.tokenizer.decode(ids, true).map_err(|e| ChatError::Tokenizer(e.to_string()))
    }

    /// Text of `ids`, special tokens included.
    pub fn decode_with_special(&self, ids: &[u32]) -> Result<String, ChatError> {
        self.tokenizer.decode(ids, false).map_err(|e| ChatError::Tokenizer(e.to_string()))
    }

    /// The configured special token `key` (`bos_token`, `eos_token`), if any.
    pub fn special(&self, key: &str) -> Option<String> {
        token_text(self.config.as_ref().and_then(|c| c.get(key)))
    }
}

/// Streams decoded text: feed ids one by one, get back the newly completed text (holding
/// back an incomplete UTF-8 sequence, shown as U+FFFD by the decoder, until it completes).
pub struct TextStream {
    ids: Vec<u32>,
    printed: usize,
}

impl Default for TextStream {
    fn default() -> Self {
        Self::new()
    }
}

impl TextStream {
    pub fn new() -> Self {
        TextStream { ids: Vec::new(), printed: 0 }
    }

    /// Adds a token and returns the text that became final.
    pub fn push(&mut self, tok: &ChatTokenizer, id: u32) -> Result<String, ChatError> {
        self.ids.push(id);
        let text = tok.decode(&self.ids)?;
        if text.ends_with('\u{FFFD}') || text.len() < self.printed || !text.is_char_boundary(self.printed) {
            return Ok(String::new());
        }
        let new = text[self.printed..].to_string();
        self.printed = text.len();
        Ok(new)
    }

    /// The text not yet returned (e.g. a trailing incomplete sequence), at the end.
    pub fn finish(&mut self, tok: &ChatTokenizer) -> Result<String, ChatError> {
        let text = tok.decode(&self.ids)?;
        let rest = if text.is_char_boundary(self.printed) { text[self.printed..].to_string() } else { String::new() };
        self.printed = text.len();
        Ok(rest)
    }
}
