//! Reading `model.safetensors.index.json`, the tensor → shard map of a sharded checkpoint.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use serde::Deserialize;

use super::CheckpointError;

/// The part of the index file we use; other keys (`metadata`, …) are ignored.
#[derive(Deserialize)]
struct IndexFile {
    weight_map: BTreeMap<String, String>,
}

/// Reads the index at `path` and returns its `weight_map` (tensor name → shard file name).
///
/// Invariant of the result: every shard name is a non-empty relative path made only of
/// normal components (no `..`, no root), so joining it to the checkpoint directory stays
/// inside that directory.
pub(crate) fn read(path: &Path) -> Result<BTreeMap<String, String>, CheckpointError> {
    let io_err = |source: std::io::Error| CheckpointError::Io { file: path.to_path_buf(), source };
    // Reading a FIFO (or a device) would block or never end: only read regular files.
    if !std::fs::metadata(path).map_err(io_err)?.is_file() {
        return Err(io_err(std::io::Error::other("not a regular file")));
    }
    let text = std::fs::read_to_string(path).map_err(io_err)?;
    let index: IndexFile = serde_json::from_str(&text)
        .map_err(|source| CheckpointError::IndexJson { file: path.to_path_buf(), source })?;
    for shard in index.weight_map.values() {
        let mut components = Path::new(shard).components().peekable();
        let plain = components.peek().is_some() && components.all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(CheckpointError::BadShardName { index: path.to_path_buf(), shard: shard.clone() });
        }
    }
    Ok(index.weight_map)
}
