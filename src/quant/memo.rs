//! A memo so that the `lut_indices` and `lut_table` recipes of one weight run k-means once.
//!
//! The two recipes of a palettized weight wrap the same input recipe and are materialised
//! separately (often one right after the other). The memo keeps the last few palettization
//! results, keyed by **the input values themselves** (plus shape, bits and group size), not by
//! the recipe text: the same recipe text read from two different checkpoints (two test
//! fixtures in one process, say) must not share a result, and comparing values is exact and
//! costs far less than k-means. An entry is dropped once both its indices and its table have
//! been handed out, and the memo holds at most [`PaletteMemo::CAPACITY`] entries (oldest
//! dropped first), so it never keeps a model's worth of indices alive. A miss only costs a
//! recomputation, which gives the same bits: the result never depends on the memo's state.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::QuantError;
use super::palettize::{Palettized, palettize_tensor_weighted};

/// Which half of a palettization a recipe wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LutPart {
    Indices,
    Table,
}

struct Entry {
    shape: Vec<usize>,
    bits: u32,
    group_size: usize,
    importance: Option<Vec<f64>>,
    values: Vec<f32>,
    result: Arc<Palettized>,
    taken: [bool; 2],
}

impl Entry {
    fn matches(
        &self,
        values: &[f32],
        shape: &[usize],
        bits: u32,
        group_size: usize,
        importance: Option<&[f64]>,
    ) -> bool {
        self.bits == bits
            && self.group_size == group_size
            && self.importance.as_deref() == importance
            && self.shape == shape
            && self.values.len() == values.len()
            && self.values.iter().zip(values).all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

/// Recently computed palettizations; see the module docs.
#[derive(Default)]
pub struct PaletteMemo {
    entries: Mutex<Vec<Entry>>,
    computed: std::sync::atomic::AtomicUsize,
}

impl PaletteMemo {
    /// Most entries kept at once.
    pub const CAPACITY: usize = 8;

    /// The process-wide memo used by weight materialisation.
    pub fn global() -> &'static PaletteMemo {
        static MEMO: OnceLock<PaletteMemo> = OnceLock::new();
        MEMO.get_or_init(PaletteMemo::default)
    }

    /// The palettization of `values`, from the memo or computed (outside the lock). Marks
    /// `part` as handed out, and drops the entry once both parts have been.
    pub fn get(
        &self,
        values: Vec<f32>,
        shape: &[usize],
        bits: u32,
        group_size: usize,
        importance: Option<&[f64]>,
        part: LutPart,
    ) -> Result<Arc<Palettized>, QuantError> {
        let slot = part as usize;
        {
            let mut entries = self.lock();
            if let Some(pos) = entries.iter().position(|e| e.matches(&values, shape, bits, group_size, importance)) {
                let e = &mut entries[pos];
                e.taken[slot] = true;
                let result = e.result.clone();
                if e.taken == [true, true] {
                    entries.remove(pos);
                }
                return Ok(result);
            }
        }
        let result = Arc::new(palettize_tensor_weighted(&values, shape, bits, group_size, importance)?);
        self.computed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut entries = self.lock();
        if entries.len() >= Self::CAPACITY {
            entries.remove(0);
        }
        let mut taken = [false; 2];
        taken[slot] = true;
        entries.push(Entry {
            shape: shape.to_vec(),
            bits,
            group_size,
            importance: importance.map(<[f64]>::to_vec),
            values,
            result: result.clone(),
            taken,
        });
        Ok(result)
    }

    /// How many palettizations this memo has computed (misses).
    pub fn computed(&self) -> usize {
        self.computed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // Entries are replaced whole, so a panic elsewhere cannot leave one half-written.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for PaletteMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaletteMemo").field("entries", &self.len()).field("computed", &self.computed()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(seed: f32) -> Vec<f32> {
        (0..256).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
    }

    #[test]
    fn both_parts_share_one_computation_then_the_entry_goes() {
        let memo = PaletteMemo::default();
        let a = memo.get(vals(0.0), &[16, 16], 4, 8, None, LutPart::Indices).unwrap();
        assert_eq!((memo.computed(), memo.len()), (1, 1));
        let b = memo.get(vals(0.0), &[16, 16], 4, 8, None, LutPart::Table).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!((memo.computed(), memo.len()), (1, 0));
        // Different values, bits or grouping are different keys.
        memo.get(vals(1.0), &[16, 16], 4, 8, None, LutPart::Table).unwrap();
        memo.get(vals(0.0), &[16, 16], 6, 8, None, LutPart::Table).unwrap();
        memo.get(vals(0.0), &[16, 16], 4, 4, None, LutPart::Table).unwrap();
        assert_eq!((memo.computed(), memo.len()), (4, 3));
    }

    #[test]
    fn capacity_is_bounded_and_a_miss_recomputes_the_same_bits() {
        let memo = PaletteMemo::default();
        let first = memo.get(vals(0.0), &[16, 16], 2, 8, None, LutPart::Indices).unwrap();
        for s in 1..=PaletteMemo::CAPACITY {
            memo.get(vals(s as f32), &[16, 16], 2, 8, None, LutPart::Indices).unwrap();
        }
        assert_eq!(memo.len(), PaletteMemo::CAPACITY);
        let again = memo.get(vals(0.0), &[16, 16], 2, 8, None, LutPart::Table).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        assert_eq!(*first, *again);
    }
}
