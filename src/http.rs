//! HTTP/1.1 by hand: request heads with hard limits, bodies (`Content-Length`
//! or chunked), and response heads.
//!
//! Everything here works on a [`Stream`] given to it (a `TcpStream` in the
//! server, an in-memory stream in tests); nothing opens a socket.
//!
//! ```
//! use tinysse::http::{Conn, HEAD_TIMEOUT, Response, MemoryStream};
//!
//! let input = b"POST /publish HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi";
//! let mut conn = Conn::new(MemoryStream::new(input));
//! let request = conn.read_head(HEAD_TIMEOUT)?.expect("a request");
//! let body = conn.read_body(request.body_framing()?, 1024)?;
//! assert_eq!((request.path.as_str(), body.as_slice()), ("/publish", &b"hi"[..]));
//! Response::empty(204).write_to(&mut conn.stream, false, request.keep_alive())?;
//! assert_eq!(conn.stream.output, b"HTTP/1.1 204 No Content\r\n\r\n");
//! # Ok::<(), tinysse::Error>(())
//! ```

// Implementation notes
//
// `Conn` owns one read buffer. Bytes read past the end of a request (the next
// request on a keep-alive connection) stay in it for the next `read_head`.
// Limits are checked while scanning, so the buffer never grows past the head
// limits plus one read. Every read is given the time left before a deadline,
// so a client sending one byte a second still gets its 408 on time.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::Error;

/// Longest request line, in bytes before its CRLF; past it: 414.
///
/// ```
/// assert_eq!(tinysse::http::MAX_REQUEST_LINE_BYTES, 8192);
/// ```
pub const MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;
/// Largest header section (the lines after the request line), in bytes; past it: 431.
///
/// ```
/// assert_eq!(tinysse::http::MAX_HEAD_BYTES, 16 * 1024);
/// ```
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields in one request; past it: 431.
///
/// ```
/// use tinysse::http::{Conn, HEAD_TIMEOUT, MAX_HEADERS, MemoryStream};
///
/// let head = format!("GET / HTTP/1.1\r\n{}\r\n", "X: v\r\n".repeat(MAX_HEADERS + 1));
/// let err = Conn::new(MemoryStream::new(head.as_bytes())).read_head(HEAD_TIMEOUT).unwrap_err();
/// assert_eq!(err.status(), 431);
/// ```
pub const MAX_HEADERS: usize = 100;
/// Time allowed to receive a whole request head; past it: 408 and close.
///
/// ```
/// assert_eq!(tinysse::http::HEAD_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to receive a whole request body; past it: 408 and close.
///
/// ```
/// assert_eq!(tinysse::http::BODY_TIMEOUT, std::time::Duration::from_secs(30));
/// ```
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default largest request body (`--max-body`); past it: 413.
///
/// ```
/// use tinysse::http::DEFAULT_MAX_BODY;
///
/// assert_eq!(DEFAULT_MAX_BODY, 64 * 1024);
/// assert_eq!(tinysse::Config::default().max_body, DEFAULT_MAX_BODY);
/// ```
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Longest chunk-size line of a chunked body (size and extensions), in bytes.
const MAX_CHUNK_LINE_BYTES: usize = 1024;
/// Bytes asked for per read.
const READ_CHUNK: usize = 4096;

