//! Weight recipes: how a module weight's bytes are produced at emit/run time from the source
//! checkpoint. Recipes are small expression trees; the IR text spells them as calls, e.g.
//! `cast(checkpoint("model.norm.weight" : bf16[64]), dtype = fp16)`. Weight bytes are never
//! stored in the IR.

use super::attr::{format_float, quote};
use super::types::{DType, TensorType};
use std::fmt;

/// A recipe node. Every variant has a typing rule in [`Recipe::infer_type`].
#[derive(Clone, Debug, PartialEq)]
pub enum Recipe {
    /// A tensor of the source checkpoint, with the type it must have there.
    Checkpoint { tensor: String, ty: TensorType },
    /// Element type conversion (round-to-nearest-even for floats).
    Cast { input: Box<Recipe>, dtype: DType },
    /// Same elements, new shape (row-major).
    Reshape { input: Box<Recipe>, shape: Vec<usize> },
    /// Axis permutation.
    Transpose { input: Box<Recipe>, perm: Vec<usize> },
    /// `[start, end)` along one axis.
    Slice { input: Box<Recipe>, axis: usize, start: usize, end: usize },
    /// Joins along one axis.
    Concat { inputs: Vec<Recipe>, axis: usize },
    /// Multiplies every element by a constant (computed in f64, rounded to the dtype).
    Scale { input: Box<Recipe>, factor: f64 },
    /// Adds a constant to every element (computed in f64, rounded to the dtype): Gemma's
    /// norm gains `1 + w`.
    Offset { input: Box<Recipe>, value: f64 },
    /// Multiplies `input` by a 1-D tensor `scale` along one axis:
    /// `out[…, j, …] = input[…, j, …] · scale[j]` with `j` the index along `axis` (computed in
    /// f64, rounded once to `input`'s dtype). A projection `W : [O, I]` with an RMSNorm gain
    /// `g : [I]` folded in is `scale_along(W, g, axis = 1)` = `W · diag(g)`.
    ScaleAlong { input: Box<Recipe>, scale: Box<Recipe>, axis: usize },
    /// RoPE cosine table `[len, 2·n]`: `cos(p · inv_freq[i mod n]) · scale`, n = inv_freq.len().
    RopeCos { inv_freq: Vec<f64>, len: usize, scale: f64, dtype: DType },
    /// RoPE sine table, same layout as `RopeCos`.
    RopeSin { inv_freq: Vec<f64>, len: usize, scale: f64, dtype: DType },
    /// LUT palettization indices of a float tensor: `uint{bits}` of the same shape, from 1-D
    /// k-means per group of `group_size` rows of axis 0 (see `crate::quant`). With
    /// `importance` (one finite positive weight per index of axis 1, from calibration), the
    /// k-means objective weights each element by its input channel's entry.
    /// With `compensation` (a digest naming the calibration's input second moments, held by
    /// the process that calibrated), the indices come from error-compensating assignment
    /// (`crate::quant::gptq`).
    LutIndices {
        input: Box<Recipe>,
        bits: u32,
        group_size: usize,
        importance: Option<Vec<f64>>,
        compensation: Option<String>,
    },
    /// The matching lookup tables: `fp16[d0 / group_size, 2^bits]`.
    LutTable {
        input: Box<Recipe>,
        bits: u32,
        group_size: usize,
        importance: Option<Vec<f64>>,
        compensation: Option<String>,
    },
}

