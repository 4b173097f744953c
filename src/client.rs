//! The client side: a tiny HTTP/1.1 client, and the `listen` and `publish`
//! commands built on it.
//!
//! `listen` behaves like a browser's `EventSource`: it parses the stream with
//! [`crate::parse::Parser`], reconnects after the `retry` time with
//! `Last-Event-ID`, and stops for good on a status other than 200 or a
//! `Content-Type` other than `text/event-stream`.
//!
//! ```
//! use tinysse::client::{DataSource, PublishOptions, publish};
//! use tinysse::{Config, Server};
//!
//! let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Default::default() };
//! let server = Server::bind(config)?.start()?;
//! let options = PublishOptions {
//!     url: format!("http://{}", server.local_addr()),
//!     topic: None, event: None, retry: None, token: None,
//!     data: DataSource::Argument("hello".to_string()),
//!     each_line: false,
//! };
//! let mut out = Vec::new();
//! publish(&options, &mut std::io::empty(), &mut out)?;
//! assert_eq!(String::from_utf8_lossy(&out).lines().count(), 1); // the id
//! server.shutdown()?;
//! # Ok::<(), tinysse::Error>(())
//! ```

// Implementation notes
//
// Only `http://` URLs: TLS comes from a proxy (see the README). A response
// body is read by `Body`, which handles the three framings a server or a proxy
// may use for a stream: close-delimited (tinysse itself), `Content-Length`, and
// chunked (nginx over HTTP/1.1 keep-alive, say). `--raw` shows the body bytes
// after de-chunking: the event stream as the parser sees it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::Error;
use crate::parse::{Message, Parser};

/// Time allowed to connect, and to receive a response head.
///
/// ```
/// assert_eq!(tinysse::client::CONNECT_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream silent this long (no event, no heartbeat) counts as lost and is
/// reconnected: a connection that died without a FIN would otherwise hang
/// `listen` for ever.
///
/// ```
/// // The server's heartbeats keep a quiet stream well inside the limit.
/// assert!(tinysse::client::STREAM_IDLE_TIMEOUT > tinysse::config::DEFAULT_HEARTBEAT);
/// ```
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Reconnection time before the server sets one with `retry:`, in milliseconds.
///
/// ```
/// assert_eq!(tinysse::client::DEFAULT_RETRY_MS, tinysse::config::DEFAULT_RETRY_MS);
/// ```
pub const DEFAULT_RETRY_MS: u64 = 3000;
/// Longest wait between reconnection attempts after repeated failures.
///
/// ```
/// assert_eq!(tinysse::client::MAX_BACKOFF, std::time::Duration::from_secs(60));
/// ```
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// `--raw`: how long a CR that ends what arrived waits for a possible LF
/// before it is shown (and its line parsed) as a line of its own.
const CR_GRACE: Duration = Duration::from_millis(100);
/// Largest response head accepted.
const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;
/// Largest non-stream response body accepted (a publish answer).
const MAX_RESPONSE_BODY_BYTES: usize = 1024 * 1024;

/// Where a client connects: `host:port` and the request target.
///
/// ```
/// use tinysse::client::Target;
///
/// let target = Target::parse("http://example.com", "/events")?;
/// let expected = Target { authority: "example.com:80".to_string(), path: "/events".to_string() };
/// assert_eq!(target, expected); // port 80 when the URL has none
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, for connecting and for the `Host` header.
    pub authority: String,
    /// Path and query, e.g. `/events?topic=a`.
    pub path: String,
}

