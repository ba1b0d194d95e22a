//! Building the protocol inputs (`input_ids`, `position_ids`, `current_pos`, `causal_mask`,
//! `hidden_states`) of one function call, shaped and typed as the function declares them.

use std::collections::HashMap;

use crate::ir::{Function, TensorType, Type};

use super::super::{InterpError, Tensor};

/// The values of one step of the protocol, for a window of rows starting at `start`.
pub struct Feed<'a> {
    /// Token ids of the rows (padded to the window).
    pub ids: &'a [i64],
    /// First absolute position of the window.
    pub start: usize,
    /// Number of rows of the window (B for prefill, 1 for decode).
    pub rows: usize,
    /// C: the causal-mask width.
    pub context: usize,
    /// The hidden states flowing between functions, if any.
    pub hidden: Option<Tensor>,
}

fn build(func: &str, name: &str, ty: &TensorType, values: Vec<f64>) -> Result<Tensor, InterpError> {
    if ty.numel() != values.len() {
        return Err(InterpError::Driver(format!(
            "@{func}: input `{name}` is declared {ty} but the protocol provides {} values",
            values.len()
        )));
    }
    let t = if ty.dtype.is_float() {
        Tensor::from_f32(ty.dtype, &ty.shape, values.into_iter().map(|v| v as f32).collect())
    } else {
        Tensor::from_i64(ty.dtype, &ty.shape, values.into_iter().map(|v| v as i64).collect())
    };
    t.map_err(|e| InterpError::Driver(format!("@{func}: input `{name}`: {e}")))
}

/// Mask rows `start .. start + rows`: row p is 0 for columns j ≤ p and −inf otherwise.
fn mask(start: usize, rows: usize, context: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * context);
    for p in start..start + rows {
        out.extend((0..context).map(|j| if j <= p { 0.0 } else { f64::NEG_INFINITY }));
    }
    out
}

/// The tensor inputs of `f` for this step. States are not included (they are bound by the
/// session). An input the protocol does not know is an error naming it.
pub fn inputs(f: &Function, feed: &Feed<'_>) -> Result<HashMap<String, Tensor>, InterpError> {
    let mut out = HashMap::new();
    for &id in &f.inputs {
        let Some(v) = f.values.try_get(id) else { continue };
        let Type::Tensor(ty) = &v.ty else { continue };
        let positions = || (feed.start..feed.start + feed.rows).map(|p| p as f64).collect::<Vec<_>>();
        let t = match v.name.as_str() {
            "input_ids" => build(&f.name, &v.name, ty, feed.ids.iter().map(|&t| t as f64).collect())?,
            "position_ids" => build(&f.name, &v.name, ty, positions())?,
            "current_pos" => build(&f.name, &v.name, ty, vec![feed.start as f64])?,
            "causal_mask" => build(&f.name, &v.name, ty, mask(feed.start, feed.rows, feed.context))?,
            "hidden_states" => feed.hidden.clone().ok_or_else(|| {
                InterpError::Driver(format!("@{}: `hidden_states` requested but nothing flows into it", f.name))
            })?,
            other => {
                return Err(InterpError::Driver(format!(
                    "@{}: input `{other}` is not part of the driving protocol",
                    f.name
                )));
            }
        };
        out.insert(v.name.clone(), t);
    }
    Ok(out)
}