impl Recipe {
    /// Every recipe function name, in spec order.
    pub const NAMES: &'static [&'static str] = &[
        "checkpoint",
        "cast",
        "reshape",
        "transpose",
        "slice",
        "concat",
        "scale",
        "offset",
        "scale_along",
        "rope_cos",
        "rope_sin",
        "lut_indices",
        "lut_table",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Recipe::Checkpoint { .. } => "checkpoint",
            Recipe::Cast { .. } => "cast",
            Recipe::Reshape { .. } => "reshape",
            Recipe::Transpose { .. } => "transpose",
            Recipe::Slice { .. } => "slice",
            Recipe::Concat { .. } => "concat",
            Recipe::Scale { .. } => "scale",
            Recipe::Offset { .. } => "offset",
            Recipe::ScaleAlong { .. } => "scale_along",
            Recipe::RopeCos { .. } => "rope_cos",
            Recipe::RopeSin { .. } => "rope_sin",
            Recipe::LutIndices { .. } => "lut_indices",
            Recipe::LutTable { .. } => "lut_table",
        }
    }

    /// The recipe's result type, or a message naming the broken rule.
    pub fn infer_type(&self) -> Result<TensorType, String> {
        match self {
            Recipe::Checkpoint { ty, .. } => Ok(ty.clone()),
            Recipe::Cast { input, dtype } => {
                let t = input.infer_type()?;
                if !t.dtype.is_float() || !dtype.is_float() {
                    return Err(format!("recipe cast: only float→float casts, got {} → {}", t.dtype, dtype));
                }
                Ok(t.with_dtype(*dtype))
            }
            Recipe::Reshape { input, shape } => {
                let t = input.infer_type()?;
                let new = t.with_shape(shape.clone());
                if new.checked_numel().is_none() || new.checked_numel() != t.checked_numel() {
                    return Err(format!(
                        "recipe reshape: {} has {} elements, shape {:?} has {}",
                        t,
                        t.numel(),
                        shape,
                        new.numel()
                    ));
                }
                Ok(new)
            }
            Recipe::Transpose { input, perm } => {
                let t = input.infer_type()?;
                if !is_permutation(perm, t.rank()) {
                    return Err(format!("recipe transpose: {perm:?} is not a permutation of rank {}", t.rank()));
                }
                Ok(t.with_shape(perm.iter().map(|&p| t.shape[p]).collect()))
            }
            Recipe::Slice { input, axis, start, end } => {
                let t = input.infer_type()?;
                if *axis >= t.rank() || start >= end || *end > t.shape[*axis] {
                    return Err(format!("recipe slice: [{start}, {end}) on axis {axis} is out of range for {t}"));
                }
                let mut shape = t.shape.clone();
                shape[*axis] = end - start;
                Ok(t.with_shape(shape))
            }
            Recipe::Concat { inputs, axis } => {
                let types: Vec<TensorType> = inputs.iter().map(|r| r.infer_type()).collect::<Result<_, _>>()?;
                let first = types.first().ok_or("recipe concat: needs at least one input")?;
                if *axis >= first.rank() {
                    return Err(format!("recipe concat: axis {axis} out of range for {first}"));
                }
                let mut shape = first.shape.clone();
                shape[*axis] = 0;
                for t in &types {
                    let compatible = t.dtype == first.dtype
                        && t.rank() == first.rank()
                        && (0..t.rank()).all(|i| i == *axis || t.shape[i] == first.shape[i]);
                    if !compatible {
                        return Err(format!("recipe concat: {t} does not match {first} off axis {axis}"));
                    }
                    shape[*axis] =
                        shape[*axis].checked_add(t.shape[*axis]).ok_or("recipe concat: concatenated size overflows")?;
                }
                Ok(first.with_shape(shape))
            }
            Recipe::Scale { input, .. } | Recipe::Offset { input, .. } => {
                let t = input.infer_type()?;
                if !t.dtype.is_float() {
                    return Err(format!("recipe {}: needs a float tensor, got {t}", self.name()));
                }
                Ok(t)
            }
            Recipe::ScaleAlong { input, scale, axis } => {
                let (t, g) = (input.infer_type()?, scale.infer_type()?);
                if !t.dtype.is_float() || !g.dtype.is_float() {
                    return Err(format!("recipe scale_along: needs float tensors, got {t} and {g}"));
                }
                if *axis >= t.rank() {
                    return Err(format!("recipe scale_along: axis {axis} out of range for {t}"));
                }
                if g.shape != [t.shape[*axis]] {
                    return Err(format!(
                        "recipe scale_along: the scale {g} must be 1-D with {} entries (axis {axis} of {t})",
                        t.shape[*axis]
                    ));
                }
                Ok(t)
            }
            Recipe::RopeCos { inv_freq, len, dtype, .. } | Recipe::RopeSin { inv_freq, len, dtype, .. } => {
                if inv_freq.is_empty() || *len == 0 || !dtype.is_float() {
                    return Err("rope table: needs inv_freq, len > 0 and a float dtype".to_string());
                }
                Ok(TensorType::new(*dtype, vec![*len, 2 * inv_freq.len()]))
            }
            Recipe::LutIndices { input, bits, group_size, importance, .. }
            | Recipe::LutTable { input, bits, group_size, importance, .. } => {
                let t = input.infer_type()?;
                let name = self.name();
                let index = lut_index_dtype(*bits)
                    .ok_or_else(|| format!("recipe {name}: bits must be 1, 2, 3, 4, 6 or 8, got {bits}"))?;
                if !t.dtype.is_float() {
                    return Err(format!("recipe {name}: needs a float tensor, got {t}"));
                }
                if let Some(imp) = importance {
                    crate::quant::weighted::check_importance(imp, &t.shape)
                        .map_err(|m| format!("recipe {name}: {m}"))?;
                }
                match t.shape.first() {
                    Some(&d0) if *group_size > 0 && d0.is_multiple_of(*group_size) => Ok(match self {
                        Recipe::LutIndices { .. } => t.with_dtype(index),
                        _ => TensorType::new(DType::F16, vec![d0 / group_size, 1usize << bits]),
                    }),
                    _ => Err(format!("recipe {name}: group_size {group_size} does not divide axis 0 of {t}")),
                }
            }
        }
    }

    /// The recipes this one is computed from, in input order (a `scale_along`'s input before
    /// its scale); none for a leaf (`checkpoint`, RoPE tables).
    pub fn inputs(&self) -> Vec<&Recipe> {
        match self {
            Recipe::Cast { input, .. }
            | Recipe::Reshape { input, .. }
            | Recipe::Transpose { input, .. }
            | Recipe::Slice { input, .. }
            | Recipe::Scale { input, .. }
            | Recipe::Offset { input, .. }
            | Recipe::LutIndices { input, .. }
            | Recipe::LutTable { input, .. } => vec![input],
            Recipe::Concat { inputs, .. } => inputs.iter().collect(),
            Recipe::ScaleAlong { input, scale, .. } => vec![input, scale],
            Recipe::Checkpoint { .. } | Recipe::RopeCos { .. } | Recipe::RopeSin { .. } => Vec::new(),
        }
    }

    /// Names of the checkpoint tensors this recipe reads, in input order: a `scale_along`'s
    /// input before its scale, so the first name is always that of the tensor being shaped
    /// (calibration statistics are keyed by it).
    pub fn checkpoint_tensors<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Recipe::Checkpoint { tensor, .. } => out.push(tensor),
            _ => self.inputs().into_iter().for_each(|r| r.checkpoint_tensors(out)),
        }
    }
}

