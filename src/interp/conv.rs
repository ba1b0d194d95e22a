//! `conv`: 2-D cross-correlation in NCHW with groups, strides, zero pads
//! `[top, bottom, left, right]` and dilations.
//!
//! Pointwise convolutions (1×1 kernel, unit strides, no padding, one group — the ones that
//! stand in for `linear` after `opt`) go through [`conv_pointwise`]: every output is one
//! fixed-order dot product ([`super::dot`]) with the weight given as [`MatrixRows`], so a
//! weight may stay fp16 or LUT-packed and decode and prefill agree bit for bit. Other
//! convolutions gather their receptive fields into a column matrix `[Cg·kh·kw, H'·W']`
//! (im2col) per batch item and group and multiply it by the group's weights with the f32
//! GEMM.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Array4, ArrayD, Axis, Ix4, IxDyn, s};

use super::kernel::{OpResult, float_result, floats};
use super::project::project;
use super::rows::MatrixRows;
use super::tensor::Tensor;

/// Static attributes of a convolution.
pub struct ConvAttrs<'a> {
    pub strides: &'a [usize],
    pub pads: &'a [usize],
    pub dilations: &'a [usize],
    pub groups: usize,
}

/// Output extent of one spatial axis, or `None` if the window does not fit.
fn out_len(input: usize, pad: usize, kernel: usize, stride: usize, dilation: usize) -> Option<usize> {
    let span = dilation.checked_mul(kernel.checked_sub(1)?)? + 1;
    let padded = input + pad;
    (stride > 0 && padded >= span).then(|| (padded - span) / stride + 1)
}

/// `conv(x, w[, b])`: `out[n, o, p, q] = b[o] + Σ_{c,i,j} w[o, c, i, j] ·
/// xp[n, (o / Og)·Cg + c, p·sh + i·dh, q·sw + j·dw]` with `xp` the zero-padded input.
pub fn conv(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, attrs: &ConvAttrs<'_>) -> OpResult {
    let xa = floats(x)?.view().into_dimensionality::<Ix4>().map_err(|_| "x must be rank 4".to_string())?;
    let wa = floats(w)?.view().into_dimensionality::<Ix4>().map_err(|_| "w must be rank 4".to_string())?;
    let ConvAttrs { strides, pads, dilations, groups } = *attrs;
    if strides.len() != 2 || dilations.len() != 2 || pads.len() != 4 {
        return Err("strides and dilations need 2 entries, pads 4".into());
    }
    let (nb, c, h, wd) = xa.dim();
    let (o, cg, kh, kw) = wa.dim();
    if groups == 0 || c % groups != 0 || o % groups != 0 || cg * groups != c {
        return Err(format!("channels {c} / groups {groups} do not match weight {}", w.tensor_type()));
    }
    if is_pointwise(wa.shape(), attrs) {
        let w2 = wa.as_standard_layout();
        let values = w2.as_slice().ok_or("weight is not contiguous")?;
        return conv_pointwise(x, &MatrixRows::dense(values, o, cg)?, bias);
    }
    let og = o / groups;
    let (Some(ho), Some(wo)) = (
        out_len(h, pads[0] + pads[1], kh, strides[0], dilations[0]),
        out_len(wd, pads[2] + pads[3], kw, strides[1], dilations[1]),
    ) else {
        return Err(format!("kernel {} does not fit input {}", w.tensor_type(), x.tensor_type()));
    };
    let bias = match bias {
        Some(b) => {
            let v: Vec<f32> = floats(b)?.iter().copied().collect();
            if v.len() != o {
                return Err(format!("bias {} does not match {o} output channels", b.tensor_type()));
            }
            Some(v)
        }
        None => None,
    };
    let patch = cg * kh * kw;
    let w2 = wa.as_standard_layout();
    let w2 = w2.view().into_shape_with_order((o, patch)).map_err(|e| e.to_string())?;
    let mut out = Array4::<f32>::zeros((nb, o, ho, wo));
    let mut cols = Array2::<f32>::zeros((patch, ho * wo));
    for n in 0..nb {
        for g in 0..groups {
            for ci in 0..cg {
                for i in 0..kh {
                    for j in 0..kw {
                        let row = (ci * kh + i) * kw + j;
                        for p in 0..ho {
                            // Padded coordinate minus the top pad; outside [0, h) reads zero.
                            let y = (p * strides[0] + i * dilations[0]).checked_sub(pads[0]).filter(|&y| y < h);
                            for q in 0..wo {
                                let xx = (q * strides[1] + j * dilations[1]).checked_sub(pads[2]).filter(|&v| v < wd);
                                cols[[row, p * wo + q]] = match (y, xx) {
                                    (Some(y), Some(xx)) => xa[[n, g * cg + ci, y, xx]],
                                    _ => 0.0,
                                };
                            }
                        }
                    }
                }
            }
            let wg = w2.slice(s![g * og..(g + 1) * og, ..]);
            let mut res = Array2::<f32>::zeros((og, ho * wo));
            general_mat_mul(1.0, &wg, &cols, 0.0, &mut res);
            for (k, row) in res.outer_iter().enumerate() {
                let oc = g * og + k;
                let add = bias.as_ref().map_or(0.0, |b| b[oc]);
                let mut dst = out.slice_mut(s![n, oc, .., ..]);
                for (d, &v) in dst.iter_mut().zip(row.iter()) {
                    *d = v + add;
                }
            }
        }
    }
    float_result(x.dtype(), out.into_dyn())
}