impl Target {
    /// Parses an `http://` URL. A URL that is only the server's base address
    /// (`http://host:port`, with or without a trailing `/`) gets `default_path`;
    /// a URL with another path is used as given.
    ///
    /// ```
    /// use tinysse::client::Target;
    ///
    /// let target = Target::parse("http://127.0.0.1:8080/", "/events")?;
    /// assert_eq!((target.authority.as_str(), target.path.as_str()), ("127.0.0.1:8080", "/events"));
    /// let target = Target::parse("http://[::1]:9000/sse?x=1", "/events")?;
    /// assert_eq!((target.authority.as_str(), target.path.as_str()), ("[::1]:9000", "/sse?x=1"));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn parse(url: &str, default_path: &str) -> Result<Target, Error> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(Error::Usage(format!(
                "{url:?}: only http:// URLs are supported (put a TLS proxy in front for https)"
            )));
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains(['@', ' ']) {
            return Err(Error::Usage(format!("{url:?}: no host in the URL")));
        }
        let has_port = match authority.rfind(']') {
            Some(bracket) => authority[bracket..].contains(':'),
            None => authority.contains(':'),
        };
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
        let mut path = if path_only.is_empty() || path_only == "/" {
            default_path.to_string()
        } else {
            path_only.to_string()
        };
        if !query.is_empty() {
            path = format!("{path}?{query}");
        }
        Ok(Target { authority, path })
    }

    /// The target with `name=value` pairs added to its query, percent-encoded.
    ///
    /// ```
    /// use tinysse::client::Target;
    ///
    /// let target = Target::parse("http://127.0.0.1:8080/events?x=1", "/events")?;
    /// let target = target.with_query(&[("topic", "a b"), ("topic", "c")]);
    /// assert_eq!(target.path, "/events?x=1&topic=a%20b&topic=c");
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_query(&self, pairs: &[(&str, &str)]) -> Target {
        let mut path = self.path.clone();
        for (name, value) in pairs {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&crate::http::percent_encode(name));
            path.push('=');
            path.push_str(&crate::http::percent_encode(value));
        }
        Target {
            authority: self.authority.clone(),
            path,
        }
    }

    fn connect(&self) -> Result<TcpStream, Error> {
        let addresses = self
            .authority
            .to_socket_addrs()
            .map_err(|err| Error::Client(format!("cannot resolve {}: {err}", self.authority)))?;
        let mut last_error = None;
        for address in addresses {
            match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
                Ok(stream) => return Ok(stream),
                Err(err) => last_error = Some(err),
            }
        }
        Err(Error::Client(match last_error {
            Some(err) => format!("cannot connect to {}: {err}", self.authority),
            None => format!("{} has no address", self.authority),
        }))
    }
}

/// A response head.
///
/// ```
/// use tinysse::client::ResponseHead;
///
/// let head = ResponseHead {
///     status: 404,
///     reason: "Not Found".to_string(),
///     headers: vec![],
///     raw: b"HTTP/1.1 404 Not Found\r\n\r\n".to_vec(),
/// };
/// assert_eq!(head.status, 404);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// The head exactly as received, for `--raw`.
    pub raw: Vec<u8>,
}

impl ResponseHead {
    /// The first header named `name` (case-insensitive).
    ///
    /// ```
    /// # use tinysse::client::ResponseHead;
    /// # let (status, reason, raw) = (200, String::from("OK"), Vec::new());
    /// let headers = vec![("Content-Type".to_string(), "text/event-stream".to_string())];
    /// let head = ResponseHead { status, reason, headers, raw };
    /// assert_eq!(head.header("content-type"), Some("text/event-stream"));
    /// assert_eq!(head.header("content-length"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn framing(&self) -> BodyFraming {
        let chunked = self
            .header("transfer-encoding")
            .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return BodyFraming::Chunked;
        }
        match self
            .header("content-length")
            .and_then(|value| value.trim().parse().ok())
        {
            Some(length) => BodyFraming::Length(length),
            None => BodyFraming::Close,
        }
    }
}

