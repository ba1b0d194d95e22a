//! Opening a checkpoint directory: single-file or sharded layout.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::header::HeaderTensor;
use super::shard::Shard;
use super::{CheckpointError, StDType, index};

/// File name of a single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";

/// File name of the tensor → shard index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Where a tensor lives and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Storage dtype (always a supported one).
    pub dtype: StDType,
    /// Shape as declared in the header (empty for a scalar).
    pub shape: Vec<usize>,
    /// The shard file holding the tensor.
    pub file: PathBuf,
}

impl TensorInfo {
    /// Number of elements. Cannot overflow: the header check proved `numel × size` fits.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A mapped tensor: its info plus where its bytes are.
#[derive(Debug)]
pub(super) struct Entry {
    pub info: TensorInfo,
    pub place: Place,
}

/// Where a mapped tensor's bytes are.
#[derive(Debug)]
pub(super) enum Place {
    /// Raw little-endian `info.dtype` elements. Invariant: `start..end` lies inside
    /// `shards[shard].bytes()` and has length `info.numel() × info.dtype.size()`.
    Shard { shard: usize, start: usize, end: usize },
    /// Tensor `tensor` of the GGUF file, decoded row by row through `rows`. Invariant: its
    /// row-major shape is `info.shape`.
    Gguf { tensor: usize, rows: super::gguf::RowMap },
}

/// An open, validated, memory-mapped checkpoint. See the module docs for its invariants.
///
/// Layouts: if `model.safetensors` exists it is used (like transformers, which prefers the
/// single file); otherwise `model.safetensors.index.json` names the shards. With an index,
/// only the tensors it lists are mapped: extra tensors in a shard are ignored (their bytes
/// are still validated as part of the shard's header), so `names()` is exactly the index's
/// `weight_map` keys. A tensor name present in two shards is an error even if only one copy
/// is indexed, since the checkpoint is then ambiguous. Shards not named by the index are not
/// opened.
///
/// Every mapped tensor must have a supported dtype, checked at open: all tensors of the
/// supported architectures are floating point, and integer or F8 tensors mean a quantized
/// checkpoint, which is better rejected up front (naming the tensor) than half-way through
/// a compile.
#[derive(Debug)]
pub struct Checkpoint {
    pub(super) shards: Vec<Shard>,
    /// The GGUF file, when the checkpoint is one (then `shards` is empty).
    pub(super) gguf: Option<crate::gguf::GgufFile>,
    pub(super) entries: BTreeMap<String, Entry>,
}

impl Checkpoint {
    /// Opens the checkpoint at `path`: a GGUF file, or a directory holding safetensors
    /// file(s); maps the file(s) and validates every header.
    pub fn open(path: &Path) -> Result<Checkpoint, CheckpointError> {
        if crate::gguf::is_gguf_path(path) {
            return Self::open_gguf(path);
        }
        let dir = path;
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(INDEX_FILE);
        if single.exists() {
            Self::open_single(&single)
        } else if index.exists() {
            Self::open_sharded(dir, &index)
        } else {
            Err(CheckpointError::NoCheckpoint { dir: dir.to_path_buf() })
        }
    }

    fn open_single(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let (shard, tensors) = Shard::open(path)?;
        let mut entries = BTreeMap::new();
        for tensor in tensors {
            let name = tensor.name.clone();
            entries.insert(name, make_entry(&shard.path, 0, tensor)?);
        }
        Ok(Checkpoint { shards: vec![shard], gguf: None, entries })
    }

    fn open_sharded(dir: &Path, index_path: &Path) -> Result<Checkpoint, CheckpointError> {
        let weight_map = index::read(index_path)?;
        let names: BTreeSet<&str> = weight_map.values().map(String::as_str).collect();

        let mut shards: Vec<Shard> = Vec::with_capacity(names.len());
        let mut shard_of_name = HashMap::with_capacity(names.len());
        let mut declared: Vec<HashMap<String, HeaderTensor>> = Vec::with_capacity(names.len());
        let mut owner: HashMap<String, usize> = HashMap::new();
        for name in names {
            let path = dir.join(name);
            if !path.exists() {
                return Err(CheckpointError::MissingShard { index: index_path.to_path_buf(), shard: path });
            }
            let (shard, tensors) = Shard::open(&path)?;
            let idx = shards.len();
            let mut by_name = HashMap::with_capacity(tensors.len());
            for tensor in tensors {
                if let Some(&first) = owner.get(&tensor.name) {
                    return Err(CheckpointError::DuplicateTensor {
                        tensor: tensor.name,
                        first: shards[first].path.clone(),
                        second: path,
                    });
                }
                owner.insert(tensor.name.clone(), idx);
                by_name.insert(tensor.name.clone(), tensor);
            }
            shard_of_name.insert(name, idx);
            declared.push(by_name);
            shards.push(shard);
        }

        let mut entries = BTreeMap::new();
        for (tensor, shard_name) in &weight_map {
            let idx = shard_of_name[shard_name.as_str()];
            let Some(header) = declared[idx].remove(tensor) else {
                return Err(CheckpointError::NotInShard {
                    index: index_path.to_path_buf(),
                    tensor: tensor.clone(),
                    shard: shards[idx].path.clone(),
                });
            };
            entries.insert(tensor.clone(), make_entry(&shards[idx].path, idx, header)?);
        }
        Ok(Checkpoint { shards, gguf: None, entries })
    }

    /// The files backing this checkpoint, in the order they were opened.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.shards.iter().map(|s| s.path.as_path()).chain(self.gguf.iter().map(|g| g.path()))
    }
}

/// Turns a validated header tensor into a mapped entry, rejecting unsupported dtypes.
fn make_entry(file: &Path, shard: usize, t: HeaderTensor) -> Result<Entry, CheckpointError> {
    let dtype = StDType::from_safetensors(t.dtype).ok_or_else(|| CheckpointError::UnsupportedDtype {
        file: file.to_path_buf(),
        tensor: t.name.clone(),
        dtype: format!("{:?}", t.dtype),
    })?;
    Ok(Entry {
        info: TensorInfo { dtype, shape: t.shape, file: file.to_path_buf() },
        place: Place::Shard { shard, start: t.start, end: t.end },
    })
}
