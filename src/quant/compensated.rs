//! The results of error-compensating palettization ([`super::gptq`]), held for the process
//! that calibrated.
//!
//! Compensated indices depend on the full `d × d` input second-moment matrix of each matmul,
//! far too big to spell in a recipe. The tuning therefore computes them once, registers them
//! here under a digest of that matrix (and of the importance and solver settings), and the
//! `lut_indices`/`lut_table` recipes name the digest (`compensation = "…"`); materialising
//! such a recipe reads the registered result. The registry is keyed by the digest, the input
//! recipe's text, bits and group size, so two weights never share an entry by accident. A
//! module saved with such recipes and materialised by another process fails with a message
//! saying so (rerun `convert --calibrate`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::palettize::Palettized;
use crate::ir::Recipe;

type Key = (String, String, u32, usize);

fn registry() -> &'static Mutex<HashMap<Key, Arc<Palettized>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Key, Arc<Palettized>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// FNV-1a 64 over `bytes`, as 16 hex digits: a short, deterministic name for the
/// calibration data a compensated result depends on.
pub fn digest(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Registers the compensated palettization of `input` (at `bits`, `group_size`) under `digest`.
pub fn register(digest: &str, input: &Recipe, bits: u32, group_size: usize, p: Arc<Palettized>) {
    let key = (digest.to_string(), input.to_string(), bits, group_size);
    registry().lock().unwrap_or_else(PoisonError::into_inner).insert(key, p);
}

/// The registered result for a `compensation = digest` recipe over `input`.
pub fn lookup(digest: &str, input: &Recipe, bits: u32, group_size: usize) -> Result<Arc<Palettized>, String> {
    let key = (digest.to_string(), input.to_string(), bits, group_size);
    registry().lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned().ok_or_else(|| {
        format!(
            "compensated palettization {digest} comes from a calibration run of another process; \
             rerun `anemllc convert --calibrate` to rebuild it"
        )
    })
}
