//! RESP2, the protocol Redis speaks: commands out, replies in.
//!
//! Spec: <https://redis.io/docs/latest/develop/reference/protocol-spec/>.
//! Only RESP2 is spoken: a connection stays in RESP2 unless it sends `HELLO 3`,
//! which this client never does.

// Implementation notes: the parser reads one reply from a `BufRead` and keeps a
// budget for the whole reply (bytes and values). Every length from the wire is
// parsed as a `u64` and checked against the limits before anything is read or
// allocated for it; bulk data is read a buffer at a time (`read_into`), so
// memory grows with the bytes that really arrive, never with the length
// announced.
// Recursion is bounded by `MAX_DEPTH`.

use std::io::{self, BufRead};

use super::error::RedisError;

/// Largest bulk string in a reply, in bytes; a longer one is refused with a
/// protocol error before it is read, and the connection is then unusable.
pub(crate) const MAX_BULK_BYTES: u64 = 16 * 1024 * 1024;
/// Longest simple string, error or number line, in bytes before its CRLF; a
/// longer one is refused, and the connection is then unusable.
pub(crate) const MAX_LINE_BYTES: u64 = 64 * 1024;
/// Most values in one reply, counting every element of every nested array; an
/// array announcing more is refused before it is read, and the connection is
/// then unusable.
pub(crate) const MAX_VALUES: u64 = 1024 * 1024;
/// Deepest nesting of arrays in one reply (a flat array is 1); a deeper array
/// is refused, and the connection is then unusable.
pub(crate) const MAX_DEPTH: usize = 8;
/// Most bytes in one reply in all, every CRLF included; a larger reply is
/// refused when it reaches this size, and the connection is then unusable.
pub(crate) const MAX_REPLY_BYTES: u64 = 64 * 1024 * 1024;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// `+OK\r\n`: a short status line (bytes that are not UTF-8 are replaced).
    Simple(String),
    /// `-ERR message\r\n`: Redis refused the command.
    Error(String),
    /// `:1000\r\n`.
    Integer(i64),
    /// `$5\r\nhello\r\n`; `None` for the null bulk string `$-1\r\n`.
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n` and two more values; `None` for the null array `*-1\r\n`.
    Array(Option<Vec<Value>>),
}

/// Encodes one command, such as `[b"XADD", key, ...]`, as RESP2 bytes.
pub(crate) fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, args);
    out
}

/// Appends one command to `out`, so that several can go out in one write.
pub(crate) fn encode_into(out: &mut Vec<u8>, args: &[&[u8]]) {
    // "Clients send commands to a Redis server as an array of bulk strings."
    // "*<number-of-elements>\r\n<element-1>...<element-n>"
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        // "$<length>\r\n<data>\r\n"
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads exactly one reply, within the limits above.
///
/// An `Err` means the reader is somewhere inside a reply: drop the connection.
/// `RedisError::Closed` means the stream ended before the first byte.
pub(crate) fn read_value(reader: &mut impl BufRead) -> Result<Value, RedisError> {
    let mut budget = Budget {
        bytes: MAX_REPLY_BYTES,
        values: MAX_VALUES,
    };
    read_nested(reader, &mut budget, 0)
}

/// What is left of one reply's limits.
struct Budget {
    bytes: u64,
    values: u64,
}

/// Reads one value inside `depth` arrays.
fn read_nested<R: BufRead>(
    reader: &mut R,
    budget: &mut Budget,
    depth: usize,
) -> Result<Value, RedisError> {
    budget.values = budget
        .values
        .checked_sub(1)
        .ok_or(RedisError::Protocol("reply with too many values"))?;
    let line = read_line(reader, budget, depth == 0)?;
    // "The first byte in an RESP-serialized payload always identifies its type."
    let Some((&kind, rest)) = line.split_first() else {
        return Err(RedisError::Protocol(
            "empty line where a reply was expected",
        ));
    };
    match kind {
        // "+OK\r\n": "The string mustn't contain a CR (\r) or LF (\n) character
        // and is terminated by CRLF."
        b'+' => Ok(Value::Simple(String::from_utf8_lossy(rest).into_owned())),
        // "-Error message\r\n"
        b'-' => Ok(Value::Error(String::from_utf8_lossy(rest).into_owned())),
        // ":[<+|->]<value>\r\n": "a signed, base-10, 64-bit integer", with "an
        // optional plus (+) or minus (-) as the sign" (`parse` accepts exactly that).
        b':' => std::str::from_utf8(rest)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .map(Value::Integer)
            .ok_or(RedisError::Protocol("bad integer")),
        // "$<length>\r\n<data>\r\n"; the null bulk string "is encoded as a bulk
        // string with the length of negative one (-1)": "$-1\r\n".
        b'$' => match parse_length(rest)? {
            None => Ok(Value::Bulk(None)),
            Some(length) => read_bulk(reader, budget, length).map(|data| Value::Bulk(Some(data))),
        },
        // "*<number-of-elements>\r\n<element-1>...<element-n>"; "The encoding of a
        // null array is that of an array with the length of -1": "*-1\r\n".
        b'*' => match parse_length(rest)? {
            None => Ok(Value::Array(None)),
            Some(count) => read_array(reader, budget, depth, count),
        },
        _ => Err(RedisError::Protocol("unknown reply type byte")),
    }
}

/// Reads one line and returns it without its CRLF.
fn read_line<R: BufRead>(
    reader: &mut R,
    budget: &mut Budget,
    first: bool,
) -> Result<Vec<u8>, RedisError> {
    let limit = (MAX_LINE_BYTES + 2).min(budget.bytes);
    let mut line = Vec::new();
    let read = read_into(reader, limit, Some(b'\n'), &mut line)?;
    budget.bytes = budget.bytes.saturating_sub(read);
    if line.last() != Some(&b'\n') {
        return Err(match () {
            () if read == 0 && first => RedisError::Closed,
            () if read == MAX_LINE_BYTES + 2 => RedisError::Protocol("line over the length limit"),
            () if read == limit => RedisError::Protocol("reply over the size limit"),
            () => RedisError::Protocol("reply truncated"),
        });
    }
    // "\r\n (CRLF) is the protocol's terminator, which always separates its parts."
    line.pop();
    if line.pop() != Some(b'\r') || line.contains(&b'\r') {
        return Err(RedisError::Protocol("line not ended by CRLF"));
    }
    Ok(line)
}

/// Parses an announced length: ASCII digits, or exactly `-1` for null.
// "One or more decimal digits (0..9) as the string's length, in bytes, as an
// unsigned, base-10 value." A sign, a space or an empty length is refused.
fn parse_length(text: &[u8]) -> Result<Option<u64>, RedisError> {
    if text == b"-1" {
        return Ok(None);
    }
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return Err(RedisError::Protocol("bad length"));
    }
    text.iter()
        .try_fold(0u64, |sum, digit| {
            sum.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
        })
        .map(Some)
        .ok_or(RedisError::Protocol("bad length"))
}

/// Reads a bulk string's data and the CRLF after it.
fn read_bulk<R: BufRead>(
    reader: &mut R,
    budget: &mut Budget,
    length: u64,
) -> Result<Vec<u8>, RedisError> {
    if length > MAX_BULK_BYTES {
        return Err(RedisError::Protocol("bulk string over the size limit"));
    }
    // The data and its CRLF; no overflow, as `length` is at most 16 MiB.
    let wanted = length + 2;
    if wanted > budget.bytes {
        return Err(RedisError::Protocol("reply over the size limit"));
    }
    let mut data = Vec::new();
    let read = read_into(reader, wanted, None, &mut data)?;
    budget.bytes = budget.bytes.saturating_sub(read);
    if read < wanted {
        return Err(RedisError::Protocol("reply truncated"));
    }
    // "The data." then "A final CRLF.": anything else there means the bulk
    // string is longer than its announced length.
    if data.pop() != Some(b'\n') || data.pop() != Some(b'\r') {
        return Err(RedisError::Protocol("bulk string longer than announced"));
    }
    Ok(data)
}

/// Appends bytes from `reader` to `out` until `limit` bytes are read, the
/// stream ends or, with `until`, that byte is read; returns how many. It does
/// what `take(limit).read_until` and `take(limit).read_to_end` do, as one
/// function instead of two generic ones from std.
fn read_into<R: BufRead>(
    reader: &mut R,
    limit: u64,
    until: Option<u8>,
    out: &mut Vec<u8>,
) -> Result<u64, RedisError> {
    let mut read: u64 = 0;
    while read < limit {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error.into()),
        };
        let room = usize::try_from(limit - read).unwrap_or(usize::MAX);
        let mut chunk = available.get(..room).unwrap_or(available);
        let mut found = false;
        if let Some(at) = until.and_then(|byte| chunk.iter().position(|&next| next == byte)) {
            chunk = &chunk[..=at];
            found = true;
        }
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(chunk);
        let taken = chunk.len();
        reader.consume(taken);
        read += taken as u64;
        if found {
            break;
        }
    }
    Ok(read)
}

/// Reads the elements of an array announced with `count` elements.
fn read_array<R: BufRead>(
    reader: &mut R,
    budget: &mut Budget,
    depth: usize,
    count: u64,
) -> Result<Value, RedisError> {
    if depth >= MAX_DEPTH {
        return Err(RedisError::Protocol("arrays nested too deep"));
    }
    if count > budget.values {
        return Err(RedisError::Protocol("reply with too many values"));
    }
    // No capacity from the wire: the vector grows with the values that arrive.
    let mut items = Vec::new();
    for _ in 0..count {
        items.push(read_nested(reader, budget, depth + 1)?);
    }
    Ok(Value::Array(Some(items)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::io::Read;

    fn parse(bytes: &[u8]) -> Result<Value, RedisError> {
        read_value(&mut Cursor::new(bytes))
    }

    fn bulk(bytes: &[u8]) -> Value {
        Value::Bulk(Some(bytes.to_vec()))
    }

    fn array(items: Vec<Value>) -> Value {
        Value::Array(Some(items))
    }

    /// Checks that `bytes` is refused with the protocol error `reason`.
    fn check_refused(bytes: &[u8], reason: &str) {
        match parse(bytes) {
            Err(RedisError::Protocol(got)) => {
                assert_eq!(got, reason, "{:?}", String::from_utf8_lossy(bytes))
            }
            other => panic!(
                "{:?}: expected {reason:?}, got {other:?}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }

    #[test]
    fn encodes_commands_as_arrays_of_bulk_strings() {
        assert_eq!(
            command(&[b"LLEN", b"mylist"]),
            b"*2\r\n$4\r\nLLEN\r\n$6\r\nmylist\r\n"
        );
        assert_eq!(
            command(&[b"SET", b"k", b""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
        let mut out = command(&[b"MULTI"]);
        encode_into(&mut out, &[b"EXEC"]);
        assert_eq!(out, b"*1\r\n$5\r\nMULTI\r\n*1\r\n$4\r\nEXEC\r\n");
    }

    #[test]
    fn parses_every_type() {
        let cases: &[(&[u8], Value)] = &[
            (b"+OK\r\n", Value::Simple("OK".into())),
            (b"+\r\n", Value::Simple(String::new())),
            (
                b"-ERR unknown command 'asdf'\r\n",
                Value::Error("ERR unknown command 'asdf'".into()),
            ),
            (b":0\r\n", Value::Integer(0)),
            (b":1000\r\n", Value::Integer(1000)),
            (b":-42\r\n", Value::Integer(-42)),
            (b":+7\r\n", Value::Integer(7)),
            (b":9223372036854775807\r\n", Value::Integer(i64::MAX)),
            (b":-9223372036854775808\r\n", Value::Integer(i64::MIN)),
            (b"$5\r\nhello\r\n", bulk(b"hello")),
            (b"$0\r\n\r\n", bulk(b"")),
            (b"$4\r\na\r\nb\r\n", bulk(b"a\r\nb")),
            (b"$-1\r\n", Value::Bulk(None)),
            (b"*0\r\n", array(vec![])),
            (b"*-1\r\n", Value::Array(None)),
            (
                b"*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n",
                array(vec![bulk(b"hello"), bulk(b"world")]),
            ),
            (
                b"*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n*2\r\n+Hello\r\n-World\r\n",
                array(vec![
                    array(vec![
                        Value::Integer(1),
                        Value::Integer(2),
                        Value::Integer(3),
                    ]),
                    array(vec![
                        Value::Simple("Hello".into()),
                        Value::Error("World".into()),
                    ]),
                ]),
            ),
            (
                b"*3\r\n$-1\r\n*-1\r\n*0\r\n",
                array(vec![Value::Bulk(None), Value::Array(None), array(vec![])]),
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                parse(bytes).ok().as_ref(),
                Some(expected),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn reads_replies_one_after_another() {
        let mut reader = Cursor::new(&b"+OK\r\n+QUEUED\r\n*1\r\n:5\r\n"[..]);
        assert_eq!(
            read_value(&mut reader).ok(),
            Some(Value::Simple("OK".into()))
        );
        assert_eq!(
            read_value(&mut reader).ok(),
            Some(Value::Simple("QUEUED".into()))
        );
        assert_eq!(
            read_value(&mut reader).ok(),
            Some(array(vec![Value::Integer(5)]))
        );
        assert!(matches!(read_value(&mut reader), Err(RedisError::Closed)));
    }

    // Recorded from redis-server 7.0.15 (`XREAD COUNT 10 STREAMS s 0-0`).
    const XREAD_REPLY: &[u8] = b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$15\r\n1700000000000-0\r\n*4\r\n$5\r\ntopic\r\n$4\r\nnews\r\n$4\r\ndata\r\n$5\r\nhello\r\n*2\r\n$15\r\n1700000000000-1\r\n*2\r\n$4\r\ndata\r\n$0\r\n\r\n";
    // Recorded from redis-server 7.0.15 (`XRANGE s - +`).
    const XRANGE_REPLY: &[u8] = b"*2\r\n*2\r\n$15\r\n1700000000000-0\r\n*4\r\n$5\r\ntopic\r\n$4\r\nnews\r\n$4\r\ndata\r\n$5\r\nhello\r\n*2\r\n$15\r\n1700000000000-1\r\n*2\r\n$4\r\ndata\r\n$0\r\n\r\n";

    fn recorded_entries() -> Value {
        array(vec![
            array(vec![
                bulk(b"1700000000000-0"),
                array(vec![
                    bulk(b"topic"),
                    bulk(b"news"),
                    bulk(b"data"),
                    bulk(b"hello"),
                ]),
            ]),
            array(vec![
                bulk(b"1700000000000-1"),
                array(vec![bulk(b"data"), bulk(b"")]),
            ]),
        ])
    }

    #[test]
    fn parses_recorded_stream_replies() {
        assert_eq!(parse(XRANGE_REPLY).ok(), Some(recorded_entries()));
        let stream = array(vec![bulk(b"s"), recorded_entries()]);
        assert_eq!(parse(XREAD_REPLY).ok(), Some(array(vec![stream])));
        // An XREAD BLOCK that timed out, and EXEC after a refused command.
        assert_eq!(parse(b"*-1\r\n").ok(), Some(Value::Array(None)));
        let aborted = b"-EXECABORT Transaction discarded because of previous errors.\r\n";
        assert!(
            matches!(parse(aborted), Ok(Value::Error(message)) if message.starts_with("EXECABORT"))
        );
    }

    #[test]
    fn refuses_malformed_replies() {
        check_refused(b"+OK", "reply truncated");
        check_refused(b"+OK\r", "reply truncated");
        check_refused(b"+OK\n", "line not ended by CRLF");
        check_refused(b"+O\rK\r\n", "line not ended by CRLF");
        check_refused(b"\r\n", "empty line where a reply was expected");
        check_refused(b"?1\r\n", "unknown reply type byte");
        check_refused(b"_\r\n", "unknown reply type byte");
        check_refused(b"%1\r\n+a\r\n+b\r\n", "unknown reply type byte");
        check_refused(b":\r\n", "bad integer");
        check_refused(b":12a\r\n", "bad integer");
        check_refused(b": 1\r\n", "bad integer");
        check_refused(b":9223372036854775808\r\n", "bad integer");
        check_refused(b":-9223372036854775809\r\n", "bad integer");
        check_refused(b"$\r\n", "bad length");
        check_refused(b"$x\r\n", "bad length");
        check_refused(b"$+5\r\nhello\r\n", "bad length");
        check_refused(b"$-2\r\n", "bad length");
        check_refused(b"$-0\r\n\r\n", "bad length");
        check_refused(b"*-5\r\n", "bad length");
        check_refused(b"$ 5\r\nhello\r\n", "bad length");
        check_refused(b"$99999999999999999999\r\n", "bad length");
        check_refused(
            b"$5\r\nhello world\r\n",
            "bulk string longer than announced",
        );
        check_refused(b"$5\r\nhello", "reply truncated");
        check_refused(b"$5\r\nhel", "reply truncated");
        check_refused(b"$5\r\nhello\r", "reply truncated");
        check_refused(b"*2\r\n:1\r\n", "reply truncated");
        check_refused(
            XREAD_REPLY.get(..XREAD_REPLY.len() - 1).unwrap_or_default(),
            "reply truncated",
        );
        assert!(matches!(parse(b""), Err(RedisError::Closed)));
    }

    #[test]
    fn refuses_nesting_past_the_limit() {
        let nested = |depth: usize| {
            let mut bytes = b"*1\r\n".repeat(depth);
            bytes.extend_from_slice(b":1\r\n");
            bytes
        };
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        check_refused(&nested(MAX_DEPTH + 1), "arrays nested too deep");
        // Deep enough to overflow the stack if depth were not checked.
        check_refused(&nested(1_000_000), "arrays nested too deep");
    }

    /// Checks that an over-limit length is refused right after its header: no
    /// byte after it is read, so nothing of the announced size is allocated.
    fn check_refused_at_header(header: &[u8], reason: &str) {
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(b"more bytes that must not be read");
        let mut reader = Cursor::new(&bytes[..]);
        assert!(matches!(read_value(&mut reader), Err(RedisError::Protocol(got)) if got == reason));
        assert_eq!(reader.position(), header.len() as u64);
    }

    #[test]
    fn refuses_lengths_past_the_limits_without_allocating_them() {
        let just_over = format!("${}\r\n", MAX_BULK_BYTES + 1);
        check_refused_at_header(just_over.as_bytes(), "bulk string over the size limit");
        check_refused_at_header(b"$4294967296\r\n", "bulk string over the size limit");
        check_refused_at_header(
            b"$18446744073709551615\r\n",
            "bulk string over the size limit",
        );
        let too_many = format!("*{}\r\n", MAX_VALUES);
        check_refused_at_header(too_many.as_bytes(), "reply with too many values");
        check_refused_at_header(b"*18446744073709551615\r\n", "reply with too many values");
        check_refused_at_header(b"*2\r\n*4294967296\r\n", "reply with too many values");
    }

    #[test]
    fn a_bulk_at_the_limit_is_read() {
        let mut bytes = format!("${MAX_BULK_BYTES}\r\n").into_bytes();
        bytes.resize(bytes.len() + MAX_BULK_BYTES as usize, b'x');
        bytes.extend_from_slice(b"\r\n");
        assert!(
            matches!(parse(&bytes), Ok(Value::Bulk(Some(data))) if data.len() as u64 == MAX_BULK_BYTES)
        );
    }

    #[test]
    fn refuses_a_line_past_the_limit() {
        let mut line = b"+".to_vec();
        line.resize(1 + MAX_LINE_BYTES as usize, b'a');
        line.extend_from_slice(b"\r\n");
        check_refused(&line, "line over the length limit");
        // One byte shorter (the type byte counts) is accepted.
        line.remove(1);
        assert!(parse(&line).is_ok());
    }

    #[test]
    fn refuses_more_values_than_the_limit_in_nested_arrays() {
        // The outer array, the inner array and its elements use the whole
        // budget; the outer array's second element is one value too many.
        let inner = MAX_VALUES - 2;
        let mut bytes = format!("*2\r\n*{inner}\r\n").into_bytes();
        for _ in 0..inner {
            bytes.extend_from_slice(b":1\r\n");
        }
        bytes.extend_from_slice(b":2\r\n");
        check_refused(&bytes, "reply with too many values");
    }

    /// Sends `*N` and then bulk strings of `MAX_BULK_BYTES` forever, without
    /// holding them in memory.
    struct EndlessBulks {
        header: Vec<u8>,
        sent: u64,
    }

    impl Read for EndlessBulks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if !self.header.is_empty() {
                let n = buf.len().min(self.header.len());
                buf[..n].copy_from_slice(&self.header[..n]);
                self.header.drain(..n);
                return Ok(n);
            }
            let head = format!("${MAX_BULK_BYTES}\r\n");
            let item = head.len() as u64 + MAX_BULK_BYTES + 2;
            let offset = self.sent % item;
            let byte = if offset < head.len() as u64 {
                head.as_bytes()[offset as usize]
            } else if offset < item - 2 {
                b'x'
            } else if offset == item - 2 {
                b'\r'
            } else {
                b'\n'
            };
            // One byte at a time is slow; fill with data bytes where possible.
            let run = if byte == b'x' {
                (item - 2 - offset).min(buf.len() as u64) as usize
            } else {
                1
            };
            buf[..run].fill(byte);
            self.sent += run as u64;
            Ok(run)
        }
    }

    #[test]
    fn refuses_a_reply_past_the_size_limit() {
        let count = MAX_REPLY_BYTES / MAX_BULK_BYTES + 1;
        let source = EndlessBulks {
            header: format!("*{count}\r\n").into_bytes(),
            sent: 0,
        };
        let mut reader = std::io::BufReader::new(source);
        assert!(matches!(
            read_value(&mut reader),
            Err(RedisError::Protocol("reply over the size limit"))
        ));
    }

    use crate::testing::Rng;

    impl Rng {
        fn bytes(&mut self, alphabet: &[u8]) -> Vec<u8> {
            let len = self.below(12);
            (0..len)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect()
        }
    }

    fn random_value(rng: &mut Rng, depth: usize) -> Value {
        let line_bytes = b"abcXYZ 019-+:$*";
        let any_bytes = b"ab\r\n\0\xff$*:+-";
        match rng.below(if depth < 4 { 7 } else { 5 }) {
            0 => Value::Simple(String::from_utf8_lossy(&rng.bytes(line_bytes)).into_owned()),
            1 => Value::Error(String::from_utf8_lossy(&rng.bytes(line_bytes)).into_owned()),
            2 => Value::Integer(rng.next() as i64 >> rng.below(64)),
            3 => Value::Bulk(Some(rng.bytes(any_bytes))),
            4 => Value::Bulk(None),
            5 => Value::Array(None),
            _ => Value::Array(Some(
                (0..rng.below(5))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            )),
        }
    }

    fn encode_value(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Simple(text) => out.extend_from_slice(format!("+{text}\r\n").as_bytes()),
            Value::Error(text) => out.extend_from_slice(format!("-{text}\r\n").as_bytes()),
            Value::Integer(number) => out.extend_from_slice(format!(":{number}\r\n").as_bytes()),
            Value::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Value::Bulk(Some(data)) => {
                out.extend_from_slice(format!("${}\r\n", data.len()).as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            Value::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Value::Array(Some(items)) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                items.iter().for_each(|item| encode_value(item, out));
            }
        }
    }

    #[test]
    fn random_replies_round_trip_and_broken_ones_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let value = random_value(&mut rng, 0);
            let mut bytes = Vec::new();
            encode_value(&value, &mut bytes);
            assert_eq!(parse(&bytes).ok().as_ref(), Some(&value));
            // Every strict prefix of one reply is refused.
            for end in 0..bytes.len() {
                assert!(
                    parse(&bytes[..end]).is_err(),
                    "{:?}",
                    String::from_utf8_lossy(&bytes[..end])
                );
            }
            // A few mutations; each must return, whatever it returns, and so
            // must every prefix of the mutated bytes.
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len() + 1);
                let byte = b"\r\n-0123456789$*+:x\xff"[rng.below(18)];
                match rng.below(3) {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 if at < bytes.len() => drop(bytes.remove(at)),
                    _ => bytes.insert(at, byte),
                }
            }
            for end in 0..=bytes.len() {
                let _ = parse(&bytes[..end]);
            }
        }
    }
}
