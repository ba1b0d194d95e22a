//! Storing the module weights a package uses: each IR weight is materialised once (one at a
//! time, through the [`WeightCache`] without keeping it) and written once, in module
//! declaration order; every const op of every function that uses it points at that one copy.

use std::collections::{BTreeSet, HashMap};

use super::sink::BlobSink;
use crate::ir::Recipe;
use crate::ir::{Module, Op, TensorType};
use crate::mil::blob::pack::pack_bits_parallel;
use crate::mil::dtype::{blob_dtype, mil_dtype};
use crate::mil::error::EmitError;
use crate::mil::proto::DataType;
use crate::mil::tensor_data::{ConstTensor, tensor_elements, tensor_payload};
use crate::quant::{Palettized, palettize_tensor_weighted};
use crate::weights::{RowStream, WeightCache, materialize};

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
    let mut palette = PaletteStash::default();
    for w in module.weights.iter().filter(|w| used.contains(w.name.as_str())) {
        let fail = |message: String| EmitError::Weight { name: w.name.clone(), message, source: None };
        if matches!(w.ty.dtype, crate::ir::DType::BF16 | crate::ir::DType::I64) {
            return Err(fail(format!("{} weights are not supported by Core ML ML programs", w.ty.dtype)));
        }
        let dtype = mil_dtype(w.ty.dtype);
        // Payloads made without an interpreter tensor: fp16 straight from the checkpoint
        // bytes, palettizations computed once per indices/table pair.
        let direct = if !goes_to_blob(dtype, w.ty.numel()) {
            None
        } else {
            match fp16_payload(w, cache)? {
                Some(payload) => Some(payload),
                None => palette.payload(w, cache)?,
            }
        };
        if let Some(payload) = direct {
            let code = blob_dtype(dtype).ok_or_else(|| fail(format!("{dtype:?} has no blob encoding")))?;
            let stored = Stored::Blob { offset: sink.append(code, w.ty.numel() as u64, payload)? };
            table.entries.insert(w.name.clone(), StoredWeight { ty: w.ty.clone(), dtype, stored });
            continue;
        }
        let tensor = cache.get_uncached(&w.name).map_err(|e| EmitError::Weight {
            name: w.name.clone(),
            message: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        let numel = w.ty.numel();
        let stored = if goes_to_blob(dtype, numel) {
            let code = blob_dtype(dtype).ok_or_else(|| fail(format!("{dtype:?} has no blob encoding")))?;
            let payload = tensor_payload(&tensor, dtype).map_err(fail)?;
            Stored::Blob { offset: sink.append(code, numel as u64, payload)? }
        } else {
            Stored::Immediate(ConstTensor::new(dtype, w.ty.shape.clone(), tensor_elements(&tensor)).map_err(fail)?)
        };
        table.entries.insert(w.name.clone(), StoredWeight { ty: w.ty.clone(), dtype, stored });
    }
    Ok(table)
}

/// The palettization behind a `lut_indices` weight, kept for its `lut_table` sibling (the
/// palettize pass declares them next to each other over the same input recipe): k-means
/// runs once per weight, and the indices go straight from bytes to packed payload, never
/// through an interpreter tensor of i64 indices.
#[derive(Default)]
struct PaletteStash {
    last: Option<(String, u32, usize, Palettized)>,
}

impl PaletteStash {
    /// The blob payload of a palettization weight, or `None` for any other recipe.
    fn payload(&mut self, w: &crate::ir::Weight, cache: &WeightCache) -> Result<Option<Vec<u8>>, EmitError> {
        let (input, bits, group_size, importance, compensation, indices) = match &w.recipe {
            Recipe::LutIndices { input, bits, group_size, importance, compensation } => {
                (input, *bits, *group_size, importance, compensation, true)
            }
            Recipe::LutTable { input, bits, group_size, importance, compensation } => {
                (input, *bits, *group_size, importance, compensation, false)
            }
            _ => return Ok(None),
        };
        let fail = |message: String| EmitError::Weight { name: w.name.clone(), message, source: None };
        if let Some(c) = compensation {
            let p = crate::quant::compensated::lookup(c, input, bits, group_size).map_err(fail)?;
            return Ok(Some(if indices {
                if bits == 8 { p.indices.clone() } else { pack_bits_parallel(&p.indices, bits) }
            } else {
                p.lut.iter().flat_map(|&x| half::f16::from_f32(x).to_bits().to_le_bytes()).collect()
            }));
        }
        // The key names the input and the importance: the two recipes of one weight agree on both.
        let key = match importance {
            Some(imp) => format!("{input} {imp:?}"),
            None => input.to_string(),
        };
        let hit = matches!(&self.last, Some((k, b, g, _)) if *k == key && *b == bits && *g == group_size);
        if !hit {
            self.last = None;
            let t = materialize(input, cache.source()).map_err(|e| fail(e.to_string()))?;
            let values = t.as_f32().ok_or_else(|| fail(format!("palettizes a {} tensor", t.dtype())))?;
            let values = values.as_slice().ok_or_else(|| fail("non-contiguous palettization input".into()))?;
            let p = palettize_tensor_weighted(values, t.shape(), bits, group_size, importance.as_deref())
                .map_err(|e| fail(e.to_string()))?;
            self.last = Some((key, bits, group_size, p));
        }
        let p = &self.last.as_ref().expect("set above").3;
        Ok(Some(if indices {
            if bits == 8 { p.indices.clone() } else { pack_bits_parallel(&p.indices, bits) }
        } else {
            p.lut.iter().flat_map(|&x| half::f16::from_f32(x).to_bits().to_le_bytes()).collect()
        }))
    }
}

/// Rows per block when a weight is streamed to fp16 (≈ 4 MB of f32 for a 640-wide row).
const STREAM_ROWS: usize = 1024;

/// The fp16 payload of `cast(r, fp16)` for a row-streamable `r` ([`RowStream`]: an
/// embedding table with its scale folded in, a fused q/k/v projection with its attention
/// scale and norm gain folded in, a projection times its norm gain, …) computed in blocks of
/// rows read straight from the source, in parallel, so the tensor never exists whole in f32
/// (262144 × 640 is 671 MB). Each element goes through exactly the roundings of
/// materialising the recipe, then one rounding to fp16. `None` for other recipes or a
/// source that cannot read rows alone.
fn streamed_fp16_payload(
    w: &crate::ir::Weight,
    inner: &Recipe,
    cache: &WeightCache,
) -> Result<Option<Vec<u8>>, EmitError> {
    use half::slice::HalfFloatSliceExt;
    use rayon::prelude::*;
    let Some(stream) = RowStream::of(inner) else { return Ok(None) };
    let src = cache.source();
    if !src.reads_rows_cheaply() {
        return Ok(None);
    }
    let fail = |message: String| EmitError::Weight { name: w.name.clone(), message, source: None };
    let (rows, row_len) = (stream.rows, stream.row_len);
    let mut out = vec![0u8; rows * row_len * 2];
    out.par_chunks_mut((STREAM_ROWS * row_len * 2).max(2)).enumerate().try_for_each(|(k, bytes)| {
        let start = k * STREAM_ROWS;
        let end = (start + STREAM_ROWS).min(rows);
        let values = stream.rows(src, start, end).map_err(|e| fail(e.to_string()))?;
        if values.len() * 2 != bytes.len() {
            return Err(fail(format!("rows {start}..{end} have {} values", values.len())));
        }
        // `half`'s slice conversion (F16C where the CPU has it) rounds as `f16::from_f32`.
        let mut halves = vec![half::f16::ZERO; values.len()];
        halves.convert_from_f32_slice(&values);
        if let Some(i) = halves.iter().position(|h| !h.is_finite()) {
            return Err(fail(format!("{} is beyond the fp16 range", values[i])));
        }
        for (h, b) in halves.into_iter().zip(bytes.chunks_exact_mut(2)) {
            b.copy_from_slice(&h.to_bits().to_le_bytes());
        }
        Ok(())
    })?;
    Ok(Some(out))
}

/// The fp16 payload of `reshape*(cast(checkpoint(float), fp16))` straight from the source's
/// bytes (no f32 copy of the tensor; the same rounding as materialising and casting), or
/// `None` for any other recipe or a source that cannot do it.
fn fp16_payload(w: &crate::ir::Weight, cache: &WeightCache) -> Result<Option<Vec<u8>>, EmitError> {
    let mut r = &w.recipe;
    while let Recipe::Reshape { input, .. } = r {
        r = input;
    }
    let (tensor, ty) = match r {
        Recipe::Cast { input, dtype: crate::ir::DType::F16 } => match input.as_ref() {
            Recipe::Checkpoint { tensor, ty } if ty.dtype.is_float() => (tensor, ty),
            inner => return streamed_fp16_payload(w, inner, cache),
        },
        Recipe::Checkpoint { tensor, ty } if ty.dtype == crate::ir::DType::F16 => (tensor, ty),
        _ => return Ok(None),
    };
    let Some(read) = cache.source().read_f16_bytes(tensor) else { return Ok(None) };
    let (shape, bytes) =
        read.map_err(|e| EmitError::Weight { name: w.name.clone(), message: e.to_string(), source: None })?;
    if shape != ty.shape {
        return Err(EmitError::Weight {
            name: w.name.clone(),
            message: format!("checkpoint tensor {tensor:?} has shape {shape:?}, the recipe declares {:?}", ty.shape),
            source: None,
        });
    }
    Ok(Some(bytes))
}