/// True for a 1×1 kernel `[O, C, 1, 1]` with unit strides, no padding and one group (the
/// dilation does not matter for a 1×1 kernel).
pub fn is_pointwise(weight_shape: &[usize], attrs: &ConvAttrs<'_>) -> bool {
    matches!(weight_shape, [_, _, 1, 1])
        && attrs.groups == 1
        && attrs.strides.iter().all(|&s| s == 1)
        && attrs.pads.iter().all(|&p| p == 0)
}

/// A pointwise convolution of `x [N, C, H, W]` by `w` (`O` rows of `C`):
/// `out[n, o, p, q] = dot(x[n, :, p, q], w[o]) + b[o]` (0 without a bias) in the order of
/// [`super::dot`], rounded to `x`'s dtype.
pub fn conv_pointwise(x: &Tensor, w: &MatrixRows<'_>, bias: Option<&Tensor>) -> OpResult {
    conv_pointwise_into(x, w, bias, |n| vec![0.0; n])
}

/// [`conv_pointwise`] writing into the buffer `alloc(n)` returns (`n` elements, any
/// contents: [`project`] writes every one of them).
pub fn conv_pointwise_into(
    x: &Tensor,
    w: &MatrixRows<'_>,
    bias: Option<&Tensor>,
    alloc: impl FnOnce(usize) -> Vec<f32>,
) -> OpResult {
    let xa = floats(x)?;
    let &[nb, c, h, wd] = xa.shape() else {
        return Err(format!("x must be rank 4, got {}", x.tensor_type()));
    };
    let (o, p) = (w.rows(), h * wd);
    if w.cols() != c {
        return Err(format!("weight rows of {} do not match {c} input channels", w.cols()));
    }
    let bias: Option<Vec<f32>> = bias.map(|b| floats(b).map(|v| v.iter().copied().collect())).transpose()?;
    if bias.as_ref().is_some_and(|b| b.len() != o) {
        return Err(format!("bias does not match {o} output channels"));
    }
    let xs = xa.as_standard_layout();
    let mut out = alloc(nb * o * p);
    // Activation rows `[P, C]` per batch item (the input as is when P = 1).
    let mut rows = Vec::new();
    for (n, item) in xs.axis_iter(Axis(0)).enumerate() {
        let xt: &[f32] = if p == 1 {
            item.to_slice().ok_or("x is not contiguous")?
        } else {
            rows.clear();
            rows.extend(item.into_shape_with_order((c, p)).map_err(|e| e.to_string())?.t().iter().copied());
            &rows
        };
        project(xt, p, w, bias.as_deref(), &mut out[n * o * p..(n + 1) * o * p]);
    }
    let out = ArrayD::from_shape_vec(IxDyn(&[nb, o, h, wd]), out).map_err(|e| e.to_string())?;
    float_result(x.dtype(), out)
}
