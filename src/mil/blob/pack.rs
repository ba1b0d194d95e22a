//! Sub-byte packing: a little-endian bit stream where element `i` of width `b` occupies bits
//! `[i·b, i·b + b)`, bit 0 being the least significant bit of byte 0. An element straddling a
//! byte boundary keeps its low bits in the current byte and its high bits in the next one.
//! The same packing is used in `weight.bin` and in immediate `bytes` values.

/// Packs `values` (each `< 2^bits`, `1 ≤ bits ≤ 8`) into `ceil(n·bits/8)` bytes. Bits above
/// the width are masked off (callers validate ranges first).
pub fn pack_bits(values: impl IntoIterator<Item = u8>, bits: u32) -> Vec<u8> {
    debug_assert!((1..=8).contains(&bits));
    let mask = ((1u16 << bits) - 1) as u8;
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut filled = 0u32;
    for v in values {
        acc |= u32::from(v & mask) << filled;
        filled += bits;
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(acc as u8);
    }
    out
}

/// [`pack_bits`] of a slice, in parallel for large inputs: runs of 2^16 elements (a whole
/// number of bytes at any width) are packed independently and concatenated, which gives the
/// same bytes as packing the whole stream at once.
pub fn pack_bits_parallel(values: &[u8], bits: u32) -> Vec<u8> {
    use rayon::prelude::*;
    const RUN: usize = 1 << 16;
    if values.len() <= RUN {
        return pack_run(values, bits);
    }
    let packed: Vec<Vec<u8>> = values.par_chunks(RUN).map(|run| pack_run(run, bits)).collect();
    packed.concat()
}

/// [`pack_bits`] of one run, with straight-line code for the common widths: 4 bits (two
/// values per byte) and 6 bits (four values in three bytes); other widths, and a tail that
/// does not fill whole bytes, take the general loop.
fn pack_run(values: &[u8], bits: u32) -> Vec<u8> {
    let (group, mask) = match bits {
        4 => (2, 0x0f),
        6 => (4, 0x3f),
        _ => return pack_bits(values.iter().copied(), bits),
    };
    let whole = values.len() / group * group;
    let mut out = Vec::with_capacity(values.len() * bits as usize / 8 + 1);
    if bits == 4 {
        out.extend(values[..whole].chunks_exact(2).map(|p| (p[0] & mask) | ((p[1] & mask) << 4)));
    } else {
        for q in values[..whole].chunks_exact(4) {
            let (a, b, c, d) = (q[0] & mask, q[1] & mask, q[2] & mask, q[3] & mask);
            out.extend([a | (b << 6), (b >> 2) | (c << 4), (c >> 4) | (d << 2)]);
        }
    }
    out.extend(pack_bits(values[whole..].iter().copied(), bits));
    out
}

/// Unpacks `n` elements of width `bits` from `bytes`; `None` if `bytes` is too short.
pub fn unpack_bits(bytes: &[u8], bits: u32, n: usize) -> Option<Vec<u8>> {
    debug_assert!((1..=8).contains(&bits));
    if (n as u64) * u64::from(bits) > (bytes.len() as u64) * 8 {
        return None;
    }
    let mask = (1u32 << bits) - 1;
    let mut out = Vec::with_capacity(n);
    let mut acc: u32 = 0;
    let mut filled = 0u32;
    let mut next = bytes.iter();
    for _ in 0..n {
        while filled < bits {
            acc |= u32::from(*next.next()?) << filled;
            filled += 8;
        }
        out.push((acc & mask) as u8);
        acc >>= bits;
        filled -= bits;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_packing_equals_serial_packing() {
        let values: Vec<u8> =
            (0..(1usize << 16) * 3 + 13).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        for bits in [1u32, 2, 3, 4, 6, 8] {
            let masked: Vec<u8> = values.iter().map(|&v| v & ((1u16 << bits) - 1) as u8).collect();
            assert_eq!(pack_bits_parallel(&masked, bits), pack_bits(masked.iter().copied(), bits), "{bits} bits");
            // Short inputs with tails that do not fill whole bytes take the same path.
            for n in 0..13 {
                assert_eq!(
                    pack_run(&masked[..n], bits),
                    pack_bits(masked[..n].iter().copied(), bits),
                    "{bits} bits, {n}"
                );
            }
        }
    }

    // Vectors from the format reference (observed on coremltools-made files).
    #[test]
    fn reference_vectors() {
        assert_eq!(pack_bits([3, 7, 15, 1, 2, 4], 4), [0x73, 0x1f, 0x42]);
        assert_eq!(pack_bits([1, 2, 3, 4, 5], 3), [0b1101_0001, 0b0101_1000]);
        assert_eq!(pack_bits([63, 1, 2], 6), [0x7f, 0x20, 0x00]);
        assert_eq!(pack_bits([1, 0, 1, 1, 0, 0, 0, 0, 1], 1), [0x0d, 0x01]);
        // int4 [3, -3, -5, 6] as two's-complement nibbles.
        assert_eq!(pack_bits([3u8, (-3i8) as u8, (-5i8) as u8, 6], 4), [0xd3, 0x6b]);
    }

    #[test]
    fn roundtrip_every_width() {
        for bits in [1u32, 2, 3, 4, 6, 8] {
            let values: Vec<u8> = (0..37u32).map(|i| ((i * 7 + 3) % (1 << bits)) as u8).collect();
            let packed = pack_bits(values.iter().copied(), bits);
            assert_eq!(packed.len(), (values.len() * bits as usize).div_ceil(8));
            assert_eq!(unpack_bits(&packed, bits, values.len()).unwrap(), values);
        }
        assert!(unpack_bits(&[0xff], 3, 3).is_none());
    }
}
