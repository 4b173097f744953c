//! The client side: `tinysse listen` and `tinysse publish`, a tiny HTTP/1.1
//! client on the library's own HTTP grammar (`tinysse::http`).
//!
//! `listen` behaves like a browser's `EventSource`: it parses the stream with
//! the crate's [`Parser`], reconnects after the `retry` time with
//! `Last-Event-ID`, and stops for good on a status other than 200 or a
//! `Content-Type` other than `text/event-stream`.

// Implementation notes
//
// Only `http://` URLs: TLS comes from a proxy (see the README). A response
// body may be close-delimited (tinysse itself), have a `Content-Length`, or
// be chunked (nginx over HTTP/1.1 keep-alive, say): `Conn::body_reader`
// reads all three. `--raw` shows the body bytes after de-chunking: the event
// stream as the parser sees it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use tinysse::http::{Conn, percent_encode};
use tinysse::{Config, Parser};

use crate::Fail;
use crate::show::{RawView, escape, print_event, print_raw};
use crate::stdin::is_blank;

/// Time allowed to connect, and for the server to answer a request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream silent this long (not even a heartbeat) counts as lost.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest wait between reconnections, however many failed in a row
/// (unless the server's `retry` is longer).
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long `--raw` waits for the LF after a CR before showing the line.
const CR_GRACE: Duration = Duration::from_millis(100);
/// The largest response body `publish` reads.
const MAX_RESPONSE_BODY_BYTES: usize = 1024 * 1024;

/// Where a client connects: `host:port` and the request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `host:port`, for connecting and for the `Host` header.
    pub(crate) authority: String,
    /// Path and query, e.g. `/events?topic=a`.
    pub(crate) path: String,
}

