//! The KV cache updates of lowered and optimised layers can happen in place: no op reads a
//! `slice_update`'s destination after the update (K's slab is read before V is written).
//! The reference evaluator (`interp::exec`) copies a destination that is still read later —
//! the whole cache, once per layer — so this order is what keeps `anemllc run` from copying
//! the cache 2·L times per step.

use std::path::{Path, PathBuf};
use std::process::Command;

use anemllc::ir::{Op, parse_module};

fn anemllc(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_anemllc")).args(args).output().unwrap();
    assert!(out.status.success(), "anemllc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn optimised(fixture: &str) -> String {
    let dir = std::env::temp_dir().join(format!("anemllc-kv-order-{}-{fixture}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(fixture);
    let (air, opt) = (dir.join("lowered.air"), dir.join("opt.air"));
    let (air_s, opt_s) = (air.to_str().unwrap(), opt.to_str().unwrap());
    anemllc(&["lower", model.to_str().unwrap(), "-o", air_s, "--context", "32", "--batch", "8"]);
    anemllc(&["opt", air_s, "-o", opt_s]);
    let text = std::fs::read_to_string(&opt).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    text
}

#[test]
fn no_op_reads_a_cache_after_it_was_updated() {
    for fixture in ["llama_tiny", "gemma3_tiny"] {
        let m = parse_module(&optimised(fixture)).unwrap();
        let mut updates = 0;
        for f in &m.functions {
            let nodes: Vec<_> = f.nodes.iter().map(|(_, n)| n).collect();
            for (i, node) in nodes.iter().enumerate() {
                if !matches!(node.op, Op::SliceUpdate) {
                    continue;
                }
                updates += 1;
                let dest = node.operands[0];
                let later = nodes[i + 1..].iter().position(|n| n.operands.contains(&dest));
                assert!(
                    later.is_none(),
                    "{fixture} @{}: op {} reads %{} after the slice_update at op {i} updated it",
                    f.name,
                    i + 1 + later.unwrap(),
                    f.values.try_get(dest).map_or("?", |v| v.name.as_str())
                );
                assert!(
                    !f.outputs.iter().any(|o| o.value == dest),
                    "{fixture} @{}: an updated cache is also returned",
                    f.name
                );
            }
        }
        assert!(updates >= 4, "{fixture}: expected the layers' K and V updates, found {updates}");
    }
}
