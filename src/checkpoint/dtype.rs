//! Supported storage dtypes and their conversion to f32.
//!
//! Decoding reads little-endian bytes element by element (`from_le_bytes`), so it needs no
//! alignment of the mapped data and is correct on any host endianness. Every F16/BF16/F32
//! value is exactly representable in f32, so conversion is exact (NaN payloads aside).

use std::fmt;

use half::f16;
use rayon::prelude::*;

/// A storage dtype the checkpoint reader supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StDType {
    F32,
    F16,
    BF16,
}

impl StDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StDType::F32 => 4,
            StDType::F16 | StDType::BF16 => 2,
        }
    }

    /// The safetensors spelling (`F32`, `F16`, `BF16`).
    pub fn name(self) -> &'static str {
        match self {
            StDType::F32 => "F32",
            StDType::F16 => "F16",
            StDType::BF16 => "BF16",
        }
    }

    /// Maps a safetensors dtype to a supported one; `None` for everything else.
    pub(crate) fn from_safetensors(dtype: safetensors::Dtype) -> Option<StDType> {
        match dtype {
            safetensors::Dtype::F32 => Some(StDType::F32),
            safetensors::Dtype::F16 => Some(StDType::F16),
            safetensors::Dtype::BF16 => Some(StDType::BF16),
            _ => None,
        }
    }

    /// Decodes one element from exactly `self.size()` little-endian bytes (the per-element
    /// reference the bulk decoders are tested against).
    #[cfg(test)]
    pub(crate) fn decode(self, bytes: &[u8]) -> f32 {
        match self {
            StDType::F32 => f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            StDType::F16 => f16::from_bits(u16::from_le_bytes([bytes[0], bytes[1]])).to_f32(),
            StDType::BF16 => half::bf16::from_bits(u16::from_le_bytes([bytes[0], bytes[1]])).to_f32(),
        }
    }
}

impl fmt::Display for StDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Elements per parallel work item; also the size below which decoding stays serial.
pub(crate) const CHUNK: usize = 1 << 16;

/// Decodes `bytes` (exactly `out.len() × dtype.size()` long) into `out`, serially: one
/// loop per dtype with a constant element size, so each vectorises.
fn decode_serial(dtype: StDType, bytes: &[u8], out: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    match dtype {
        StDType::BF16 => {
            for (dst, src) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *dst = f32::from_bits(u32::from(u16::from_le_bytes([src[0], src[1]])) << 16);
            }
        }
        StDType::F16 => {
            let mut halves = [f16::ZERO; 1024];
            for (out, bytes) in out.chunks_mut(halves.len()).zip(bytes.chunks(2 * halves.len())) {
                let h = &mut halves[..out.len()];
                for (dst, src) in h.iter_mut().zip(bytes.chunks_exact(2)) {
                    *dst = f16::from_bits(u16::from_le_bytes([src[0], src[1]]));
                }
                h.convert_to_f32_slice(out);
            }
        }
        StDType::F32 => {
            for (dst, src) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
            }
        }
    }
}

/// Decodes `bytes` (exactly `out.len() × dtype.size()` long) into `out`.
///
/// Large tensors are split into fixed chunks converted in parallel; each output element
/// depends only on its own input bytes, so the result is deterministic.
pub(crate) fn decode_into(dtype: StDType, bytes: &[u8], out: &mut [f32]) {
    let size = dtype.size();
    debug_assert_eq!(bytes.len(), out.len() * size);
    if out.len() <= CHUNK {
        decode_serial(dtype, bytes, out);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(bytes.par_chunks(CHUNK * size))
            .for_each(|(out, bytes)| decode_serial(dtype, bytes, out));
    }
}

