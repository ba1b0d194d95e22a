//! The `mapped_weights` fuzz target's body, [`anemllc::package::fuzz::fuzz_check`] (`anemllc
//! run`'s path over an output folder whose packages' `weight.bin` / `model.mlmodel` were
//! edited: load with blob checks, session, prompt, one decode step), run on stable as part
//! of the normal test suite:
//!
//! 1. the seed corpus (fuzz/corpus/mapped_weights/, made by [`seeds`]; regenerate with
//!    `cargo test --test mapped_weights_fuzz -- --ignored write_corpus`);
//! 2. a few hundred deterministic pseudo-random edit sets (byte runs written over blob
//!    headers, records, payloads and the protobuf; truncations).
//!
//! Nothing may panic; the undamaged folder must decode and damaged ones must mostly fail
//! with errors.

mod reference_support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anemllc::package::fuzz::{Edit, editable_files, encode_edits, fuzz_check, template};
use reference_support::fixture_dir;

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("mapped_weights_fuzz").join(name)
}

/// The template folder, converted once per test binary.
fn folder() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tmp("template");
        let _ = std::fs::remove_dir_all(&dir);
        template(&fixture_dir("llama_tiny"), &dir).expect("llama_tiny converts")
    })
}

/// The lengths of the template's [`editable_files`].
fn lengths(template: &Path) -> Vec<u64> {
    editable_files(template).iter().map(|f| std::fs::metadata(template.join(f)).unwrap().len()).collect()
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/mapped_weights")
}

/// Indices into [`editable_files`] (packages sorted by name).
const CHUNK1_BIN: usize = 0;
const CHUNK1_MODEL: usize = 1;
const CHUNK2_BIN: usize = 2;
const EMBED_BIN: usize = 4;
const EMBED_MODEL: usize = 5;
const LM_HEAD_BIN: usize = 6;

/// The seed corpus: the undamaged folder and one damage of each kind the loader checks.
/// Blob files: a 64-byte header (`count` u32 at 0), then 64-byte records from byte 64
/// (sentinel u32, dtype u32, size u64 at +8, payload offset u64 at +16), payloads after;
/// the last 200 bytes of a chunk's weight.bin are payload (`lengths`: the template's file
/// lengths, in [`editable_files`] order).
fn seeds(lengths: &[u64]) -> Vec<(&'static str, Vec<u8>)> {
    let w = |file, at, bytes: &[u8]| Edit::Write { file, at, bytes: bytes.to_vec() };
    let t = |file, len| Edit::Truncate { file, len };
    let cases: Vec<(&str, Vec<Edit>)> = vec![
        ("pristine", vec![]),
        ("truncate_chunk_weights", vec![t(CHUNK1_BIN, 1000)]),
        ("truncate_embed_weights_to_header", vec![t(EMBED_BIN, 64)]),
        ("truncate_embed_model", vec![t(EMBED_MODEL, 100)]),
        // The header's count is not used to find blobs (each weight names its record).
        ("blob_count_huge", vec![w(CHUNK2_BIN, 0, &[0xff; 4])]),
        ("blob_sentinel", vec![w(CHUNK1_BIN, 64, &[0, 0, 0, 0])]),
        ("blob_dtype", vec![w(EMBED_BIN, 68, &[0x7f, 0, 0, 0])]),
        ("blob_size_huge", vec![w(EMBED_BIN, 72, &[0xff; 8])]),
        ("blob_offset_huge", vec![w(LM_HEAD_BIN, 80, &[0xff; 8])]),
        ("blob_offset_shifted", vec![w(LM_HEAD_BIN, 80, &[0x40])]),
        ("fp16_nan_weights", vec![w(EMBED_BIN, 128, &[0x00, 0x7e].repeat(64))]),
        ("payload_tail_all_ones", vec![w(CHUNK1_BIN, lengths[CHUNK1_BIN] - 200, &[0xff; 200])]),
        ("model_bytes", vec![w(CHUNK1_MODEL, 300, &[0xff; 16])]),
    ];
    cases.into_iter().map(|(n, e)| (n, encode_edits(&e))).collect()
}

#[test]
fn the_seeds_pass_and_the_undamaged_folder_decodes() {
    let template = folder();
    assert_eq!(editable_files(template).len(), 8, "4 packages, 2 files each");
    let scratch = tmp("seeds");
    for (name, input) in seeds(&lengths(template)) {
        let r = fuzz_check(&input, template, &scratch);
        println!("{name}: {r:?}");
        assert!(r.written, "{name}");
        if name == "pristine" || name == "fp16_nan_weights" || name == "payload_tail_all_ones" {
            // Damaged weight values are still weights: the run goes through.
            assert!(r.decoded, "{name}: {r:?}");
        }
        if name.starts_with("truncate_") || (name.starts_with("blob_") && name != "blob_count_huge") {
            assert!(!r.loaded, "{name}: the loader accepted a damaged blob file: {r:?}");
        }
    }
}

/// The committed corpus is what [`seeds`] makes (it depends on the template's file lengths,
/// so a change to the emitter's output sizes makes it stale: regenerate it).
#[test]
fn the_committed_corpus_is_current() {
    for (name, bytes) in seeds(&lengths(folder())) {
        let committed = std::fs::read(corpus_dir().join(name)).unwrap_or_default();
        assert!(committed == bytes, "fuzz/corpus/mapped_weights/{name} is stale or missing (see write_corpus)");
    }
}

#[test]
#[ignore = "writes fuzz/corpus/mapped_weights/"]
fn write_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds(&lengths(folder())) {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}

/// Every committed corpus file (seeds and any `regress_*` reproducer) passes.
#[test]
fn every_corpus_file_passes() {
    let template = folder();
    let scratch = tmp("corpus");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let r = fuzz_check(&std::fs::read(&f).unwrap(), template, &scratch);
        println!("{}: {r:?}", f.display());
    }
}

/// Deterministic pseudo-random edit sets: 1–4 edits each, half of them within the first
/// 512 bytes of a file (headers, records, the start of the protobuf), byte runs of
/// random or extreme values, one edit in eight a truncation.
#[test]
fn random_edits_never_panic() {
    let template = folder();
    let scratch = tmp("random");
    let files = editable_files(template);
    let lengths = lengths(template);
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let (mut loaded, mut decoded, n) = (0, 0, 300);
    for case in 0..n {
        let mut edits = Vec::new();
        for _ in 0..1 + next() % 4 {
            let file = (next() % files.len() as u64) as usize;
            let len = lengths[file];
            let at = if next() % 2 == 0 { next() % 512.min(len + 1) } else { next() % (len + 1) };
            if next() % 8 == 0 {
                edits.push(Edit::Truncate { file, len: at });
            } else {
                let n = 1 + (next() % 16) as usize;
                let byte = match next() % 4 {
                    0 => 0x00,
                    1 => 0xff,
                    _ => next() as u8,
                };
                let bytes = (0..n)
                    .map(|i| if next() % 3 == 0 { next() as u8 } else { byte.wrapping_add(i as u8 & 1) })
                    .collect();
                edits.push(Edit::Write { file, at, bytes });
            }
        }
        let r = fuzz_check(&encode_edits(&edits), template, &scratch);
        assert!(r.written, "case {case}");
        loaded += usize::from(r.loaded);
        decoded += usize::from(r.decoded);
    }
    println!("{n} edit sets: {loaded} loaded, {decoded} decoded");
    assert!(loaded > 0 && loaded < n, "{loaded} of {n} loaded: the edits should reach both outcomes");
}
