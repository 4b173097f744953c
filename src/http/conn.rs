//! [`Conn`]: one end of an HTTP/1.1 connection, reading heads and bodies with
//! limits and deadlines. The one I/O type of the `http` module: it reads from
//! a [`Stream`] given to it and never opens a socket.

// Implementation notes
//
// `Conn` owns one read buffer. Bytes read past the end of a message (the next
// request on a keep-alive connection) stay in it for the next read. Limits
// are checked while scanning, so the buffer never grows past the head limits
// plus one read. Every read is given the time left before a deadline, so a
// client sending one byte a second still gets its 408 on time.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::Error;

use super::body::Chunked;
use super::head::{
    Framing, HeadScan, Limits, REQUEST_LIMITS, RESPONSE_LIMITS, Request, ResponseHead,
    find_head_end, parse_request, parse_response,
};

/// Time allowed to receive a whole request head; past it: 408 and close.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to receive a whole request body; past it: 408 and close.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes asked for per read.
const READ_CHUNK: usize = 4096;

/// `timeout` from now; a timeout too large to add (a huge configured value)
/// means a year.
fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// A byte stream whose reads can be given a time limit: a `TcpStream`, or
/// bytes in memory (`&[u8]`, whose reads never block).
pub trait Stream: Read {
    /// Limits how long one read may block; `None` blocks for ever.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl Stream for &[u8] {
    fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// One end of an HTTP/1.1 connection: a stream and the bytes read from it
/// but not used yet. The server reads requests with it; a client reads
/// responses.
///
/// ```
/// use tinysse::http::{Conn, HEAD_TIMEOUT};
///
/// let input = &b"POST /publish HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"[..];
/// let mut conn = Conn::new(input);
/// let request = conn.read_head(HEAD_TIMEOUT)?.expect("a request");
/// let body = conn.read_body(request.body_framing()?, 1024)?;
/// assert_eq!((request.path.as_str(), body.as_slice()), ("/publish", &b"hi"[..]));
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug)]
pub struct Conn<S> {
    stream: S,
    /// Bytes read; those before `pos` are used up.
    buf: Vec<u8>,
    pos: usize,
}

impl<S: Stream> Conn<S> {
    /// A connection over `stream`, nothing read yet.
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// The stream, to write to it.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Bytes read from the stream and not used yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Frees the read buffer (a stream that only writes from now on).
    pub(crate) fn release_buffer(&mut self) {
        self.buf = Vec::new();
        self.pos = 0;
    }

