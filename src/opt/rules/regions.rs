//! Region reasoning for `slice`/`slice_update` with partly dynamic offsets (the KV cache
//! writes at `current_pos`): registered conditions, binders and an applier used by
//! `passes/kvstate.rules` and the cleanup rules.
//!
//! A `slice_update` offset is an `int32[rank]` value. Its *static view* has, per axis, the
//! offset when it is a compile-time constant: the offset is a `const`, or a `concat` along
//! axis 0 of `const` pieces and dynamic pieces (e.g. `concat([0, 0], current_pos, [0])`).
//! Region facts are only derived from static entries; an axis with a dynamic offset counts
//! as "anywhere" unless the slice covers that axis entirely.

use egg::Id;

use super::super::analysis::{EG, tensor_of};
use super::super::lang::{ConstLeaf, ConstValues, Tnode};
use super::read::{add_sizes, shape, sizes};
use super::registry::{ApplierFn, Binder, Condition, Val};

/// The static view of an offset vector (see the module docs).
pub fn static_offsets(eg: &EG, at: Id) -> Option<Vec<Option<i64>>> {
    let consts = |c: Id| {
        eg[c].nodes.iter().find_map(|n| match n {
            Tnode::Const(ConstLeaf { values: ConstValues::Ints(v), shape, .. }) => {
                let len = shape.iter().product::<usize>();
                Some(if v.len() == 1 { vec![v[0]; len] } else { v.clone() })
            }
            _ => None,
        })
    };
    if let Some(v) = consts(at) {
        return Some(v.into_iter().map(Some).collect());
    }
    eg[at].nodes.iter().find_map(|n| {
        let Tnode::Op("concat", ch) = n else { return None };
        let (parts, axis) = ch.split_at(ch.len() - 1);
        (super::read::int(eg, axis[0]) == Some(0)).then_some(())?;
        let mut out = Vec::new();
        for &p in parts {
            match consts(p) {
                Some(v) => out.extend(v.into_iter().map(Some)),
                None => out.extend(std::iter::repeat_n(None, tensor_of(eg, p)?.numel())),
            }
        }
        Some(out)
    })
}

/// Adds `offsets + delta` (per axis) as a new offset vector of the same structure as `at`.
/// Dynamic entries only accept a zero delta.
fn shifted(eg: &mut EG, at: Id, delta: &[i64]) -> Option<Id> {
    let const_of = |eg: &EG, c: Id| {
        eg[c].nodes.iter().find_map(|n| match n {
            Tnode::Const(l @ ConstLeaf { values: ConstValues::Ints(_), .. }) => Some(l.clone()),
            _ => None,
        })
    };
    let shift_leaf = |leaf: &ConstLeaf, d: &[i64]| -> Option<ConstLeaf> {
        let ConstValues::Ints(v) = &leaf.values else { return None };
        let n = leaf.shape.iter().product::<usize>();
        let full: Vec<i64> = if v.len() == 1 { vec![v[0]; n] } else { v.clone() };
        (full.len() == d.len()).then_some(())?;
        let values = full.iter().zip(d).map(|(a, b)| a + b).collect();
        Some(ConstLeaf { dtype: leaf.dtype, shape: leaf.shape.clone(), values: ConstValues::Ints(values) })
    };
    if let Some(leaf) = const_of(eg, at) {
        let new = shift_leaf(&leaf, delta)?;
        return Some(eg.add(Tnode::Const(new)));
    }
    let concat = eg[at].nodes.iter().find_map(|n| match n {
        Tnode::Op("concat", ch) => Some(ch.clone()),
        _ => None,
    })?;
    let (parts, axis) = concat.split_at(concat.len() - 1);
    let mut new_parts = Vec::with_capacity(parts.len());
    let mut k = 0;
    for &p in parts {
        let n = tensor_of(eg, p)?.numel();
        let d = delta.get(k..k + n)?;
        k += n;
        match const_of(eg, p) {
            Some(leaf) => {
                let new = shift_leaf(&leaf, d)?;
                new_parts.push(eg.add(Tnode::Const(new)));
            }
            None if d.iter().all(|&x| x == 0) => new_parts.push(p),
            None => return None,
        }
    }
    (k == delta.len()).then_some(())?;
    new_parts.push(axis[0]);
    Some(eg.add(Tnode::op("concat", new_parts)))
}

/// The update's static range `[b, b + extent)` on each axis (`None` where dynamic).
fn update_ranges(eg: &EG, u: Id, at: Id) -> Option<Vec<Option<(usize, usize)>>> {
    let us = shape(eg, u)?;
    let offs = static_offsets(eg, at)?;
    (offs.len() == us.len()).then_some(())?;
    Some(offs.iter().zip(&us).map(|(o, &e)| o.and_then(|b| usize::try_from(b).ok()).map(|b| (b, b + e))).collect())
}

fn slice_bounds(eg: &EG, begin: Id, end: Id) -> Option<(Vec<usize>, Vec<usize>)> {
    Some((sizes(eg, begin)?, sizes(eg, end)?))
}

/// `slice(slice_update(x, u, at), begin, end)` does not see `u`: on some axis the update's
/// static range and the slice are disjoint.
fn update_outside(eg: &EG, a: &[Val]) -> bool {
    let (Some(ranges), Some((b, e))) =
        (update_ranges(eg, a[0].id(), a[1].id()), slice_bounds(eg, a[2].id(), a[3].id()))
    else {
        return false;
    };
    ranges.iter().enumerate().any(|(i, r)| r.is_some_and(|(lo, hi)| hi <= b[i] || lo >= e[i]))
}