/// The palettization index dtype of `bits` (`uint1` … `uint8`), if `lut_to_dense` supports it.
pub fn lut_index_dtype(bits: u32) -> Option<DType> {
    DType::ALL.into_iter().find(|d| d.index_bits() == Some(bits))
}

/// True if `perm` is a permutation of `0..rank`.
pub fn is_permutation(perm: &[usize], rank: usize) -> bool {
    let mut seen = vec![false; rank];
    perm.len() == rank && perm.iter().all(|&p| p < rank && !std::mem::replace(&mut seen[p], true))
}

fn list<T: fmt::Display>(v: &[T]) -> String {
    let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", items.join(", "))
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipe::Checkpoint { tensor, ty } => write!(f, "checkpoint({} : {ty})", quote(tensor)),
            Recipe::Cast { input, dtype } => write!(f, "cast({input}, dtype = {dtype})"),
            Recipe::Reshape { input, shape } => write!(f, "reshape({input}, shape = {})", list(shape)),
            Recipe::Transpose { input, perm } => write!(f, "transpose({input}, perm = {})", list(perm)),
            Recipe::Slice { input, axis, start, end } => {
                write!(f, "slice({input}, axis = {axis}, start = {start}, end = {end})")
            }
            Recipe::Concat { inputs, axis } => {
                f.write_str("concat(")?;
                for r in inputs {
                    write!(f, "{r}, ")?;
                }
                write!(f, "axis = {axis})")
            }
            Recipe::Scale { input, factor } => write!(f, "scale({input}, factor = {})", format_float(*factor)),
            Recipe::Offset { input, value } => write!(f, "offset({input}, value = {})", format_float(*value)),
            Recipe::ScaleAlong { input, scale, axis } => write!(f, "scale_along({input}, {scale}, axis = {axis})"),
            Recipe::RopeCos { inv_freq, len, scale, dtype } | Recipe::RopeSin { inv_freq, len, scale, dtype } => {
                let freqs: Vec<String> = inv_freq.iter().map(|x| format_float(*x)).collect();
                write!(
                    f,
                    "{}(inv_freq = [{}], len = {len}, scale = {}, dtype = {dtype})",
                    self.name(),
                    freqs.join(", "),
                    format_float(*scale)
                )
            }
            Recipe::LutIndices { input, bits, group_size, importance, compensation }
            | Recipe::LutTable { input, bits, group_size, importance, compensation } => {
                write!(f, "{}({input}, bits = {bits}, group_size = {group_size}", self.name())?;
                if let Some(imp) = importance {
                    let items: Vec<String> = imp.iter().map(|x| format_float(*x)).collect();
                    write!(f, ", importance = [{}]", items.join(", "))?;
                }
                if let Some(c) = compensation {
                    write!(f, ", compensation = {}", quote(c))?;
                }
                f.write_str(")")
            }
        }
    }
}
