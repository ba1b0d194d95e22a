//! The text files that travel with a model's weights: tokenizer, chat template and
//! generation settings. A HuggingFace folder has them as files; a GGUF file carries them in
//! its metadata, from which they are rebuilt ([`super::gguf_tokenizer`]). Either way the
//! rest of the compiler sees one set of named texts, copied into every output folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::tokenizer::ChatError;

/// The files read from a model folder (and written next to the packages), when present.
pub const MODEL_FILES: [&str; 8] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
];

/// Largest side file read (tokenizer.json of a 256k vocabulary is ~35 MB).
const MAX_FILE: u64 = 256 << 20;

/// Named texts of one model. Invariant: every name is one of [`MODEL_FILES`].
#[derive(Clone, Debug, Default)]
pub struct ModelFiles {
    /// Where the texts came from (a folder or a GGUF file), for messages.
    pub origin: PathBuf,
    files: BTreeMap<&'static str, String>,
}

impl ModelFiles {
    /// The files of the model at `model`: a folder's files, or a GGUF file's rebuilt ones.
    pub fn read(model: &Path) -> Result<ModelFiles, ChatError> {
        if crate::gguf::is_gguf_path(model) {
            let file =
                crate::gguf::GgufFile::open(model).map_err(|e| ChatError::File { file: e.file, message: e.reason })?;
            let built = super::gguf_tokenizer::tokenizer_files(&file)
                .map_err(|e| ChatError::File { file: e.file, message: e.reason })?;
            return Ok(ModelFiles { origin: model.to_path_buf(), files: built.into_iter().collect() });
        }
        let mut files = BTreeMap::new();
        for name in MODEL_FILES {
            let path = model.join(name);
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let err = |message: String| ChatError::File { file: path.clone(), message };
            if !meta.is_file() {
                return Err(err("not a regular file".into()));
            }
            if meta.len() > MAX_FILE {
                return Err(err(format!("{} bytes is larger than the {MAX_FILE}-byte limit", meta.len())));
            }
            let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
            files.insert(name, text);
        }
        Ok(ModelFiles { origin: model.to_path_buf(), files })
    }

    /// The text of file `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(String::as_str)
    }

    /// Names of the present files.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.files.keys().copied()
    }

    /// Where file `name` is (or would be), for messages.
    pub fn path_of(&self, name: &str) -> PathBuf {
        if crate::gguf::is_gguf_path(&self.origin) { self.origin.clone() } else { self.origin.join(name) }
    }

    /// File `name` parsed as JSON, if present.
    pub fn json(&self, name: &str) -> Result<Option<Value>, ChatError> {
        self.get(name)
            .map(|text| {
                serde_json::from_str(text)
                    .map_err(|e| ChatError::File { file: self.path_of(name), message: format!("not valid JSON: {e}") })
            })
            .transpose()
    }

    /// The chat template and the file it came from, in transformers' order:
    /// `chat_template.jinja`, then `chat_template.json`'s `chat_template`, then
    /// tokenizer_config.json's `chat_template` (a string, or the "default" entry of a list).
    pub fn chat_template(&self) -> Result<Option<(String, PathBuf)>, ChatError> {
        if let Some(t) = self.get("chat_template.jinja") {
            return Ok(Some((t.to_string(), self.path_of("chat_template.jinja"))));
        }
        for name in ["chat_template.json", "tokenizer_config.json"] {
            if let Some(config) = self.json(name)?
                && let Some(t) = super::template::template_text(&config)
            {
                return Ok(Some((t, self.path_of(name))));
            }
        }
        Ok(None)
    }

    /// The ids generation_config.json lists as `eos_token_id` (one id or a list).
    pub fn generation_eos(&self) -> Result<Vec<u32>, ChatError> {
        let Some(config) = self.json("generation_config.json")? else { return Ok(Vec::new()) };
        let ids = match config.get("eos_token_id") {
            Some(Value::Number(n)) => vec![n.as_u64()],
            Some(Value::Array(a)) => a.iter().map(Value::as_u64).collect(),
            _ => Vec::new(),
        };
        Ok(ids.into_iter().flatten().filter_map(|id| u32::try_from(id).ok()).collect())
    }

    /// Writes every present file into `dir`; returns the names written.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<Vec<&'static str>> {
        for (name, text) in &self.files {
            std::fs::write(dir.join(name), text)?;
        }
        Ok(self.names().collect())
    }
}