impl Target {
    /// Parses an `http://` URL, or one without a scheme (`127.0.0.1:8080`),
    /// taken as `http://`. A URL that is only the server's base address
    /// (`http://host:port`, with or without a trailing `/`) gets `default_path`;
    /// a URL with another path is used as given.
    pub(crate) fn parse(url: &str, default_path: &str) -> Result<Target, Fail> {
        let rest = match url.split_once(':') {
            Some((scheme, rest)) if rest.starts_with("//") => {
                if !scheme.eq_ignore_ascii_case("http") {
                    return Err(Fail::Usage(format!(
                        "{url:?}: only http:// URLs are supported (put a TLS proxy in front for https)"
                    )));
                }
                &rest[2..]
            }
            // No scheme (`127.0.0.1:8080`): http.
            _ => url,
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains(['@', ' ']) {
            return Err(Fail::Usage(format!("{url:?}: no host in the URL")));
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

    /// The same target with `pairs` added to its query, percent-encoded.
    fn with_query(&self, pairs: &[(&str, &str)]) -> Target {
        let mut path = self.path.clone();
        for (name, value) in pairs {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&percent_encode(name));
            path.push('=');
            path.push_str(&percent_encode(value));
        }
        Target {
            authority: self.authority.clone(),
            path,
        }
    }

    /// Connects, trying each address the host resolves to.
    fn connect(&self) -> Result<Conn<TcpStream>, Fail> {
        let addresses = self
            .authority
            .to_socket_addrs()
            .map_err(|err| Fail::Runtime(format!("cannot resolve {}: {err}", self.authority)))?;
        let mut last_error = None;
        for address in addresses {
            match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
                    return Ok(Conn::new(stream));
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(Fail::Runtime(match last_error {
            Some(err) => format!("cannot connect to {}: {err}", self.authority),
            None => format!("{} has no address", self.authority),
        }))
    }
}

/// What `tinysse listen` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenOptions {
    /// The server or stream URL.
    pub(crate) url: String,
    /// Topics to subscribe to (none: all).
    pub(crate) topics: Vec<String>,
    /// Resume after this id.
    pub(crate) last_event_id: Option<String>,
    /// Print the bytes as they arrive instead of the events.
    pub(crate) raw: bool,
    /// The subscriber (or publish) token, sent as `Authorization: Bearer`.
    pub(crate) token: Option<String>,
}

/// Subscribes and prints events to `out` (log lines to `log`) until the
/// server refuses (an error) or `out` is closed (`Ok`), reconnecting in
/// between like a browser.
pub(crate) fn listen(
    options: &ListenOptions,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<(), Fail> {
    let base = Target::parse(&options.url, "/events")?;
    let topics: Vec<(&str, &str)> = options
        .topics
        .iter()
        .map(|topic| ("topic", topic.as_str()))
        .collect();
    let target = base.with_query(&topics);
    let mut last_event_id = options.last_event_id.clone().unwrap_or_default();
    let mut retry_ms = Config::default().retry_ms;
    let mut failures: u32 = 0;
    loop {
        let mut parser = Parser::new().with_last_event_id(last_event_id.clone());
        let mut connected = false;
        let outcome = listen_once(
            &target,
            &last_event_id,
            options,
            &mut parser,
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
            Ok(Outcome::Refused(why)) => return Err(Fail::Runtime(why)),
            Ok(Outcome::ServerClosed(None)) => "the server closed the stream".to_string(),
            // A full server says so in a comment before it closes.
            Ok(Outcome::ServerClosed(Some(comment))) => {
                format!("the server closed the stream, saying {comment}")
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                err.to_string()
            }
        };
        // "wait a delay equal to the reconnection time of the event source"
        // plus jitter, doubling after each failure in a row, up to a cap.
        // In milliseconds, as u64: printing a u128 would cost a kilobyte.
        let backoff = retry_ms.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
        let wait = backoff.min(retry_ms.max(MAX_BACKOFF.as_millis() as u64));
        let wait = wait.saturating_add(random() % (wait / 4 + 1));
        let resume = if last_event_id.is_empty() {
            String::new()
        } else {
            format!(" with Last-Event-ID {last_event_id}")
        };
        let _ = writeln!(log, "tinysse: {why}; reconnecting in {wait} ms{resume}");
        std::thread::sleep(Duration::from_millis(wait));
    }
}

/// How one connection of `listen` ended, when not by an error.
enum Outcome {
    /// With the last comment since the last `data:` line, if any (not a heartbeat).
    ServerClosed(Option<String>),
    OutputClosed,
    Refused(String),
}

fn listen_once(
    target: &Target,
    last_event_id: &str,
    options: &ListenOptions,
    parser: &mut Parser,
    connected: &mut bool,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<Outcome, Fail> {
    let mut conn = target.connect()?;
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
        target.path, target.authority
    );
    if !last_event_id.is_empty() {
        request.push_str(&format!("Last-Event-ID: {last_event_id}\r\n"));
    }
    if let Some(token) = &options.token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    let raw = options.raw;
    if raw && print_raw(out, request.as_bytes(), ">").is_err() {
        return Ok(Outcome::OutputClosed);
    }
    conn.get_mut().write_all(request.as_bytes())?;
    let head = match conn.read_response_head(CONNECT_TIMEOUT) {
        Ok(head) => head,
        Err(err) => return Err(Fail::Runtime(no_answer(&err, conn.buffered()))),
    };
    if raw && print_raw(out, &head.raw, "|").is_err() {
        return Ok(Outcome::OutputClosed);
    }
    // "if res's status is not 200, or if res's Content-Type is not
    // text/event-stream, then fail the connection": no more reconnecting.
    if head.status != 200 {
        let mut body = Vec::new();
        let _ = conn
            .body_reader(head.body_framing(), CONNECT_TIMEOUT)
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
    let mut body = conn.body_reader(head.body_framing(), STREAM_IDLE_TIMEOUT);
    let mut chunk = vec![0u8; 8192];
    let mut view = RawView::default();
    let mut comments = Comments::default();
    let end = loop {
        // --raw: a CR at the end of what came may be the first half of a CRLF.
        // Wait a moment for the next byte, not until the next event (the
        // parser dispatches at the CR): then show the line as complete.
        if raw && view.waits_on_cr() && body.conn().buffered().is_empty() {
            let stream = body.conn().get_ref();
            stream.set_read_timeout(Some(CR_GRACE))?;
            let more = stream.peek(&mut [0u8; 1]);
            if more.is_err() && view.end_line(parser, out, log).is_err() {
                return Ok(Outcome::OutputClosed);
            }
        }
        let read = match body.read(&mut chunk) {
            Ok(0) => {
                break Ok(Outcome::ServerClosed(
                    comments.last.as_deref().map(quoted_line),
                ));
            }
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                break Err(Fail::Runtime(format!(
                    "nothing received for {} s",
                    STREAM_IDLE_TIMEOUT.as_secs()
                )));
            }
            Err(err) => break Err(err.into()),
        };
        comments.feed(&chunk[..read]);
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

/// Where `publish` takes its data from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DataSource {
    /// The command-line argument.
    Argument(String),
    /// Standard input: all of it as one event (one trailing newline removed),
    /// or with `each_line`, one event per line that is not blank.
    Stdin,
}

/// What `tinysse publish` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublishOptions {
    /// The server or publish URL.
    pub(crate) url: String,
    /// The topic (server default: `default`).
    pub(crate) topic: Option<String>,
    /// The event type.
    pub(crate) event: Option<String>,
    /// The `retry` to send with the event, in milliseconds.
    pub(crate) retry: Option<u64>,
    /// The publish token, sent as `Authorization: Bearer`.
    pub(crate) token: Option<String>,
    /// Where the data comes from.
    pub(crate) data: DataSource,
    /// One event per line of standard input, over one keep-alive connection.
    pub(crate) each_line: bool,
}

/// Publishes and prints each assigned id to `out`.
pub(crate) fn publish(
    options: &PublishOptions,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), Fail> {
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
        conn: None,
    };
    let mut send = |data: &[u8]| -> Result<(), Fail> {
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
                if !is_blank(text) {
                    send(text)?;
                }
            }
        }
    }
}