/// A byte stream whose reads can be given a time limit.
///
/// [`MemoryStream`] is one in memory; a `TcpStream` is the other.
///
/// ```
/// use tinysse::http::{Conn, HEAD_TIMEOUT, MemoryStream};
///
/// let mut conn = Conn::new(MemoryStream::new(b"GET / HTTP/1.0\r\n\r\n"));
/// assert_eq!(conn.read_head(HEAD_TIMEOUT)?.unwrap().minor_version, 0);
/// # Ok::<(), tinysse::Error>(())
/// ```
pub trait Stream: Read + Write {
    /// Limits how long one read may block; `None` blocks for ever.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

/// A [`Stream`] in memory, for tests and examples: reads come from `input`,
/// writes are kept in `output`, and reads never block.
///
/// ```
/// use std::io::{Read, Write};
/// use tinysse::http::MemoryStream;
///
/// let mut stream = MemoryStream::new(b"ping");
/// let mut read = String::new();
/// stream.read_to_string(&mut read)?;
/// stream.write_all(b"pong")?;
/// assert_eq!((read.as_str(), stream.output.as_slice()), ("ping", &b"pong"[..]));
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStream {
    /// What reads return, from its position on.
    pub input: io::Cursor<Vec<u8>>,
    /// Everything written so far.
    pub output: Vec<u8>,
}

impl MemoryStream {
    /// A stream whose reads return `input`, then end of stream.
    ///
    /// ```
    /// use std::io::Read;
    ///
    /// let mut stream = tinysse::http::MemoryStream::new(b"abc");
    /// let mut bytes = Vec::new();
    /// stream.read_to_end(&mut bytes)?;
    /// assert_eq!(bytes, b"abc");
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn new(input: &[u8]) -> MemoryStream {
        MemoryStream {
            input: io::Cursor::new(input.to_vec()),
            output: Vec::new(),
        }
    }
}

impl Read for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for MemoryStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for MemoryStream {
    // Reads from memory never block, so there is nothing to limit.
    fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// A parsed request head.
///
/// ```
/// use tinysse::http::{Conn, HEAD_TIMEOUT, MemoryStream};
///
/// let head = b"GET /events?topic=news HTTP/1.1\r\nHost: example.org\r\n\r\n";
/// let request = Conn::new(MemoryStream::new(head)).read_head(HEAD_TIMEOUT)?.unwrap();
/// assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/events"));
/// assert_eq!((request.query.as_str(), request.minor_version), ("topic=news", 1));
/// assert_eq!(request.headers, [("Host".to_string(), "example.org".to_string())]);
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The path part of the target, without the query (`/events`, or `*`).
    pub path: String,
    /// The query string after `?`, still percent-encoded (empty if none).
    pub query: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1 and later 1.x.
    pub minor_version: u8,
    /// Header fields in order, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The value of the first header named `name` (case-insensitive).
    ///
    /// ```
    /// use tinysse::http::{Conn, HEAD_TIMEOUT, MemoryStream};
    ///
    /// let head = b"GET /events HTTP/1.1\r\nHost: h\r\nLast-Event-ID:  1-5 \r\n\r\n";
    /// let request = Conn::new(MemoryStream::new(head)).read_head(HEAD_TIMEOUT)?.unwrap();
    /// assert_eq!(request.header("last-event-id"), Some("1-5"));
    /// assert_eq!(request.header("Origin"), None);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether the client wants the connection kept open after the response:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with `keep-alive`.
    ///
    /// ```
    /// use tinysse::http::{Conn, HEAD_TIMEOUT, MemoryStream};
    ///
    /// let keep = |head: &[u8]| Conn::new(MemoryStream::new(head)).read_head(HEAD_TIMEOUT).unwrap().unwrap().keep_alive();
    /// assert!(keep(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    /// assert!(!keep(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
    /// assert!(!keep(b"GET / HTTP/1.0\r\n\r\n"));
    /// assert!(keep(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    /// ```
    pub fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.headers
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case("connection"))
                .flat_map(|(_, value)| value.split(','))
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        };
        if self.minor_version == 0 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }

    /// Whether the client sent `Expect: 100-continue`.
    ///
    /// The server answers `100 Continue` before reading the body:
    ///
    /// ```
    /// use std::io::Write;
    /// use tinysse::http::{Conn, HEAD_TIMEOUT, MemoryStream};
    ///
    /// let input = b"POST /publish HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi";
    /// let mut conn = Conn::new(MemoryStream::new(input));
    /// let request = conn.read_head(HEAD_TIMEOUT)?.unwrap();
    /// assert!(request.expects_continue());
    /// conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    /// assert_eq!(conn.read_body(request.body_framing()?, 1024)?, b"hi");
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn expects_continue(&self) -> bool {
        self.minor_version >= 1
            && self
                .header("expect")
                .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"))
    }

    /// The decoded query parameters, in order.
    ///
    /// ```
    /// use tinysse::http::{Conn, HEAD_TIMEOUT, MemoryStream};
    ///
    /// let head = b"GET /events?topic=a%2Fb&topic=sports+news HTTP/1.1\r\nHost: h\r\n\r\n";
    /// let request = Conn::new(MemoryStream::new(head)).read_head(HEAD_TIMEOUT)?.unwrap();
    /// let pairs = request.query_pairs()?;
    /// assert_eq!(pairs[0], ("topic".to_string(), "a/b".to_string()));
    /// assert_eq!(pairs[1], ("topic".to_string(), "sports news".to_string()));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn query_pairs(&self) -> Result<Vec<(String, String)>, Error> {
        form_pairs(&self.query)
    }

    /// How the request's body is delimited.
    ///
    /// ```
    /// use tinysse::http::{Conn, Framing, HEAD_TIMEOUT, MemoryStream};
    ///
    /// let head = b"POST /publish HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
    /// let request = Conn::new(MemoryStream::new(head)).read_head(HEAD_TIMEOUT)?.unwrap();
    /// assert_eq!(request.body_framing()?, Framing::Length(5));
    ///
    /// let head = b"POST /publish HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n";
    /// let request = Conn::new(MemoryStream::new(head)).read_head(HEAD_TIMEOUT)?.unwrap();
    /// assert_eq!(request.body_framing().unwrap_err().status(), 501);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn body_framing(&self) -> Result<Framing, Error> {
        let mut length: Option<u64> = None;
        let mut chunked = false;
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("transfer-encoding") {
                for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    if chunked || !coding.eq_ignore_ascii_case("chunked") {
                        return Err(Error::UnsupportedTransferEncoding);
                    }
                    chunked = true;
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                for item in value.split(',').map(str::trim) {
                    if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Error::BadRequest("invalid Content-Length"));
                    }
                    // Too many digits for u64 is certainly too large.
                    let parsed = item.parse::<u64>().unwrap_or(u64::MAX);
                    if length.is_some_and(|known| known != parsed) {
                        return Err(Error::BadRequest("conflicting Content-Length values"));
                    }
                    length = Some(parsed);
                }
            }
        }
        match (chunked, length) {
            (true, Some(_)) => Err(Error::BadRequest(
                "both Content-Length and Transfer-Encoding",
            )),
            (true, None) => Ok(Framing::Chunked),
            (false, Some(length)) => Ok(Framing::Length(length)),
            (false, None) => Ok(Framing::None),
        }
    }
}