fn read_response_head(reader: &mut impl BufRead) -> Result<ResponseHead, Error> {
    let mut raw = Vec::new();
    loop {
        let start = raw.len();
        let read = reader
            .by_ref()
            .take((MAX_RESPONSE_HEAD_BYTES + 1 - raw.len().min(MAX_RESPONSE_HEAD_BYTES)) as u64)
            .read_until(b'\n', &mut raw)?;
        if read == 0 {
            return Err(Error::Client(
                "the server closed the connection before answering".into(),
            ));
        }
        if raw.len() > MAX_RESPONSE_HEAD_BYTES {
            return Err(Error::Client("response head too large".into()));
        }
        let line = &raw[start..];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.lines();
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|code| code.parse().ok());
    let (true, Some(status)) = (version.starts_with("HTTP/1."), status) else {
        return Err(Error::Client(format!(
            "not an HTTP/1.x response: {status_line:?}"
        )));
    };
    let reason = parts.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    Ok(ResponseHead {
        status,
        reason,
        headers,
        raw,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFraming {
    Close,
    Length(u64),
    Chunked,
}

/// A response body, de-chunked.
struct Body<R> {
    reader: R,
    framing: BodyFraming,
    /// Bytes left in the current chunk (chunked) or the body (length).
    left: u64,
    done: bool,
}

impl<R: BufRead> Body<R> {
    fn new(reader: R, framing: BodyFraming) -> Body<R> {
        let left = match framing {
            BodyFraming::Length(length) => length,
            _ => 0,
        };
        let done = framing == BodyFraming::Length(0);
        Body {
            reader,
            framing,
            left,
            done,
        }
    }

    /// Reads a chunk-size line; sets `left`, or `done` at the last chunk.
    fn next_chunk(&mut self) -> io::Result<()> {
        let mut line = String::new();
        self.reader.by_ref().take(1024).read_line(&mut line)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            self.done = true;
        }
        self.left = size;
        Ok(())
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.framing == BodyFraming::Close {
            return self.reader.read(buf);
        }
        if self.left == 0 {
            // Chunked: the CRLF after the previous chunk's data, then the size.
            if self.framing == BodyFraming::Chunked {
                self.next_chunk()?;
                if self.done {
                    return Ok(0);
                }
            }
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let read = self.reader.read(&mut buf[..want])?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= read as u64;
        if self.left == 0 {
            match self.framing {
                BodyFraming::Length(_) => self.done = true,
                BodyFraming::Chunked => {
                    let mut crlf = String::new();
                    self.reader.by_ref().take(2).read_line(&mut crlf)?;
                }
                BodyFraming::Close => {}
            }
        }
        Ok(read)
    }
}

/// What `tinysse listen` was asked to do.
///
/// ```
/// use tinysse::client::ListenOptions;
///
/// // Like `tinysse listen http://127.0.0.1:8080 --topic news --last-event-id 7`.
/// let options = ListenOptions {
///     url: "http://127.0.0.1:8080".to_string(),
///     topics: vec!["news".to_string()],
///     last_event_id: Some("7".to_string()),
///     raw: false,
/// };
/// assert_eq!(options.topics, ["news"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// The server or stream URL.
    pub url: String,
    /// Topics to subscribe to (none: all).
    pub topics: Vec<String>,
    /// Resume after this id.
    pub last_event_id: Option<String>,
    /// Print the bytes as they arrive instead of the events.
    pub raw: bool,
}

/// Subscribes to the stream at `options.url` and prints to `out` until the
/// server refuses the stream (an `Err` saying why) or `out` is closed (`Ok`).
/// Connection news goes to `log`. Reconnects like a browser's `EventSource`.
///
/// ```no_run
/// use tinysse::client::{ListenOptions, listen};
///
/// let options = ListenOptions {
///     url: "http://127.0.0.1:8080".to_string(),
///     topics: vec![],
///     last_event_id: None,
///     raw: false,
/// };
/// listen(&options, &mut std::io::stdout(), &mut std::io::stderr())?; // runs until refused
/// # Ok::<(), tinysse::Error>(())
/// ```
pub fn listen(
    options: &ListenOptions,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<(), Error> {
    let base = Target::parse(&options.url, "/events")?;
    let topics: Vec<(&str, &str)> = options
        .topics
        .iter()
        .map(|topic| ("topic", topic.as_str()))
        .collect();
    let target = base.with_query(&topics);
    let mut last_event_id = options.last_event_id.clone().unwrap_or_default();
    let mut retry_ms = DEFAULT_RETRY_MS;
    let mut failures: u32 = 0;
    loop {
        let mut parser = Parser::new().with_last_event_id(last_event_id.clone());
        let mut connected = false;
        let outcome = listen_once(
            &target,
            &last_event_id,
            &mut parser,
            options.raw,
            &mut connected,
            out,
            log,
        );
        last_event_id = parser.last_event_id().to_string();
        retry_ms = parser.retry().unwrap_or(retry_ms);
        if connected {
            failures = 0;
        }
        let why = match outcome {
            Ok(Outcome::OutputClosed) => return Ok(()),
            Ok(Outcome::Refused(why)) => return Err(Error::Client(why)),
            Ok(Outcome::ServerClosed) => "the server closed the stream".to_string(),
            Err(err) => {
                failures = failures.saturating_add(1);
                err.to_string()
            }
        };
        // "wait a delay equal to the reconnection time of the event source"
        // plus jitter, doubling after each failure in a row, up to a cap.
        let backoff = retry_ms.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
        let wait =
            Duration::from_millis(backoff).min(MAX_BACKOFF.max(Duration::from_millis(retry_ms)));
        let wait = wait
            + Duration::from_millis(
                crate::server::random_u64() % (wait.as_millis() as u64 / 4 + 1),
            );
        let resume = if last_event_id.is_empty() {
            String::new()
        } else {
            format!(" with Last-Event-ID {last_event_id}")
        };
        let _ = writeln!(
            log,
            "tinysse: {why}; reconnecting in {} ms{resume}",
            wait.as_millis()
        );
        std::thread::sleep(wait);
    }
}

/// How one connection of `listen` ended, when not by a network error.
enum Outcome {
    /// The server closed the stream: reconnect.
    ServerClosed,
    /// Our output was closed (`listen | head`, say): stop quietly.
    OutputClosed,
    /// The server refused the stream: stop for good, saying why.
    Refused(String),
}

fn listen_once(
    target: &Target,
    last_event_id: &str,
    parser: &mut Parser,
    raw: bool,
    connected: &mut bool,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<Outcome, Error> {
    let stream = target.connect()?;
    stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
        target.path, target.authority
    );
    if !last_event_id.is_empty() {
        request.push_str(&format!("Last-Event-ID: {last_event_id}\r\n"));
    }
    request.push_str("\r\n");
    if raw && print_raw(out, request.as_bytes(), ">").is_err() {
        return Ok(Outcome::OutputClosed);
    }
    (&stream).write_all(request.as_bytes())?;
    let mut reader = BufReader::new(&stream);
    let head = read_response_head(&mut reader)?;
    if raw && print_raw(out, &head.raw, "|").is_err() {
        return Ok(Outcome::OutputClosed);
    }
    // "if res's status is not 200, or if res's Content-Type is not
    // text/event-stream, then fail the connection": no more reconnecting.
    if head.status != 200 {
        let mut body = Vec::new();
        let _ = Body::new(&mut reader, head.framing())
            .take(4096)
            .read_to_end(&mut body);
        let reason = String::from_utf8_lossy(&body);
        let reason = reason.lines().next().unwrap_or("").trim();
        let reason = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        return Ok(Outcome::Refused(format!(
            "the server answered {} {}{reason}",
            head.status, head.reason
        )));
    }
    let content_type = head.header("content-type").unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("text/event-stream") {
        return Ok(Outcome::Refused(format!(
            "the server answered with Content-Type {content_type:?}, not text/event-stream"
        )));
    }
    *connected = true;
    let _ = writeln!(
        log,
        "tinysse: connected to http://{}{}",
        target.authority, target.path
    );
    stream.set_read_timeout(Some(STREAM_IDLE_TIMEOUT))?;
    let mut body = Body::new(reader, head.framing());
    let mut chunk = vec![0u8; 8192];
    let mut view = RawView::default();
    let end = loop {
        // --raw: a CR at the end of what came may be the first half of a CRLF.
        // Wait a moment for the next byte, not until the next event (the
        // parser dispatches at the CR): then show the line as complete.
        if raw && view.pending.ends_with(b"\r") && body.reader.buffer().is_empty() {
            stream.set_read_timeout(Some(CR_GRACE))?;
            let more = stream.peek(&mut [0u8; 1]);
            stream.set_read_timeout(Some(STREAM_IDLE_TIMEOUT))?;
            if more.is_err() && view.end_line(parser, out, log).is_err() {
                return Ok(Outcome::OutputClosed);
            }
        }
        let read = match body.read(&mut chunk) {
            Ok(0) => break Ok(Outcome::ServerClosed),
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Err(Error::Client(format!(
                    "nothing received for {} s",
                    STREAM_IDLE_TIMEOUT.as_secs()
                )));
            }
            Err(err) => break Err(Error::Io(err)),
        };
        let printed = if raw {
            view.show(&chunk[..read], parser, out, log)
        } else {
            let mut events = Vec::new();
            if parser.feed(&chunk[..read], &mut events).is_err() {
                let _ = writeln!(log, "tinysse: an event over the size limit was dropped");
            }
            events
                .iter()
                .try_for_each(|event| print_event(out, log, event))
        };
        if printed.is_err() {
            return Ok(Outcome::OutputClosed);
        }
    };
    // --raw: the bytes of a last line that never got its line ending.
    if raw && view.end_line(parser, out, log).is_err() {
        return Ok(Outcome::OutputClosed);
    }
    end
}

/// Prints one event as a block: a `== type (id ...)` line, the data as is, a blank line.
fn print_event(out: &mut dyn Write, log: &mut dyn Write, event: &Message) -> io::Result<()> {
    if event.event == "gap" {
        let _ = writeln!(
            log,
            "tinysse: gap: the server could not find id {:?}; events may have been missed",
            event.data
        );
    }
    let id = if event.id.is_empty() {
        String::new()
    } else {
        format!(" (id {})", event.id)
    };
    write!(out, "== {}{id}\n{}\n\n", event.event, event.data)?;
    out.flush()
}

/// Writes `bytes` one line per line ending, each line after `prefix` and a
/// space, with line endings and control bytes escaped (`\r`, `\n`, `\xNN`).
fn print_raw(out: &mut dyn Write, bytes: &[u8], prefix: &str) -> io::Result<()> {
    for line in split_keeping_endings(bytes) {
        writeln!(out, "{prefix} {}", escape(line))?;
    }
    out.flush()
}

/// Splits after each LF, and after each CR not followed by LF.
fn split_keeping_endings(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let ends = byte == b'\n' || (byte == b'\r' && bytes.get(index + 1) != Some(&b'\n'));
        if ends {
            lines.push(&bytes[start..=index]);
            start = index + 1;
        }
    }
    if start < bytes.len() {
        lines.push(&bytes[start..]);
    }
    lines
}

/// Makes line endings, control bytes and invalid UTF-8 visible; reversible
/// (a backslash is written `\\`).
///
/// ```
/// assert_eq!(tinysse::client::escape(b"data: a\tb\r\n"), "data: a\\x09b\\r\\n");
/// ```
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                // Control characters, and the invisible ones a learner would
                // miss: a byte order mark, zero-width spaces and joiners,
                // direction marks and overrides.
                ch if ch.is_control() || is_invisible(ch) => {
                    let mut buf = [0u8; 4];
                    for byte in ch.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{byte:02x}"));
                    }
                }
                ch => out.push(ch),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Characters that print as nothing: U+FEFF (a byte order mark), U+200B to
