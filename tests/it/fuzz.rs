//! Seeded random input (SPEC §4: "No input, however malformed or slow, may
//! panic the server, stall other clients, grow memory without bound"): valid
//! requests, bodies and event streams, mutated and truncated, fed to the
//! parsers in memory (whole and a few bytes per read) and, for a sample of
//! heads, to a real server over TCP.
//!
//! The generator is a fixed-seed xorshift64*, so every run sees the same
//! cases and a failure names the seed and case that reproduce it.

use std::fmt::Debug;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use tinysse::Config;
use tinysse::http::{Conn, Framing, Stream, percent_encode};
use tinysse::{Message, Parser};

use crate::support::{self, metric, raw, subscribe, wait_until};

/// The spec's limits (SPEC §4), written out rather than taken from the crate.
const MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;
/// The parser's default limit for one line or event.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Bytes `Conn` asks for per read (`http::READ_CHUNK`): the most one read can
/// add to its buffer past a limit.
const READ_CHUNK: usize = 4096;
/// Statuses `read_head` may answer with.
const HEAD_STATUSES: [u16; 6] = [400, 408, 414, 431, 501, 505];
/// Statuses `read_body` may answer with.
const BODY_STATUSES: [u16; 4] = [400, 408, 413, 431];

/// xorshift64* (Vigna, 2016): tiny, fast and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1)) // the state must never be zero
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// An in-memory client for `Conn`: hands out `input` at most `max_read` bytes
/// per read (a random count each time), then end of stream, or the input
/// again and again when `endless`. Counts the bytes handed out.
struct Feed {
    input: Vec<u8>,
    pos: usize,
    endless: bool,
    max_read: usize,
    /// Sizes of the first reads, before random ones.
    sizes: Vec<usize>,
    rng: Rng,
    handed_out: usize,
}

impl Feed {
    fn new(input: Vec<u8>, max_read: usize, seed: u64) -> Feed {
        Feed {
            input,
            pos: 0,
            endless: false,
            max_read,
            sizes: Vec::new(),
            rng: Rng::new(seed),
            handed_out: 0,
        }
    }

    /// Hands out `pieces` one per read.
    fn pieces(pieces: &[&[u8]]) -> Feed {
        Feed {
            sizes: pieces.iter().rev().map(|piece| piece.len()).collect(),
            ..Feed::new(pieces.concat(), usize::MAX, 1)
        }
    }

    fn endless(input: Vec<u8>, max_read: usize, seed: u64) -> Feed {
        Feed {
            endless: true,
            ..Feed::new(input, max_read, seed)
        }
    }
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.input.len() {
            if !self.endless || self.input.is_empty() {
                return Ok(0);
            }
            self.pos = 0;
        }
        let wanted = match self.sizes.pop() {
            Some(size) => size,
            None => 1 + self.rng.below(self.max_read),
        };
        let count = buf.len().min(wanted).min(self.input.len() - self.pos);
        buf[..count].copy_from_slice(&self.input[self.pos..self.pos + count]);
        self.pos += count;
        self.handed_out += count;
        Ok(count)
    }
}

