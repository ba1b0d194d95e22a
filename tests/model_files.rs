//! The files beside a model's weights: chat templates are read in transformers' order
//! (`chat_template.jinja`, `chat_template.json`, tokenizer_config.json's `chat_template`
//! string or list), `run --prompt` stops on every EOS id generation_config.json lists,
//! `convert` copies all of them next to the packages, and hub ids resolve in the local
//! Hugging Face cache (never the network).

use std::path::{Path, PathBuf};
use std::process::Command;

use anemllc::chat::{ChatTokenizer, ModelFiles, render_user_prompt};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-scratch/model_files").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of the tiny llama fixture (weights hard-linked or copied).
fn tiny_copy(name: &str) -> PathBuf {
    let dir = scratch(name);
    for entry in std::fs::read_dir(fixture("llama_tiny")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn set_config_template(dir: &Path, template: serde_json::Value) {
    let path = dir.join("tokenizer_config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["chat_template"] = template;
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
}

fn rendered(dir: &Path) -> String {
    let tok = ChatTokenizer::load(dir, &[]).unwrap();
    render_user_prompt(&tok, "hi").unwrap().expect("a template")
}

#[test]
fn chat_template_sources_follow_transformers_order() {
    let dir = tiny_copy("template_order");
    set_config_template(&dir, json!("CONFIG {{ messages[0].content }}"));
    assert_eq!(rendered(&dir), "CONFIG hi");
    // A list of named templates: the "default" one.
    set_config_template(
        &dir,
        json!([{"name": "tool_use", "template": "TOOL"}, {"name": "default", "template": "LIST {{ messages[0].content }}"}]),
    );
    assert_eq!(rendered(&dir), "LIST hi");
    std::fs::write(dir.join("chat_template.json"), r#"{"chat_template": "JSON {{ messages[0].content }}"}"#).unwrap();
    assert_eq!(rendered(&dir), "JSON hi");
    std::fs::write(dir.join("chat_template.jinja"), "JINJA {{ messages[0].content }}").unwrap();
    assert_eq!(rendered(&dir), "JINJA hi");
    let files = ModelFiles::read(&dir).unwrap();
    assert_eq!(files.chat_template().unwrap().unwrap().1, dir.join("chat_template.jinja"));
}

#[test]
fn generation_config_eos_ids_all_end_generation() {
    let dir = tiny_copy("generation_eos");
    std::fs::write(dir.join("generation_config.json"), r#"{"bos_token_id": 0, "eos_token_id": [2, 7, 9]}"#).unwrap();
    let tok = ChatTokenizer::load(&dir, &[2]).unwrap();
    for id in [2, 7, 9] {
        assert!(tok.eos_ids.contains(&id), "{id} missing from {:?}", tok.eos_ids);
    }
    // One id instead of a list.
    std::fs::write(dir.join("generation_config.json"), r#"{"eos_token_id": 5}"#).unwrap();
    assert_eq!(ModelFiles::read(&dir).unwrap().generation_eos().unwrap(), vec![5]);
}

fn anemllc(args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_anemllc"));
    cmd.args(args).env_remove("HF_HUB_CACHE").env_remove("HF_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn convert_copies_template_and_generation_files_and_run_stops_at_listed_eos() {
    let dir = tiny_copy("copy_files");
    std::fs::write(dir.join("chat_template.jinja"), "JINJA {{ messages[0].content }}").unwrap();
    let out = scratch("copy_files_out").join("out");
    let (code, _, err) = anemllc(
        &[
            "convert",
            dir.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--context",
            "32",
            "--batch",
            "8",
            "--lut-ffn",
            "none",
            "--lut-lmhead",
            "none",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    for name in ["chat_template.jinja", "generation_config.json", "tokenizer.json", "tokenizer_config.json"] {
        let copied = std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(copied, std::fs::read(dir.join(name)).unwrap(), "{name} differs from the model's");
    }
    // Greedy tokens of the packages, then the same prompt with the first generated token
    // listed as EOS in the output folder's generation_config.json: the answer is empty.
    let (code, _, err) = anemllc(&["run", out.to_str().unwrap(), "--prompt", "The river?", "--max-tokens", "4"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("4 generated"), "{err}");
    let tok = ChatTokenizer::load(&out, &[]).unwrap();
    let prompt = tok.encode(&render_user_prompt(&tok, "The river?").unwrap().unwrap(), false).unwrap();
    let prompt_arg: Vec<String> = prompt.iter().map(|t| t.to_string()).collect();
    let (code, first, err) =
        anemllc(&["run", out.to_str().unwrap(), "--tokens", &prompt_arg.join(","), "--decode", "1"], &[]);
    assert_eq!(code, 0, "{err}");
    let first: u32 = first.trim().parse().unwrap();
    std::fs::write(out.join("generation_config.json"), format!(r#"{{"eos_token_id": [99999, {first}]}}"#)).unwrap();
    let (code, _, err) = anemllc(&["run", out.to_str().unwrap(), "--prompt", "The river?", "--max-tokens", "4"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 generated"), "stopped at the listed EOS after one token: {err}");
}

#[test]
fn hub_ids_resolve_in_the_local_cache_only() {
    let cache = scratch("hub_cache");
    let (code, _, err) = anemllc(
        &["lower", "org-x/tiny-model", "-o", cache.join("x.air").to_str().unwrap()],
        &[("HF_HUB_CACHE", &cache)],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("huggingface-cli download org-x/tiny-model"), "{err}");
    assert!(!cache.join("x.air").exists());
    let repo = cache.join("models--org-x--tiny-model");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "abc123").unwrap();
    let snapshot = repo.join("snapshots/abc123");
    std::fs::create_dir_all(&snapshot).unwrap();
    for entry in std::fs::read_dir(fixture("llama_tiny")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, snapshot.join(path.file_name().unwrap())).unwrap();
    }
    let air = cache.join("x.air");
    let (code, _, err) = anemllc(
        &["lower", "org-x/tiny-model", "-o", air.to_str().unwrap(), "--context", "32", "--batch", "8"],
        &[("HF_HUB_CACHE", &cache)],
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&air).unwrap();
    assert!(text.contains("snapshots/abc123"), "the module names the snapshot it was lowered from");
    // HF_HOME/hub is the fallback root.
    let home = scratch("hf_home");
    std::fs::rename(&cache, home.join("hub")).unwrap();
    let air = home.join("y.air");
    let (code, _, err) = anemllc(
        &["lower", "org-x/tiny-model", "-o", air.to_str().unwrap(), "--context", "32", "--batch", "8"],
        &[("HF_HOME", &home)],
    );
    assert_eq!(code, 0, "{err}");
}
