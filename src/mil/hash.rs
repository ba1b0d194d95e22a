//! Deterministic content hashing for package identifiers (Manifest UUIDs).
//!
//! XXH3-128 (the `xxhash-rust` crate), streamed: not cryptographic, only a stable
//! fingerprint so that the same package content always yields the same identifiers and
//! different content almost surely yields different ones. It runs at memory speed, which
//! matters because every byte of every weight.bin passes through it on the writing thread.

use xxhash_rust::xxh3::Xxh3;

/// A streaming content hasher with a 128-bit result.
#[derive(Clone, Default)]
pub struct ContentHash(Xxh3);

impl std::fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentHash({:032x})", self.finish())
    }
}

impl ContentHash {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

/// Formats a 128-bit value as a lowercase UUID string shaped like a random (version 4,
/// RFC 4122 variant) UUID: the version and variant bits are forced, the rest is `bits`.
pub fn uuid_v4_shaped(bits: u128) -> String {
    let mut b = bits.to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_hash_equals_one_shot_hash_and_uuid_shape() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut h = ContentHash::new();
        for piece in data.chunks(777) {
            h.update(piece);
        }
        assert_eq!(h.finish(), xxhash_rust::xxh3::xxh3_128(&data));
        assert_ne!(h.finish(), ContentHash::new().finish());
        let id = uuid_v4_shaped(h.finish());
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }
}
