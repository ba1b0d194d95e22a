//! Registered conditions (`if name(args)` in rule files). Each reads types and attributes
//! from the e-graph and never changes it.

use super::super::analysis::{EG, splat_of, tensor_of};
use super::read::{axis, dtype, int, ints, shape, sizes};
use super::registry::{Condition, Val};

/// `?m` is one row (every axis 1 but the last) as wide as the last axis of `?z`, and the
/// shape `?s` keeps that last axis: `add(reshape(z, s), m)` may add `m` before reshaping.
fn row_broadcast(eg: &EG, a: &[Val]) -> bool {
    match (shape(eg, a[0].id()), shape(eg, a[1].id()), sizes(eg, a[2].id())) {
        (Some(m), Some(z), Some(s)) => {
            let (Some((&ml, mrest)), Some(&zl), Some(&sl)) = (m.split_last(), z.last(), s.last()) else {
                return false;
            };
            mrest.iter().all(|&d| d == 1) && m.len() <= z.len() && m.len() <= s.len() && ml == zl && zl == sl
        }
        _ => false,
    }
}

/// `?ax` is the last axis of shape `?s` (and of `?w`), and tensor `?w` has the same last
/// axis as `?s`.
fn last_axis_kept(eg: &EG, a: &[Val]) -> bool {
    match (shape(eg, a[0].id()), sizes(eg, a[1].id())) {
        (Some(w), Some(s)) if !s.is_empty() => {
            // A positive axis names the same axis of `w` only when the ranks agree.
            let same_axis = int(eg, a[2].id()) == Some(-1) || w.len() == s.len();
            same_axis && axis(eg, a[2].id(), s.len()) == Some(s.len() - 1) && w.last() == s.last()
        }
        _ => false,
    }
}

fn identity_perm(eg: &EG, a: &[Val]) -> bool {
    sizes(eg, a[0].id()).is_some_and(|p| p.iter().enumerate().all(|(i, &x)| i == x))
}

fn shape_is(eg: &EG, a: &[Val]) -> bool {
    match (shape(eg, a[0].id()), sizes(eg, a[1].id())) {
        (Some(s), Some(t)) => s == t,
        _ => false,
    }
}

fn dtype_is(eg: &EG, a: &[Val]) -> bool {
    match (tensor_of(eg, a[0].id()), dtype(eg, &a[1])) {
        (Some(t), Some(d)) => t.dtype == d,
        _ => false,
    }
}

fn same_shape(eg: &EG, a: &[Val]) -> bool {
    match (shape(eg, a[0].id()), shape(eg, a[1].id())) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn splat_is(eg: &EG, a: &[Val]) -> bool {
    match (splat_of(eg, a[0].id()), a[1].lit().parse::<f64>()) {
        (Some(v), Ok(want)) => v == want,
        _ => false,
    }
}

fn rank_is(eg: &EG, a: &[Val]) -> bool {
    match (shape(eg, a[0].id()), a[1].lit().parse::<usize>()) {
        (Some(s), Ok(r)) => s.len() == r,
        _ => false,
    }
}

fn is_weight(eg: &EG, a: &[Val]) -> bool {
    eg[a[0].id()].data.is_weight()
}

fn not_weight(eg: &EG, a: &[Val]) -> bool {
    !is_weight(eg, a)
}

fn single_axis(eg: &EG, a: &[Val]) -> bool {
    ints(eg, a[0].id()).is_some_and(|v| v.len() == 1)
}

fn is_float(eg: &EG, a: &[Val]) -> bool {
    tensor_of(eg, a[0].id()).is_some_and(|t| t.dtype.is_float())
}

/// `?g` is a gain for normalising `?x` along its last axis `?a` (`mul(·, g)` broadcasts it
/// along that axis): `g : x.dtype[x.shape[a]]` and `a` is the last axis.
fn gain_fits(eg: &EG, a: &[Val]) -> bool {
    let (Some(x), Some(g)) = (tensor_of(eg, a[0].id()), tensor_of(eg, a[1].id())) else { return false };
    let Some(ax) = super::read::axis(eg, a[2].id(), x.rank()) else { return false };
    ax + 1 == x.rank() && g.dtype == x.dtype && g.shape == [x.shape[ax]]
}

/// `?s` is a float splat literal whose broadcast does not change any operand's shape
/// (all of its axes are 1), i.e. a scalar factor.
fn is_scalar_splat(eg: &EG, a: &[Val]) -> bool {
    let id = a[0].id();
    splat_of(eg, id).is_some() && tensor_of(eg, id).is_some_and(|t| t.numel() == 1)
}

/// Every condition a rule file may name.
pub const TABLE: &[Condition] = &[
    Condition {
        name: "row_broadcast",
        params: "ccc",
        doc: "?m is one row as wide as the last axis of ?z, which ?s keeps",
        f: row_broadcast,
    },
    Condition {
        name: "last_axis_kept",
        params: "ccc",
        doc: "?ax is the last axis of ?s, and ?w has the same last axis",
        f: last_axis_kept,
    },
    Condition { name: "identity_perm", params: "c", doc: "the permutation is the identity", f: identity_perm },
    Condition { name: "shape_is", params: "cc", doc: "tensor ?x has exactly the shape ?s", f: shape_is },
    Condition { name: "dtype_is", params: "ca", doc: "tensor ?x has dtype ?d (a class or a literal)", f: dtype_is },
    Condition { name: "same_shape", params: "cc", doc: "two tensors have equal shapes (no broadcast)", f: same_shape },
    Condition {
        name: "splat_is",
        params: "cl",
        doc: "the class holds a float literal splat equal to the number",
        f: splat_is,
    },
    Condition { name: "rank_is", params: "cl", doc: "the tensor has the given rank", f: rank_is },
    Condition { name: "is_weight", params: "c", doc: "the tensor is computed from weights only", f: is_weight },
    Condition { name: "not_weight", params: "c", doc: "the tensor is not weight-derived", f: not_weight },
    Condition { name: "single_axis", params: "c", doc: "an axes list with exactly one entry", f: single_axis },
    Condition {
        name: "gain_fits",
        params: "ccc",
        doc: "?g is a per-channel gain for the last axis ?a of ?x",
        f: gain_fits,
    },
    Condition {
        name: "is_scalar_splat",
        params: "c",
        doc: "a float literal with one element (a scalar factor)",
        f: is_scalar_splat,
    },
    Condition { name: "is_float", params: "c", doc: "the tensor has a float dtype", f: is_float },
];