/// How a request body is delimited.
///
/// ```
/// use tinysse::http::{Conn, Framing, HEAD_TIMEOUT, MemoryStream};
///
/// let head = b"POST /publish HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
/// let request = Conn::new(MemoryStream::new(head)).read_head(HEAD_TIMEOUT)?.unwrap();
/// match request.body_framing()? {
///     Framing::Chunked => {}
///     other => panic!("expected chunked, got {other:?}"),
/// }
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body framing headers: no body.
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// One client connection: the stream and the bytes read from it but not yet used.
///
/// ```
/// use tinysse::http::{Conn, HEAD_TIMEOUT, Response, MemoryStream};
///
/// let mut conn = Conn::new(MemoryStream::new(b"GET /nope HTTP/1.1\r\nHost: h\r\n\r\n"));
/// let request = conn.read_head(HEAD_TIMEOUT)?.unwrap();
/// Response::text(404, "not found\n").write_to(&mut conn.stream, false, request.keep_alive())?;
/// assert!(conn.stream.output.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug)]
pub struct Conn<S> {
    /// The underlying stream.
    pub stream: S,
    buf: Vec<u8>,
    /// Start of the unused bytes in `buf`.
    pos: usize,
}

impl<S: Stream> Conn<S> {
    /// Wraps a stream.
    ///
    /// ```no_run
    /// use std::net::TcpListener;
    /// use tinysse::http::{Conn, HEAD_TIMEOUT};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let (stream, _) = listener.accept()?;
    /// let mut conn = Conn::new(stream);
    /// if let Some(request) = conn.read_head(HEAD_TIMEOUT)? {
    ///     println!("{} {}", request.method, request.path);
    /// }
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Frees the read buffer (for a connection that will only be written to).
    ///
    /// ```
    /// use std::io::Write;
    /// use tinysse::http::{Conn, HEAD_TIMEOUT, MemoryStream};
    ///
    /// let mut conn = Conn::new(MemoryStream::new(b"GET /events HTTP/1.1\r\nHost: h\r\n\r\n"));
    /// assert_eq!(conn.read_head(HEAD_TIMEOUT)?.unwrap().path, "/events");
    /// // A subscriber sends nothing more: keep the stream, drop the buffer.
    /// conn.release_buffer();
    /// conn.stream.write_all(b": welcome\n\n")?;
    /// assert_eq!(conn.stream.output, b": welcome\n\n");
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn release_buffer(&mut self) {
        self.buf = Vec::new();
        self.pos = 0;
    }