/// U+200F, U+202A to U+202E, U+2060 to U+2064 and U+2066 to U+2069.
fn is_invisible(ch: char) -> bool {
    matches!(ch, '\u{feff}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}')
}

/// `--raw`: shows stream bytes line by line as they complete, feeds each
/// line to the parser, and marks what it did.
#[derive(Default)]
struct RawView {
    /// Bytes of a line whose ending has not arrived yet.
    pending: Vec<u8>,
}

impl RawView {
    fn show(
        &mut self,
        bytes: &[u8],
        parser: &mut Parser,
        out: &mut dyn Write,
        log: &mut dyn Write,
    ) -> io::Result<()> {
        self.pending.extend_from_slice(bytes);
        let mut consumed = 0;
        let lines = split_keeping_endings(&self.pending);
        let count = lines.len();
        for (index, line) in lines.into_iter().enumerate() {
            let complete = line.ends_with(b"\n") || (line.ends_with(b"\r") && index + 1 < count);
            if !complete {
                // A CR at the very end may be the first half of a CRLF: wait.
                break;
            }
            consumed += line.len();
            show_line(line, parser, out, log)?;
        }
        self.pending.drain(..consumed);
        // A line this long without an ending is shown as it is, unfinished.
        if self.pending.len() > 64 * 1024 {
            writeln!(out, "| {}", escape(&self.pending))?;
            let mut events = Vec::new();
            let _ = parser.feed(&self.pending, &mut events);
            self.pending.clear();
        }
        out.flush()
    }

