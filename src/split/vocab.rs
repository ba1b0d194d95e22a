//! Splitting the LM head along the vocabulary: the ANE limits a spatial axis to 16384
//! elements, so the logits leave the model in pieces `logits1 … logitsK`.

/// The ANE's limit on the vocabulary slice of one LM-head piece.
pub const MAX_VOCAB_PIECE: usize = 16384;

/// The fewest pieces whose sizes are all ≤ `max`, as equal as possible, larger pieces
/// first. Invariants: the sizes sum to `vocab` (no token id is lost), every size is ≥ 1 and
/// ≤ `max`, and sizes differ by at most one.
pub fn lm_head_pieces(vocab: usize, max: usize) -> Vec<usize> {
    assert!(max > 0, "piece limit must be positive");
    if vocab == 0 {
        return Vec::new();
    }
    let k = vocab.div_ceil(max);
    let (base, extra) = (vocab / k, vocab % k);
    (0..k).map(|i| base + usize::from(i < extra)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_vocabularies() {
        // Llama 3: 128256 = 8 × 16032, as ANEMLL's fixed split.
        assert_eq!(lm_head_pieces(128_256, MAX_VOCAB_PIECE), vec![16_032; 8]);
        // Qwen: 151936 needs 10 pieces (ANEMLL hard-codes 16); remainder spread first.
        let q = lm_head_pieces(151_936, MAX_VOCAB_PIECE);
        assert_eq!(q.len(), 10);
        assert_eq!(q.iter().sum::<usize>(), 151_936);
        assert_eq!(&q[..6], &[15_194; 6]);
        assert_eq!(&q[6..], &[15_193; 4]);
        // A vocabulary that does not divide evenly by 8 loses nothing (ANEMLL drops V mod 8).
        let odd = lm_head_pieces(128_259, MAX_VOCAB_PIECE);
        assert_eq!(odd.iter().sum::<usize>(), 128_259);
        assert!(odd.iter().all(|&s| s <= MAX_VOCAB_PIECE));
        assert_eq!(lm_head_pieces(512, MAX_VOCAB_PIECE), vec![512]);
        assert_eq!(lm_head_pieces(16_384, MAX_VOCAB_PIECE), vec![16_384]);
        assert_eq!(lm_head_pieces(16_385, MAX_VOCAB_PIECE), vec![8_193, 8_192]);
    }
}