    /// Reads more bytes before `deadline`; returns how many (0: end of stream).
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
    /// use tinysse::http::{Conn, HEAD_TIMEOUT, MemoryStream};
    ///
    /// let err = Conn::new(MemoryStream::new(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n")).read_head(HEAD_TIMEOUT).unwrap_err();
    /// assert_eq!(err.status(), 505);
    /// // A client that connects and closes without a byte is not an error.
    /// assert!(Conn::new(MemoryStream::new(b"")).read_head(HEAD_TIMEOUT)?.is_none());
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn read_head(&mut self, timeout: Duration) -> Result<Option<Request>, Error> {
        self.read_head_with(timeout, false)
    }

    /// Like [`Conn::read_head`], for the next request on a keep-alive
    /// connection: a client silent for the whole timeout is not an error
    /// (`Ok(None)`: close quietly), since it may just be done.
    ///
    /// Serving pipelined requests on one keep-alive connection:
    ///
    /// ```
    /// use tinysse::http::{Conn, HEAD_TIMEOUT, MemoryStream};
    ///
    /// let mut conn = Conn::new(MemoryStream::new(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"));
    /// let mut paths = vec![conn.read_head(HEAD_TIMEOUT)?.unwrap().path];
    /// while let Some(request) = conn.read_next_head(HEAD_TIMEOUT)? {
    ///     paths.push(request.path);
    /// }
    /// assert_eq!(paths, ["/a", "/b"]);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn read_next_head(&mut self, timeout: Duration) -> Result<Option<Request>, Error> {
        self.read_head_with(timeout, true)
    }

    fn read_head_with(
        &mut self,
        timeout: Duration,
        idle_ok: bool,
    ) -> Result<Option<Request>, Error> {
        let deadline = Instant::now() + timeout;
        let mut scan = HeadScan::default();
        loop {
            // "In the interest of robustness, a server that is expecting to
            // receive and parse a request-line SHOULD ignore at least one empty
            // line (CRLF) received prior to the request-line." (RFC 9112 §2.2)
            while self.buf[self.pos..].starts_with(b"\r\n")
                || self.buf[self.pos..].starts_with(b"\n")
            {
                self.pos += if self.buf[self.pos] == b'\r' { 2 } else { 1 };
                scan = HeadScan::default();
            }
            let unused = &self.buf[self.pos..];
            if let Some(end) = find_head_end(unused, &mut scan)? {
                let request = parse_head(&unused[..end]);
                self.pos += end;
                return request.map(Some);
            }
            let started = !unused.is_empty();
            match self.fill(deadline, || Error::HeadTimeout) {
                Ok(0) if started => return Err(Error::BadRequest("connection closed mid-head")),
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(Error::HeadTimeout) if !started && idle_ok => return Ok(None),
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads a whole body framed as `framing`, refusing more than `max` bytes
    /// (413, before reading when the length is known).
    ///
    /// ```
    /// use tinysse::http::{Conn, DEFAULT_MAX_BODY, Framing, MemoryStream};
    ///
    /// let mut conn = Conn::new(MemoryStream::new(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
    /// assert_eq!(conn.read_body(Framing::Chunked, DEFAULT_MAX_BODY)?, b"hello world");
    /// let err = Conn::new(MemoryStream::new(b"12345")).read_body(Framing::Length(5), 4).unwrap_err();
    /// assert_eq!(err.status(), 413);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn read_body(&mut self, framing: Framing, max: usize) -> Result<Vec<u8>, Error> {
        let deadline = Instant::now() + BODY_TIMEOUT;
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(length) => {
                if length > max as u64 {
                    return Err(Error::BodyTooLarge);
                }
                let mut body = Vec::with_capacity(length as usize);
                self.read_exact_into(&mut body, length as usize, deadline)?;
                Ok(body)
            }
            Framing::Chunked => self.read_chunked(max, deadline),
        }
    }

    fn read_exact_into(
        &mut self,
        out: &mut Vec<u8>,
        count: usize,
        deadline: Instant,
    ) -> Result<(), Error> {
        let mut needed = count;
        while needed > 0 {
            if self.pos == self.buf.len() && self.fill(deadline, || Error::BodyTimeout)? == 0 {
                return Err(Error::BadRequest("connection closed mid-body"));
            }
            let take = needed.min(self.buf.len() - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            needed -= take;
        }
        Ok(())
    }

    /// Reads one line (without its CRLF or LF) of at most `limit` bytes;
    /// a longer one fails with `too_long()`.
    fn read_line(
        &mut self,
        limit: usize,
        too_long: fn() -> Error,
        deadline: Instant,
    ) -> Result<Vec<u8>, Error> {
        let mut scanned = 0;
        loop {
            let unused = &self.buf[self.pos..];
            if let Some(at) = unused[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + at;
                let line = unused[..end]
                    .strip_suffix(b"\r")
                    .unwrap_or(&unused[..end])
                    .to_vec();
                self.pos += end + 1;
                return Ok(line);
            }
            scanned = unused.len();
            // A CR at the end may be the first half of this line's CRLF.
            if unused.strip_suffix(b"\r").unwrap_or(unused).len() > limit {
                return Err(too_long());
            }
            if self.fill(deadline, || Error::BodyTimeout)? == 0 {
                return Err(Error::BadRequest("connection closed mid-body"));
            }
        }
    }

    fn read_chunked(&mut self, max: usize, deadline: Instant) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        loop {
            // chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF  (RFC 9112 §7.1)
            let line = self.read_line(MAX_CHUNK_LINE_BYTES, line_too_long, deadline)?;
            let size_text = line.split(|&b| b == b';').next().unwrap_or(&[]);
            let size_text = trim_ascii(size_text);
            if size_text.is_empty()
                || size_text.len() > 15
                || !size_text.iter().all(u8::is_ascii_hexdigit)
            {
                return Err(Error::BadRequest("invalid chunk size"));
            }
            let size = size_text.iter().fold(0usize, |acc, &digit| {
                acc * 16 + (digit as char).to_digit(16).unwrap_or(0) as usize
            });
            if size == 0 {
                // last-chunk, then trailer-section CRLF: read and drop trailers.
                let mut trailer_bytes = 0;
                loop {
                    let trailer =
                        self.read_line(MAX_HEAD_BYTES, || Error::HeadersTooLarge, deadline)?;
                    if trailer.is_empty() {
                        return Ok(body);
                    }
                    trailer_bytes += trailer.len();
                    if trailer_bytes > MAX_HEAD_BYTES {
                        return Err(Error::HeadersTooLarge);
                    }
                }
            }
            if body.len() + size > max {
                return Err(Error::BodyTooLarge);
            }
            self.read_exact_into(&mut body, size, deadline)?;
            if !self.read_line(0, line_too_long, deadline)?.is_empty() {
                return Err(Error::BadRequest("chunk data longer than its size"));
            }
        }
    }
}

