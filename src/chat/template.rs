//! Chat templates: the Jinja `chat_template` of tokenizer_config.json rendered with
//! minijinja (plus Python-compatible string methods), as transformers'
//! `apply_chat_template(messages, add_generation_prompt=True)` does.

use minijinja::{Environment, Error, ErrorKind, context};
use serde_json::Value;

use super::tokenizer::{ChatError, ChatTokenizer};

/// The template text: `chat_template` as a string, or the entry named "default" of a list
/// of `{name, template}` objects.
pub fn template_text(config: &Value) -> Option<String> {
    match config.get("chat_template")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .or_else(|| items.first())
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

/// Renders a single user turn with the generation prompt, or `None` if the tokenizer has
/// no chat template.
pub fn render_user_prompt(tok: &ChatTokenizer, user: &str) -> Result<Option<String>, ChatError> {
    render_messages(tok, &[("user".to_string(), user.to_string())], true)
}

/// Renders a conversation of `(role, content)` turns, with the generation prompt if
/// `add_generation_prompt`, or `None` if the tokenizer has no chat template.
pub fn render_messages(
    tok: &ChatTokenizer,
    turns: &[(String, String)],
    add_generation_prompt: bool,
) -> Result<Option<String>, ChatError> {
    let Some((template, file)) = &tok.template else {
        return Ok(None);
    };
    let err = |e: Error| ChatError::Template { file: file.clone(), message: e.to_string() };
    let mut env = Environment::new();
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_template("chat", template).map_err(err)?;
    let messages: Vec<_> = turns.iter().map(|(role, content)| context! { role => role, content => content }).collect();
    let rendered = env
        .get_template("chat")
        .and_then(|t| {
            t.render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => tok.special("bos_token").unwrap_or_default(),
                eos_token => tok.special("eos_token").unwrap_or_default(),
            })
        })
        .map_err(err)?;
    Ok(Some(rendered))
}
