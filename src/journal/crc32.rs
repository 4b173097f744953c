//! CRC-32 (IEEE 802.3, the one zlib, gzip and PNG use), table-driven.

/// The IEEE polynomial, bit-reversed (the CRC is computed least significant bit first).
const POLYNOMIAL: u32 = 0xEDB8_8320;

/// The CRC of each byte value, built at compile time.
const TABLE: [u32; 256] = make_table();

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                POLYNOMIAL ^ (crc >> 1)
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
}

/// A CRC-32 being computed: feed bytes with [`Crc32::update`], read it with [`Crc32::finish`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crc32(u32);

impl Crc32 {
    /// The CRC of no bytes yet.
    pub(crate) fn new() -> Crc32 {
        Crc32(u32::MAX)
    }

    /// Adds `bytes`; feeding a message in pieces gives the same CRC as feeding it whole.
    pub(crate) fn update(mut self, bytes: &[u8]) -> Crc32 {
        for &byte in bytes {
            // The index is masked to 0..=255, so it is always inside the table.
            self.0 = TABLE[((self.0 ^ u32::from(byte)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
        self
    }

    /// The checksum of everything fed so far.
    pub(crate) fn finish(self) -> u32 {
        !self.0
    }
}

/// The CRC-32 of `bytes`.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    Crc32::new().update(bytes).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let cases: [(&[u8], u32); 6] = [
            (b"123456789", 0xCBF4_3926), // the check value of the CRC catalogue
            (b"", 0),
            (b"a", 0xE8B7_BE43),
            (b"abc", 0x3524_41C2),
            (b"The quick brown fox jumps over the lazy dog", 0x414F_A339),
            (&[0; 32], 0x190A_55AD),
        ];
        for (input, expected) in cases {
            assert_eq!(
                crc32(input),
                expected,
                "crc32({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn pieces_give_the_same_crc() {
        let message = b"The quick brown fox jumps over the lazy dog";
        for split in 0..=message.len() {
            let (head, tail) = message.split_at(split);
            assert_eq!(
                Crc32::new().update(head).update(tail).finish(),
                crc32(message)
            );
        }
    }
}
