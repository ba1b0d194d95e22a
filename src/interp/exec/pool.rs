//! [`BufferPool`]: element buffers of released intermediate tensors, kept by length so that
//! the next tensor of the same length (the same op on the next call, usually) is written
//! into one of them instead of a fresh allocation.
//!
//! Invariants:
//! - a buffer enters the pool only from a tensor nothing else can reach (an `Arc` that was
//!   unique, or a tensor owned by value), so no live tensor ever shares a pooled buffer;
//! - a buffer taken from the pool has exactly the length asked for, and unspecified
//!   contents: every user overwrites all of its elements before the tensor is visible;
//! - the pool holds at most [`MAX_PER_LENGTH`] buffers of one length and
//!   [`MAX_POOLED_BYTES`] in all; a buffer over [`MAX_BUFFER_BYTES`] is never kept (a
//!   dense copy of a whole weight must not stay resident).

use std::collections::HashMap;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use crate::ir::DType;

use super::super::tensor::{Data, Tensor};

/// Buffers kept per element count and storage kind.
pub const MAX_PER_LENGTH: usize = 4;
/// Largest buffer kept (the 1B KV state, 33 MB, fits).
pub const MAX_BUFFER_BYTES: usize = 128 << 20;
/// Bytes kept in all.
pub const MAX_POOLED_BYTES: usize = 512 << 20;

/// Reuse counters of a [`BufferPool`] (for tests and diagnostics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers served from the pool.
    pub hits: u64,
    /// Buffers allocated because the pool had none of that length.
    pub misses: u64,
    /// Buffers returned to the pool.
    pub returned: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct BufferPool {
    f32s: HashMap<usize, Vec<Vec<f32>>>,
    i64s: HashMap<usize, Vec<Vec<i64>>>,
    bytes: usize,
    stats: PoolStats,
}

impl BufferPool {
    pub fn new() -> BufferPool {
        BufferPool::default()
    }

    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Bytes currently held.
    pub fn pooled_bytes(&self) -> usize {
        self.bytes
    }

    /// An f32 buffer of `len` elements with unspecified contents.
    pub fn take_f32(&mut self, len: usize) -> Vec<f32> {
        match self.f32s.get_mut(&len).and_then(Vec::pop) {
            Some(v) => {
                self.bytes -= len * size_of::<f32>();
                self.stats.hits += 1;
                v
            }
            None => {
                self.stats.misses += 1;
                vec![0.0; len]
            }
        }
    }

    /// An i64 buffer of `len` elements with unspecified contents.
    pub fn take_i64(&mut self, len: usize) -> Vec<i64> {
        match self.i64s.get_mut(&len).and_then(Vec::pop) {
            Some(v) => {
                self.bytes -= len * size_of::<i64>();
                self.stats.hits += 1;
                v
            }
            None => {
                self.stats.misses += 1;
                vec![0; len]
            }
        }
    }

    /// Keeps the buffer of `t` when `t` is its only holder; otherwise just drops the handle.
    pub fn recycle(&mut self, t: Arc<Tensor>) {
        if let Ok(t) = Arc::try_unwrap(t) {
            self.give(t);
        }
    }

    /// Keeps the element buffer of a tensor owned by value (within the limits above).
    pub fn give(&mut self, t: Tensor) {
        match t.into_data() {
            Data::Float(a) => {
                let (v, _) = a.into_raw_vec_and_offset();
                keep(&mut self.f32s, &mut self.bytes, &mut self.stats, v);
            }
            Data::Int(a) => {
                let (v, _) = a.into_raw_vec_and_offset();
                keep(&mut self.i64s, &mut self.bytes, &mut self.stats, v);
            }
        }
    }

    /// A float tensor of `dtype` and `shape` on a pooled buffer filled by `fill`, which must
    /// write every element (row-major) with a value already exact in `dtype`.
    pub fn float_tensor(&mut self, dtype: DType, shape: &[usize], fill: impl FnOnce(&mut [f32])) -> Tensor {
        let mut v = self.take_f32(shape.iter().product());
        fill(&mut v);
        let a = ArrayD::from_shape_vec(IxDyn(shape), v).expect("pooled buffer has the shape's length");
        Tensor::from_parts(dtype, Data::Float(a))
    }
}

fn keep<T>(pool: &mut HashMap<usize, Vec<Vec<T>>>, bytes: &mut usize, stats: &mut PoolStats, v: Vec<T>) {
    let size = v.len() * size_of::<T>();
    if v.is_empty() || size > MAX_BUFFER_BYTES || *bytes + size > MAX_POOLED_BYTES {
        return;
    }
    let list = pool.entry(v.len()).or_default();
    if list.len() < MAX_PER_LENGTH {
        list.push(v);
        *bytes += size;
        stats.returned += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_served_again_with_its_length() {
        let mut pool = BufferPool::new();
        let t = Tensor::f32(&[2, 3], vec![1.0; 6]).unwrap();
        let shared = Arc::new(t);
        let other = shared.clone();
        pool.recycle(shared);
        assert_eq!(pool.stats().returned, 0, "a shared tensor is not pooled");
        pool.recycle(other);
        assert_eq!(pool.stats().returned, 1);
        assert_eq!(pool.take_f32(5).len(), 5);
        assert_eq!(pool.stats(), PoolStats { hits: 0, misses: 1, returned: 1 });
        assert_eq!(pool.take_f32(6).len(), 6);
        assert_eq!(pool.stats().hits, 1);
        assert_eq!(pool.pooled_bytes(), 0);
    }

    #[test]
    fn limits_hold() {
        let mut pool = BufferPool::new();
        for _ in 0..MAX_PER_LENGTH + 2 {
            pool.give(Tensor::i32(&[4], vec![0; 4]).unwrap());
        }
        assert_eq!(pool.stats().returned, MAX_PER_LENGTH as u64);
        assert_eq!(pool.pooled_bytes(), MAX_PER_LENGTH * 4 * size_of::<i64>());
        let t = pool.float_tensor(DType::F32, &[2, 2], |v| v.copy_from_slice(&[1.0, 2.0, 3.0, 4.0]));
        assert_eq!(t.to_f32_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    }
}
