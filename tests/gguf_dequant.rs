//! Dequantisation of every supported ggml type, bit for bit against the `gguf` Python
//! package's `gguf.quants.dequantize` (tests/fixtures/make_gguf_fixtures.py wrote the file
//! with random blocks and the expected f32 arrays).

use std::path::Path;

use anemllc::gguf::{GgmlType, GgufFile, dequant};
use ndarray::Array2;
use ndarray_npy::ReadNpyExt;

fn fixtures() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf").leak()
}

#[test]
fn every_type_matches_gguf_py_bit_for_bit() {
    let file = GgufFile::open(&fixtures().join("quant_types.gguf")).unwrap();
    let mut seen = Vec::new();
    for t in file.tensors() {
        let expected_path = fixtures().join("quant_types").join(format!("{}.npy", t.ty.name()));
        let expected = Array2::<f32>::read_npy(std::fs::File::open(&expected_path).unwrap()).unwrap();
        assert_eq!(expected.shape(), t.shape().as_slice(), "{}", t.name);
        let mut got = vec![0f32; expected.len()];
        dequant::dequantize_into(t.ty, file.data(t), &mut got);
        let mismatches: Vec<usize> = expected
            .iter()
            .zip(&got)
            .enumerate()
            .filter(|(_, (e, g))| e.to_bits() != g.to_bits())
            .map(|(i, _)| i)
            .collect();
        assert!(
            mismatches.is_empty(),
            "{}: {} of {} values differ from gguf-py (first at {}: {} vs {})",
            t.ty,
            mismatches.len(),
            got.len(),
            mismatches[0],
            got[mismatches[0]],
            expected.as_slice().unwrap()[mismatches[0]]
        );
        // The fixture exercises the whole range of every field, not a constant.
        let distinct: std::collections::BTreeSet<u32> = got.iter().map(|v| v.to_bits()).collect();
        assert!(distinct.len() > 16, "{}: only {} distinct values", t.ty, distinct.len());
        seen.push(t.ty);
    }
    for ty in GgmlType::ALL {
        assert!(seen.contains(&ty), "the fixture has no {ty} tensor");
    }
}