/// One keep-alive connection for publishing, reopened when the server
/// closed it.
struct Connection {
    target: Target,
    token: Option<String>,
    conn: Option<Conn<TcpStream>>,
}

impl Connection {
    /// Publishes `data`. A POST is sent at most once: a kept-alive connection
    /// the server closed while it sat idle is replaced before the request is
    /// written; once written, a request is never sent again, since the server
    /// may have published it before the connection broke.
    fn post(&mut self, data: &[u8]) -> Result<String, Fail> {
        if self.conn.as_mut().is_some_and(|conn| !usable(conn)) {
            self.conn = None;
        }
        self.try_post(data).map_err(|fail| match fail {
            Fail::Closed(why) => Fail::Runtime(format!(
                "{why} (the event may have been published; not sending it again)"
            )),
            fail => fail,
        })
    }

    fn try_post(&mut self, data: &[u8]) -> Result<String, Fail> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.target.connect()?),
        };
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
        conn.get_mut()
            .write_all(&bytes)
            .map_err(|err| Fail::Closed(err.to_string()))?;
        let head = match conn.read_response_head(CONNECT_TIMEOUT) {
            Ok(head) => head,
            Err(tinysse::Error::Io(err)) => return Err(Fail::Closed(err.to_string())),
            Err(err @ tinysse::Error::BadResponse(_)) if conn.buffered().is_empty() => {
                return Err(Fail::Closed(err.to_string()));
            }
            Err(err) => return Err(Fail::Runtime(no_answer(&err, conn.buffered()))),
        };
        let body = conn.read_body(head.body_framing(), MAX_RESPONSE_BODY_BYTES)?;
        let closing = head
            .header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"));
        if closing || head.body_framing() == tinysse::http::Framing::Close {
            self.conn = None;
        }
        let text = String::from_utf8_lossy(&body).trim_end().to_string();
        if head.status != 200 {
            let reason = text.lines().next().unwrap_or(&head.reason);
            return Err(Fail::Runtime(format!(
                "the server answered {}: {reason}",
                head.status
            )));
        }
        Ok(text)
    }
}

/// Whether an idle kept-alive connection can take a request: the server has
/// not closed it (no FIN or reset waiting) and sent nothing unasked.
fn usable(conn: &mut Conn<TcpStream>) -> bool {
    if !conn.buffered().is_empty() {
        return false;
    }
    let socket = conn.get_mut();
    if socket.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let open =
        matches!(socket.peek(&mut byte), Err(err) if err.kind() == io::ErrorKind::WouldBlock);
    socket.set_nonblocking(false).is_ok() && open
}

