//! The one decoder of the chunked transfer coding (RFC 9112 §7.1), for
//! request bodies read by the server and response bodies read by a client.
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! ```
//!
//! It is a state machine over bytes as they arrive: it never needs a whole
//! body, never copies data, and keeps at most one chunk-size line.

use std::ops::Range;

use crate::Error;

use super::head::MAX_HEAD_BYTES;

/// Longest chunk-size line (size and extensions), in bytes; past it: 400.
const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// A chunked body being decoded.
#[derive(Debug, Default)]
pub(crate) struct Chunked {
    state: State,
    /// The chunk-size line so far, or the trailer line's length.
    line: Vec<u8>,
    /// Bytes of trailer lines so far.
    trailer_bytes: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data: this many bytes to go.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// Reading trailer lines after the last chunk; `usize` is the length of
    /// the current one.
    Trailer(usize),
    /// The empty line after the trailers has been read.
    Done,
}

/// What one [`Chunked::step`] took from its input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// Bytes of the input used up.
    pub(crate) consumed: usize,
    /// Where, in the input, the body data of this step is (maybe empty).
    pub(crate) data: Range<usize>,
}

impl Chunked {
    /// Whether the whole body, trailers included, has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of the current chunk's data still to come.
    pub(crate) fn data_left(&self) -> u64 {
        match self.state {
            State::Data(left) => left,
            _ => 0,
        }
    }

    /// Decodes from the start of `input` up to the end of the next piece of
    /// body data (or the end of `input`, or the end of the body).
    pub(crate) fn step(&mut self, input: &[u8]) -> Result<Step, Error> {
        let mut at = 0;
        while at < input.len() {
            let byte = input[at];
            match self.state {
                State::Done => break,
                State::Data(left) => {
                    // 32-bit targets: `left` may not fit a usize, the rest of
                    // the input does.
                    let take = usize::try_from(left)
                        .map_or(input.len() - at, |left| left.min(input.len() - at));
                    self.state = match left - take as u64 {
                        0 => State::DataEnd,
                        rest => State::Data(rest),
                    };
                    return Ok(Step {
                        consumed: at + take,
                        data: at..at + take,
                    });
                }
                State::DataEnd => match byte {
                    b'\r' if self.line.is_empty() => self.line.push(byte),
                    b'\n' => {
                        self.line.clear();
                        self.state = State::Size;
                    }
                    _ => return Err(Error::BadRequest("chunk data longer than its size")),
                },
                State::Size if byte == b'\n' => {
                    let size = parse_size(&self.line)?;
                    self.line.clear();
                    self.state = if size == 0 {
                        State::Trailer(0)
                    } else {
                        State::Data(size)
                    };
                }
                State::Size => {
                    // A CR may still be the first half of this line's CRLF.
                    let length = self.line.len() - usize::from(self.line.last() == Some(&b'\r'));
                    if length >= MAX_CHUNK_LINE_BYTES {
                        return Err(Error::BadRequest("chunked body line too long"));
                    }
                    self.line.push(byte);
                }
                // last-chunk, then trailer-section CRLF: trailers are read
                // and dropped, within the limit of a header section.
                State::Trailer(length) if byte == b'\n' => {
                    let length =
                        length.saturating_sub(usize::from(self.line.last() == Some(&b'\r')));
                    self.line.clear();
                    if length == 0 {
                        self.state = State::Done;
                    } else {
                        self.trailer_bytes += length;
                        if self.trailer_bytes > MAX_HEAD_BYTES {
                            return Err(Error::HeadersTooLarge);
                        }
                        self.state = State::Trailer(0);
                    }
                }
                State::Trailer(length) => {
                    // Only whether the line's last byte is a CR matters.
                    self.line.clear();
                    self.line.push(byte);
                    let without_cr = length + usize::from(byte != b'\r');
                    if without_cr > MAX_HEAD_BYTES
                        || self.trailer_bytes + without_cr > MAX_HEAD_BYTES
                    {
                        return Err(Error::HeadersTooLarge);
                    }
                    self.state = State::Trailer(length + 1);
                }
            }
            at += 1;
        }
        Ok(Step {
            consumed: at,
            data: at..at,
        })
    }
}

/// `chunk-size [ chunk-ext ]`, with its CR if any: the size, checked in u64
/// (a 32-bit target must not wrap `100000000` to 0, the last chunk).
fn parse_size(line: &[u8]) -> Result<u64, Error> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let size = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let invalid = Error::BadRequest("invalid chunk size");
    if size.is_empty() {
        return Err(invalid);
    }
    let mut value: u64 = 0;
    for &digit in size {
        let digit = (digit as char)
            .to_digit(16)
            .ok_or(Error::BadRequest("invalid chunk size"))?;
        value = value
            .checked_mul(16)
            .and_then(|value| value.checked_add(u64::from(digit)))
            .ok_or(Error::BadRequest("invalid chunk size"))?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed `piece` bytes at a time.
    fn decode(input: &[u8], piece: usize) -> Result<(Vec<u8>, usize), Error> {
        let mut chunked = Chunked::default();
        let mut body = Vec::new();
        let mut at = 0;
        while !chunked.is_done() && at < input.len() {
            let end = (at + piece).min(input.len());
            let step = chunked.step(&input[at..end])?;
            body.extend_from_slice(&input[at..end][step.data]);
            at += step.consumed;
        }
        assert!(chunked.is_done(), "not done after {input:?}");
        Ok((body, at))
    }

    #[test]
    fn decodes_however_the_bytes_arrive() {
        let input = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for piece in 1..=input.len() {
            let (body, used) = decode(input, piece).unwrap();
            assert_eq!(body, b"hello world", "pieces of {piece}");
            assert_eq!(&input[used..], b"NEXT");
        }
        assert_eq!(decode(b"0\n\n", 1).unwrap().0, b"");
        assert_eq!(
            decode(b" a \r\n0123456789\r\n00\r\n\r\n", 3).unwrap().0,
            b"0123456789"
        );
    }

    #[test]
    fn refuses_bad_framing() {
        for (input, status) in [
            (&b"zz\r\n"[..], 400),
            (b"\r\n", 400),
            (b"2\r\nabc\r\n", 400),
            (b"-1\r\n", 400),
            // 2^64: overflows a u64; a 32-bit usize would wrap far sooner.
            (b"10000000000000000\r\n", 400),
        ] {
            let err = decode(input, input.len()).unwrap_err();
            assert_eq!(err.status(), status, "{input:?}");
        }
        let long = format!("1;{}\r\n", "x".repeat(MAX_CHUNK_LINE_BYTES));
        assert!(Chunked::default().step(long.as_bytes()).is_err());
        let trailers = format!("0\r\nX: {}\r\n\r\n", "v".repeat(MAX_HEAD_BYTES));
        assert_eq!(
            Chunked::default()
                .step(trailers.as_bytes())
                .unwrap_err()
                .status(),
            431
        );
    }

    #[test]
    fn sizes_past_u32_do_not_wrap() {
        // 0x1_0000_0000 is 2^32: on a 32-bit usize it would wrap to 0, the
        // last chunk. It must read as a (huge) chunk instead.
        let mut chunked = Chunked::default();
        let step = chunked.step(b"100000000\r\nab").unwrap();
        assert_eq!(step.data, 11..13);
        assert_eq!(chunked.state, State::Data((1 << 32) - 2));
        assert_eq!(parse_size(b"ffffffffffffffff").unwrap(), u64::MAX);
    }
}
