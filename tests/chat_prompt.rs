//! Prompting: the chat template of tokenizer_config.json renders exactly as transformers'
//! `apply_chat_template` did when the fixtures were made, the tokenizer reproduces the
//! reference prompt ids, and `anemllc run --prompt` streams exactly the text of
//! transformers' greedy tokens.

use std::path::Path;
use std::process::Command;

use anemllc::chat::{ChatTokenizer, TextStream, render_user_prompt};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
}

fn reference(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("reference.json")).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn template_and_tokenizer_reproduce_the_reference_prompt() {
    let r = reference("llama_tiny");
    let tok = ChatTokenizer::load(&fixture("llama_tiny"), &[2]).unwrap();
    let user = r["prompt_messages"][0]["content"].as_str().unwrap();
    let rendered = render_user_prompt(&tok, user).unwrap().expect("fixture has a chat template");
    assert_eq!(rendered, r["prompt_text"].as_str().unwrap());
    assert_eq!(tok.encode(&rendered, false).unwrap(), ids(&r["prompt"]));
    assert!(tok.eos_ids.contains(&2), "<|im_end|> is an EOS token");
}

#[test]
fn streaming_decode_equals_whole_decode() {
    let r = reference("qwen2_bias");
    let tok = ChatTokenizer::load(&fixture("qwen2_bias"), &[]).unwrap();
    let generated = ids(&r["generated"]);
    let mut stream = TextStream::new();
    let mut text = String::new();
    for &t in &generated {
        text.push_str(&stream.push(&tok, t).unwrap());
    }
    text.push_str(&stream.finish(&tok).unwrap());
    assert_eq!(text, tok.decode(&generated).unwrap());
}

#[test]
fn cli_run_prompt_streams_transformers_greedy_text() {
    let r = reference("llama_tiny");
    let tmp = std::env::temp_dir().join(format!("anemllc-chat-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let air = tmp.join("m.air");
    let bin = env!("CARGO_BIN_EXE_anemllc");
    let lower = Command::new(bin)
        .arg("lower")
        .arg(fixture("llama_tiny"))
        .arg("-o")
        .arg(&air)
        .args(["--context", "32", "--batch", "8"])
        .output()
        .unwrap();
    assert!(lower.status.success(), "{}", String::from_utf8_lossy(&lower.stderr));
    let user = r["prompt_messages"][0]["content"].as_str().unwrap();
    let run = Command::new(bin).arg("run").arg(&air).args(["--prompt", user, "--max-tokens", "16"]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let tok = ChatTokenizer::load(&fixture("llama_tiny"), &[2]).unwrap();
    let generated = ids(&r["generated"]);
    assert!(!generated.iter().any(|t| tok.eos_ids.contains(t)), "the reference has no EOS in its 16 tokens");
    let want = tok.decode(&generated).unwrap();
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert_eq!(stdout.strip_suffix('\n').unwrap(), want);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("[11 prompt tokens, 16 generated]"), "{stderr}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
