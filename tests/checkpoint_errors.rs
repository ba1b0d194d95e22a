//! Hostile and well-formed safetensors checkpoints: every malformed file must give a clear
//! one-line error naming the file (and tensor), never a panic.

use std::fs;
use std::path::{Path, PathBuf};

use anemllc::checkpoint::{Checkpoint, CheckpointError, StDType};
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

/// A fresh, empty directory for one test under cargo's per-target temp dir.
fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("checkpoint_errors").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Raw safetensors bytes: u64 LE header length, header, data.
fn raw_file(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// Writes `model.safetensors` with the given header and data; returns (dir, file path).
fn single(name: &str, header: &str, data: &[u8]) -> (PathBuf, PathBuf) {
    single_bytes(name, &raw_file(header.as_bytes(), data))
}

fn single_bytes(name: &str, bytes: &[u8]) -> (PathBuf, PathBuf) {
    let dir = test_dir(name);
    let file = dir.join("model.safetensors");
    fs::write(&file, bytes).unwrap();
    (dir, file)
}

/// Opens `dir`, expecting failure, and checks the message names `file` and contains `needle`.
fn open_err(dir: &Path, file: &Path, needle: &str) -> CheckpointError {
    let err = Checkpoint::open(dir).expect_err("open should fail");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    assert!(msg.contains(&file.display().to_string()), "message does not name {}: {msg}", file.display());
    assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
    err
}

/// The safetensors crate's own verdict on the same bytes.
fn crate_rejects(file: &Path) -> bool {
    SafeTensors::read_metadata(&fs::read(file).unwrap()).is_err()
}

fn serialize(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| (name.to_string(), TensorView::new(*dtype, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect()
}

fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect()
}

// ---------------------------------------------------------------- single-file failures

#[test]
fn missing_model_file() {
    let dir = test_dir("missing_model_file");
    let err = Checkpoint::open(&dir).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CheckpointError::NoCheckpoint { .. }));
    assert!(msg.contains("model.safetensors") && msg.contains("model.safetensors.index.json"));
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
}

#[test]
fn shorter_than_prefix() {
    let (dir, file) = single_bytes("shorter_than_prefix", b"abc");
    let err = open_err(&dir, &file, "truncated: 3 bytes");
    assert!(matches!(err, CheckpointError::TooShort { len: 3, .. }));
    assert!(crate_rejects(&file));
}

#[test]
fn empty_file() {
    let (dir, file) = single_bytes("empty_file", b"");
    open_err(&dir, &file, "truncated: 0 bytes");
}

#[test]
fn header_length_past_end() {
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let (dir, file) = single_bytes("header_length_past_end", &bytes);
    let err = open_err(&dir, &file, "header length 1000 bytes exceeds the 2 bytes");
    assert!(matches!(err, CheckpointError::HeaderPastEnd { .. }));
    assert!(crate_rejects(&file));
}

#[test]
fn huge_header_length() {
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let (dir, file) = single_bytes("huge_header_length", &bytes);
    open_err(&dir, &file, "exceeds");
}

#[test]
fn header_not_json() {
    let (dir, file) = single("header_not_json", "this is not json", b"");
    let err = open_err(&dir, &file, "header is not valid JSON");
    assert!(matches!(err, CheckpointError::HeaderJson { .. }));
    assert!(crate_rejects(&file));
}

#[test]
fn header_json_but_not_object() {
    let (dir, file) = single("header_json_but_not_object", "[1, 2]", b"");
    open_err(&dir, &file, "header is not valid JSON");
    assert!(crate_rejects(&file));
}

#[test]
fn header_not_utf8() {
    let (dir, file) = single_bytes("header_not_utf8", &raw_file(b"{\"\xff\": 1}", b""));
    open_err(&dir, &file, "not valid UTF-8");
    assert!(crate_rejects(&file));
}