    /// Reads more bytes, waiting until `deadline` at most; 0 at the end of
    /// the stream. `late` is the error for a deadline passed.
    fn fill(&mut self, deadline: Instant, late: fn() -> Error) -> Result<usize, Error> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(late());
        }
        self.stream.set_read_timeout(Some(remaining))?;
        let filled = self.buf.len();
        self.buf.resize(filled + READ_CHUNK, 0);
        let result = loop {
            match self.stream.read(&mut self.buf[filled..]) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match result {
            Ok(count) => {
                self.buf.truncate(filled + count);
                Ok(count)
            }
            Err(err) => {
                self.buf.truncate(filled);
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    Err(late())
                } else {
                    Err(Error::Io(err))
                }
            }
        }
    }

    /// Reads and parses the first request head of a connection, allowing
    /// `timeout` for all of it.
    ///
    /// Returns `Ok(None)` when the client closed the connection before sending
    /// any byte. Errors carry their status: 414, 431, 408 (also for a client
    /// that sent nothing at all), 400 or 505.
    ///
    /// ```
    /// use tinysse::http::{Conn, HEAD_TIMEOUT};
    ///
    /// let err = Conn::new(&b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"[..]).read_head(HEAD_TIMEOUT).unwrap_err();
    /// assert_eq!(err.status(), 505);
    /// // A client that connects and closes without a byte is not an error.
    /// assert!(Conn::new(&b""[..]).read_head(HEAD_TIMEOUT)?.is_none());
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn read_head(&mut self, timeout: Duration) -> Result<Option<Request>, Error> {
        self.read_request_head(timeout, false)
    }

    /// Like [`Conn::read_head`], for the next request on a keep-alive
    /// connection: a client silent for the whole timeout is not an error
    /// (`Ok(None)`: close quietly), since it may just be done.
    ///
    /// Serving pipelined requests on one keep-alive connection:
    ///
    /// ```
    /// use tinysse::http::{Conn, HEAD_TIMEOUT};
    ///
    /// let mut conn = Conn::new(&b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"[..]);
    /// let mut paths = vec![conn.read_head(HEAD_TIMEOUT)?.unwrap().path];
    /// while let Some(request) = conn.read_next_head(HEAD_TIMEOUT)? {
    ///     paths.push(request.path);
    /// }
    /// assert_eq!(paths, ["/a", "/b"]);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn read_next_head(&mut self, timeout: Duration) -> Result<Option<Request>, Error> {
        self.read_request_head(timeout, true)
    }

    fn read_request_head(
        &mut self,
        timeout: Duration,
        idle_ok: bool,
    ) -> Result<Option<Request>, Error> {
        // "In the interest of robustness, a server that is expecting to
        // receive and parse a request-line SHOULD ignore at least one empty
        // line (CRLF) received prior to the request-line." (RFC 9112 §2.2)
        let skip_blank_lines = true;
        let head = self.read_raw_head(timeout, REQUEST_LIMITS, skip_blank_lines);
        match head {
            Ok(Some(end)) => {
                let request = parse_request(&self.buf[self.pos..self.pos + end]);
                self.pos += end;
                request.map(Some)
            }
            Ok(None) => Ok(None),
            Err((Error::HeadTimeout, false)) if idle_ok => Ok(None),
            Err((err, _)) => Err(err),
        }
    }

    /// Reads a response head (a client's side), allowing `timeout` for all
    /// of it.
    ///
    /// ```
    /// use tinysse::http::{Conn, Framing};
    /// use std::time::Duration;
    ///
    /// let mut conn = Conn::new(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nid"[..]);
    /// let head = conn.read_response_head(Duration::from_secs(10))?;
    /// assert_eq!((head.status, head.body_framing()), (200, Framing::Length(2)));
    /// assert_eq!(conn.read_body(head.body_framing(), 1024)?, b"id");
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn read_response_head(&mut self, timeout: Duration) -> Result<ResponseHead, Error> {
        match self.read_raw_head(timeout, RESPONSE_LIMITS, false) {
            Ok(Some(end)) => {
                let head = parse_response(&self.buf[self.pos..self.pos + end]);
                self.pos += end;
                head
            }
            Ok(None) => Err(Error::BadResponse("the connection closed before an answer")),
            Err((Error::RequestLineTooLong | Error::HeadersTooLarge, _)) => {
                Err(Error::BadResponse("response head too large"))
            }
            Err((Error::BadRequest(why), _)) => Err(Error::BadResponse(why)),
            Err((err, _)) => Err(err),
        }
    }

    /// Reads until a whole head is buffered; returns its length from `pos`,
    /// or `None` when the stream ended before its first byte. An error comes
    /// with whether any byte of the head had arrived.
    fn read_raw_head(
        &mut self,
        timeout: Duration,
        limits: Limits,
        skip_blank_lines: bool,
    ) -> Result<Option<usize>, (Error, bool)> {
        let deadline = deadline(timeout);
        let mut scan = HeadScan::default();
        loop {
            while skip_blank_lines
                && (self.buffered().starts_with(b"\r\n") || self.buffered().starts_with(b"\n"))
            {
                self.pos += if self.buf[self.pos] == b'\r' { 2 } else { 1 };
                scan = HeadScan::default();
            }
            let unused = &self.buf[self.pos..];
            let started = !unused.is_empty();
            match find_head_end(unused, &mut scan, limits) {
                Ok(Some(end)) => return Ok(Some(end)),
                Ok(None) => {}
                Err(err) => return Err((err, started)),
            }
            match self.fill(deadline, || Error::HeadTimeout) {
                Ok(0) if started => {
                    return Err((Error::BadRequest("connection closed mid-head"), true));
                }
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(err) => return Err((err, started)),
            }
        }
    }

    /// Reads a whole body of at most `max` bytes (more: 413), within 30 s.
    pub fn read_body(&mut self, framing: Framing, max: usize) -> Result<Vec<u8>, Error> {
        let deadline = deadline(BODY_TIMEOUT);
        let mut body = Vec::new();
        let mut reader = Body::new(framing);
        if let Framing::Length(length) = framing {
            if length > max as u64 {
                return Err(Error::BodyTooLarge { limit: max });
            }
            body.reserve_exact(length as usize);
        }
        loop {
            let budget = max.saturating_sub(body.len()) as u64;
            // `next_piece` knows the bytes left, not the limit: name it here.
            let piece = reader
                .next_piece(self, deadline, usize::MAX, budget)
                .map_err(|err| match err {
                    Error::BodyTooLarge { .. } => Error::BodyTooLarge { limit: max },
                    err => err,
                })?;
            if piece.is_empty() {
                return Ok(body);
            }
            if piece.len() as u64 > budget {
                return Err(Error::BodyTooLarge { limit: max });
            }
            body.extend_from_slice(piece);
        }
    }

    /// A reader of the body that follows (a response's, as it streams in):
    /// each read waits at most `idle` for more bytes.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::Duration;
    /// use tinysse::http::Conn;
    ///
    /// let input = &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ndata:\r\n3\r\n x\n\r\n0\r\n\r\n"[..];
    /// let mut conn = Conn::new(input);
    /// let head = conn.read_response_head(Duration::from_secs(10))?;
    /// let mut stream = String::new();
    /// conn.body_reader(head.body_framing(), Duration::from_secs(300)).read_to_string(&mut stream)?;
    /// assert_eq!(stream, "data: x\n");
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn body_reader(&mut self, framing: Framing, idle: Duration) -> BodyReader<'_, S> {
        BodyReader {
            conn: self,
            body: Body::new(framing),
            idle,
        }
    }
}

