//! [`RowChain`]: a recipe `(scale | offset)+(checkpoint(float))` — a scaled embedding table,
//! say — recognised so that its values can be produced a block of rows at a time (from
//! `read_f32_rows`/`rows_to_f32`) instead of materialising the whole tensor in f32.
//!
//! Invariant: [`RowChain::apply`] rounds exactly as materialising the recipe does (each
//! step computed in f64 and rounded to the checkpoint tensor's dtype, innermost step first).

use crate::interp::tensor::round_f64;
use crate::ir::{Recipe, TensorType};

#[derive(Clone, Copy, Debug)]
enum Step {
    Scale(f64),
    Offset(f64),
}

/// An elementwise chain over one checkpoint tensor (see the module docs).
#[derive(Debug)]
pub struct RowChain<'r> {
    pub tensor: &'r str,
    pub ty: &'r TensorType,
    /// Innermost first.
    steps: Vec<Step>,
}

impl<'r> RowChain<'r> {
    /// The chain of `recipe`, or `None` unless it is one or more scales/offsets over a
    /// float checkpoint tensor of rank ≥ 1.
    pub fn of(recipe: &'r Recipe) -> Option<RowChain<'r>> {
        let mut steps = Vec::new();
        let mut r = recipe;
        loop {
            match r {
                Recipe::Scale { input, factor } => {
                    steps.push(Step::Scale(*factor));
                    r = input;
                }
                Recipe::Offset { input, value } => {
                    steps.push(Step::Offset(*value));
                    r = input;
                }
                Recipe::Checkpoint { tensor, ty }
                    if ty.dtype.is_float() && !ty.shape.is_empty() && !steps.is_empty() =>
                {
                    steps.reverse();
                    return Some(RowChain { tensor, ty, steps });
                }
                _ => return None,
            }
        }
    }

    /// Applies the chain in place to values read from the checkpoint tensor.
    pub fn apply(&self, values: &mut [f32]) {
        for v in values {
            for s in &self.steps {
                let x = f64::from(*v);
                *v = round_f64(
                    self.ty.dtype,
                    match s {
                        Step::Scale(f) => x * f,
                        Step::Offset(c) => x + c,
                    },
                );
            }
        }
    }
}
