//! `conv`: 2-D cross-correlation in NCHW with groups, strides, zero pads
//! `[top, bottom, left, right]` and dilations.
//!
//! Per batch item and group, the receptive fields are gathered into a column matrix
//! `[Cg·kh·kw, H'·W']` (im2col) and multiplied by the group's weights `[Og, Cg·kh·kw]` with
//! the f32 GEMM, so the 1×1 convolutions that stand in for `linear` after `opt` are as fast
//! as `linear` itself.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Array4, Ix4, s};

use super::kernel::{OpResult, float_result, floats};
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
