//! The state bindings of one call, and how `slice_update` on a state avoids copying it
//! while a failing call still leaves every state exactly as it was (rule 4 of `eval.rs`).
//!
//! Invariant of a [`StateBinding`]: the state's content when the call started is `original`
//! with every `undo` entry written back, the last one first. `current` is the content the
//! program sees now (what the next `read_state` returns).

use std::sync::Arc;

use super::super::index::slice_update_in_place;
use super::super::tensor::Tensor;
use super::Slot;
use super::pool::BufferPool;

/// One state input of the call.
pub(super) struct StateBinding {
    pub name: String,
    /// The state input's value index.
    pub value: usize,
    pub original: Arc<Tensor>,
    pub current: Arc<Tensor>,
    /// What in-place updates of `original` overwrote: the old box and its `begin`.
    pub undo: Vec<(Tensor, Arc<Tensor>)>,
}

impl StateBinding {
    pub fn new(name: String, value: usize, t: Arc<Tensor>) -> StateBinding {
        StateBinding { name, value, original: t.clone(), current: t, undo: Vec::new() }
    }

    /// The tensor to leave in the caller's map: `current` after a successful call, the
    /// restored content of the start of the call otherwise. Anything else is returned to
    /// `pool`.
    pub fn finish(self, ok: bool, pool: &mut BufferPool) -> Tensor {
        let StateBinding { original, current, undo, .. } = self;
        // Let go of the other handle first, so that the kept one is unique (no copy).
        let (keep, other) = if ok { (current, original) } else { (original, current) };
        if Arc::ptr_eq(&keep, &other) {
            drop(other);
        } else {
            pool.recycle(other);
        }
        if ok {
            return Arc::try_unwrap(keep).unwrap_or_else(|shared| (*shared).clone());
        }
        let mut t = Arc::try_unwrap(keep).unwrap_or_else(|shared| (*shared).clone());
        for (old, begin) in undo.iter().rev() {
            // Cannot fail: the same box was written before, in the same tensor.
            let _ = slice_update_in_place(&mut t, old, begin);
        }
        t
    }
}

/// Lets `slice_update` update a state's current tensor in place instead of copying it: when
/// its destination is the current content of a state binding (and not the call's original,
/// which a failing call restores), and the next access to that state is a `write_state`
/// (`write_next`, computed at compile time: nothing reads the old content again), the
/// binding lets go of it.
pub(super) fn release_state_copy(args: &[Slot], bindings: &mut [StateBinding], write_next: &[usize]) {
    let Some(Slot::Tensor(x)) = args.first() else { return };
    let Some(b) = bindings.iter_mut().find(|b| Arc::ptr_eq(&b.current, x) && !Arc::ptr_eq(&b.original, x)) else {
        return;
    };
    if write_next.contains(&b.value) {
        // Never read: the next access to this state overwrites it.
        b.current = b.original.clone();
    }
}

/// `slice_update(x, u, begin)` where `x` is a binding's `original` itself: when the next
/// access to that state is a `write_state` (`write_next`) and nothing but the binding and
/// `args` holds `x`, the box is updated in place and its old content kept in the binding's
/// undo list (a few rows instead of a copy of the whole cache). `None` when that does not
/// apply (the ordinary path, which copies a shared destination, runs then).
pub(super) fn update_original(
    args: &mut Vec<Slot>,
    bindings: &mut [StateBinding],
    write_next: &[usize],
) -> Option<Result<Slot, String>> {
    let [Slot::Tensor(x), Slot::Tensor(_), Slot::Tensor(_)] = args.as_slice() else { return None };
    let b = bindings.iter_mut().find(|b| Arc::ptr_eq(&b.original, x))?;
    // Holders of `x`: `args`, `original`, and `current` when it is still the original. A
    // value still live in the call (another reader of the old content) makes it more.
    let holders = 2 + usize::from(Arc::ptr_eq(&b.current, x));
    if !write_next.contains(&b.value) || Arc::strong_count(x) != holders {
        return None;
    }
    let (Slot::Tensor(begin), Slot::Tensor(u), Slot::Tensor(x)) = (args.pop()?, args.pop()?, args.pop()?) else {
        return None;
    };
    let was_current = Arc::ptr_eq(&b.current, &x);
    // Let go of the binding's handles so that `x` is unique; put them back on any failure.
    let placeholder = Arc::new(Tensor::zeros(&crate::ir::TensorType::new(x.dtype(), vec![0])));
    b.original = placeholder.clone();
    if was_current {
        b.current = placeholder;
    }
    let mut t = match Arc::try_unwrap(x) {
        Ok(t) => t,
        Err(x) => {
            b.original = x.clone();
            if was_current {
                b.current = x;
            }
            return Some(Err("internal: a state's content was shared unexpectedly".into()));
        }
    };
    let result = slice_update_in_place(&mut t, &u, &begin);
    let t = Arc::new(t);
    b.original = t.clone();
    if was_current {
        // The next access overwrites it: its content does not matter until then.
        b.current = t.clone();
    }
    Some(result.map(|old| {
        b.undo.push((old, begin));
        Slot::Tensor(t)
    }))
}