#[test]
fn malformed_entry() {
    let (dir, file) = single("malformed_entry", r#"{"w": {"dtype": "F32", "shape": [1]}}"#, b"");
    let err = open_err(&dir, &file, r#"tensor "w": malformed header entry"#);
    assert!(err.to_string().contains("data_offsets"));
    assert!(crate_rejects(&file));
}

#[test]
fn truncated_data() {
    // Declares 16 bytes, holds 8.
    let (dir, file) =
        single("truncated_data", r#"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#, &[0; 8]);
    let err = open_err(&dir, &file, r#"tensor "w": offsets [0, 16) are out of bounds of the 8-byte data section"#);
    assert!(matches!(err, CheckpointError::OffsetsOutOfBounds { .. }));
    assert!(crate_rejects(&file));
}

#[test]
fn offsets_out_of_bounds() {
    let (dir, file) = single(
        "offsets_out_of_bounds",
        r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            "b": {"dtype": "F32", "shape": [1], "data_offsets": [4000, 4004]}}"#,
        &[0; 8],
    );
    open_err(&dir, &file, r#"tensor "b": offsets [4000, 4004) are out of bounds"#);
    assert!(crate_rejects(&file));
}

#[test]
fn reversed_offsets() {
    let (dir, file) =
        single("reversed_offsets", r#"{"a": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}}"#, &[0; 4]);
    open_err(&dir, &file, r#"tensor "a": offsets [4, 0) are reversed"#);
    assert!(crate_rejects(&file));
}

#[test]
fn size_mismatch_message() {
    let (dir, file) = single(
        "size_mismatch_message",
        r#"{"model.embed": {"dtype": "BF16", "shape": [5], "data_offsets": [0, 10]},
            "model.norm.weight": {"dtype": "BF16", "shape": [64], "data_offsets": [10, 20]}}"#,
        &[0; 20],
    );
    let err = Checkpoint::open(&dir).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: tensor \"model.norm.weight\": offsets [10, 20) do not match dtype BF16 × \
             shape [64] (128 bytes)",
            file.display()
        )
    );
    assert!(crate_rejects(&file));
}

#[test]
fn shape_overflow() {
    let (dir, file) = single(
        "shape_overflow",
        r#"{"a": {"dtype": "F32", "shape": [18446744073709551615, 2], "data_offsets": [0, 4]}}"#,
        &[0; 4],
    );
    open_err(&dir, &file, r#"tensor "a": shape [18446744073709551615, 2] overflows"#);
    assert!(crate_rejects(&file));
}

#[test]
fn overlapping_tensors() {
    let (dir, file) = single(
        "overlapping_tensors",
        r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#,
        &[0; 12],
    );
    let err = open_err(&dir, &file, r#"tensor "b": offsets [4, 12) overlap tensor "a" at [0, 8)"#);
    assert!(matches!(err, CheckpointError::Overlap { .. }));
    assert!(crate_rejects(&file));
}

#[test]
fn zero_sized_tensor_inside_another_overlaps() {
    let (dir, file) = single(
        "zero_sized_tensor_inside_another",
        r#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}}"#,
        &[0; 8],
    );
    open_err(&dir, &file, "overlap");
    assert!(crate_rejects(&file));
}

#[test]
fn gap_between_tensors() {
    let (dir, file) = single(
        "gap_between_tensors",
        r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}"#,
        &[0; 12],
    );
    open_err(&dir, &file, "bytes [4, 8) of the data section belong to no tensor");
    assert!(crate_rejects(&file));
}

#[test]
fn trailing_bytes() {
    let (dir, file) =
        single("trailing_bytes", r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, &[0; 6]);
    open_err(&dir, &file, "bytes [4, 6) of the data section belong to no tensor");
    assert!(crate_rejects(&file));
}

#[test]
fn duplicate_key_in_header() {
    // The crate keeps one of the two entries and accepts this file; we reject it.
    let (dir, file) = single(
        "duplicate_key_in_header",
        r#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#,
        &[0; 4],
    );
    open_err(&dir, &file, r#"tensor "a": listed twice in the header"#);
    assert!(!crate_rejects(&file));
}

#[test]
fn bad_metadata_entry() {
    let (dir, file) = single("bad_metadata_entry", r#"{"__metadata__": {"format": 5}}"#, b"");
    open_err(&dir, &file, r#"tensor "__metadata__": malformed header entry"#);
    assert!(crate_rejects(&file));
}

#[test]
fn unsupported_known_dtype() {
    let (dir, file) =
        single("unsupported_known_dtype", r#"{"q": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}}"#, &[0; 4]);
    let err = open_err(&dir, &file, r#"tensor "q": unsupported dtype I8 (supported: F32, F16, BF16)"#);
    assert!(matches!(err, CheckpointError::UnsupportedDtype { .. }));
    assert!(!crate_rejects(&file), "the crate accepts I8; we reject it");
}

#[test]
fn unsupported_fp8_and_int32() {
    for (i, dtype) in ["F8_E4M3", "I32", "U8"].iter().enumerate() {
        let n = if *dtype == "I32" { 4 } else { 1 };
        let header = format!(r#"{{"t": {{"dtype": "{dtype}", "shape": [1], "data_offsets": [0, {n}]}}}}"#);
        let (dir, file) = single(&format!("unsupported_{i}"), &header, &vec![0; n]);
        open_err(&dir, &file, &format!("unsupported dtype {dtype}"));
    }
}

#[test]
fn unknown_dtype_string() {
    let (dir, file) =
        single("unknown_dtype_string", r#"{"q": {"dtype": "Q4_K", "shape": [4], "data_offsets": [0, 4]}}"#, &[0; 4]);
    open_err(&dir, &file, r#"tensor "q": unsupported dtype Q4_K"#);
    assert!(crate_rejects(&file));
}

#[test]
fn hostile_tensor_name_is_escaped() {
    let (dir, file) = single(
        "hostile_tensor_name",
        "{\"a\\nb\": {\"dtype\": \"I8\", \"shape\": [1], \"data_offsets\": [0, 1]}}",
        &[0; 1],
    );
    open_err(&dir, &file, r#"tensor "a\nb""#);
}

// ---------------------------------------------------------------- sharded failures

/// Writes the index and the given shard files into a fresh directory.
fn sharded(name: &str, index: &str, shards: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = test_dir(name);
    fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
    for (file, bytes) in shards {
        fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

fn one_f32(name: &str, v: f32) -> (&str, Dtype, Vec<usize>, Vec<u8>) {
    (name, Dtype::F32, vec![1], f32_bytes(&[v]))
}

#[test]
fn index_not_json() {
    let dir = sharded("index_not_json", "{ weight_map: oops", &[]);
    let index = dir.join("model.safetensors.index.json");
    let err = open_err(&dir, &index, "invalid index");
    assert!(matches!(err, CheckpointError::IndexJson { .. }));
}

#[test]
fn index_without_weight_map() {
    let dir = sharded("index_without_weight_map", r#"{"metadata": {}}"#, &[]);
    let index = dir.join("model.safetensors.index.json");
    open_err(&dir, &index, "missing field `weight_map`");
}

#[test]
fn index_names_missing_shard() {
    let a = serialize(&[one_f32("a", 1.0)]);
    let dir = sharded(
        "index_names_missing_shard",
        r#"{"weight_map": {"a": "model-00001-of-00002.safetensors",
                           "b": "model-00002-of-00002.safetensors"}}"#,
        &[("model-00001-of-00002.safetensors", a)],
    );
    let index = dir.join("model.safetensors.index.json");
    let err = open_err(&dir, &index, "model-00002-of-00002.safetensors which does not exist");
    assert!(matches!(err, CheckpointError::MissingShard { .. }));
}

#[test]
fn index_shard_name_escapes_dir() {
    let dir = sharded("index_shard_name_escapes_dir", r#"{"weight_map": {"a": "../elsewhere.safetensors"}}"#, &[]);
    let index = dir.join("model.safetensors.index.json");
    open_err(&dir, &index, "must be a relative path inside the checkpoint directory");
}

#[test]
fn duplicate_tensor_across_shards() {
    let s1 = serialize(&[one_f32("a", 1.0)]);
    let s2 = serialize(&[one_f32("a", 2.0), one_f32("b", 3.0)]);
    let dir = sharded(
        "duplicate_tensor_across_shards",
        r#"{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}"#,
        &[("s1.safetensors", s1), ("s2.safetensors", s2)],
    );
    let err = Checkpoint::open(&dir).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CheckpointError::DuplicateTensor { .. }));
    assert!(msg.contains(r#"tensor "a" occurs in two shards"#), "{msg}");
    assert!(msg.contains("s1.safetensors") && msg.contains("s2.safetensors"), "{msg}");
}

#[test]
fn index_maps_tensor_to_wrong_shard() {
    let s1 = serialize(&[one_f32("a", 1.0)]);
    let s2 = serialize(&[one_f32("b", 2.0)]);
    let dir = sharded(
        "index_maps_tensor_to_wrong_shard",
        r#"{"weight_map": {"a": "s2.safetensors", "b": "s1.safetensors"}}"#,
        &[("s1.safetensors", s1), ("s2.safetensors", s2)],
    );
    let index = dir.join("model.safetensors.index.json");
    let err = open_err(&dir, &index, "but that shard does not contain it");
    assert!(matches!(err, CheckpointError::NotInShard { .. }));
}

#[test]
fn bad_shard_is_named() {
    let s1 = serialize(&[one_f32("a", 1.0)]);
    let dir = sharded(
        "bad_shard_is_named",
        r#"{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}"#,
        &[("s1.safetensors", s1), ("s2.safetensors", b"garbage!garbage".to_vec())],
    );
    open_err(&dir, &dir.join("s2.safetensors"), "exceeds");
}

// ---------------------------------------------------------------- good paths

#[test]
fn reads_f32_f16_bf16_exactly() {
    let values = [0.0f32, -1.5, 3.25, 65504.0, -0.0078125, 1.0e-3];
    let bf16_values = [1.0f32, -2.5, 3.0e38, 1.0e-30, 7.0, 0.15625];
    let bytes = serialize(&[
        ("w.f32", Dtype::F32, vec![2, 3], f32_bytes(&values)),
        ("w.f16", Dtype::F16, vec![3, 2], f16_bytes(&values)),
        ("w.bf16", Dtype::BF16, vec![6], bf16_bytes(&bf16_values)),
        ("scalar", Dtype::F32, vec![], f32_bytes(&[42.0])),
    ]);
    let (dir, file) = single_bytes("reads_f32_f16_bf16_exactly", &bytes);
    let ckpt = Checkpoint::open(&dir).unwrap();

    assert_eq!(ckpt.names(), vec!["scalar", "w.bf16", "w.f16", "w.f32"]);
    assert_eq!(ckpt.len(), 4);
    assert_eq!(ckpt.files().collect::<Vec<_>>(), vec![file.as_path()]);

    let info = ckpt.info("w.f16").unwrap();
    assert_eq!(info.dtype, StDType::F16);
    assert_eq!(info.shape, vec![3, 2]);
    assert_eq!(info.file, file);
    assert_eq!(info.numel(), 6);
    assert!(ckpt.info("nope").is_none());

    let view = ckpt.view("w.f32").unwrap();
    assert_eq!(view.dtype(), StDType::F32);
    assert_eq!(view.shape(), &[2, 3]);
    assert_eq!(view.data(), f32_bytes(&values).as_slice());

    assert_eq!(ckpt.to_f32("w.f32").unwrap(), values);
    let want_f16: Vec<f32> = values.iter().map(|v| f16::from_f32(*v).to_f32()).collect();
    assert_eq!(ckpt.to_f32("w.f16").unwrap(), want_f16);
    let want_bf16: Vec<f32> = bf16_values.iter().map(|v| bf16::from_f32(*v).to_f32()).collect();
    assert_eq!(ckpt.to_f32("w.bf16").unwrap(), want_bf16);
    assert_eq!(ckpt.to_f32("scalar").unwrap(), vec![42.0]);

    let mut out = [0.0f32; 6];
    ckpt.f32_into("w.bf16", &mut out).unwrap();
    assert_eq!(out.to_vec(), want_bf16);

    let mut short = [0.0f32; 5];
    let err = ckpt.f32_into("w.bf16", &mut short).unwrap_err();
    assert_eq!(err.to_string(), "tensor \"w.bf16\": destination holds 5 values but the tensor has 6");
    let err = ckpt.to_f32("missing").unwrap_err();
    assert_eq!(err.to_string(), "tensor \"missing\" is not in the checkpoint");
}

#[test]
fn large_tensor_converts_in_parallel_deterministically() {
    let n = 200_003;
    let values: Vec<f32> = (0..n).map(|i| (i as f32 - 100_000.0) * 0.37).collect();
    let bytes = serialize(&[("big", Dtype::BF16, vec![n], bf16_bytes(&values))]);
    let (dir, _) = single_bytes("large_tensor", &bytes);
    let ckpt = Checkpoint::open(&dir).unwrap();
    let got = ckpt.to_f32("big").unwrap();
    let want: Vec<f32> = values.iter().map(|v| bf16::from_f32(*v).to_f32()).collect();
    assert_eq!(got, want);
    assert_eq!(ckpt.to_f32("big").unwrap(), got);
}

#[test]
fn sharded_checkpoint_maps_only_indexed_tensors() {
    let s1 = serialize(&[("a", Dtype::F16, vec![2], f16_bytes(&[1.0, 2.0])), ("extra", Dtype::I8, vec![1], vec![7])]);
    let s2 = serialize(&[("b", Dtype::BF16, vec![1], bf16_bytes(&[-3.0]))]);
    let dir = sharded(
        "sharded_good",
        r#"{"metadata": {"total_size": 10},
            "weight_map": {"a": "model-00001-of-00002.safetensors",
                           "b": "model-00002-of-00002.safetensors"}}"#,
        &[("model-00001-of-00002.safetensors", s1), ("model-00002-of-00002.safetensors", s2)],
    );
    let ckpt = Checkpoint::open(&dir).unwrap();
    assert_eq!(ckpt.names(), vec!["a", "b"]);
    assert_eq!(ckpt.to_f32("a").unwrap(), vec![1.0, 2.0]);
    assert_eq!(ckpt.to_f32("b").unwrap(), vec![-3.0]);
    assert_eq!(ckpt.info("b").unwrap().file, dir.join("model-00002-of-00002.safetensors"));
    assert!(ckpt.info("extra").is_none(), "unindexed tensors are ignored");
}

#[test]
fn single_file_wins_over_index() {
    let bytes = serialize(&[one_f32("only", 5.0)]);
    let dir =
        sharded("single_file_wins", r#"{"weight_map": {"x": "missing.safetensors"}}"#, &[("model.safetensors", bytes)]);
    let ckpt = Checkpoint::open(&dir).unwrap();
    assert_eq!(ckpt.names(), vec!["only"]);
}
