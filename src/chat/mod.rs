//! Prompting a converted model: tokenizer, chat template, streamed decoding.

pub mod template;
pub mod tokenizer;

pub use template::render_user_prompt;
pub use tokenizer::{ChatError, ChatTokenizer, TextStream};
