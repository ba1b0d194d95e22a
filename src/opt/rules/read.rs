//! Reading and adding e-graph facts for the registered rule functions: shapes, attribute
//! values, and new attribute leaves.

use egg::Id;

use crate::ir::DType;
use crate::ir::typing::norm_axis;

use super::super::analysis::{EG, attr_of, tensor_of};
use super::super::lang::{AttrLeaf, Tnode};
use super::registry::Val;

/// The shape of a tensor class.
pub fn shape(eg: &EG, id: Id) -> Option<Vec<usize>> {
    tensor_of(eg, id).map(|t| t.shape.clone())
}

/// An integer-list attribute.
pub fn ints(eg: &EG, id: Id) -> Option<Vec<i64>> {
    attr_of(eg, id).and_then(AttrLeaf::as_ints).map(<[i64]>::to_vec)
}

/// An integer-list attribute as sizes (shape, perm).
pub fn sizes(eg: &EG, id: Id) -> Option<Vec<usize>> {
    ints(eg, id)?.into_iter().map(|v| usize::try_from(v).ok()).collect()
}

/// An integer attribute.
pub fn int(eg: &EG, id: Id) -> Option<i64> {
    attr_of(eg, id).and_then(AttrLeaf::as_int)
}

/// An axis attribute of a tensor of rank `rank`, normalised to `0..rank`.
pub fn axis(eg: &EG, id: Id, rank: usize) -> Option<usize> {
    norm_axis(int(eg, id)?, rank)
}

/// A dtype given as an attribute class or a literal word.
pub fn dtype(eg: &EG, v: &Val) -> Option<DType> {
    match v {
        Val::Class(id) => attr_of(eg, *id).and_then(AttrLeaf::as_dtype),
        Val::Lit(l) => DType::from_name(l),
    }
}

pub fn add_leaf(eg: &mut EG, leaf: AttrLeaf) -> Id {
    eg.add(Tnode::Attr(leaf))
}

pub fn add_ints(eg: &mut EG, v: impl IntoIterator<Item = i64>) -> Id {
    add_leaf(eg, AttrLeaf::Ints(v.into_iter().collect()))
}

pub fn add_sizes(eg: &mut EG, v: &[usize]) -> Id {
    add_ints(eg, v.iter().map(|&d| d as i64))
}

pub fn add_int(eg: &mut EG, v: i64) -> Id {
    add_leaf(eg, AttrLeaf::Int(v))
}

/// `p` as a permutation (each of `0..p.len()` once).
pub fn is_perm(p: &[usize]) -> bool {
    crate::ir::recipe::is_permutation(p, p.len())
}

/// The inverse permutation.
pub fn inverse(p: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; p.len()];
    for (i, &x) in p.iter().enumerate() {
        inv[x] = i;
    }
    inv
}

/// For a reshape from `from` to `to` that only inserts or removes unit axes, maps every
/// non-unit axis of `from` to its axis in `to`. `None` if the reshape regroups elements.
pub fn unit_axis_map(from: &[usize], to: &[usize]) -> Option<Vec<Option<usize>>> {
    let a: Vec<usize> = (0..from.len()).filter(|&i| from[i] != 1).collect();
    let b: Vec<usize> = (0..to.len()).filter(|&i| to[i] != 1).collect();
    if a.len() != b.len() || a.iter().zip(&b).any(|(&i, &j)| from[i] != to[j]) {
        return None;
    }
    let mut map = vec![None; from.len()];
    for (&i, &j) in a.iter().zip(&b) {
        map[i] = Some(j);
    }
    Some(map)
}
