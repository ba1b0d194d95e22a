//! [`RowStream`]: the values of a recipe produced a block of rows (of axis 0) at a time,
//! straight from `read_f32_rows`, for recipes whose every step maps rows to rows: float
//! checkpoint tensors under `cast`, `scale`, `offset`, `scale_along` (the factors are read
//! whole: a 1-D vector), `reshape` keeping axis 0, `slice` and `concat` along axis 0. A
//! scaled embedding table, a fused q/k/v projection with its attention scale and norm gain
//! folded in, … never exist whole in f32 this way.
//!
//! Invariant: [`RowStream::rows`] gives exactly the elements materialising the recipe gives
//! for those rows (the same operations in the same order, each rounded as
//! [`super::materialize`] rounds it).

use crate::interp::tensor::round_slice;
use crate::ir::{DType, Recipe};

use super::{TensorSource, WeightError, materialize};

/// A row-streamable recipe (see the module docs).
#[derive(Debug)]
pub struct RowStream<'r> {
    node: Node<'r>,
    /// Rows (axis 0) of the result.
    pub rows: usize,
    /// Elements per row.
    pub row_len: usize,
}

#[derive(Debug)]
enum Node<'r> {
    /// Values read as f32, rounded to the declared dtype (the identity when it is the stored
    /// one), as `materialize` reads a checkpoint tensor.
    Checkpoint {
        tensor: &'r str,
        shape: &'r [usize],
        dtype: DType,
    },
    Cast {
        input: Box<Node<'r>>,
        dtype: DType,
    },
    Scale {
        input: Box<Node<'r>>,
        factor: f64,
        dtype: DType,
    },
    Offset {
        input: Box<Node<'r>>,
        value: f64,
        dtype: DType,
    },
    /// Element `k` of row `r` times `scale[r]` (axis 0) or `scale[(k / inner) % len]`.
    ScaleAlong {
        input: Box<Node<'r>>,
        scale: &'r Recipe,
        axis: usize,
        inner: usize,
        dtype: DType,
    },
    /// Rows `start..` of the input.
    Slice {
        input: Box<Node<'r>>,
        start: usize,
    },
    /// Inputs stacked along axis 0, with their row counts.
    Concat {
        inputs: Vec<(usize, Node<'r>)>,
    },
}

impl<'r> RowStream<'r> {
    /// The stream of `recipe`, or `None` unless every step is one listed in the module docs,
    /// the recipe is well-typed with rank ≥ 1, and at least one step is above the checkpoint
    /// leaf (a bare tensor has cheaper paths).
    pub fn of(recipe: &'r Recipe) -> Option<RowStream<'r>> {
        if matches!(recipe, Recipe::Checkpoint { .. }) {
            return None;
        }
        let ty = recipe.infer_type().ok()?;
        let rows = *ty.shape.first()?;
        let row_len = ty.shape[1..].iter().product();
        Some(RowStream { node: node(recipe)?, rows, row_len })
    }

    /// Rows `start..end` (`end ≤ self.rows`), row-major.
    pub fn rows(&self, src: &dyn TensorSource, start: usize, end: usize) -> Result<Vec<f32>, WeightError> {
        eval(&self.node, src, start, end, self.row_len)
    }
}

fn node(r: &Recipe) -> Option<Node<'_>> {
    let dtype = r.infer_type().ok()?.dtype;
    if !dtype.is_float() {
        return None;
    }
    Some(match r {
        Recipe::Checkpoint { tensor, ty } if !ty.shape.is_empty() => {
            Node::Checkpoint { tensor, shape: &ty.shape, dtype }
        }
        Recipe::Cast { input, dtype } => Node::Cast { input: Box::new(node(input)?), dtype: *dtype },
        Recipe::Scale { input, factor } => Node::Scale { input: Box::new(node(input)?), factor: *factor, dtype },
        Recipe::Offset { input, value } => Node::Offset { input: Box::new(node(input)?), value: *value, dtype },
        Recipe::ScaleAlong { input, scale, axis } => {
            let shape = input.infer_type().ok()?.shape;
            let inner = shape.get(axis + 1..)?.iter().product();
            Node::ScaleAlong { input: Box::new(node(input)?), scale, axis: *axis, inner, dtype }
        }
        Recipe::Reshape { input, shape } => {
            let from = input.infer_type().ok()?.shape;
            // Row-major: the same rows when axis 0 keeps its size.
            (from.first()? == shape.first()?).then_some(())?;
            node(input)?
        }
        Recipe::Slice { input, axis: 0, start, .. } => Node::Slice { input: Box::new(node(input)?), start: *start },
        Recipe::Concat { inputs, axis: 0 } => Node::Concat {
            inputs: inputs
                .iter()
                .map(|i| Some((*i.infer_type().ok()?.shape.first()?, node(i)?)))
                .collect::<Option<_>>()?,
        },
        _ => return None,
    })
}