/// Why no response head came, in words: no answer in time, or what came
/// instead of HTTP (`received`: the bytes read).
fn no_answer(err: &tinysse::Error, received: &[u8]) -> String {
    let seconds = CONNECT_TIMEOUT.as_secs();
    let sent = quoted_line(received);
    if !b"HTTP/".starts_with(&received[..received.len().min(5)]) {
        return format!("the server did not answer in HTTP; it sent {sent}");
    }
    match err {
        tinysse::Error::HeadTimeout if received.is_empty() => {
            format!("no answer within {seconds} s")
        }
        tinysse::Error::HeadTimeout => {
            format!("no complete answer within {seconds} s; it sent {sent}")
        }
        err => err.to_string(),
    }
}

/// The first line of `bytes`, its first 60 bytes at most, escaped and quoted.
fn quoted_line(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|&byte| byte == b'\n')
        .map_or(bytes.len(), |at| at + 1);
    let cut = if end > 60 { "..." } else { "" };
    format!("\"{}{cut}\"", escape(&bytes[..end.min(60)]))
}

/// Watches a stream's lines for comments: the last one since the last
/// `data:` line (a heartbeat aside) says why a server closed the stream.
#[derive(Default)]
struct Comments {
    /// The line being read, its first bytes.
    line: Vec<u8>,
    /// The last comment line since the last `data:` line.
    last: Option<Vec<u8>>,
}

impl Comments {
    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' || byte == b'\r' {
                let line = std::mem::take(&mut self.line);
                if line.starts_with(b"data") {
                    self.last = None;
                } else if line.starts_with(b":") && line != b": heartbeat" {
                    self.last = Some(line);
                }
            } else if self.line.len() < 256 {
                self.line.push(byte);
            }
        }
    }
}

/// A random number, for reconnection jitter.
fn random() -> u64 {
    // Each `RandomState` gets new random keys, so any hash it makes is random.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u8(0);
    hasher.finish()
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
        check("h:1", "h:1", "/events");
        check("HTTP://h:1/x", "h:1", "/x");
        check("h:1/e?u=http://x", "h:1", "/e?u=http://x");
        assert!(Target::parse("ftp://h:1", "/events").is_err());
        assert!(Target::parse("http:///x", "/events").is_err());
        let target = Target::parse("http://h:1", "/events")
            .unwrap()
            .with_query(&[("topic", "a b&c"), ("x", "1")]);
        assert_eq!(target.path, "/events?topic=a%20b%26c&x=1");
    }

    #[test]
    fn says_why_no_answer_came() {
        use tinysse::Error;
        let check = |err: Error, received: &[u8], expected: &str| {
            assert_eq!(no_answer(&err, received), expected, "{received:?}");
        };
        check(Error::HeadTimeout, b"", "no answer within 10 s");
        check(
            Error::HeadTimeout,
            b"HTTP/1.1 200 OK\r\nContent-",
            "no complete answer within 10 s; it sent \"HTTP/1.1 200 OK\\r\\n\"",
        );
        check(
            Error::BadResponse("connection closed mid-head"),
            b"SSH-2.0-OpenSSH_9.6\r\nInvalid SSH identification string.\r\n",
            "the server did not answer in HTTP; it sent \"SSH-2.0-OpenSSH_9.6\\r\\n\"",
        );
        check(
            Error::HeadTimeout,
            b"\x15\x03\x01\x00\x02",
            "the server did not answer in HTTP; it sent \"\\x15\\x03\\x01\\x00\\x02\"",
        );
        check(
            Error::HeadTimeout,
            "é".repeat(100).as_bytes(),
            &format!(
                "the server did not answer in HTTP; it sent \"{}...\"",
                "é".repeat(30)
            ),
        );
        check(
            Error::BadResponse("malformed status line"),
            b"HTTP/1.1 2xx OK\r\n\r\n",
            "bad response: malformed status line",
        );
        check(
            Error::HeadTimeout,
            b"HTT",
            "no complete answer within 10 s; it sent \"HTT\"",
        );
    }
}
