//! The calibration text: built in, or read from a file and checked.
//!
//! A file is either **plain text** (UTF-8, no NUL bytes) or **JSONL of chat messages**: one
//! conversation per non-empty line, as `{"messages": [{"role": …, "content": …}, …]}` or a
//! bare `[{"role": …, "content": …}, …]`. A file whose first non-blank character is `{` or
//! `[` is read as JSONL; every line must then parse and have that shape. Conversations are
//! rendered with the model's chat template (no generation prompt) and tokenized without
//! adding special tokens again; plain text is tokenized as one document with them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::CalibError;
use crate::chat::{ChatTokenizer, render_messages};

/// The built-in calibration text: about 2 600 tokens of mixed-domain English written for
/// this project (prose, dialogue, code, SQL, numbers, a letter, notes). License: the
/// project's own.
pub const BUILTIN_TEXT: &str = include_str!("builtin.txt");

/// Short chat conversations (JSONL, one per line) written for this project. For a model with
/// a chat template they are rendered with it and interleaved with [`BUILTIN_TEXT`], so that
/// calibration also sees the template's special tokens and the turn structure an instruct
/// model runs on.
pub const BUILTIN_CHATS: &str = include_str!("builtin_chats.jsonl");

/// A held-out text for quality measurements, never used for calibration (about 550 tokens,
/// same mix of domains, different content).
pub const HELDOUT_TEXT: &str = include_str!("heldout.txt");

/// Where the calibration tokens come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CalibInput {
    /// [`BUILTIN_TEXT`].
    Builtin,
    /// A plain-text or JSONL file.
    File(PathBuf),
}

impl CalibInput {
    /// `built-in` or the file's path, for reports.
    pub fn describe(&self) -> String {
        match self {
            CalibInput::Builtin => "built-in text".to_string(),
            CalibInput::File(p) => p.display().to_string(),
        }
    }

    /// The calibration tokens. Errors name the file and the problem: unreadable, empty,
    /// binary, not UTF-8, JSONL of the wrong shape, a template that fails, or no token.
    pub fn tokens(&self, tok: &ChatTokenizer) -> Result<Vec<u32>, CalibError> {
        let tokens = match self {
            CalibInput::Builtin => builtin_tokens(tok)?,
            CalibInput::File(path) => {
                let text = read_text(path)?;
                match parse_jsonl(path, &text)? {
                    Some(chats) => chat_tokens(path, tok, &chats)?,
                    // Special tokens (BOS) alone are not text.
                    None if encode(tok, &text, false)?.is_empty() => {
                        return Err(self.error("holds less than one token of text"));
                    }
                    None => encode(tok, &text, true)?,
                }
            }
        };
        Ok(tokens)
    }

    fn error(&self, message: &str) -> CalibError {
        match self {
            CalibInput::Builtin => CalibError::Text(message.to_string()),
            CalibInput::File(path) => CalibError::File { path: path.clone(), message: message.to_string() },
        }
    }
}

/// The built-in text, paragraph groups interleaved with the built-in chats when the model has
/// a chat template.
fn builtin_tokens(tok: &ChatTokenizer) -> Result<Vec<u32>, CalibError> {
    let chats = match &tok.template {
        Some(_) => parse_jsonl(Path::new("builtin_chats.jsonl"), BUILTIN_CHATS)?.unwrap_or_default(),
        None => Vec::new(),
    };
    let paragraphs: Vec<&str> = BUILTIN_TEXT.split("\n\n").filter(|p| !p.trim().is_empty()).collect();
    let per_chat = paragraphs.len().div_ceil(chats.len().max(1)).max(1);
    let mut tokens = Vec::new();
    let mut chats = chats.iter();
    for (i, group) in paragraphs.chunks(per_chat).enumerate() {
        tokens.extend(encode(tok, &group.join("\n\n"), i == 0)?);
        if let Some(chat) = chats.next() {
            tokens.extend(chat_tokens(Path::new("builtin_chats.jsonl"), tok, std::slice::from_ref(chat))?);
        }
    }
    Ok(tokens)
}

fn encode(tok: &ChatTokenizer, text: &str, add_special: bool) -> Result<Vec<u32>, CalibError> {
    tok.encode(text, add_special).map_err(|e| CalibError::Model(e.to_string()))
}

