//! Shared helpers of the `mil_*` tests: modules to emit (hand-written `.air` examples, the
//! lowered llama_tiny fixture, an fp16 variant), synthetic weights, random inputs, and the
//! coremltools type-check harness.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anemllc::checkpoint::Checkpoint;
use anemllc::frontend::{LowerOptions, lower_checkpoint};
use anemllc::interp::Tensor;
use anemllc::ir::{DType, Module, Op, Recipe, TensorType, Type, parse_module, verify_module};
use anemllc::weights::WeightCache;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory under `target/tmp` (removed first if it exists).
pub fn scratch(name: &str) -> PathBuf {
    let dir = repo().join("target/tmp/mil_tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Parses and verifies `tests/air/<name>.air`.
pub fn air(name: &str) -> Module {
    let text = std::fs::read_to_string(repo().join("tests/air").join(format!("{name}.air"))).unwrap();
    let m = parse_module(&text).unwrap();
    verify_module(&m).unwrap();
    m
}

/// The hand-written examples.
pub const AIR_EXAMPLES: [&str; 4] = ["mlp_block", "attention_math", "ane_forms", "kv_state"];

/// A small deterministic PRNG (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }

    pub fn below(&mut self, n: u64) -> i64 {
        (self.next_u64() % n) as i64
    }
}

fn checkpoint_leaves(r: &Recipe, out: &mut Vec<(String, TensorType)>) {
    match r {
        Recipe::Checkpoint { tensor, ty } => out.push((tensor.clone(), ty.clone())),
        Recipe::Cast { input, .. }
        | Recipe::Reshape { input, .. }
        | Recipe::Transpose { input, .. }
        | Recipe::Slice { input, .. }
        | Recipe::Scale { input, .. }
        | Recipe::Offset { input, .. } => checkpoint_leaves(input, out),
        Recipe::LutIndices { input, .. } | Recipe::LutTable { input, .. } => checkpoint_leaves(input, out),
        Recipe::Concat { inputs, .. } => inputs.iter().for_each(|i| checkpoint_leaves(i, out)),
        Recipe::ScaleAlong { input, scale, .. } => {
            checkpoint_leaves(input, out);
            checkpoint_leaves(scale, out);
        }
        Recipe::RopeCos { .. } | Recipe::RopeSin { .. } => {}
    }
}

/// Random values for every checkpoint tensor the module's recipes read (indices in range
/// for index dtypes), as an in-memory tensor source.
pub fn synthetic_weights(module: &Module, seed: u64) -> WeightCache {
    let mut rng = Rng::new(seed);
    let mut leaves = Vec::new();
    for w in &module.weights {
        checkpoint_leaves(&w.recipe, &mut leaves);
    }
    let mut source: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    for (name, ty) in leaves {
        let n = ty.numel();
        let data = match ty.dtype.index_bits() {
            Some(bits) => (0..n).map(|_| rng.below(1 << bits) as f32).collect(),
            None => (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect(),
        };
        source.insert(name, (ty.shape.clone(), data));
    }
    WeightCache::new(module, Arc::new(source))
}

/// The lowered llama_tiny fixture (C = 32, B = 8) and its checkpoint.
pub fn llama_tiny() -> (Module, WeightCache) {
    let dir = repo().join("tests/fixtures/models/llama_tiny");
    let module = lower_checkpoint(&dir, &LowerOptions::new(32, 8)).unwrap();
    let cache = WeightCache::new(&module, Arc::new(Checkpoint::open(&dir).unwrap()));
    (module, cache)
}

/// The same module computing in fp16: every fp32 tensor, state, literal and cast becomes
/// fp16, and fp32 weights get a `cast(…, dtype = fp16)` recipe.
pub fn to_fp16(module: &Module) -> Module {
    let conv = |d: DType| if d == DType::F32 { DType::F16 } else { d };
    let conv_t = |t: &TensorType| t.with_dtype(conv(t.dtype));
    let mut m = module.clone();
    for w in &mut m.weights {
        if w.ty.dtype == DType::F32 {
            w.ty = conv_t(&w.ty);
            w.recipe = Recipe::Cast { input: Box::new(w.recipe.clone()), dtype: DType::F16 };
        }
    }
    for f in &mut m.functions {
        let ids: Vec<_> = f.values.iter().map(|(h, _)| h).collect();
        for h in ids {
            let v = f.values.get_mut(h);
            v.ty = match &v.ty {
                Type::Tensor(t) => Type::Tensor(conv_t(t)),
                Type::State(t) => Type::State(conv_t(t)),
            };
        }
        let ids: Vec<_> = f.nodes.iter().map(|(h, _)| h).collect();
        for h in ids {
            let n = f.nodes.get_mut(h);
            match &mut n.op {
                Op::Const { ty, .. } => *ty = conv_t(ty),
                Op::Cast { dtype } => *dtype = conv(*dtype),
                _ => {}
            }
        }
        for o in &mut f.outputs {
            o.ty = match &o.ty {
                Type::Tensor(t) => Type::Tensor(conv_t(t)),
                Type::State(t) => Type::State(conv_t(t)),
            };
        }
    }
    verify_module(&m).unwrap();
    m
}

/// Random inputs and states for `func`: floats in [−2, 2), int32 in [0, 2) (valid positions,
/// token ids and offsets for every test module).
pub fn random_inputs(module: &Module, func: &str, seed: u64) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    let f = module.function(func).unwrap();
    let mut rng = Rng::new(seed);
    let (mut inputs, mut states) = (HashMap::new(), HashMap::new());
    for &id in &f.inputs {
        let v = &f.values[id];
        let t = v.ty.tensor();
        let n = t.numel();
        let tensor = if t.dtype.is_float() {
            Tensor::from_f32(t.dtype, &t.shape, (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect()).unwrap()
        } else {
            Tensor::from_i64(t.dtype, &t.shape, (0..n).map(|_| rng.below(2)).collect()).unwrap()
        };
        if v.ty.is_state() {
            states.insert(v.name.clone(), tensor);
        } else {
            inputs.insert(v.name.clone(), tensor);
        }
    }
    (inputs, states)
}

/// Every file under `dir` (relative path → bytes), for byte-identity checks.
pub fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The coremltools venv interpreter: `$ANEMLLC_COREML_PYTHON`, else `.venv-coreml/bin/python`
/// (made by `bash tests/coreml/setup_venv.sh`). Panics, saying how to make it, when it is
/// missing.
///
/// Every test that calls this carries
/// `#[cfg_attr(not(coreml_venv), ignore = "needs the coremltools venv: …")]`; `build.rs` sets
/// `coreml_venv` when this interpreter exists or under `CI`, so without it such a test shows
/// as ignored, and only gets here (and fails) under CI or when run with `--ignored`.
pub fn coreml_python() -> PathBuf {
    let python = std::env::var_os("ANEMLLC_COREML_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv-coreml/bin/python"));
    assert!(
        python.is_file(),
        "coremltools interpreter {} not found: run `bash tests/coreml/setup_venv.sh` or set \
         ANEMLLC_COREML_PYTHON (this test only runs without it under CI or with --ignored)",
        python.display()
    );
    python
}

/// Runs `tests/coreml/check_package.py` on the packages and returns its JSON report.
pub fn coreml_check(pkgs: &[PathBuf], extra: &[&str]) -> serde_json::Value {
    let out = Command::new(coreml_python())
        .arg(repo().join("tests/coreml/check_package.py"))
        .args(extra)
        .args(pkgs)
        .output()
        .expect("run check_package.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("check_package.py printed no JSON ({e}):\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr))
    })
}