fn line_too_long() -> Error {
    Error::BadRequest("chunked body line too long")
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |at| at + 1);
    &bytes[start..end]
}

/// Finds the end of the head (just past the empty line) in `bytes`, checking
/// the limits on the way. The header section counts every byte of the header
/// lines, line endings included, but not the final empty line.
/// How far [`find_head_end`] got in a head still arriving: the next call
/// goes on from there, so a head sent a byte at a time is scanned once, not
/// once per byte.
#[derive(Debug, Default)]
struct HeadScan {
    /// End of the request line (its LF), once seen.
    line_end: Option<usize>,
    /// Start of the first line not complete yet.
    start: usize,
    /// Bytes from `start` on looked at already: none of them is an LF.
    searched: usize,
    /// Header lines complete so far.
    headers: usize,
}

impl HeadScan {
    /// The next LF at or after `self.start`, searching only bytes not
    /// looked at before.
    fn next_line_end(&mut self, bytes: &[u8]) -> Option<usize> {
        let from = self.start.max(self.searched);
        let found = bytes[from..].iter().position(|&b| b == b'\n');
        let found = found.map(|at| from + at);
        self.searched = found.map_or(bytes.len(), |at| at + 1);
        found
    }
}

/// The length of the request head at the start of `bytes`, up to and
/// including its empty line, or `None` while it is incomplete. Checks the
/// limits on the request line, the header count and the head's size as
/// bytes arrive. `scan` carries the work done on earlier calls for the same
/// head (the same `bytes`, grown at the end).
fn find_head_end(bytes: &[u8], scan: &mut HeadScan) -> Result<Option<usize>, Error> {
    // The request line ends at the first LF. "The request-line limit counts
    // the bytes before its CRLF."
    let line_end = match scan.line_end {
        Some(line_end) => line_end,
        None => {
            let Some(line_end) = scan.next_line_end(bytes) else {
                // Allow for a CR that may still be followed by LF.
                let without_cr = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                if without_cr.len() > MAX_REQUEST_LINE_BYTES {
                    return Err(Error::RequestLineTooLong);
                }
                return Ok(None);
            };
            let request_line = &bytes[..line_end];
            if request_line
                .strip_suffix(b"\r")
                .unwrap_or(request_line)
                .len()
                > MAX_REQUEST_LINE_BYTES
            {
                return Err(Error::RequestLineTooLong);
            }
            scan.line_end = Some(line_end);
            scan.start = line_end + 1;
            line_end
        }
    };
    // Header lines: count them and their bytes until an empty line.
    loop {
        let start = scan.start;
        let Some(at) = scan.next_line_end(bytes) else {
            let partial = &bytes[start..];
            let partial = partial.strip_suffix(b"\r").unwrap_or(partial);
            if start - (line_end + 1) + partial.len() > MAX_HEAD_BYTES {
                return Err(Error::HeadersTooLarge);
            }
            return Ok(None);
        };
        let line = &bytes[start..at];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let end = at + 1;
        if line.is_empty() {
            return Ok(Some(end));
        }
        scan.headers += 1;
        if scan.headers > MAX_HEADERS || end - (line_end + 1) > MAX_HEAD_BYTES {
            return Err(Error::HeadersTooLarge);
        }
        scan.start = end;
    }
}

