//! Unpadded base64url (RFC 4648 §5), as JWS compact serialization uses it.
//!
//! RFC 7515 §2: "Base64url Encoding: Base64 encoding using the URL- and
//! filename-safe character set defined in Section 5 of RFC 4648, with all
//! trailing '=' characters omitted [...] and without the inclusion of any line
//! breaks, whitespace, or other additional characters."

/// Returns the 6-bit value of one alphabet character, or `None` for anything
/// else (`=`, `+`, `/`, whitespace and non-ASCII included).
fn sextet(character: u8) -> Option<u8> {
    match character {
        b'A'..=b'Z' => Some(character - b'A'),
        b'a'..=b'z' => Some(character - b'a' + 26),
        b'0'..=b'9' => Some(character - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Decodes unpadded base64url text; refuses padding, characters outside the
/// URL-safe alphabet, impossible lengths and non-zero trailing bits, so that
/// each byte string has exactly one accepted encoding.
pub(crate) fn decode(text: &[u8]) -> Result<Vec<u8>, &'static str> {
    // Without padding a final group has 2, 3 or 4 characters; one character
    // carries only 6 bits, less than a byte.
    if text.len() % 4 == 1 {
        return Err("base64url text has an impossible length");
    }
    let mut bytes = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for group in text.chunks(4) {
        let mut bits: u32 = 0;
        for &character in group {
            let value =
                sextet(character).ok_or("base64url text has a character outside its alphabet")?;
            bits = (bits << 6) | u32::from(value);
        }
        // Left-align the group in 24 bits, as if it had been padded.
        let missing = 4 - group.len();
        bits <<= 6 * missing;
        let [_, first, second, third] = bits.to_be_bytes();
        let decoded = [first, second, third];
        let kept = 3 - missing;
        // RFC 4648 §3.5: "In some environments, the alteration is critical
        // and therefore decoders MAY chose to reject an encoding if the pad
        // bits have not been set to zero." A signature must have one spelling.
        if decoded.get(kept).is_some_and(|&byte| byte != 0) {
            return Err("base64url text has non-zero trailing bits");
        }
        bytes.extend_from_slice(decoded.get(..kept).unwrap_or_default());
    }
    Ok(bytes)
}

// RFC 4648 §5, Table 2: "The "URL and Filename safe" Base 64 Alphabet".
#[cfg(test)]
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes `bytes` as base64url without padding (tests mint tokens with it).
#[cfg(test)]
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let mut padded = [0u8; 3];
        padded[..group.len()].copy_from_slice(group);
        let bits = u32::from_be_bytes([0, padded[0], padded[1], padded[2]]);
        // A group of n bytes needs n + 1 characters; the rest would be '='.
        for index in 0..=group.len() {
            let value = (bits >> (18 - 6 * index)) & 0x3f;
            text.push(char::from(ALPHABET[value as usize]));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};

    fn check(bytes: &[u8], text: &str) {
        assert_eq!(encode(bytes), text);
        assert_eq!(decode(text.as_bytes()).as_deref(), Ok(bytes));
    }

    // RFC 4648 §10, without the padding.
    #[test]
    fn rfc_4648_vectors_unpadded() {
        check(b"", "");
        check(b"f", "Zg");
        check(b"fo", "Zm8");
        check(b"foo", "Zm9v");
        check(b"foob", "Zm9vYg");
        check(b"fooba", "Zm9vYmE");
        check(b"foobar", "Zm9vYmFy");
    }

    #[test]
    fn url_safe_characters() {
        // 0xfb 0xff encodes to "+/8" in standard base64 and "-_8" here.
        check(&[0xfb, 0xff], "-_8");
        check(&[0xff; 3], "____");
        check(&[0xf8], "-A");
    }

    #[test]
    fn round_trips_every_length_up_to_64() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for length in 0..=64usize {
            let bytes: Vec<u8> = (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let text = encode(&bytes);
            assert_eq!(text.len(), (length * 4).div_ceil(3), "length {length}");
            assert_eq!(decode(text.as_bytes()), Ok(bytes), "length {length}");
        }
    }

    #[test]
    fn refusals() {
        let refused = [
            (
                "Zg==",
                "base64url text has a character outside its alphabet",
            ),
            (
                "Zm8=",
                "base64url text has a character outside its alphabet",
            ),
            ("+/8", "base64url text has a character outside its alphabet"),
            (
                "Zm9v Yg",
                "base64url text has a character outside its alphabet",
            ),
            (
                "Zm9v\nYg",
                "base64url text has a character outside its alphabet",
            ),
            (
                "Zm9vé",
                "base64url text has a character outside its alphabet",
            ),
            ("Z", "base64url text has an impossible length"),
            ("Zm9vY", "base64url text has an impossible length"),
            ("Zh", "base64url text has non-zero trailing bits"),
            ("Zm9", "base64url text has non-zero trailing bits"),
            ("-_9", "base64url text has non-zero trailing bits"),
        ];
        for (text, reason) in refused {
            assert_eq!(decode(text.as_bytes()), Err(reason), "{text:?}");
        }
    }
}
