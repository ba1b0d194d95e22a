//! Deterministic content hashing for package identifiers (Manifest UUIDs).
//!
//! FNV-1a with 128-bit state: not cryptographic, only a stable fingerprint so that the same
//! package content always yields the same identifiers and different content almost surely
//! yields different ones.

const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// A streaming FNV-1a-128 hasher.
#[derive(Clone, Copy, Debug)]
pub struct ContentHash(u128);

impl Default for ContentHash {
    fn default() -> Self {
        ContentHash(OFFSET_BASIS)
    }
}

impl ContentHash {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }

    pub fn finish(&self) -> u128 {
        self.0
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
    fn fnv_known_value_and_uuid_shape() {
        // FNV-1a-128 of the empty input is the offset basis.
        assert_eq!(ContentHash::new().finish(), OFFSET_BASIS);
        let mut h = ContentHash::new();
        h.update(b"a");
        assert_eq!(h.finish(), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
        let id = uuid_v4_shaped(h.finish());
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }
}