/// Parses a complete head (request line, header lines, empty line).
fn parse_head(head: &[u8]) -> Result<Request, Error> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let request_line = lines.next().unwrap_or_default();
    let request_line = std::str::from_utf8(request_line)
        .map_err(|_| Error::BadRequest("request line is not ASCII"))?;
    // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::BadRequest("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(Error::BadRequest("invalid method"));
    }
    let minor_version = parse_version(version)?;
    let (path, query) = parse_target(target)?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(Error::BadRequest("obsolete header line folding"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Error::BadRequest("header line without a colon"))?;
        let name = &line[..colon];
        // "No whitespace is allowed between the field name and colon."
        if name.is_empty() || !name.iter().copied().all(is_token_byte) {
            return Err(Error::BadRequest("invalid header name"));
        }
        let value = trim_ascii(&line[colon + 1..]);
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Error::BadRequest("control character in a header value"));
        }
        headers.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    let request = Request {
        method: method.to_string(),
        path,
        query,
        minor_version,
        headers,
    };
    // "A server MUST respond with a 400 (Bad Request) status code to any
    // HTTP/1.1 request message that lacks a Host header field and to any
    // request message that contains more than one Host header field line".
    let hosts = request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("host"))
        .count();
    if hosts > 1 || (hosts == 0 && minor_version >= 1) {
        return Err(Error::BadRequest(
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    Ok(request)
}

/// `HTTP/1.1` → 1. A major version other than 1 is a 505; 1.x with x > 1 is served as 1.1.
fn parse_version(version: &str) -> Result<u8, Error> {
    let digits = version
        .strip_prefix("HTTP/")
        .ok_or(Error::BadRequest("invalid HTTP version"))?;
    let (major, minor) = digits
        .split_once('.')
        .ok_or(Error::BadRequest("invalid HTTP version"))?;
    let is_digit = |part: &str| part.len() == 1 && part.as_bytes()[0].is_ascii_digit();
    if !is_digit(major) || !is_digit(minor) {
        return Err(Error::BadRequest("invalid HTTP version"));
    }
    if major != "1" {
        return Err(Error::VersionNotSupported);
    }
    Ok(if minor == "0" { 0 } else { 1 })
}

/// Splits a request target into path and raw query. Accepts origin-form
/// (`/path?query`), absolute-form (`http://host/path`) and `*`.
fn parse_target(target: &str) -> Result<(String, String), Error> {
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) || target.is_empty() {
        return Err(Error::BadRequest("invalid request target"));
    }
    if target == "*" {
        return Ok(("*".to_string(), String::new()));
    }
    let origin_form = if target.starts_with('/') {
        target
    } else {
        // absolute-form: skip "scheme://authority".
        let after_scheme = target
            .split_once("://")
            .map(|(_, rest)| rest)
            .ok_or(Error::BadRequest("invalid request target"))?;
        after_scheme.find('/').map_or("/", |at| &after_scheme[at..])
    };
    let origin_form = origin_form.split('#').next().unwrap_or(origin_form);
    let (path, query) = origin_form.split_once('?').unwrap_or((origin_form, ""));
    Ok((path.to_string(), query.to_string()))
}

/// tchar (RFC 9110 §5.6.2).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Decodes `application/x-www-form-urlencoded` text (also used for query
/// strings): `&`-separated `name=value` pairs, `+` as space, `%XX` escapes.
/// Bad escapes and bad UTF-8 answer 400.
///
/// ```
/// let pairs = tinysse::http::form_pairs("data=a+b%0Ac&topic=news")?;
/// assert_eq!(pairs[0], ("data".to_string(), "a b\nc".to_string()));
/// assert_eq!(pairs[1], ("topic".to_string(), "news".to_string()));
/// assert_eq!(tinysse::http::form_pairs("data=%zz").unwrap_err().status(), 400);
/// # Ok::<(), tinysse::Error>(())
/// ```
pub fn form_pairs(text: &str) -> Result<Vec<(String, String)>, Error> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

/// Percent-encodes `text` for a query string: everything but
/// `A-Z a-z 0-9 - _ . ~` becomes `%XX`.
///
/// ```
/// assert_eq!(tinysse::http::percent_encode("a b/é"), "a%20b%2F%C3%A9");
/// ```
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Result<String, Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(at + 1..at + 3)
                    .ok_or(Error::BadRequest("bad percent-encoding"))?;
                let hex = std::str::from_utf8(hex)
                    .map_err(|_| Error::BadRequest("bad percent-encoding"))?;
                let byte = u8::from_str_radix(hex, 16)
                    .map_err(|_| Error::BadRequest("bad percent-encoding"))?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::BadRequest("bad percent-encoding"));
                }
                out.push(byte);
                at += 2;
            }
            other => out.push(other),
        }
        at += 1;
    }
    String::from_utf8(out).map_err(|_| Error::BadRequest("form or query is not UTF-8"))
}