/// The file as UTF-8 text: not empty, no NUL byte (binary), valid UTF-8.
fn read_text(path: &Path) -> Result<String, CalibError> {
    let fail = |message: String| CalibError::File { path: path.to_path_buf(), message };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(fail("is empty".into()));
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(fail(format!("is binary (a NUL byte at offset {at}); give plain text or JSONL")));
    }
    String::from_utf8(bytes)
        .map_err(|e| fail(format!("is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to())))
}

/// One conversation: `(role, content)` turns.
type Chat = Vec<(String, String)>;

/// `Some(conversations)` when `text` is JSONL (first non-blank character `{` or `[`).
fn parse_jsonl(path: &Path, text: &str) -> Result<Option<Vec<Chat>>, CalibError> {
    if !text.trim_start().starts_with(['{', '[']) {
        return Ok(None);
    }
    let mut chats = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fail = |message: String| CalibError::File {
            path: path.to_path_buf(),
            message: format!("line {}: {message}", n + 1),
        };
        let value: Value = serde_json::from_str(line).map_err(|e| fail(format!("not JSON ({e})")))?;
        let messages = match &value {
            Value::Array(items) => items,
            Value::Object(o) => match o.get("messages") {
                Some(Value::Array(items)) => items,
                _ => return Err(fail("expected {\"messages\": [{\"role\": …, \"content\": …}, …]}".into())),
            },
            _ => return Err(fail("expected a JSON object with \"messages\" or an array of messages".into())),
        };
        if messages.is_empty() {
            return Err(fail("a conversation without messages".into()));
        }
        let mut chat = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            let field = |key: &str| m.get(key).and_then(Value::as_str).map(str::to_string);
            match (field("role"), field("content")) {
                (Some(role), Some(content)) => chat.push((role, content)),
                _ => return Err(fail(format!("message {i} needs string fields \"role\" and \"content\""))),
            }
        }
        chats.push(chat);
    }
    Ok(Some(chats))
}

fn chat_tokens(path: &Path, tok: &ChatTokenizer, chats: &[Chat]) -> Result<Vec<u32>, CalibError> {
    let mut tokens = Vec::new();
    for chat in chats {
        let rendered = render_messages(tok, chat, false)
            .map_err(|e| CalibError::File { path: path.to_path_buf(), message: e.to_string() })?
            .ok_or_else(|| CalibError::File {
                path: path.to_path_buf(),
                message: "is JSONL chat, but the model has no chat template to render it; give plain text".into(),
            })?;
        tokens.extend(encode(tok, &rendered, false)?);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("anemllc-calib-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn bad_files_are_named_with_the_reason() {
        let msg = |p: &Path| read_text(p).unwrap_err().to_string();
        assert!(msg(&temp("empty.txt", b"  \n")).contains("is empty"));
        assert!(msg(&temp("bin.txt", b"ab\0cd")).contains("binary (a NUL byte at offset 2)"));
        assert!(msg(&temp("latin1.txt", b"caf\xe9")).contains("not UTF-8 text (invalid byte at offset 3)"));
        assert!(msg(&temp("present.txt", b"x").with_file_name("absent.txt")).contains("cannot read"));
    }

    #[test]
    fn jsonl_shapes_are_checked_by_line() {
        let p = Path::new("c.jsonl");
        let ok = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n\n[{\"role\": \"user\", \"content\": \"yo\"}]\n";
        let chats = parse_jsonl(p, ok).unwrap().unwrap();
        assert_eq!(chats, vec![vec![("user".into(), "hi".into())], vec![("user".into(), "yo".into())]]);
        assert_eq!(parse_jsonl(p, "plain words").unwrap(), None);
        let err = |t: &str| parse_jsonl(p, t).unwrap_err().to_string();
        assert!(err("{\"messages\": [{\"role\": \"user\"}]}").contains("line 1: message 0 needs string fields"));
        assert!(
            err("[{\"role\": \"u\", \"content\": \"c\"}]\n{\"text\": 1}").contains("line 2: expected {\"messages\"")
        );
        assert!(err("{not json").contains("line 1: not JSON"));
        assert!(err("[]").contains("without messages"));
    }

    #[test]
    fn builtin_chats_parse() {
        let chats = parse_jsonl(Path::new("builtin_chats.jsonl"), BUILTIN_CHATS).unwrap().unwrap();
        assert!(chats.len() >= 10);
        assert!(chats.iter().all(|c| c.len() >= 2 && c[0].0 == "user"));
    }

    #[test]
    fn builtin_and_heldout_texts_differ_and_are_substantial() {
        assert!(BUILTIN_TEXT.split_whitespace().count() > 1800);
        assert!(HELDOUT_TEXT.split_whitespace().count() > 300);
        for line in HELDOUT_TEXT.lines().filter(|l| l.len() > 40) {
            assert!(!BUILTIN_TEXT.contains(line), "held-out line also in the calibration text: {line}");
        }
    }
}