/// Where a body is, as it is read.
#[derive(Debug)]
struct Body {
    framing: Framing,
    /// `Framing::Length`: bytes to go.
    left: u64,
    chunked: Chunked,
}

impl Body {
    fn new(framing: Framing) -> Body {
        let left = match framing {
            Framing::Length(length) => length,
            _ => 0,
        };
        Body {
            framing,
            left,
            chunked: Chunked::default(),
        }
    }

    /// The next piece of body bytes, at most `max`, reading from the stream
    /// as needed; empty at the end of the body. A chunk announced larger than
    /// `budget` is refused (413, with `budget` as the limit) before its bytes
    /// are read.
    fn next_piece<'c, S: Stream>(
        &mut self,
        conn: &'c mut Conn<S>,
        deadline: Instant,
        max: usize,
        budget: u64,
    ) -> Result<&'c [u8], Error> {
        loop {
            let done = match self.framing {
                Framing::None => true,
                Framing::Length(_) => self.left == 0,
                Framing::Chunked => self.chunked.is_done(),
                Framing::Close => false,
            };
            if done {
                return Ok(&[]);
            }
            if conn.pos == conn.buf.len() {
                if conn.fill(deadline, || Error::BodyTimeout)? == 0 {
                    if self.framing == Framing::Close {
                        return Ok(&[]);
                    }
                    return Err(Error::BadRequest("connection closed mid-body"));
                }
                continue;
            }
            let start = conn.pos;
            let available = &conn.buf[start..];
            let available = &available[..available.len().min(max)];
            let range = match self.framing {
                Framing::Chunked => {
                    let step = self.chunked.step(available)?;
                    conn.pos += step.consumed;
                    if self.chunked.data_left() > budget.saturating_sub(step.data.len() as u64) {
                        let limit = usize::try_from(budget).unwrap_or(usize::MAX);
                        return Err(Error::BodyTooLarge { limit });
                    }
                    step.data
                }
                Framing::Close => {
                    conn.pos += available.len();
                    0..available.len()
                }
                _ => {
                    // 32-bit targets: `left` may not fit a usize.
                    let take = usize::try_from(self.left)
                        .map_or(available.len(), |left| left.min(available.len()));
                    self.left -= take as u64;
                    conn.pos += take;
                    0..take
                }
            };
            if !range.is_empty() {
                return Ok(&conn.buf[start + range.start..start + range.end]);
            }
        }
    }
}

/// A body being read as a byte stream (see [`Conn::body_reader`]). A read
/// that waits longer than its idle time fails with `TimedOut`.
#[derive(Debug)]
pub struct BodyReader<'c, S> {
    conn: &'c mut Conn<S>,
    body: Body,
    idle: Duration,
}

impl<S: Stream> BodyReader<'_, S> {
    /// The connection under the body.
    pub fn conn(&self) -> &Conn<S> {
        self.conn
    }
}