impl Stream for Feed {
    fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes that mutations insert: line endings, NUL, a byte that is never
/// UTF-8, separators, and pieces of HTTP and of event streams.
const SPECIALS: &[&[u8]] = &[
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\n\n",
    b"\0",
    b"\xff",
    b"\xef\xbb\xbf",
    b" ",
    b"  ",
    b"\t",
    b":",
    b": ",
    b"\x7f",
    b"%",
    b"%0D%0A",
    b"%ff",
    b"?",
    b"&",
    b"=",
    b"+",
    b"/",
    b"HTTP/2.0",
    b"HTTP/1.9",
    b"Host: t\r\n",
    b"Content-Length: 3\r\n",
    b"Content-Length: 99999999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Expect: 100-continue\r\n",
    b"ffffffffffffffff\r\n",
    b"0\r\n\r\n",
    b"id: 1\n",
    b"retry: 12x\n",
    b"retry: 99999999999999999999999\n",
    b"event: e\n",
    b"data",
    b"data: ",
    b"&event=a%0Db",
    b"&topic=a%20b",
    b"&retry=5",
];

/// Lengths of long runs, around the limits.
const LONG_RUNS: &[usize] = &[
    300,
    MAX_REQUEST_LINE_BYTES - 20,
    MAX_REQUEST_LINE_BYTES + 1,
    MAX_HEAD_BYTES + 1,
];

/// Applies one to four random mutations to `input`.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(10) {
            0 | 1 if !input.is_empty() => {
                let at = rng.below(input.len());
                input[at] ^= 1 << rng.below(8);
            }
            2 if !input.is_empty() => {
                let at = rng.below(input.len());
                input[at] = rng.next() as u8;
            }
            3 => {
                let special = rng.pick(SPECIALS);
                input.splice(at..at, special.iter().copied());
            }
            4 => {
                // Duplicate the line around `at`, once or past the header count.
                let start = input[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let end = input[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(input.len(), |i| at + i + 1);
                let line = input[start..end].to_vec();
                let copies = if rng.below(4) == 0 {
                    MAX_HEADERS + 1
                } else {
                    1
                };
                for _ in 0..copies {
                    input.splice(end..end, line.iter().copied());
                }
            }
            5 => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            6 => input.truncate(at),
            7 => {
                let byte = *rng.pick(b"a: \r/%");
                let count = *rng.pick(LONG_RUNS);
                input.splice(at..at, std::iter::repeat_n(byte, count));
            }
            _ => {
                let count = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..count).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
        }
    }
}

/// A random read size limit: a few bytes per read for small inputs (the
/// worst case for a parser), larger pieces for long ones.
fn small_reads(rng: &mut Rng, len: usize) -> usize {
    match len {
        0..=512 => 1 + rng.below(7),
        513..=4096 => 8 + rng.below(64),
        _ => 256 + rng.below(1024),
    }
}

/// A failing input for a message: escaped, and only its ends when it is long.
fn shown(bytes: &[u8]) -> String {
    if bytes.len() <= 400 {
        return bytes.escape_ascii().to_string();
    }
    format!(
        "{}... ({} bytes) ...{}",
        bytes[..200].escape_ascii(),
        bytes.len(),
        bytes[bytes.len() - 100..].escape_ascii()
    )
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// What a parsed request must look like, whatever the input was.
fn check_request(request: &tinysse::http::Request, case: &dyn Debug) {
    assert!(is_token(&request.method), "{case:?}: {request:?}");
    assert!(
        request.path == "*" || request.path.starts_with('/'),
        "{case:?}: {request:?}"
    );
    for part in [&request.path, &request.query] {
        assert!(
            !part.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#'),
            "{case:?}: {request:?}"
        );
    }
    assert!(!request.path.contains('?'), "{case:?}: {request:?}");
    assert!(request.minor_version <= 1, "{case:?}: {request:?}");
    for (name, value) in &request.headers {
        assert!(is_token(name), "{case:?}: {request:?}");
        assert!(
            !value.contains(['\r', '\n', '\0']) && value.trim() == value,
            "{case:?}: {request:?}"
        );
    }
    let hosts = request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("host"))
        .count();
    assert!(
        hosts == 1 || (hosts == 0 && request.minor_version == 0),
        "{case:?}: {request:?}"
    );
    let _ = (request.keep_alive(), request.expects_continue());
    if let Err(err) = request.query_pairs() {
        assert_eq!(err.status(), 400, "{case:?}: {err}");
    }
}

/// One step of reading a connection, reduced to what must not depend on how
/// the bytes arrived.
#[derive(Debug, PartialEq)]
enum Step {
    Request(tinysse::http::Request),
    Body(Vec<u8>),
    Closed,
    Failed(u16),
}

