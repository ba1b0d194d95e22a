//! LUT palettization: ANEMLL's coremltools k-means palettization, done by the compiler.
//!
//! - [`kmeans`]: exact 1-D k-means on the fp16 histogram of one group; the layered dynamic
//!   program, and the histogram / nearest-entry helpers.
//! - [`lagrangian`]: the faster exact solver it uses first (a penalty per cluster, searched).
//! - [`palettize`]: [`palettize_tensor`], one table per `group_size` rows of axis 0, in
//!   parallel over groups.
//! - [`weighted`]: sensitivity weights per input channel (calibrated `E[x_j²]`) for the
//!   same exact solver.
//! - [`memo`]: [`PaletteMemo`], so that a weight's two recipes run k-means once.
//! - [`config`]: [`LutConfig`] and its CLI syntax (`ffn=6,lm_head=6,embed=none`).
//! - [`transform`]: [`palettize_module`], which replaces eligible weights by `lut_to_dense`
//!   of `lut_indices` / `lut_table` weights.
//!
//! See `docs/palettization.md`.

pub mod compensated;
pub mod config;
pub mod gptq;
pub mod kmeans;
pub mod lagrangian;
pub mod memo;
pub mod palettize;
pub mod transform;
pub mod tuning;
pub mod weighted;

pub use config::LutConfig;
pub use memo::{LutPart, PaletteMemo};
pub use palettize::{Palettized, SUPPORTED_BITS, palettize_tensor, palettize_tensor_weighted, relative_error};
pub use transform::{ATTR_GROUP_SIZE, LutDecision, Part, function_part, palettize_module, plan_module};

use crate::interp::Tensor;
use crate::ir::recipe::lut_index_dtype;
use crate::ir::{DType, VerifyError};

/// Why palettization failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    #[error("unsupported LUT bits {bits}: supported are 1, 2, 3, 4, 6 and 8")]
    Bits { bits: u32 },
    #[error("group_size {group_size} does not divide axis 0 ({d0})")]
    GroupSize { d0: usize, group_size: usize },
    #[error("shape {shape:?} {message}")]
    Shape { shape: Vec<usize>, message: String },
    #[error("non-finite value {value} at flat index {index}")]
    NonFinite { index: usize, value: f32 },
    /// A bad `--lut` / `--lut-group-size` value or configuration; the message names it.
    #[error("{0}")]
    Config(String),
    #[error("palettize: {0}")]
    Transform(String),
    #[error("palettized module does not verify: {0}")]
    Verify(VerifyError),
}

/// The indices (`uint{bits}`, the weight's shape) or tables (`fp16[G, 2^bits]`) of `p` as a
/// tensor.
pub fn palettized_part(p: &Palettized, part: LutPart) -> Result<Tensor, QuantError> {
    let tensor = match part {
        LutPart::Indices => {
            let dtype = lut_index_dtype(p.bits).ok_or(QuantError::Bits { bits: p.bits })?;
            Tensor::from_i64(dtype, &p.shape, p.indices.iter().map(|&i| i64::from(i)).collect())
        }
        LutPart::Table => Tensor::from_f32(DType::F16, &[p.groups(), p.entries()], p.lut.clone()),
    };
    tensor.map_err(|e| QuantError::Transform(e.to_string()))
}

/// Materialises a `lut_indices` (`part = Indices`: `uint{bits}`, the input's shape) or
/// `lut_table` (`part = Table`: `fp16[G, 2^bits]`) recipe from its evaluated float input,
/// palettizing through [`PaletteMemo::global`].
pub fn materialize_lut(
    input: &Tensor,
    bits: u32,
    group_size: usize,
    importance: Option<&[f64]>,
    part: LutPart,
) -> Result<Tensor, QuantError> {
    let values = input
        .as_f32()
        .ok_or_else(|| QuantError::Transform(format!("needs a float tensor, got {}", input.tensor_type())))?;
    let shape = input.shape().to_vec();
    let p = PaletteMemo::global().get(values.iter().copied().collect(), &shape, bits, group_size, importance, part)?;
    let tensor = match part {
        LutPart::Indices => {
            let dtype = lut_index_dtype(bits).ok_or(QuantError::Bits { bits })?;
            Tensor::from_i64(dtype, &shape, p.indices.iter().map(|&i| i64::from(i)).collect())
        }
        LutPart::Table => Tensor::from_f32(DType::F16, &[p.groups(), p.entries()], p.lut.clone()),
    };
    tensor.map_err(|e| QuantError::Transform(e.to_string()))
}