fn eval(
    n: &Node<'_>,
    src: &dyn TensorSource,
    start: usize,
    end: usize,
    row_len: usize,
) -> Result<Vec<f32>, WeightError> {
    Ok(match n {
        Node::Checkpoint { tensor, shape, dtype } => {
            let (got, mut v) = src.read_f32_rows(tensor, start, end)?;
            let mut want = shape.to_vec();
            want[0] = end - start;
            if got != want {
                return Err(WeightError::Shape { tensor: tensor.to_string(), expected: shape.to_vec(), got });
            }
            round_slice(*dtype, &mut v);
            v
        }
        Node::Cast { input, dtype } => {
            let mut v = eval(input, src, start, end, row_len)?;
            round_slice(*dtype, &mut v);
            v
        }
        // `round_f64(d, y)` is `round_f32(d, y as f32)`: the f64 result to f32, then the
        // slice rounded to the dtype (vectorised).
        Node::Scale { input, factor, dtype } => {
            let mut v = eval(input, src, start, end, row_len)?;
            v.iter_mut().for_each(|x| *x = (f64::from(*x) * factor) as f32);
            round_slice(*dtype, &mut v);
            v
        }
        Node::Offset { input, value, dtype } => {
            let mut v = eval(input, src, start, end, row_len)?;
            v.iter_mut().for_each(|x| *x = (f64::from(*x) + value) as f32);
            round_slice(*dtype, &mut v);
            v
        }
        Node::ScaleAlong { input, scale, axis, inner, dtype } => {
            let mut v = eval(input, src, start, end, row_len)?;
            let t = materialize(scale, src)?;
            let g: Vec<f32> = t.as_f32().map(|a| a.iter().copied().collect()).unwrap_or_default();
            let len = g.len().max(1);
            for (r, row) in v.chunks_mut(row_len.max(1)).enumerate() {
                if *axis == 0 {
                    let factor = f64::from(g[start + r]);
                    row.iter_mut().for_each(|x| *x = (f64::from(*x) * factor) as f32);
                } else if *inner == 1 && row.len() == len {
                    // The last axis (a `[O, I]` projection): the row zipped with the factors.
                    row.iter_mut().zip(&g).for_each(|(x, &f)| *x = (f64::from(*x) * f64::from(f)) as f32);
                } else {
                    for (k, x) in row.iter_mut().enumerate() {
                        *x = (f64::from(*x) * f64::from(g[(k / (*inner).max(1)) % len])) as f32;
                    }
                }
            }
            round_slice(*dtype, &mut v);
            v
        }
        Node::Slice { input, start: s } => eval(input, src, s + start, s + end, row_len)?,
        Node::Concat { inputs } => {
            let mut out = Vec::with_capacity((end - start) * row_len);
            let mut base = 0;
            for (rows, input) in inputs {
                let (lo, hi) = (start.max(base), end.min(base + rows));
                if lo < hi {
                    out.extend(eval(input, src, lo - base, hi - base, row_len)?);
                }
                base += rows;
            }
            out
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::ir::TensorType;

    fn ckpt(name: &str, dtype: DType, shape: &[usize]) -> Box<Recipe> {
        Box::new(Recipe::Checkpoint { tensor: name.into(), ty: TensorType::new(dtype, shape.to_vec()) })
    }

    /// Every block of rows equals the same rows of the materialised recipe, bit for bit, for
    /// a fused, scaled, gain-folded, cast and reshaped projection and for a bf16 chain.
    #[test]
    fn rows_equal_the_materialised_recipe() {
        let vals = |n: usize, k: f32| (0..n).map(|i| ((i as f32) * 0.377 - 3.1) * k + 1e-3 * (i % 7) as f32).collect();
        let src: HashMap<String, (Vec<usize>, Vec<f32>)> = [
            ("q".to_string(), (vec![4, 6], vals(24, 1.0))),
            ("k".to_string(), (vec![2, 6], vals(12, -0.5))),
            ("g".to_string(), (vec![6], vals(6, 0.7))),
            ("h".to_string(), (vec![6], vals(6, 0.3))),
        ]
        .into_iter()
        .collect();
        let fused = Recipe::Concat {
            inputs: vec![
                Recipe::Scale { input: ckpt("q", DType::F32, &[4, 6]), factor: 0.3 },
                *ckpt("k", DType::F32, &[2, 6]),
            ],
            axis: 0,
        };
        let gain = Recipe::Offset { input: ckpt("g", DType::F32, &[6]), value: 1.0 };
        let folded = Recipe::ScaleAlong { input: Box::new(fused), scale: Box::new(gain), axis: 1 };
        let conv = Recipe::Reshape {
            input: Box::new(Recipe::Cast { input: Box::new(folded.clone()), dtype: DType::F16 }),
            shape: vec![6, 6, 1, 1],
        };
        let bf16 = Recipe::Slice {
            input: Box::new(Recipe::ScaleAlong {
                input: Box::new(Recipe::Cast { input: ckpt("q", DType::F32, &[4, 6]), dtype: DType::BF16 }),
                scale: ckpt("h", DType::F32, &[6]),
                axis: 1,
            }),
            axis: 0,
            start: 1,
            end: 4,
        };
        let rows_axis0 = Recipe::ScaleAlong {
            input: ckpt("q", DType::F32, &[4, 6]),
            scale: Box::new(Recipe::Slice { input: ckpt("g", DType::F32, &[6]), axis: 0, start: 1, end: 5 }),
            axis: 0,
        };
        for r in [&folded, &conv, &bf16, &rows_axis0] {
            let whole = materialize(r, &src).unwrap();
            let want: Vec<f32> = whole.as_f32().unwrap().iter().copied().collect();
            let s = RowStream::of(r).unwrap();
            assert_eq!(s.rows * s.row_len, want.len(), "{r}");
            for (a, b) in [(0, s.rows), (1, 3), (s.rows - 1, s.rows)] {
                assert_eq!(s.rows(&src, a, b).unwrap(), want[a * s.row_len..b * s.row_len], "{r} rows {a}..{b}");
            }
        }
        // Not streamable: a transpose, a bare checkpoint, an ill-typed scale.
        assert!(
            RowStream::of(&Recipe::Transpose { input: ckpt("q", DType::F32, &[4, 6]), perm: vec![1, 0] }).is_none()
        );
        assert!(RowStream::of(&ckpt("q", DType::F32, &[4, 6])).is_none());
        let ill = Recipe::ScaleAlong {
            input: ckpt("k", DType::F32, &[2, 6]),
            scale: ckpt("q", DType::F32, &[4, 6]),
            axis: 0,
        };
        assert!(RowStream::of(&ill).is_none());
    }
}
