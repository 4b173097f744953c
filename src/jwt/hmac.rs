//! HMAC-SHA-256 (RFC 2104) and a constant-time byte comparison.

use super::sha256::{BLOCK_BYTES, Sha256, sha256};

/// A key made ready for HMAC-SHA-256, once. RFC 2104 §4: "the intermediate
/// results of the compression function on the B-byte blocks (K XOR ipad)
/// and (K XOR opad) can be precomputed only once at the time of generation
/// of the key": each token then costs two compressions fewer.
#[derive(Clone)]
pub(crate) struct HmacKey {
    /// The hash state after `K XOR ipad`.
    inner: Sha256,
    /// The hash state after `K XOR opad`.
    outer: Sha256,
}

impl HmacKey {
    pub(crate) fn new(key: &[u8]) -> HmacKey {
        // RFC 2104 §2: "Applications that use keys longer than B bytes will
        // first hash the key using H and then use the resultant L byte string
        // as the actual key to HMAC."
        let mut block_key = [0u8; BLOCK_BYTES];
        if key.len() > BLOCK_BYTES {
            block_key[..32].copy_from_slice(&sha256(key));
        } else {
            // "(1) append zeros to the end of K to create a B byte string"
            block_key[..key.len()].copy_from_slice(key);
        }
        // "ipad = the byte 0x36 repeated B times, opad = the byte 0x5C
        // repeated B times", and "H(K XOR opad, H(K XOR ipad, text))".
        let mut inner = Sha256::new();
        inner.update(&block_key.map(|byte| byte ^ 0x36));
        let mut outer = Sha256::new();
        outer.update(&block_key.map(|byte| byte ^ 0x5c));
        HmacKey { inner, outer }
    }

    /// HMAC-SHA-256 of `message` under this key.
    pub(crate) fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(message);
        let mut outer = self.outer.clone();
        outer.update(&inner.finish());
        outer.finish()
    }
}

/// Returns whether `a` and `b` are equal, taking time that depends only on
/// their lengths, never on where they differ.
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    // Fold the length difference into the result instead of returning early,
    // then compare every byte of the longer input against the other's bytes
    // (or zero), so no branch depends on the content.
    let mut difference = u64::from(a.len() != b.len());
    let longest = a.len().max(b.len());
    for index in 0..longest {
        let left = a.get(index).copied().unwrap_or(0);
        let right = b.get(index).copied().unwrap_or(0);
        difference |= u64::from(left ^ right);
    }
    // `black_box` keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(difference) == 0
}

/// Returns HMAC-SHA-256 of `message` under `key` in one call (tests sign with it).
#[cfg(test)]
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    HmacKey::new(key).mac(message)
}

#[cfg(test)]
mod tests {
    use super::{hmac_sha256, same_bytes};

    fn unhex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text
            .bytes()
            .filter(|byte| !byte.is_ascii_whitespace())
            .collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn check(key: &[u8], data: &[u8], expected_hex: &str) {
        let expected = unhex(expected_hex);
        let mac = hmac_sha256(key, data);
        assert_eq!(&mac[..expected.len()], &expected[..]);
    }

    // RFC 4231 §4, the HMAC-SHA-256 lines of test cases 1 to 7.
    #[test]
    fn rfc_4231_test_cases() {
        check(
            &[0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        );
        check(
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        );
        check(
            &[0xaa; 20],
            &[0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        );
        check(
            &unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
            &[0xcd; 50],
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        );
        // Test case 5 truncates the output to 128 bits.
        check(
            &[0x0c; 20],
            b"Test With Truncation",
            "a3b6167473100ee06e0c796c2955552b",
        );
        check(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        );
        check(
            &[0xaa; 131],
            b"This is a test using a larger than block-size key and a larger than block-size data. \
              The key needs to be hashed before being used by the HMAC algorithm.",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        );
    }

    #[test]
    fn a_key_of_exactly_one_block_is_not_hashed() {
        let key = [0x42; 64];
        let hashed = super::super::sha256::sha256(&key);
        assert_ne!(hmac_sha256(&key, b"m"), hmac_sha256(&hashed, b"m"));
        // A 65-byte key, by contrast, is the same as its hash.
        let long_key = [0x42; 65];
        let long_hashed = super::super::sha256::sha256(&long_key);
        assert_eq!(
            hmac_sha256(&long_key, b"m"),
            hmac_sha256(&long_hashed, b"m")
        );
    }

    #[test]
    fn same_bytes_cases() {
        assert!(same_bytes(b"", b""));
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"ab"));
        assert!(!same_bytes(b"ab", b"abc"));
        assert!(!same_bytes(b"", b"\0"));
        assert!(!same_bytes(b"ab\0", b"ab"));
    }
}