/// Reads requests (and their bodies, up to 1 KiB) off `conn` until it ends or
/// fails, checking each step.
fn read_requests(conn: &mut Conn<Feed>, case: &dyn Debug) -> Vec<Step> {
    let mut steps = Vec::new();
    // Every request needs at least a few bytes, so this always ends.
    loop {
        let request = match conn.read_head(Duration::from_secs(5)) {
            Ok(Some(request)) => request,
            Ok(None) => {
                steps.push(Step::Closed);
                return steps;
            }
            Err(err) => {
                assert!(HEAD_STATUSES.contains(&err.status()), "{case:?}: {err:?}");
                steps.push(Step::Failed(err.status()));
                return steps;
            }
        };
        check_request(&request, case);
        let framing = request.body_framing();
        steps.push(Step::Request(request));
        match framing {
            Ok(Framing::None) => {}
            Ok(framing) => match conn.read_body(framing, 1024) {
                Ok(body) => {
                    assert!(body.len() <= 1024, "{case:?}");
                    steps.push(Step::Body(body));
                }
                Err(err) => {
                    assert!(BODY_STATUSES.contains(&err.status()), "{case:?}: {err:?}");
                    steps.push(Step::Failed(err.status()));
                    return steps;
                }
            },
            Err(err) => {
                assert!([400, 501].contains(&err.status()), "{case:?}: {err:?}");
                steps.push(Step::Failed(err.status()));
                return steps;
            }
        }
    }
}

/// Valid request heads (some with a body or a second request after them).
const HEADS: &[&[u8]] = &[
    b"GET /events?topic=news&topic=a%2Fb HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nLast-Event-ID: 1-2\r\n\r\n",
    b"POST /publish?topic=x&event=e HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /publish HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET / HTTP/1.0\n\n",
    b"OPTIONS * HTTP/1.1\r\nHost: t\r\nOrigin: http://a\r\nAccess-Control-Request-Method: POST\r\n\r\n",
    b"\r\nGET http://h/healthz HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\nHEAD /metrics HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
];

/// A valid head, mutated.
fn mutated_head(rng: &mut Rng) -> Vec<u8> {
    let mut input = rng.pick(HEADS).to_vec();
    mutate(rng, &mut input);
    input
}

#[test]
fn mutated_request_heads_parse_or_fail_with_a_4xx_or_5xx_whatever_the_read_sizes() {
    for seed in [0x5EED_0001, 0x5EED_0002] {
        let mut rng = Rng::new(seed);
        for case in 0..500 {
            let input = mutated_head(&mut rng);
            let label = (seed, case, shown(&input));
            let whole = read_requests(&mut Conn::new(Feed::new(input.clone(), 1 << 20, 1)), &label);
            let max_read = small_reads(&mut rng, input.len());
            let mut conn = Conn::new(Feed::new(input.clone(), max_read, rng.next()));
            let pieces = read_requests(&mut conn, &label);
            assert_eq!(
                whole, pieces,
                "{label:?}: the outcome depends on read sizes"
            );
            assert!(conn.get_ref().handed_out <= input.len());
        }
    }
}

#[test]
fn endless_garbage_is_refused_after_a_bounded_number_of_bytes() {
    let mut rng = Rng::new(0x6A4B);
    let garbage: Vec<u8> = (0..1 << 20)
        .map(|_| {
            loop {
                let byte = rng.next() as u8;
                if byte != b'\n' {
                    break byte;
                }
            }
        })
        .collect();
    let request_line = b"GET / HTTP/1.1\r\n".to_vec();
    let header_line = [request_line.clone(), b"X: ".to_vec(), garbage.clone()].concat();
    let many_headers = [request_line.clone(), b"X-A: v\r\n".repeat(50_000)].concat();
    let cases: [(&str, Vec<u8>, u16, usize); 3] = [
        (
            "a request line without its end",
            garbage,
            414,
            MAX_REQUEST_LINE_BYTES + READ_CHUNK,
        ),
        (
            "a header line without its end",
            header_line,
            431,
            request_line.len() + MAX_HEAD_BYTES + READ_CHUNK,
        ),
        (
            "header lines without an end",
            many_headers,
            431,
            request_line.len() + (MAX_HEADERS + 1) * 8 + READ_CHUNK,
        ),
    ];
    for (what, input, status, bound) in cases {
        for max_read in [READ_CHUNK, 100, 7] {
            let mut conn = Conn::new(Feed::new(input.clone(), max_read, 9));
            let err = conn.read_head(Duration::from_secs(5)).unwrap_err();
            assert_eq!(err.status(), status, "{what}: {err}");
            assert!(
                conn.get_ref().handed_out <= bound,
                "{what}: read {} bytes before refusing (bound {bound})",
                conn.get_ref().handed_out
            );
        }
    }
}

