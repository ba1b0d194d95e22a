//! Storing the module weights a package uses: each IR weight is materialised once (one at a
//! time, through the [`WeightCache`] without keeping it) and written once, in module
//! declaration order; every const op of every function that uses it points at that one copy.

use std::collections::{BTreeSet, HashMap};

use super::sink::BlobSink;
use crate::ir::{Module, Op, TensorType};
use crate::mil::dtype::{blob_dtype, mil_dtype};
use crate::mil::error::EmitError;
use crate::mil::proto::DataType;
use crate::mil::tensor_data::{ConstTensor, tensor_elements, tensor_payload};
use crate::weights::WeightCache;

/// Constants with fewer elements stay immediate values in the proto (coremltools' policy).
pub const MIN_BLOB_ELEMENTS: usize = 10;

/// True if a constant of this MIL dtype and element count goes to `weight.bin`: ≥ 10
/// elements of fp16, fp32, uint8, int8 or a sub-byte type (coremltools 9's policy, minus
/// int32 which this emitter keeps immediate).
pub fn goes_to_blob(dtype: DataType, numel: usize) -> bool {
    numel >= MIN_BLOB_ELEMENTS
        && matches!(
            dtype,
            DataType::Float16
                | DataType::Float32
                | DataType::Uint8
                | DataType::Int8
                | DataType::Uint1
                | DataType::Uint2
                | DataType::Uint3
                | DataType::Uint4
                | DataType::Uint6
                | DataType::Int4
        )
}

/// Where a weight's values live.
#[derive(Clone, Debug)]
pub(crate) enum Stored {
    /// In `weight.bin`, metadata record at `offset`.
    Blob { offset: u64 },
    /// Inline in the proto.
    Immediate(ConstTensor),
}

/// A stored weight: its IR type, MIL dtype and location.
#[derive(Clone, Debug)]
pub(crate) struct StoredWeight {
    pub ty: TensorType,
    pub dtype: DataType,
    pub stored: Stored,
}

/// The weights of one package, by IR weight name.
#[derive(Debug, Default)]
pub(crate) struct WeightTable {
    entries: HashMap<String, StoredWeight>,
}

impl WeightTable {
    pub(crate) fn get(&self, name: &str) -> Option<&StoredWeight> {
        self.entries.get(name)
    }
}

/// The names of the weights referenced by `weight` ops of the given functions.
pub(crate) fn used_weights<'m>(module: &'m Module, functions: &[&str]) -> BTreeSet<&'m str> {
    let mut used = BTreeSet::new();
    for f in module.functions.iter().filter(|f| functions.contains(&f.name.as_str())) {
        for (_, node) in f.nodes.iter() {
            if let Op::Weight { name } = &node.op {
                used.insert(name.as_str());
            }
        }
    }
    used
}

/// Materialises and stores every used weight, in module order.
pub(crate) fn store_weights(
    module: &Module,
    used: &BTreeSet<&str>,
    cache: &WeightCache,
    sink: &mut BlobSink,
) -> Result<WeightTable, EmitError> {
    let mut table = WeightTable::default();
    for w in module.weights.iter().filter(|w| used.contains(w.name.as_str())) {
        let fail = |message: String| EmitError::Weight { name: w.name.clone(), message, source: None };
        if matches!(w.ty.dtype, crate::ir::DType::BF16 | crate::ir::DType::I64) {
            return Err(fail(format!("{} weights are not supported by Core ML ML programs", w.ty.dtype)));
        }
        let dtype = mil_dtype(w.ty.dtype);
        let tensor = cache.get_uncached(&w.name).map_err(|e| EmitError::Weight {
            name: w.name.clone(),
            message: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        let numel = w.ty.numel();
        let stored = if goes_to_blob(dtype, numel) {
            let code = blob_dtype(dtype).ok_or_else(|| fail(format!("{dtype:?} has no blob encoding")))?;
            let payload = tensor_payload(&tensor, dtype).map_err(fail)?;
            Stored::Blob { offset: sink.append(code, numel as u64, &payload)? }
        } else {
            Stored::Immediate(ConstTensor::new(dtype, w.ty.shape.clone(), tensor_elements(&tensor)).map_err(fail)?)
        };
        table.entries.insert(w.name.clone(), StoredWeight { ty: w.ty.clone(), dtype, stored });
    }
    Ok(table)
}
