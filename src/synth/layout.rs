//! Where every tensor goes: shard assignment, safetensors headers, the shard index.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::SynthDType;
use super::preset::TensorSpec;
use crate::checkpoint::SINGLE_FILE;

/// Length of the little-endian u64 header-length prefix of a safetensors file.
const PREFIX_LEN: u64 = 8;

/// One tensor's place in its shard.
#[derive(Clone, Debug)]
pub(crate) struct Placed {
    /// Index into the preset's tensor list (the seed's tensor index).
    pub tensor: usize,
    /// Absolute byte offset of the first element in the shard file.
    pub file_offset: u64,
    /// Number of elements.
    pub numel: u64,
}

/// One output safetensors file.
#[derive(Clone, Debug)]
pub(crate) struct ShardPlan {
    pub file_name: String,
    /// Prefix + JSON header padded with spaces to a multiple of 8 bytes.
    pub header: Vec<u8>,
    /// Tensors in data order (sorted by name, as the safetensors library writes them).
    pub tensors: Vec<Placed>,
    /// Total file length.
    pub len: u64,
}

/// All files of the checkpoint's weights.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub shards: Vec<ShardPlan>,
    /// `model.safetensors.index.json` text when sharded.
    pub index: Option<String>,
}

/// Splits `tensors` (in state-dict order) into shards of at most `max_shard_bytes` of tensor
/// data the way transformers' `save_pretrained` does: tensors are added in order and a new
/// shard starts when the next tensor would overflow the current one; a tensor larger than
/// the limit gets a shard of its own. A single `model.safetensors` is written when
/// everything fits in one shard.
pub(crate) fn plan(tensors: &[TensorSpec], dtype: SynthDType, max_shard_bytes: u64) -> Layout {
    let size = dtype.size() as u64;
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_bytes = 0u64;
    for (i, t) in tensors.iter().enumerate() {
        let bytes = t.numel() * size;
        if !current.is_empty() && current_bytes + bytes > max_shard_bytes {
            groups.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current.push(i);
        current_bytes += bytes;
    }
    if !current.is_empty() {
        groups.push(current);
    }

    let n = groups.len();
    let names: Vec<String> = if n == 1 {
        vec![SINGLE_FILE.to_string()]
    } else {
        (1..=n).map(|k| format!("model-{k:05}-of-{n:05}.safetensors")).collect()
    };
    let shards: Vec<ShardPlan> =
        groups.into_iter().zip(names).map(|(group, file_name)| shard(tensors, dtype, group, file_name)).collect();

    let index = (n > 1).then(|| {
        let mut weight_map = BTreeMap::new();
        for s in &shards {
            for p in &s.tensors {
                weight_map.insert(tensors[p.tensor].name.clone(), s.file_name.clone());
            }
        }
        let total_size: u64 = tensors.iter().map(|t| t.numel() * size).sum();
        let total_parameters: u64 = tensors.iter().map(TensorSpec::numel).sum();
        let value = json!({
            "metadata": {"total_parameters": total_parameters, "total_size": total_size},
            "weight_map": weight_map,
        });
        let mut text = serde_json::to_string_pretty(&value).expect("JSON of strings and integers");
        text.push('\n');
        text
    });
    Layout { shards, index }
}

/// Lays out one shard: tensors sorted by name, data contiguous after the header.
fn shard(tensors: &[TensorSpec], dtype: SynthDType, mut group: Vec<usize>, file_name: String) -> ShardPlan {
    let size = dtype.size() as u64;
    group.sort_by(|&a, &b| tensors[a].name.cmp(&tensors[b].name));
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0u64;
    let mut relative = Vec::with_capacity(group.len());
    for &i in &group {
        let t = &tensors[i];
        let end = offset + t.numel() * size;
        header.insert(
            t.name.clone(),
            json!({"dtype": dtype.safetensors_name(), "shape": t.shape, "data_offsets": [offset, end]}),
        );
        relative.push((i, offset, t.numel()));
        offset = end;
    }
    let data_len = offset;
    let mut json = serde_json::to_string(&Value::Object(header)).expect("JSON of strings and integers").into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let data_start = PREFIX_LEN + json.len() as u64;
    let mut bytes = Vec::with_capacity(PREFIX_LEN as usize + json.len());
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    let tensors = relative
        .into_iter()
        .map(|(tensor, off, numel)| Placed { tensor, file_offset: data_start + off, numel })
        .collect();
    ShardPlan { file_name, header: bytes, tensors, len: data_start + data_len }
}