#[test]
fn endless_blank_lines_before_a_request_end_at_the_head_deadline() {
    for max_read in [READ_CHUNK, 3] {
        let mut conn = Conn::new(Feed::endless(b"\r\n".to_vec(), max_read, 5));
        let started = Instant::now();
        let result = conn.read_head(Duration::from_millis(200));
        assert!(
            matches!(&result, Ok(None)) || matches!(&result, Err(err) if err.status() == 408),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

/// Valid chunked bodies (one with a next request after it).
const CHUNKED: &[&[u8]] = &[
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
    b"0\r\n\r\n",
    b"A\r\n0123456789\r\n1\n!\n0\n\n",
    b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"400\r\n",
];

#[test]
fn mutated_bodies_are_read_within_max_or_refused_with_a_4xx() {
    let mut rng = Rng::new(0xB0D1);
    for case in 0..2000 {
        let mut input = rng.pick(CHUNKED).to_vec();
        if input.starts_with(b"400\r\n") {
            input.extend(std::iter::repeat_n(b'z', 0x400));
            input.extend_from_slice(b"\r\n0\r\n\r\n");
        }
        mutate(&mut rng, &mut input);
        let max = *rng.pick(&[0, 1, 5, 16, 1024, 4096]);
        let label = (case, max, shown(&input));
        let mut statuses = Vec::new();
        for max_read in [1 << 20, small_reads(&mut rng, input.len())] {
            let mut conn = Conn::new(Feed::new(input.clone(), max_read, rng.next()));
            match conn.read_body(Framing::Chunked, max) {
                Ok(body) => {
                    assert!(body.len() <= max, "{label:?}");
                    statuses.push(200);
                }
                Err(err) => {
                    assert!(BODY_STATUSES.contains(&err.status()), "{label:?}: {err:?}");
                    statuses.push(err.status());
                }
            }
        }
        assert_eq!(
            statuses[0], statuses[1],
            "{label:?}: the outcome depends on read sizes"
        );

        // The same bytes as a Content-Length body: exactly predictable.
        let length = rng.below(input.len() + 8);
        let mut conn = Conn::new(Feed::new(input.clone(), 1 + rng.below(64), rng.next()));
        match conn.read_body(Framing::Length(length as u64), max) {
            Ok(body) => {
                assert!(length <= max && length <= input.len(), "{label:?}");
                assert_eq!(body, input[..length], "{label:?}");
            }
            Err(err) if length > max => {
                assert_eq!(err.status(), 413, "{label:?}");
                assert_eq!(
                    conn.get_ref().handed_out,
                    0,
                    "{label:?}: read a refused body"
                );
            }
            Err(err) => {
                assert!(length > input.len(), "{label:?}: {err}");
                assert_eq!(err.status(), 400, "{label:?}");
            }
        }
    }
}

#[test]
fn chunked_body_with_a_crlf_split_across_reads_is_read_whole() {
    // The CRLF after chunk data arrives in two TCP segments.
    let mut conn = Conn::new(Feed::pieces(&[b"5\r\nhello\r", b"\n0\r\n\r\n"]));
    let body = conn.read_body(Framing::Chunked, 1024);
    assert_eq!(body.unwrap(), b"hello");
    // The same for the CRLF of a chunk-size line and of the last line.
    let mut conn = Conn::new(Feed::pieces(&[b"5\r", b"\nhello\r\n0\r", b"\n\r", b"\n"]));
    let body = conn.read_body(Framing::Chunked, 1024);
    assert_eq!(body.unwrap(), b"hello");
}

#[test]
fn oversized_chunked_trailers_get_the_same_status_however_they_arrive() {
    let input = [
        b"0\r\nX: ".as_slice(),
        &[b'a'; 2 * MAX_HEAD_BYTES],
        b"\r\n\r\n",
    ]
    .concat();
    let status = |max_read: usize| {
        let mut conn = Conn::new(Feed::new(input.clone(), max_read, 2));
        conn.read_body(Framing::Chunked, 1024).unwrap_err().status()
    };
    assert_eq!(status(usize::MAX), 431);
    assert_eq!(status(1000), 431);
}

#[test]
fn endless_chunked_bodies_are_refused_after_a_bounded_number_of_bytes() {
    let trailers = [b"0\r\n".to_vec(), b"X: trailer\r\n".repeat(1 << 16)].concat();
    let cases: [(&str, Vec<u8>, bool, usize); 4] = [
        (
            "a chunk-size line without its end",
            b"1".to_vec(),
            true,
            1024 + 2 * READ_CHUNK,
        ),
        (
            "a chunk extension without its end",
            b"1;aaaaaaaa".to_vec(),
            true,
            1024 + 2 * READ_CHUNK,
        ),
        (
            "chunks past max",
            b"1\r\na\r\n".to_vec(),
            true,
            1024 * 6 + READ_CHUNK,
        ),
        (
            "trailers without an end",
            trailers,
            false,
            MAX_HEAD_BYTES + 2 * READ_CHUNK,
        ),
    ];
    for (what, input, endless, bound) in cases {
        for max_read in [READ_CHUNK, 5] {
            let feed = if endless {
                Feed::endless(input.clone(), max_read, 3)
            } else {
                Feed::new(input.clone(), max_read, 3)
            };
            let mut conn = Conn::new(feed);
            let err = conn.read_body(Framing::Chunked, 1024).unwrap_err();
            assert!([400, 413, 431].contains(&err.status()), "{what}: {err:?}");
            assert!(
                conn.get_ref().handed_out <= bound,
                "{what}: read {} bytes before refusing (bound {bound})",
                conn.get_ref().handed_out
            );
        }
    }
    let mut conn = Conn::new(Feed::endless(b"x".to_vec(), READ_CHUNK, 3));
    let err = conn.read_body(Framing::Length(u64::MAX), 1024).unwrap_err();
    assert_eq!(err.status(), 413);
    assert_eq!(conn.get_ref().handed_out, 0);
}

/// Publish bodies, one per content type family.
const FORMS: &[&[u8]] = &[
    b"data=hello&topic=t&event=e&retry=5",
    b"data=a%0Ab+c%0D%0Ad&type=x",
    b"data=",
];
const BATCHES: &[&[u8]] = &[
    b": c\ndata: a\ndata:  b\r\n\r\nevent: e\nretry: 5\ndata\n\nevent: lost\n\ndata: last",
    b"data: x\rdata: y\r\r\xef\xbb\xbfdata: z\n\n",
    b"event: only\n\n: c\n",
];
const PLAIN: &[&[u8]] = &[b"hello\r\nworld\n", b"", b" lead\0nul"];
const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/x-www-form-urlencoded"),
    Some("text/event-stream"),
    Some("TEXT/EVENT-STREAM; charset=utf-8"),
    None,
    Some("text/plain"),
];
const QUERY: &[(&str, &str)] = &[
    ("topic", "news"),
    ("topic", ""),
    ("topic", "a b"),
    ("event", "e"),
    ("event", "a\nb"),
    ("type", "t"),
    ("retry", "10"),
    ("retry", "x"),
    ("data", "q"),
];

/// What a client sees for `data` after the wire (CRLF and CR become LF).
fn as_received(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

#[test]
fn mutated_publish_bodies_give_valid_events_or_a_400() {
    let server = support::start(support::config());
    let mut subscriber = subscribe(server.addr, "/events", "");
    let mut connection = support::connect(server.addr);
    let mut rng = Rng::new(0x9B1);
    for case in 0..1500 {
        let content_type = *rng.pick(CONTENT_TYPES);
        let corpus = match content_type {
            Some(kind) if kind.starts_with("application") => FORMS,
            Some(kind)
                if kind.eq_ignore_ascii_case("text/event-stream") || kind.starts_with("TEXT") =>
            {
                BATCHES
            }
            _ => PLAIN,
        };
        let mut body = rng.pick(corpus).to_vec();
        mutate(&mut rng, &mut body);
        let query: Vec<String> = (0..rng.below(4))
            .map(|_| {
                let (name, value) = rng.pick(QUERY);
                format!("{}={}", percent_encode(name), percent_encode(value))
            })
            .collect();
        let mut request = format!(
            "POST /publish?{} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n",
            query.join("&"),
            body.len()
        );
        if let Some(content_type) = content_type {
            request.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(&body);
        let label = (case, content_type, &query, shown(&body));
        if let Err(err) = connection.write_all(&bytes) {
            // Over the body limit the server answers 413 and closes before
            // reading it all: the rest of the write meets a reset.
            assert!(body.len() > 64 * 1024, "{label:?}: {err}");
            connection = support::connect(server.addr);
            continue;
        }
        let response = support::read_response(&mut connection);
        if response.status != 200 {
            assert!(
                [400, 413].contains(&response.status),
                "{label:?}: {response:?}"
            );
            let reason = response.text();
            assert_eq!(
                reason.trim_end().lines().count(),
                1,
                "{label:?}: {reason:?}"
            );
            if response.header("connection").is_some() {
                connection = support::connect(server.addr);
            }
            continue;
        }
        // Valid events reach a subscriber, in order, as they were published.
        let ids: Vec<String> = response.text().lines().map(str::to_string).collect();
        assert!(!ids.is_empty(), "{label:?}");
        for id in &ids {
            let message = subscriber.next_event();
            assert_eq!(&message.id, id, "{label:?}");
            assert!(!message.event.contains(['\r', '\n']), "{label:?}");
            assert!(!message.data.contains('\r'), "{label:?}");
            // A body of any other type is the data, as is.
            if std::ptr::eq(corpus, PLAIN) {
                let published = String::from_utf8(body.clone()).expect("a 200 needs UTF-8");
                assert_eq!(message.data, as_received(&published), "{label:?}");
            }
        }
    }
}

/// Event streams as a server or a publisher would write them.
const STREAMS: &[&[u8]] = &[
    b"retry: 3000\n\nid: 1-1\nevent: note\ndata: hello\ndata: world\n\n: heartbeat\n\nid: 1-2\ndata:\n\n",
    b"data: a\r\ndata:b\r\rid\nevent\ndata\n\n",
    b"\xef\xbb\xbfdata: bom\n\nid: a\0b\ndata: nul id ignored\n\n",
    b"field without colon\nretry: 12x\nretry: 77\ndata:  two spaces\n\nevent: gap\ndata: 1-0\n\n",
];

/// Feeds `input` to a parser with `limit` in pieces of at most `max_read`
/// bytes; returns the messages, whether any feed failed, the last id and retry.
fn parse_in_pieces(
    input: &[u8],
    limit: usize,
    max_read: usize,
    rng: &mut Rng,
) -> (Vec<Message>, bool, String, Option<u64>) {
    let mut parser = Parser::with_limit(limit);
    let mut messages = Vec::new();
    let mut failed = false;
    let mut rest = input;
    while !rest.is_empty() {
        let count = (1 + rng.below(max_read)).min(rest.len());
        if let Err(err) = parser.feed(&rest[..count], &mut messages) {
            assert_eq!(err.status(), 413, "{err:?}");
            failed = true;
        }
        rest = &rest[count..];
    }
    (
        messages,
        failed,
        parser.last_event_id().to_string(),
        parser.retry(),
    )
}

#[test]
fn mutated_event_streams_parse_the_same_in_any_pieces() {
    let mut rng = Rng::new(0x57EA);
    for case in 0..2000 {
        let mut input = rng.pick(STREAMS).to_vec();
        mutate(&mut rng, &mut input);
        let limit = *rng.pick(&[8, 64, 1024, MAX_EVENT_BYTES]);
        let label = (case, limit, shown(&input));
        let whole = parse_in_pieces(&input, limit, usize::MAX, &mut rng);
        let max_read = small_reads(&mut rng, input.len());
        let pieces = parse_in_pieces(&input, limit, max_read, &mut rng);
        assert_eq!(whole, pieces, "{label:?}");
        let (messages, _, last_id, _) = whole;
        assert!(!last_id.contains(['\0', '\r', '\n']), "{label:?}");
        for message in messages {
            assert!(!message.event.contains(['\r', '\n']), "{label:?}");
            assert!(!message.id.contains(['\0', '\r', '\n']), "{label:?}");
            assert!(message.data.len() <= limit, "{label:?}: {message:?}");
        }
    }
}

/// Cuts `input` before its first blank line, so that it is never a whole head.
fn incomplete(mut input: Vec<u8>) -> Vec<u8> {
    let end = input
        .windows(2)
        .position(|w| w == b"\n\n")
        .into_iter()
        .chain(input.windows(3).position(|w| w == b"\n\r\n"))
        .min();
    if let Some(end) = end {
        input.truncate(end + 1);
    }
    input
}

/// Reads until a status line, the end of the stream or a reset, before
/// `deadline`; panics if none of them comes.
fn status_line_or_close(stream: &mut TcpStream, deadline: Instant, case: &dyn Debug) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => {
                assert!(received.is_empty(), "{case:?}: cut short: {received:?}");
                return;
            }
            Ok(count) => received.extend_from_slice(&chunk[..count]),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if err.kind() == ErrorKind::ConnectionReset => return,
            Err(err) => panic!(
                "{case:?}: no answer and no close in time ({err}); received {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
        if let Some(end) = received.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&received[..end]);
            let status = line
                .strip_prefix("HTTP/1.1 ")
                .and_then(|rest| rest.get(..3))
                .and_then(|code| code.parse::<u16>().ok());
            assert!(status.is_some(), "{case:?}: bad status line {line:?}");
            return;
        }
    }
}

#[test]
fn mutated_heads_over_tcp_get_an_answer_or_a_close_in_time_and_the_server_stays_healthy() {
    let head_timeout = Duration::from_secs(1);
    let server = support::start(Config {
        head_timeout,
        // Subscriptions the cases opened end at the first heartbeat after
        // their clients left.
        heartbeat: Duration::from_secs(1),
        ..support::config()
    });
    let mut rng = Rng::new(0x7C9);
    // 180 cases that send everything and half-close, in batches of 20, then
    // 20 incomplete heads left open, all at once: each must end by itself.
    let mut batches: Vec<Vec<(Vec<u8>, bool)>> = (0..9)
        .map(|_| (0..20).map(|_| (mutated_head(&mut rng), true)).collect())
        .collect();
    batches.push(
        (0..20)
            .map(|_| (incomplete(mutated_head(&mut rng)), false))
            .collect(),
    );
    for (batch_number, batch) in batches.into_iter().enumerate() {
        let deadline = Instant::now() + head_timeout + Duration::from_secs(4);
        let mut open = Vec::new();
        for (case, (input, half_close)) in batch.into_iter().enumerate() {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            // The server may answer and close before reading everything.
            let _ = stream.write_all(&input);
            if half_close {
                let _ = stream.shutdown(Shutdown::Write);
            }
            let label = (batch_number, case, shown(&input));
            open.push((stream, label));
        }
        for (mut stream, label) in open {
            status_line_or_close(&mut stream, deadline, &label);
        }
    }

    let healthz = raw(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((healthz.status, healthz.text().as_str()), (200, "ok\n"));
    let mut subscriber = subscribe(server.addr, "/events?topic=after-fuzz", "");
    let (status, _) = support::publish(server.addr, "?topic=after-fuzz", None, b"alive");
    assert_eq!(status, 200);
    assert_eq!(subscriber.next_event().data, "alive");
    drop(subscriber);
    wait_until("every fuzz connection is closed", || {
        metric(server.addr, "tinysse_connections") == 1
    });
}