    /// Shows the bytes held back (a line whose ending has not come, or a CR
    /// that may be the first half of a CRLF) as a line, and feeds them to the
    /// parser: the stream ended, or a CR was not followed by more bytes soon.
    fn end_line(
        &mut self,
        parser: &mut Parser,
        out: &mut dyn Write,
        log: &mut dyn Write,
    ) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.pending);
        show_line(&line, parser, out, log)?;
        out.flush()
    }
}

/// `--raw`: shows one line, feeds it to the parser, and marks what it did.
fn show_line(
    line: &[u8],
    parser: &mut Parser,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> io::Result<()> {
    writeln!(out, "| {}", escape(line))?;
    let retry_before = parser.retry();
    let mut events = Vec::new();
    if parser.feed(line, &mut events).is_err() {
        let _ = writeln!(log, "tinysse: an event over the size limit was dropped");
    }
    if parser.retry() != retry_before {
        writeln!(
            out,
            "=> reconnection time is now {} ms",
            parser.retry().unwrap_or(0)
        )?;
    }
    for event in &events {
        writeln!(
            out,
            "=> dispatch: type {:?}, id {:?}, data {:?}",
            event.event, event.id, event.data
        )?;
    }
    Ok(())
}

/// Where `tinysse publish` takes its data from.
///
/// ```
/// use tinysse::client::DataSource;
///
/// let source = DataSource::Argument("hello".to_string()); // `tinysse publish hello`
/// assert_ne!(source, DataSource::Stdin); // `tinysse publish -`
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// The command-line argument.
    Argument(String),
    /// Standard input: all of it as one event (one trailing newline removed),
    /// or with `each_line`, one event per non-empty line.
    Stdin,
}