impl<S: Stream> Read for BodyReader<'_, S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let deadline = deadline(self.idle);
        let piece = match self
            .body
            .next_piece(self.conn, deadline, out.len(), u64::MAX)
        {
            Ok(piece) => piece,
            Err(Error::Io(err)) => return Err(err),
            Err(Error::BodyTimeout) => return Err(io::ErrorKind::TimedOut.into()),
            Err(err) => return Err(io::Error::new(io::ErrorKind::InvalidData, err.to_string())),
        };
        out[..piece.len()].copy_from_slice(piece);
        Ok(piece.len())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{MAX_HEAD_BYTES, MAX_HEADERS, MAX_REQUEST_LINE_BYTES};

    fn conn(input: &[u8]) -> Conn<&[u8]> {
        Conn::new(input)
    }

    fn head(input: &[u8]) -> Result<Option<Request>, Error> {
        conn(input).read_head(Duration::from_secs(1))
    }

    fn status(input: &[u8]) -> u16 {
        match head(input) {
            Ok(Some(_)) => 200,
            Ok(None) => 0,
            Err(err) => err.status(),
        }
    }

    #[test]
    fn parses_a_request_head() {
        let request =
            head(b"GET /events?topic=a&x=%20y HTTP/1.1\r\nHost: h\r\nLast-Event-ID:  5 \r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/events");
        assert_eq!(request.query, "topic=a&x=%20y");
        assert_eq!(request.header("last-event-id"), Some("5"));
        assert_eq!(
            request.query_pairs().unwrap(),
            vec![
                ("topic".to_string(), "a".to_string()),
                ("x".to_string(), " y".to_string())
            ]
        );
        assert!(request.keep_alive());
    }

    #[test]
    fn statuses_for_bad_heads() {
        let cases: &[(&[u8], u16)] = &[
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 200),
            (b"\r\nGET / HTTP/1.0\n\n", 200),
            (b"GET http://h/x?y HTTP/1.1\r\nHost: h\r\n\r\n", 200),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
            (b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 200),
            (b"GET / HTTP/x\r\n\r\n", 400),
            (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nNo colon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\n", 400),
            (b"", 0),
        ];
        for (input, expected) in cases {
            assert_eq!(
                status(input),
                *expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn limits_are_inclusive() {
        let line = |target_len: usize| {
            let target = format!("/{}", "a".repeat(target_len - 1));
            format!("GET {target} HTTP/1.1")
        };
        // "GET " + target + " HTTP/1.1" = 13 + target bytes.
        let at_limit = line(MAX_REQUEST_LINE_BYTES - 13);
        assert_eq!(at_limit.len(), MAX_REQUEST_LINE_BYTES);
        assert_eq!(
            status(format!("{at_limit}\r\nHost: h\r\n\r\n").as_bytes()),
            200
        );
        let over = line(MAX_REQUEST_LINE_BYTES - 12);
        assert_eq!(status(format!("{over}\r\nHost: h\r\n\r\n").as_bytes()), 414);

        let headers = |count: usize| {
            let mut text = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
            for n in 1..count {
                text.push_str(&format!("X-{n}: v\r\n"));
            }
            text + "\r\n"
        };
        assert_eq!(status(headers(MAX_HEADERS).as_bytes()), 200);
        assert_eq!(status(headers(MAX_HEADERS + 1).as_bytes()), 431);

        // The header section is "Host: h\r\n" (9 bytes) + "X: " + value + "\r\n".
        let big = |value_len: usize| {
            format!(
                "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
                "v".repeat(value_len)
            )
        };
        assert_eq!(status(big(MAX_HEAD_BYTES - 14).as_bytes()), 200);
        assert_eq!(status(big(MAX_HEAD_BYTES - 13).as_bytes()), 431);
    }

    #[test]
    fn bodies() {
        let mut c = conn(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT");
        assert_eq!(c.read_body(Framing::Chunked, 100).unwrap(), b"hello world");
        assert_eq!(c.buffered(), b"NEXT");
        assert!(matches!(
            conn(b"5\r\nhello\r\n0\r\n\r\n").read_body(Framing::Chunked, 4),
            Err(Error::BodyTooLarge { limit: 4 })
        ));
        assert!(matches!(
            conn(b"zz\r\n").read_body(Framing::Chunked, 4),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            conn(b"2\r\nabc\r\n").read_body(Framing::Chunked, 4),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            conn(b"12345").read_body(Framing::Length(5), 4),
            Err(Error::BodyTooLarge { limit: 4 })
        ));
        assert_eq!(
            conn(b"1234").read_body(Framing::Length(4), 4).unwrap(),
            b"1234"
        );
        assert!(matches!(
            conn(b"12").read_body(Framing::Length(4), 4),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn framing() {
        let framing = |headers: &str| {
            let text = format!("POST / HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
            head(text.as_bytes()).unwrap().unwrap().body_framing()
        };
        assert_eq!(
            framing("Content-Length: 5\r\n").unwrap(),
            Framing::Length(5)
        );
        assert_eq!(
            framing("Content-Length: 5, 5\r\n").unwrap(),
            Framing::Length(5)
        );
        assert!(framing("Content-Length: 5\r\nContent-Length: 6\r\n").is_err());
        assert!(framing("Content-Length: -1\r\n").is_err());
        assert_eq!(
            framing("Transfer-Encoding: chunked\r\n").unwrap(),
            Framing::Chunked
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip, chunked\r\n")
                .unwrap_err()
                .status(),
            501
        );
        assert!(framing("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n").is_err());
        assert_eq!(framing("").unwrap(), Framing::None);
    }

    #[test]
    fn keep_alive_rules() {
        let keep = |text: &str| head(text.as_bytes()).unwrap().unwrap().keep_alive();
        assert!(keep("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!keep(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n"
        ));
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }
}