/// Converts `bytes` (elements of `dtype`) to fp16 little-endian bytes (round to nearest
/// even, as `f16::from_f32` of the exact f32 value), in parallel chunks. Returns the index of
/// the first non-finite input instead, if there is one.
pub(crate) fn to_f16_bytes(dtype: StDType, bytes: &[u8]) -> Result<Vec<u8>, usize> {
    use half::slice::HalfFloatSliceExt;
    const BUF: usize = 1024;
    let size = dtype.size();
    let n = bytes.len() / size;
    let mut out = vec![0u8; n * 2];
    let bad = out
        .par_chunks_mut(CHUNK * 2)
        .zip(bytes.par_chunks(CHUNK * size))
        .enumerate()
        .filter_map(|(c, (out, bytes))| {
            let (mut floats, mut halves) = ([0f32; BUF], [f16::ZERO; BUF]);
            for (b, (out, bytes)) in out.chunks_mut(2 * BUF).zip(bytes.chunks(size * BUF)).enumerate() {
                let len = out.len() / 2;
                let (f, h) = (&mut floats[..len], &mut halves[..len]);
                decode_serial(dtype, bytes, f);
                if let Some(i) = f.iter().position(|v| !v.is_finite()) {
                    return Some(c * CHUNK + b * BUF + i);
                }
                h.convert_from_f32_slice(f);
                for (dst, v) in out.chunks_exact_mut(2).zip(h.iter()) {
                    dst.copy_from_slice(&v.to_le_bytes());
                }
            }
            None
        })
        .min();
    match bad {
        Some(i) => Err(i),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    #[test]
    fn decodes_each_dtype() {
        assert_eq!(StDType::F32.decode(&1.5f32.to_le_bytes()), 1.5);
        assert_eq!(StDType::F16.decode(&f16::from_f32(-2.0).to_le_bytes()), -2.0);
        assert_eq!(StDType::BF16.decode(&bf16::from_f32(3.0).to_le_bytes()), 3.0);
    }

    #[test]
    fn fp16_bytes_match_decode_then_round_and_name_the_first_bad_value() {
        let n = CHUNK * 2 + 5;
        // Finite in every storage dtype; the f32 and bf16 ones include values beyond the fp16
        // range, which round to ±inf in fp16 exactly as a materialised cast does.
        let values: Vec<f32> = (0..n).map(|i| (i as f32 - 60000.0) * 0.37).collect();
        for dtype in [StDType::F32, StDType::BF16, StDType::F16] {
            let big = [1e6f32, -7e4];
            let bytes: Vec<u8> = values
                .iter()
                .chain(if dtype == StDType::F16 { &[][..] } else { &big[..] })
                .flat_map(|v| match dtype {
                    StDType::F32 => v.to_le_bytes().to_vec(),
                    StDType::BF16 => bf16::from_f32(*v).to_le_bytes().to_vec(),
                    _ => f16::from_f32(*v).to_le_bytes().to_vec(),
                })
                .collect();
            let got = to_f16_bytes(dtype, &bytes).unwrap();
            let mut decoded = vec![0.0; bytes.len() / dtype.size()];
            decode_into(dtype, &bytes, &mut decoded);
            let want: Vec<u8> = decoded.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect();
            assert!(got == want, "{dtype}");
        }
        let mut bad: Vec<u8> = vec![0; (CHUNK + 10) * 4];
        bad[(CHUNK + 3) * 4..(CHUNK + 4) * 4].copy_from_slice(&f32::NAN.to_le_bytes());
        bad[(CHUNK + 7) * 4..(CHUNK + 8) * 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
        assert_eq!(to_f16_bytes(StDType::F32, &bad), Err(CHUNK + 3));
    }

    #[test]
    fn bulk_decode_equals_element_decode_for_every_dtype() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let bytes: Vec<u8> = (0..CHUNK * 8 + 4 * 999)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for dtype in [StDType::F32, StDType::F16, StDType::BF16] {
            let n = bytes.len() / dtype.size();
            let mut out = vec![0.0; n];
            decode_into(dtype, &bytes[..n * dtype.size()], &mut out);
            for (v, src) in out.iter().zip(bytes.chunks_exact(dtype.size())) {
                let want = dtype.decode(src);
                assert!(v.to_bits() == want.to_bits() || (v.is_nan() && want.is_nan()), "{dtype}: {v} vs {want}");
            }
        }
    }

    #[test]
    fn parallel_decode_matches_serial() {
        let n = CHUNK * 3 + 17;
        let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 1000.0).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| bf16::from_f32(*v).to_le_bytes()).collect();
        let mut out = vec![0.0; n];
        decode_into(StDType::BF16, &bytes, &mut out);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(out[i], bf16::from_f32(*v).to_f32());
        }
    }
}