/// What `tinysse publish` was asked to do.
///
/// ```
/// use tinysse::client::{DataSource, PublishOptions};
///
/// // Like `tinysse publish http://127.0.0.1:8080 --topic news --event headline rain`.
/// let options = PublishOptions {
///     url: "http://127.0.0.1:8080".to_string(),
///     topic: Some("news".to_string()),
///     event: Some("headline".to_string()),
///     retry: None,
///     token: None,
///     data: DataSource::Argument("rain".to_string()),
///     each_line: false,
/// };
/// assert_eq!(options.topic.as_deref(), Some("news"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOptions {
    /// The server or publish URL.
    pub url: String,
    /// The topic (server default: `default`).
    pub topic: Option<String>,
    /// The event type.
    pub event: Option<String>,
    /// The `retry` to send with the event, in milliseconds.
    pub retry: Option<u64>,
    /// The publish token, sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// Where the data comes from.
    pub data: DataSource,
    /// One event per line of standard input, over one keep-alive connection.
    pub each_line: bool,
}

/// Publishes as `options` says, printing each assigned id on its own line to
/// `out`. An error status ends it with an `Err` carrying the server's reason.
///
/// One event per line of input, like `tinysse publish --each-line -`:
///
/// ```
/// use tinysse::client::{DataSource, PublishOptions, publish};
///
/// # let config = tinysse::Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Default::default() };
/// # let server = tinysse::Server::bind(config)?.start()?;
/// # let url = format!("http://{}", server.local_addr());
/// let options = PublishOptions {
///     url, topic: None, event: None, retry: None, token: None,
///     data: DataSource::Stdin, each_line: true,
/// };
/// let mut ids = Vec::new();
/// publish(&options, &mut &b"one\n\ntwo\n"[..], &mut ids)?;
/// assert_eq!(String::from_utf8_lossy(&ids).lines().count(), 2); // the empty line is skipped
/// # server.shutdown()?;
/// # Ok::<(), tinysse::Error>(())
/// ```
pub fn publish(
    options: &PublishOptions,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let base = Target::parse(&options.url, "/publish")?;
    let mut pairs = Vec::new();
    if let Some(topic) = &options.topic {
        pairs.push(("topic", topic.clone()));
    }
    if let Some(event) = &options.event {
        pairs.push(("event", event.clone()));
    }
    if let Some(retry) = options.retry {
        pairs.push(("retry", retry.to_string()));
    }
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let target = base.with_query(&pairs);
    let mut connection = Connection {
        target,
        token: options.token.clone(),
        stream: None,
    };
    let mut send = |data: &[u8]| -> Result<(), Error> {
        let id = connection.post(data)?;
        writeln!(out, "{id}")?;
        out.flush()?;
        Ok(())
    };
    match (&options.data, options.each_line) {
        (DataSource::Argument(data), _) => send(data.as_bytes()),
        (DataSource::Stdin, false) => {
            let mut data = Vec::new();
            input.read_to_end(&mut data)?;
            if data.ends_with(b"\n") {
                data.pop();
                if data.ends_with(b"\r") {
                    data.pop();
                }
            }
            send(&data)
        }
        (DataSource::Stdin, true) => {
            let mut line = Vec::new();
            loop {
                line.clear();
                if input.read_until(b'\n', &mut line)? == 0 {
                    return Ok(());
                }
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if !text.is_empty() {
                    send(text)?;
                }
            }
        }
    }
}

