//! [`PackageTensors`]: a [`TensorSource`] over a package's constants, so IR weights read
//! back from a package materialise through the ordinary recipe machinery
//! (`checkpoint("blob:<offset>" : dtype[shape])`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::mil::blob::BlobFile;
use crate::mil::dtype::blob_dtype;
use crate::mil::proto::DataType;
use crate::mil::tensor_data::{ConstTensor, decode_f32};
use crate::weights::{TensorSource, WeightError};

/// Where one synthetic tensor's values are.
#[derive(Clone, Debug)]
pub enum TensorEntry {
    /// A blob of `weight.bin` (metadata record at `offset`) read as `dtype[shape]`.
    Blob { offset: u64, dtype: DataType, shape: Vec<usize> },
    /// An immediate value of the proto.
    Inline(ConstTensor),
}

/// The constants of one package by synthetic tensor name (`blob:<offset>`,
/// `inline:<function>/<op>`). Values are decoded on each read; nothing is cached here (the
/// [`WeightCache`](crate::weights::WeightCache) caches).
#[derive(Default)]
pub struct PackageTensors {
    blobs: Option<Arc<BlobFile>>,
    entries: HashMap<String, TensorEntry>,
}

impl PackageTensors {
    pub fn new(blobs: Option<Arc<BlobFile>>) -> Self {
        PackageTensors { blobs, entries: HashMap::new() }
    }

    pub fn insert(&mut self, name: String, entry: TensorEntry) {
        self.entries.insert(name, entry);
    }

    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        self.entries.get(name)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The payload bytes of blob `offset`, checked against `dtype` and `shape`.
    pub fn blob_bytes(&self, offset: u64, dtype: DataType, shape: &[usize]) -> Result<&[u8], String> {
        let blobs = self.blobs.as_ref().ok_or("the package has no weight.bin")?;
        let code = blob_dtype(dtype).ok_or_else(|| format!("{dtype:?} cannot live in a blob"))?;
        let rec = blobs.typed_record(offset, code).map_err(|e| e.to_string())?;
        let n = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        if Some(rec.element_count()) != n {
            return Err(format!(
                "blob at {offset} holds {} elements, the program declares {shape:?}",
                rec.element_count()
            ));
        }
        Ok(rec.data)
    }
}

impl TensorSource for PackageTensors {
    fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightError> {
        let err = |message: String| WeightError::Source { tensor: name.to_string(), message };
        match self.entries.get(name).ok_or_else(|| WeightError::NotFound { tensor: name.to_string() })? {
            TensorEntry::Blob { offset, dtype, shape } => {
                let bytes = self.blob_bytes(*offset, *dtype, shape).map_err(err)?;
                let n = crate::mil::tensor_data::checked_numel(shape).ok_or_else(|| err("shape too large".into()))?;
                Ok((shape.clone(), decode_f32(*dtype, bytes, n).map_err(err)?))
            }
            TensorEntry::Inline(c) => {
                let values = (0..c.numel()).map(|i| c.get_f64(i).map(|v| v as f32)).collect::<Option<Vec<f32>>>();
                Ok((c.shape.clone(), values.ok_or_else(|| err("not a numeric constant".into()))?))
            }
        }
    }
}