/// The reason phrase for the statuses tinysse sends.
///
/// ```
/// use tinysse::http::reason_phrase;
///
/// assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
/// assert_eq!(reason_phrase(299), "Unknown");
/// ```
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A response to write: status, headers, and a body sent with `Content-Length`.
///
/// ```
/// use tinysse::http::Response;
///
/// let headers = vec![("Cache-Control", "no-cache".to_string())];
/// let response = Response { status: 200, headers, body: b"hi".to_vec() };
/// assert_eq!(
///     response.to_bytes(false, true),
///     b"HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nContent-Length: 2\r\n\r\nhi"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields besides `Content-Length` and `Connection`.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A `text/plain` response with `body`.
    ///
    /// ```
    /// use tinysse::http::Response;
    ///
    /// let response = Response::text(200, "ok\n");
    /// assert_eq!(response.headers, [("Content-Type", "text/plain; charset=utf-8".to_string())]);
    /// assert_eq!(response.body, b"ok\n");
    /// ```
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::typed(status, "text/plain; charset=utf-8", body)
    }

    /// A response with `body` of type `content_type`.
    ///
    /// ```
    /// use tinysse::http::Response;
    ///
    /// let response = Response::typed(200, "application/json", "{}");
    /// assert_eq!(
    ///     response.to_bytes(false, true),
    ///     b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    /// );
    /// ```
    pub fn typed(status: u16, content_type: &str, body: impl Into<String>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body: body.into().into_bytes(),
        }
    }

    /// A response with no body and no `Content-Type` (for 204).
    ///
    /// ```
    /// use tinysse::http::Response;
    ///
    /// assert_eq!(Response::empty(204).to_bytes(false, true), b"HTTP/1.1 204 No Content\r\n\r\n");
    /// ```
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The response for an error: its status, and its message as a one-line body.
    ///
    /// ```
    /// use tinysse::Error;
    /// use tinysse::http::Response;
    ///
    /// let response = Response::error(&Error::BodyTooLarge);
    /// assert_eq!(response.status, 413);
    /// assert_eq!(response.body, b"request body too large\n");
    /// ```
    pub fn error(err: &Error) -> Response {
        Response::text(err.status(), format!("{err}\n"))
    }

    /// Adds a header field.
    ///
    /// ```
    /// use tinysse::http::Response;
    ///
    /// let response = Response::empty(405).with_header("Allow", "GET, HEAD");
    /// assert_eq!(
    ///     response.to_bytes(false, true),
    ///     b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\n\r\n"
    /// );
    /// ```
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds header fields, in order.
    ///
    /// ```
    /// use tinysse::http::Response;
    ///
    /// let cors = vec![("Access-Control-Allow-Origin", "https://example.org".to_string())];
    /// let response = Response::text(200, "ok\n").with_headers(cors);
    /// assert_eq!(response.headers.last().unwrap().0, "Access-Control-Allow-Origin");
    /// ```
    pub fn with_headers(
        mut self,
        headers: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Response {
        self.headers.extend(headers);
        self
    }

    /// Writes the response in one `write_all`. A 204 gets no `Content-Length`;
    /// `head_only` (for `HEAD`) sends the headers of the full response and no
    /// body; `keep_alive: false` adds `Connection: close`.
    ///
    /// Answering a `HEAD` request:
    ///
    /// ```
    /// use tinysse::http::Response;
    ///
    /// let mut out = Vec::new();
    /// Response::typed(200, "text/html", "<p>hi</p>").write_to(&mut out, true, true)?;
    /// assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 9\r\n\r\n");
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn write_to(
        &self,
        out: &mut impl Write,
        head_only: bool,
        keep_alive: bool,
    ) -> io::Result<()> {
        out.write_all(&self.to_bytes(head_only, keep_alive))?;
        out.flush()
    }

    /// The bytes [`Response::write_to`] writes.
    ///
    /// ```
    /// use tinysse::http::Response;
    ///
    /// let bytes = Response::text(503, "full\n").to_bytes(false, false);
    /// let expected = "HTTP/1.1 503 Service Unavailable\r\n\
    ///                 Content-Type: text/plain; charset=utf-8\r\n\
    ///                 Content-Length: 5\r\n\
    ///                 Connection: close\r\n\r\nfull\n";
    /// assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    /// ```
    pub fn to_bytes(&self, head_only: bool, keep_alive: bool) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(128 + self.body.len());
        let _ = write!(
            bytes,
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        for (name, value) in &self.headers {
            let _ = write!(bytes, "{name}: {value}\r\n");
        }
        if self.status != 204 && self.status >= 200 {
            let _ = write!(bytes, "Content-Length: {}\r\n", self.body.len());
        }
        if !keep_alive {
            bytes.extend_from_slice(b"Connection: close\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        if !head_only && self.status != 204 {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(input: &[u8]) -> Conn<MemoryStream> {
        Conn::new(MemoryStream::new(input))
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
        assert_eq!(&c.buf[c.pos..], b"NEXT");
        assert!(matches!(
            conn(b"5\r\nhello\r\n0\r\n\r\n").read_body(Framing::Chunked, 4),
            Err(Error::BodyTooLarge)
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
            Err(Error::BodyTooLarge)
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
    fn form_decoding() {
        let pairs = form_pairs("data=a+b%0Ac&topic=t&empty=&flag").unwrap();
        assert_eq!(pairs[0], ("data".to_string(), "a b\nc".to_string()));
        assert_eq!(pairs[2], ("empty".to_string(), String::new()));
        assert_eq!(pairs[3], ("flag".to_string(), String::new()));
        assert!(form_pairs("a=%zz").is_err());
        assert!(form_pairs("a=%4").is_err());
        assert!(form_pairs("a=%ff").is_err());
        assert!(form_pairs("a=%+1").is_err());
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

    #[test]
    fn responses() {
        let mut out = Vec::new();
        Response::text(200, "ok\n")
            .write_to(&mut out, false, true)
            .unwrap();
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\nok\n");
        let mut out = Vec::new();
        Response::empty(204)
            .with_header("Allow", "GET")
            .write_to(&mut out, false, false)
            .unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 204 No Content\r\nAllow: GET\r\nConnection: close\r\n\r\n"
        );
    }
}