/// One keep-alive connection for publishing, reopened when the server closed it.
struct Connection {
    target: Target,
    token: Option<String>,
    stream: Option<BufReader<TcpStream>>,
}

impl Connection {
    /// Posts `data` as a `text/plain` body; returns the response body trimmed.
    fn post(&mut self, data: &[u8]) -> Result<String, Error> {
        let reused = self.stream.is_some();
        match self.try_post(data) {
            // A kept-alive connection may have been closed by the server while
            // idle; the request never reached it, so send it once more.
            Err(Error::Io(_)) if reused => {
                self.stream = None;
                self.try_post(data)
            }
            other => other,
        }
    }

    fn try_post(&mut self, data: &[u8]) -> Result<String, Error> {
        if self.stream.is_none() {
            let stream = self.target.connect()?;
            stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
            stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
            self.stream = Some(BufReader::new(stream));
        }
        let reader = self.stream.as_mut().expect("connected just above");
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
            self.target.path,
            self.target.authority,
            data.len()
        );
        if let Some(token) = &self.token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(data);
        reader.get_mut().write_all(&bytes)?;
        let head = match read_response_head(reader) {
            Ok(head) => head,
            Err(Error::Client(why)) if why.contains("closed the connection") => {
                return Err(Error::Io(io::ErrorKind::ConnectionReset.into()));
            }
            Err(err) => return Err(err),
        };
        let mut body = Vec::new();
        Body::new(&mut *reader, head.framing())
            .take(MAX_RESPONSE_BODY_BYTES as u64)
            .read_to_end(&mut body)?;
        let closing = head
            .header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"));
        if closing || head.framing() == BodyFraming::Close {
            self.stream = None;
        }
        let text = String::from_utf8_lossy(&body).trim_end().to_string();
        if head.status != 200 {
            let reason = text.lines().next().unwrap_or(&head.reason);
            return Err(Error::Client(format!(
                "the server answered {}: {reason}",
                head.status
            )));
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let check = |url: &str, authority: &str, path: &str| {
            let target = Target::parse(url, "/events").unwrap();
            assert_eq!(
                (target.authority.as_str(), target.path.as_str()),
                (authority, path),
                "{url}"
            );
        };
        check("http://h:1", "h:1", "/events");
        check("http://h:1/", "h:1", "/events");
        check("http://h", "h:80", "/events");
        check("http://h:1/?topic=a", "h:1", "/events?topic=a");
        check("http://h:1/other", "h:1", "/other");
        check("http://[::1]/x", "[::1]:80", "/x");
        assert!(Target::parse("https://h", "/events").is_err());
        assert!(Target::parse("h:1", "/events").is_err());
        assert!(Target::parse("http:///x", "/events").is_err());
        let target = Target::parse("http://h:1", "/events")
            .unwrap()
            .with_query(&[("topic", "a b&c"), ("x", "1")]);
        assert_eq!(target.path, "/events?topic=a%20b%26c&x=1");
    }

    #[test]
    fn escapes_reversibly() {
        assert_eq!(escape(b"a\\b"), "a\\\\b");
        assert_eq!(escape(b"\xff\x00\xc3\xa9"), "\\xff\\x00é");
        assert_eq!(
            escape("\u{feff}data: x".as_bytes()),
            "\\xef\\xbb\\xbfdata: x"
        );
        assert_eq!(
            split_keeping_endings(b"a\r\nb\rc\nd"),
            vec![&b"a\r\n"[..], b"b\r", b"c\n", b"d"]
        );
    }

    #[test]
    fn bodies_are_dechunked() {
        let wire: &[u8] = b"5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\n";
        let mut body = Body::new(wire, BodyFraming::Chunked);
        let mut out = String::new();
        body.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello!");
        let mut out = String::new();
        Body::new(&b"abcdef"[..], BodyFraming::Length(3))
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "abc");
    }

    #[test]
    fn response_heads() {
        let mut wire: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nbody";
        let head = read_response_head(&mut wire).unwrap();
        assert_eq!((head.status, head.reason.as_str()), (404, "Not Found"));
        assert_eq!(head.header("content-type"), Some("text/plain"));
        assert_eq!(wire, b"body");
        assert!(read_response_head(&mut &b"SSH-2.0\r\n\r\n"[..]).is_err());
    }
}
