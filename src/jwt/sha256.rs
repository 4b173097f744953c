//! SHA-256 as FIPS 180-4 §6.2 defines it.

// Implementation notes: the hasher keeps the eight working words `state`, a
// partial block `buffer` of `buffered` bytes, and the message length in bytes.
// `update` fills the buffer and compresses each full 64-byte block; `finish`
// pads (§5.1.1) and compresses the last one or two blocks.

/// The size of one SHA-256 input block in bytes.
pub(crate) const BLOCK_BYTES: usize = 64;

// FIPS 180-4 §4.2.2: "These words represent the first thirty-two bits of the
// fractional parts of the cube roots of the first sixty-four prime numbers."
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

// FIPS 180-4 §5.3.3: "the initial hash value, H(0), shall consist of the
// following eight 32-bit words", the square roots of the first eight primes.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Returns the SHA-256 digest of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    hasher.finish()
}

/// An incremental SHA-256 hasher: `update` any number of times, then `finish`.
#[derive(Clone)]
pub(crate) struct Sha256 {
    state: [u32; 8],
    buffer: [u8; BLOCK_BYTES],
    buffered: usize,
    // In bytes; u64 so that it cannot wrap on 32-bit targets. FIPS 180-4
    // limits messages to fewer than 2^64 bits, far beyond anything we hash.
    length_bytes: u64,
}

impl Sha256 {
    /// Starts a new hash.
    pub(crate) fn new() -> Sha256 {
        Sha256 {
            state: H0,
            buffer: [0; BLOCK_BYTES],
            buffered: 0,
            length_bytes: 0,
        }
    }

    /// Appends `bytes` to the message.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.length_bytes = self.length_bytes.wrapping_add(bytes.len() as u64);
        let mut rest = bytes;
        while !rest.is_empty() {
            // `buffered` is always below BLOCK_BYTES here, so `room` is 1..=64.
            let room = BLOCK_BYTES - self.buffered;
            let (head, tail) = rest.split_at(room.min(rest.len()));
            self.buffer[self.buffered..self.buffered + head.len()].copy_from_slice(head);
            self.buffered += head.len();
            rest = tail;
            if self.buffered == BLOCK_BYTES {
                compress(&mut self.state, &self.buffer);
                self.buffered = 0;
            }
        }
    }

    /// Pads the message and returns its digest.
    pub(crate) fn finish(mut self) -> [u8; 32] {
        let length_bits = self.length_bytes.wrapping_mul(8);
        // FIPS 180-4 §5.1.1: "Append the bit "1" to the end of the message,
        // followed by k zero bits, where k is the smallest, non-negative
        // solution to the equation l + 1 + k ≡ 448 mod 512. Then append the
        // 64-bit block that is equal to the number l expressed using a binary
        // representation."
        self.update(&[0x80]);
        while self.buffered != BLOCK_BYTES - 8 {
            self.update(&[0]);
        }
        self.update(&length_bits.to_be_bytes());
        let mut digest = [0; 32];
        for (chunk, word) in digest.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }
}

/// Compresses one 64-byte block into `state` (FIPS 180-4 §6.2.2).
fn compress(state: &mut [u32; 8], block: &[u8; BLOCK_BYTES]) {
    // Step 1, the message schedule: W(t) = M(t) for 0 <= t <= 15, and
    // W(t) = σ1(W(t-2)) + W(t-7) + σ0(W(t-15)) + W(t-16) for 16 <= t <= 63.
    let mut w = [0u32; 64];
    for (word, chunk) in w.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    for t in 16..64 {
        // §4.1.2 (4.6), (4.7): σ0 = ROTR7 ^ ROTR18 ^ SHR3, σ1 = ROTR17 ^ ROTR19 ^ SHR10.
        let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
        let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
        w[t] = s1
            .wrapping_add(w[t - 7])
            .wrapping_add(s0)
            .wrapping_add(w[t - 16]);
    }

    // Steps 2 and 3: eight working variables, sixty-four rounds.
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for t in 0..64 {
        // §4.1.2 (4.4), (4.5): Σ1 = ROTR6 ^ ROTR11 ^ ROTR25, Σ0 = ROTR2 ^ ROTR13 ^ ROTR22.
        let big_s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        // (4.2) Ch(x, y, z) = (x ∧ y) ⊕ (¬x ∧ z)
        let ch = (e & f) ^ (!e & g);
        let t1 = h
            .wrapping_add(big_s1)
            .wrapping_add(ch)
            .wrapping_add(K[t])
            .wrapping_add(w[t]);
        let big_s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        // (4.3) Maj(x, y, z) = (x ∧ y) ⊕ (x ∧ z) ⊕ (y ∧ z)
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = big_s0.wrapping_add(maj);
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }

    // Step 4: "Compute the ith intermediate hash value H(i)" by adding.
    for (word, add) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *word = word.wrapping_add(add);
    }
}

#[cfg(test)]
mod tests {
    use super::{Sha256, sha256};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn check(input: &[u8], expected: &str) {
        assert_eq!(
            hex(&sha256(input)),
            expected,
            "input of {} bytes",
            input.len()
        );
    }

    // FIPS 180-4 examples (NIST "SHA256.pdf" and "SHA2_Additional.pdf").
    #[test]
    fn published_vectors() {
        check(
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        );
        check(
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        );
        check(
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        );
        check(
            b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
        );
    }

    const MILLION_A: &str = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

    #[test]
    fn one_million_a_at_once() {
        check(&vec![b'a'; 1_000_000], MILLION_A);
    }

    #[test]
    fn one_million_a_in_uneven_pieces() {
        let mut hasher = Sha256::new();
        let mut fed = 0;
        let mut piece = 1;
        while fed < 1_000_000 {
            let size = piece.min(1_000_000 - fed);
            hasher.update(&vec![b'a'; size]);
            fed += size;
            // Piece sizes cycle through 1..=137, crossing block edges at every offset.
            piece = piece % 137 + 1;
        }
        assert_eq!(hex(&hasher.finish()), MILLION_A);
    }

    #[test]
    fn every_length_around_the_padding_edge_matches_one_shot() {
        // Lengths 55, 56 and 64 decide whether padding needs a second block.
        let message: Vec<u8> = (0..200u8).collect();
        for length in 0..message.len() {
            let mut hasher = Sha256::new();
            let (first, second) = message[..length].split_at(length / 3);
            hasher.update(first);
            hasher.update(second);
            assert_eq!(
                hasher.finish(),
                sha256(&message[..length]),
                "length {length}"
            );
        }
    }
}
