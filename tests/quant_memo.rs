//! The two recipes of one palettized weight run k-means once, and the memo never mixes up
//! equal recipe texts over different checkpoints. (Its own test binary: the memo and its
//! counter are process-wide, so no other test may palettize concurrently.)

use std::collections::HashMap;

use anemllc::ir::parse_module;
use anemllc::quant::PaletteMemo;
use anemllc::weights::materialize;

const TEXT: &str = r#"module @m {
  weight @w.lut_indices : uint2[16, 8] = lut_indices(checkpoint("w" : fp32[16, 8]), bits = 2, group_size = 8)
  weight @w.lut_table : fp16[2, 4] = lut_table(checkpoint("w" : fp32[16, 8]), bits = 2, group_size = 8)
}
"#;

fn source(scale: f32) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let v = (0..128).map(|i| ((i * 37) % 101) as f32 * scale).collect();
    HashMap::from([("w".to_string(), (vec![16, 8], v))])
}

#[test]
fn one_kmeans_per_weight_and_no_cross_checkpoint_reuse() {
    let m = parse_module(TEXT).unwrap();
    let (ri, rt) = (&m.weights[0].recipe, &m.weights[1].recipe);
    let memo = PaletteMemo::global();
    let before = memo.computed();

    let a = source(0.01);
    let ia = materialize(ri, &a).unwrap();
    let ta = materialize(rt, &a).unwrap();
    assert_eq!(memo.computed(), before + 1, "indices and table share one k-means");
    assert!(memo.is_empty(), "the entry is dropped once both parts were handed out");

    // Same recipe text, another checkpoint: recomputed, different tables.
    let b = source(-3.0);
    let tb = materialize(rt, &b).unwrap();
    let ib = materialize(ri, &b).unwrap();
    assert_eq!(memo.computed(), before + 2);
    assert_ne!(ta, tb);
    assert_eq!(ia.shape(), ib.shape());

    // Asking again (the memo forgot) recomputes the same bits.
    assert_eq!(materialize(ri, &a).unwrap(), ia);
    assert_eq!(memo.computed(), before + 3);
}
