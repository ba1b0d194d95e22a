//! Prompting a converted model: tokenizer, chat template, streamed decoding.

pub mod gguf_spm;
pub mod gguf_tokenizer;
pub mod model_files;
pub mod template;
pub mod tokenizer;

pub use model_files::{MODEL_FILES, ModelFiles};
pub use template::{render_messages, render_user_prompt};
pub use tokenizer::{ChatError, ChatTokenizer, TextStream};
