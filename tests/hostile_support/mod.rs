//! Helpers shared by the `hostile_*` integration tests: scratch directories, fixture copies,
//! running the `anemllc` binary, editing safetensors headers and config.json in place, and
//! generating synthetic checkpoints.
//!
//! Each test crate uses a different subset of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// The `--context/--batch` pair used for the tiny fixtures.
pub const SIZES: &[&str] = &["--context", "32", "--batch", "8"];

/// A fresh, empty directory `CARGO_TARGET_TMPDIR/<group>/<name>`.
pub fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(group).join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The committed fixture checkpoint `name`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
}

/// Copies the config and weight files of fixture `name` into `dst` (created).
pub fn copy_fixture(name: &str, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(fixture(name)).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        if file == "config.json" || file.ends_with(".safetensors") || file.ends_with(".index.json") {
            fs::copy(&path, dst.join(&file)).unwrap();
        }
    }
}

/// What one `anemllc` invocation did.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code; `None` if the process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(o: Output) -> Self {
        Outcome {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A command for the `anemllc` binary under test.
pub fn anemllc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_anemllc"))
}

/// How long one command may take before it counts as hung (and is killed).
pub const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Runs `cmd` to completion, capturing its output; panics (after killing it) if it takes
/// longer than [`HANG_LIMIT`]. Meant for commands with little output (it is read at exit).
pub fn output_or_hang(cmd: &mut Command) -> Outcome {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + HANG_LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hung: {cmd:?} ran longer than {HANG_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap().into()
}

/// Runs `anemllc lower DIR -o OUT SIZES…`.
pub fn lower(dir: &Path, out: &Path, sizes: &[&str]) -> Outcome {
    output_or_hang(anemllc().arg("lower").arg(dir).arg("-o").arg(out).args(sizes))
}

/// Makes a FIFO at `path` (with the `mkfifo` utility).
pub fn mkfifo(path: &Path) {
    let _ = fs::remove_file(path);
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success(), "mkfifo {}", path.display());
}

/// Checks the failure contract: exit `code`, stderr one line without a panic that contains
/// every `wants` string. Returns a description of each violation (empty if none).
pub fn failure_problems(o: &Outcome, code: i32, wants: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if o.code != Some(code) {
        problems.push(format!("exit code {:?}, expected {code}", o.code));
    }
    if o.stderr.contains("panicked") || o.stderr.contains("RUST_BACKTRACE") {
        problems.push("stderr reports a panic".to_string());
    }
    let lines = o.stderr.trim_end().lines().count();
    if lines != 1 {
        problems.push(format!("stderr has {lines} lines, expected exactly one"));
    }
    for want in wants {
        if !o.stderr.contains(want.as_str()) {
            problems.push(format!("stderr lacks {want:?}"));
        }
    }
    problems
}

/// Files in `dir` (names only, sorted).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

// ------------------------------------------------------------------ editing checkpoints

/// A safetensors file split into its parsed header and its data section.
pub struct Safetensors {
    pub header: Map<String, Value>,
    pub data: Vec<u8>,
}

impl Safetensors {
    pub fn read(path: &Path) -> Safetensors {
        let bytes = fs::read(path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        Safetensors { header, data: bytes[8 + n..].to_vec() }
    }

    pub fn write(&self, path: &Path) {
        let header = serde_json::to_vec(&self.header).unwrap();
        write_raw(path, &header, &self.data);
    }

    /// The header entry of `tensor` (panics if absent: a broken test, not a finding).
    pub fn entry(&mut self, tensor: &str) -> &mut Map<String, Value> {
        self.header.get_mut(tensor).and_then(Value::as_object_mut).unwrap_or_else(|| panic!("no tensor {tensor}"))
    }

    pub fn offsets(&self, tensor: &str) -> [u64; 2] {
        let o = &self.header[tensor]["data_offsets"];
        [o[0].as_u64().unwrap(), o[1].as_u64().unwrap()]
    }

    pub fn set(&mut self, tensor: &str, key: &str, value: Value) {
        self.entry(tensor).insert(key.to_string(), value);
    }

    pub fn rename(&mut self, tensor: &str, to: &str) {
        let entry = self.header.remove(tensor).unwrap_or_else(|| panic!("no tensor {tensor}"));
        self.header.insert(to.to_string(), entry);
    }

    /// Overwrites the bytes of element `index` of `tensor` with `element`.
    pub fn poke(&mut self, tensor: &str, index: usize, element: &[u8]) {
        let start = self.offsets(tensor)[0] as usize + index * element.len();
        self.data[start..start + element.len()].copy_from_slice(element);
    }
}

/// Reads `path`, applies `edit`, writes it back (the header is re-serialised).
pub fn edit_safetensors(path: &Path, edit: impl FnOnce(&mut Safetensors)) {
    let mut st = Safetensors::read(path);
    edit(&mut st);
    st.write(path);
}

/// Writes a raw safetensors file: u64 LE header length, header bytes, data bytes.
pub fn write_raw(path: &Path, header: &[u8], data: &[u8]) {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    fs::write(path, out).unwrap();
}

/// Truncates `path` to `len` bytes.
pub fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

/// Reads `dir/config.json`, applies `edit`, writes it back.
pub fn edit_config(dir: &Path, edit: impl FnOnce(&mut Map<String, Value>)) {
    let file = dir.join("config.json");
    let mut cfg: Map<String, Value> = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
    edit(&mut cfg);
    fs::write(&file, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
}

// ------------------------------------------------------------------ synthetic checkpoints

/// Sizes of a synthetic Llama checkpoint.
#[derive(Clone, Copy, Debug)]
pub struct Synth {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
}

/// Deterministic pseudo-random values in [-0.1, 0.1) (a 64-bit LCG; reproducible anywhere).
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

/// Writes `config.json` and `model.safetensors` (F32, pseudo-random weights, norms = 1) of a
/// Llama model with the given sizes into `dir`.
pub fn write_synthetic_llama(dir: &Path, s: Synth) {
    fs::create_dir_all(dir).unwrap();
    let head_dim = s.hidden / s.heads;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": s.hidden,
        "intermediate_size": s.intermediate,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads,
        "head_dim": head_dim,
        "vocab_size": s.vocab,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": false,
        "eos_token_id": 2,
        "bos_token_id": 1,
    });
    fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();

    let (h, i, v, kvd) = (s.hidden, s.intermediate, s.vocab, s.kv_heads * head_dim);
    let mut shapes: Vec<(String, Vec<usize>)> =
        vec![("model.embed_tokens.weight".into(), vec![v, h]), ("lm_head.weight".into(), vec![v, h])];
    for l in 0..s.layers {
        let p = format!("model.layers.{l}");
        shapes.extend([
            (format!("{p}.input_layernorm.weight"), vec![h]),
            (format!("{p}.post_attention_layernorm.weight"), vec![h]),
            (format!("{p}.self_attn.q_proj.weight"), vec![h, h]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kvd, h]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kvd, h]),
            (format!("{p}.self_attn.o_proj.weight"), vec![h, h]),
            (format!("{p}.mlp.gate_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.up_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.down_proj.weight"), vec![h, i]),
        ]);
    }
    shapes.push(("model.norm.weight".into(), vec![h]));

    let bytes: Vec<Vec<u8>> = shapes
        .iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let n = shape.iter().product();
            let values = if name.ends_with("norm.weight") { vec![1.0; n] } else { pseudo_random(n, k as u64) };
            values.iter().flat_map(|x| x.to_le_bytes()).collect()
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = shapes
        .iter()
        .zip(&bytes)
        .map(|((name, shape), data)| {
            (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}
