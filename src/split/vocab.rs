//! Splitting the LM head along the vocabulary: the ANE limits a spatial axis to 16384
//! elements, so the logits leave the model in pieces `logits1 … logitsK`.

/// The ANE's limit on the vocabulary slice of one LM-head piece.
pub const MAX_VOCAB_PIECE: usize = 16384;

/// Piece sizes are multiples of this (ANEMLL's LUT group size), so every piece of a
/// palettized LM head groups evenly; only a vocabulary that is not itself a multiple puts
/// its remainder on the last piece.
pub const PIECE_ALIGN: usize = 8;

/// The fewest pieces whose sizes are all ≤ `max`, as equal as possible in multiples of
/// [`PIECE_ALIGN`] (larger pieces first; the last piece also takes `vocab mod 8`).
/// Invariants: the sizes sum to `vocab` (no token id is lost), every size is ≥ 1 and ≤ `max`.
pub fn lm_head_pieces(vocab: usize, max: usize) -> Vec<usize> {
    lm_head_pieces_at_least(vocab, max, 1)
}

/// Like [`lm_head_pieces`] with at least `min` pieces when the vocabulary allows it (ANEMLL
/// cuts Gemma 3's head into 16 however small the pieces).
pub fn lm_head_pieces_at_least(vocab: usize, max: usize, min: usize) -> Vec<usize> {
    assert!(max > 0, "piece limit must be positive");
    if vocab == 0 {
        return Vec::new();
    }
    let min = min.clamp(1, (vocab / PIECE_ALIGN).max(1));
    if max < PIECE_ALIGN || vocab < PIECE_ALIGN {
        let k = vocab.div_ceil(max);
        let (base, extra) = (vocab / k, vocab % k);
        return (0..k).map(|i| base + usize::from(i < extra)).collect();
    }
    let (units, rem) = (vocab / PIECE_ALIGN, vocab % PIECE_ALIGN);
    let mut k = vocab.div_ceil(max).max(min);
    loop {
        let (base, extra) = (units / k, units % k);
        let mut sizes: Vec<usize> = (0..k).map(|i| (base + usize::from(i < extra)) * PIECE_ALIGN).collect();
        if let Some(last) = sizes.last_mut() {
            *last += rem;
        }
        if sizes.iter().all(|&s| s >= 1 && s <= max) {
            return sizes;
        }
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gemma 3 4B's vocabulary (262208) needs 17 pieces of at most 16384: it gets them,
    /// each within the limit, none lost; 262144 gets exactly 16 of 16384.
    #[test]
    fn at_least_sixteen_and_as_many_as_needed() {
        let sizes = lm_head_pieces_at_least(262_208, MAX_VOCAB_PIECE, 16);
        assert_eq!(sizes.len(), 17);
        assert!(sizes.iter().all(|&s| s <= MAX_VOCAB_PIECE && s > 0));
        assert_eq!(sizes.iter().sum::<usize>(), 262_208);
        assert_eq!(lm_head_pieces_at_least(262_144, MAX_VOCAB_PIECE, 16), vec![16384; 16]);
        assert_eq!(lm_head_pieces_at_least(512, MAX_VOCAB_PIECE, 16), vec![32; 16]);
    }

    #[test]
    fn real_vocabularies() {
        // Llama 3: 128256 = 8 × 16032, as ANEMLL's fixed split.
        assert_eq!(lm_head_pieces(128_256, MAX_VOCAB_PIECE), vec![16_032; 8]);
        // Qwen: 151936 needs 10 pieces (ANEMLL hard-codes 16), each a multiple of 8 so that
        // every piece palettizes in groups of 8 rows.
        let q = lm_head_pieces(151_936, MAX_VOCAB_PIECE);
        assert_eq!(q, [vec![15_200; 2], vec![15_192; 8]].concat());
        // A vocabulary that does not divide evenly by 8 loses nothing (ANEMLL drops V mod 8).
        let odd = lm_head_pieces(128_259, MAX_VOCAB_PIECE);
        assert_eq!(odd.iter().sum::<usize>(), 128_259);
        assert!(odd.iter().all(|&s| s <= MAX_VOCAB_PIECE));
        assert_eq!(lm_head_pieces(512, MAX_VOCAB_PIECE), vec![512]);
        assert_eq!(lm_head_pieces(16_384, MAX_VOCAB_PIECE), vec![16_384]);
        assert_eq!(lm_head_pieces(16_385, MAX_VOCAB_PIECE), vec![8_192, 8_193]);
        assert_eq!(lm_head_pieces(512, 200), vec![176, 168, 168]);
    }
}