/// The update `u` at `at` lies inside the slice `[begin, end)` of `x`: on every axis the
/// update's static range is inside the slice, or the slice covers the whole axis.
fn update_inside(eg: &EG, a: &[Val]) -> bool {
    let (Some(ranges), Some(xs), Some((b, e))) =
        (update_ranges(eg, a[0].id(), a[1].id()), shape(eg, a[2].id()), slice_bounds(eg, a[3].id(), a[4].id()))
    else {
        return false;
    };
    ranges.iter().enumerate().all(|(i, r)| match r {
        Some((lo, hi)) => b[i] <= *lo && *hi <= e[i],
        None => b[i] == 0 && e[i] == xs[i],
    })
}

/// The offset vector `?at` equals the slice begin `?begin` (all static).
fn offsets_equal(eg: &EG, a: &[Val]) -> bool {
    match (static_offsets(eg, a[0].id()), sizes(eg, a[1].id())) {
        (Some(o), Some(b)) => o.len() == b.len() && o.iter().zip(&b).all(|(x, y)| *x == Some(*y as i64)),
        _ => false,
    }
}

/// `x` and `y` hold the same values in the region `[begin, end)`: `x` is `y`, or a chain of
/// `slice_update`s on `y` whose static ranges avoid the region (searched to depth 8).
fn region_unchanged(eg: &EG, a: &[Val]) -> bool {
    let (x, y) = (eg.find(a[0].id()), eg.find(a[1].id()));
    let Some((b, e)) = slice_bounds(eg, a[2].id(), a[3].id()) else { return false };
    fn go(eg: &EG, x: Id, y: Id, b: &[usize], e: &[usize], depth: usize) -> bool {
        if x == y {
            return true;
        }
        if depth == 0 {
            return false;
        }
        eg[x].nodes.iter().any(|n| match n {
            Tnode::Op("slice_update", ch) => {
                let avoids = update_ranges(eg, ch[1], ch[2]).is_some_and(|rs| {
                    rs.iter().enumerate().any(|(i, r)| r.is_some_and(|(lo, hi)| hi <= b[i] || lo >= e[i]))
                });
                avoids && go(eg, eg.find(ch[0]), y, b, e, depth - 1)
            }
            _ => false,
        })
    }
    go(eg, x, y, &b, &e, 8)
}

/// The slice covers all of `?x`.
fn full_slice(eg: &EG, a: &[Val]) -> bool {
    match (shape(eg, a[0].id()), slice_bounds(eg, a[1].id(), a[2].id())) {
        (Some(s), Some((b, e))) => b.iter().all(|&v| v == 0) && e == s,
        _ => false,
    }
}

/// `?at ∓ ?begin`: the offset relative to (`sub`) or shifted by (`add`) a slice begin.
fn shift_offsets(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let begin = sizes(eg, a[1].id())?;
    let sign = match a[2].lit() {
        "sub" => -1,
        "add" => 1,
        _ => return None,
    };
    let delta: Vec<i64> = begin.iter().map(|&v| sign * v as i64).collect();
    shifted(eg, a[0].id(), &delta)
}

/// `slice(slice(x, b1, e1), b2, e2) = slice(x, b1 + b2, b1 + e2)`: the composed begin
/// (`begin`) or end (`end`).
fn compose_slice(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (b1, other) = (sizes(eg, a[0].id())?, sizes(eg, a[1].id())?);
    (b1.len() == other.len()).then_some(())?;
    let v: Vec<usize> = b1.iter().zip(&other).map(|(x, y)| x + y).collect();
    Some(add_sizes(eg, &v))
}

/// `slice(concat(a, b, axis), begin, end)` inside one operand is a slice of that operand.
fn slice_of_concat(eg: &mut EG, a: &[Val]) -> Vec<Id> {
    let (x, y, axis_id, begin, end) = (a[0].id(), a[1].id(), a[2].id(), a[3].id(), a[4].id());
    let (Some(xs), Some((b, e))) = (shape(eg, x), slice_bounds(eg, begin, end)) else { return Vec::new() };
    let Some(axis) = super::read::axis(eg, axis_id, xs.len()) else { return Vec::new() };
    let split = xs[axis];
    if e[axis] <= split {
        return vec![eg.add(Tnode::op("slice", vec![x, begin, end]))];
    }
    if b[axis] >= split {
        let mut b2 = b.clone();
        let mut e2 = e.clone();
        b2[axis] -= split;
        e2[axis] -= split;
        let (bi, ei) = (add_sizes(eg, &b2), add_sizes(eg, &e2));
        return vec![eg.add(Tnode::op("slice", vec![y, bi, ei]))];
    }
    Vec::new()
}

pub const CONDITIONS: &[Condition] = &[
    Condition {
        name: "update_outside",
        params: "cccc",
        doc: "slice(slice_update(x, u, at)) misses u",
        f: update_outside,
    },
    Condition { name: "update_inside", params: "ccccc", doc: "u at `at` lies inside the slice of x", f: update_inside },
    Condition {
        name: "offsets_equal",
        params: "cc",
        doc: "a static offset vector equals a slice begin",
        f: offsets_equal,
    },
    Condition {
        name: "region_unchanged",
        params: "cccc",
        doc: "x and y agree on the slice region",
        f: region_unchanged,
    },
    Condition { name: "full_slice", params: "ccc", doc: "the slice covers the whole tensor", f: full_slice },
];

pub const BINDERS: &[Binder] = &[
    Binder { name: "shift_offsets", params: "ccl", doc: "offset vector ∓ slice begin (sub/add)", f: shift_offsets },
    Binder { name: "compose_slice", params: "cc", doc: "begin1 + begin2 (or begin1 + end2)", f: compose_slice },
];

pub const APPLIERS: &[ApplierFn] = &[ApplierFn {
    name: "slice_of_concat",
    params: "ccccc",
    doc: "a slice inside one operand of a two-operand concat slices that operand",
    f: slice_of_concat,
}];
