//! The grammar of an HTTP/1.1 message head (RFC 9112 §2–§5): a start line,
//! header field lines, an empty line. One scanner finds where a head ends
//! (with limits, however the bytes arrive), and one field parser reads the
//! header lines, for requests ([`Request`]) and responses ([`ResponseHead`])
//! alike.

use crate::Error;

use super::form::form_pairs;

/// Longest request line, in bytes before its CRLF; past it: 414.
pub(crate) const MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;
/// Largest header section (the lines after the request line), in bytes;
/// past it: 431.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields in one request; past it: 431.
pub(crate) const MAX_HEADERS: usize = 100;
/// Largest response head a client reads (status line and headers), in bytes;
/// past it the response is refused.
pub(crate) const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;

/// How long a head may be: its start line, its header section and its
/// number of header fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) start_line: usize,
    pub(crate) section: usize,
    pub(crate) fields: usize,
}

/// The limits of SPEC §4 for a request head.
pub(crate) const REQUEST_LIMITS: Limits = Limits {
    start_line: MAX_REQUEST_LINE_BYTES,
    section: MAX_HEAD_BYTES,
    fields: MAX_HEADERS,
};

/// A client's limits for a response head.
pub(crate) const RESPONSE_LIMITS: Limits = Limits {
    start_line: MAX_RESPONSE_HEAD_BYTES,
    section: MAX_RESPONSE_HEAD_BYTES,
    fields: 1000,
};

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent (methods are case-sensitive).
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The query string, without the `?`, still percent-encoded.
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 (and later 1.x).
    pub minor_version: u8,
    /// Header fields in order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
}

/// A parsed response head, as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The reason phrase, as sent.
    pub reason: String,
    /// Header fields in order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The head's bytes as they arrived, empty line included.
    pub raw: Vec<u8>,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// The value of the first header named `name` (case-insensitive).
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

impl Request {
    /// The value of the first header named `name` (case-insensitive).
    ///
    /// ```
    /// use tinysse::http::{Conn, HEAD_TIMEOUT};
    ///
    /// let input = &b"GET /events HTTP/1.1\r\nHost: h\r\nLast-Event-ID: 42\r\n\r\n"[..];
    /// let request = Conn::new(input).read_head(HEAD_TIMEOUT)?.unwrap();
    /// assert_eq!(request.header("last-event-id"), Some("42"));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Whether the client wants the connection kept open after this request:
    /// by default in HTTP/1.1, only with `Connection: keep-alive` in 1.0.
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

    /// Whether the client waits for `100 Continue` before sending its body.
    pub fn expects_continue(&self) -> bool {
        self.minor_version >= 1
            && self
                .header("expect")
                .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"))
    }

    /// The query string's name/value pairs, percent-decoded.
    ///
    /// ```
    /// use tinysse::http::{Conn, HEAD_TIMEOUT};
    ///
    /// let input = &b"GET /events?topic=a&topic=b%2Fc HTTP/1.0\r\n\r\n"[..];
    /// let request = Conn::new(input).read_head(HEAD_TIMEOUT)?.unwrap();
    /// let topics: Vec<String> = request.query_pairs()?.into_iter().map(|(_, value)| value).collect();
    /// assert_eq!(topics, ["a", "b/c"]);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn query_pairs(&self) -> Result<Vec<(String, String)>, Error> {
        form_pairs(&self.query)
    }

    /// How the request's body is delimited (RFC 9112 §6.3): chunked,
    /// `Content-Length`, or no body. Conflicting or malformed framing is an
    /// error, since a request smuggled past it could be read two ways.
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

impl ResponseHead {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// How the response's body is delimited: chunked, `Content-Length`, or
    /// until the connection closes (RFC 9112 §6.3).
    pub fn body_framing(&self) -> Framing {
        let chunked = self.header("transfer-encoding").is_some_and(|value| {
            value
                .split(',')
                .any(|coding| coding.trim().eq_ignore_ascii_case("chunked"))
        });
        if chunked {
            return Framing::Chunked;
        }
        if self.status == 204 || self.status == 304 || self.status < 200 {
            return Framing::None;
        }
        match self.header("content-length").map(str::trim) {
            Some(length) => length
                .parse()
                .map(Framing::Length)
                .unwrap_or(Framing::Close),
            None => Framing::Close,
        }
    }
}

/// Where a head scan got to: a head that arrives in pieces is scanned once,
/// not once per read.
#[derive(Debug, Default)]
pub(crate) struct HeadScan {
    /// Where the start line ends (its LF), once found.
    line_end: Option<usize>,
    /// Where the line being scanned starts.
    start: usize,
    /// Bytes before this hold no LF the scan has not seen.
    searched: usize,
    /// Header lines seen.
    fields: usize,
}

impl HeadScan {
    fn next_line_end(&mut self, bytes: &[u8]) -> Option<usize> {
        let from = self.start.max(self.searched).min(bytes.len());
        let found = bytes[from..].iter().position(|&b| b == b'\n');
        let found = found.map(|at| from + at);
        self.searched = found.map_or(bytes.len(), |at| at + 1);
        found
    }
}

/// Where the head in `bytes` ends (after its empty line), `None` if it is
/// not complete yet, or an error as soon as a limit is passed. `scan` keeps
/// the progress between calls on a growing `bytes`.
pub(crate) fn find_head_end(
    bytes: &[u8],
    scan: &mut HeadScan,
    limits: Limits,
) -> Result<Option<usize>, Error> {
    // The start line ends at the first LF. "The request-line limit counts
    // the bytes before its CRLF."
    let line_end = match scan.line_end {
        Some(line_end) => line_end,
        None => {
            let Some(line_end) = scan.next_line_end(bytes) else {
                // Allow for a CR that may still be followed by LF.
                if without_cr(bytes).len() > limits.start_line {
                    return Err(Error::RequestLineTooLong);
                }
                return Ok(None);
            };
            if without_cr(&bytes[..line_end]).len() > limits.start_line {
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
            let partial = without_cr(&bytes[start..]);
            if start - (line_end + 1) + partial.len() > limits.section {
                return Err(Error::HeadersTooLarge);
            }
            return Ok(None);
        };
        let end = at + 1;
        if without_cr(&bytes[start..at]).is_empty() {
            return Ok(Some(end));
        }
        scan.fields += 1;
        if scan.fields > limits.fields || end - (line_end + 1) > limits.section {
            return Err(Error::HeadersTooLarge);
        }
        scan.start = end;
    }
}

fn without_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The lines of a complete head, without their line endings.
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n').map(without_cr)
}

/// Parses a complete request head (as found by [`find_head_end`]).
pub(crate) fn parse_request(head: &[u8]) -> Result<Request, Error> {
    let mut lines = lines(head);
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
    let headers = parse_fields(lines)?;
    // "A server MUST respond with a 400 (Bad Request) status code to any
    // HTTP/1.1 request message that lacks a Host header field and to any
    // request message that contains more than one Host header field line".
    let hosts = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("host"))
        .count();
    if hosts > 1 || (hosts == 0 && minor_version >= 1) {
        return Err(Error::BadRequest(
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    Ok(Request {
        method: method.to_string(),
        path,
        query,
        minor_version,
        headers,
    })
}

/// Parses a complete response head (as found by [`find_head_end`]).
pub(crate) fn parse_response(head: &[u8]) -> Result<ResponseHead, Error> {
    let mut lines = lines(head);
    let status_line = String::from_utf8_lossy(lines.next().unwrap_or_default());
    // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4)
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if parse_version(version).is_err() {
        return Err(Error::BadResponse("not an HTTP/1.x response"));
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::BadResponse("invalid status code"));
    }
    let headers = parse_fields(lines).map_err(|err| match err {
        Error::BadRequest(why) => Error::BadResponse(why),
        other => other,
    })?;
    Ok(ResponseHead {
        status: code.parse().unwrap_or(0),
        reason: parts.next().unwrap_or_default().to_string(),
        headers,
        raw: head.to_vec(),
    })
}

/// Header field lines up to the empty line (RFC 9112 §5).
fn parse_fields<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Result<Vec<(String, String)>, Error> {
    let mut headers = Vec::new();
    for line in lines {
        let Some(&first) = line.first() else {
            break;
        };
        if first == b' ' || first == b'\t' {
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
        let value = line[colon + 1..].trim_ascii();
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Error::BadRequest("control character in a header value"));
        }
        headers.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok(headers)
}

/// `HTTP/1.x` → x (as 0 or 1); another major version is a 505.
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

/// The path and query of a request target, in origin form or absolute form.
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

/// `tchar` of RFC 9110 §5.6.2.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(bytes: &[u8]) -> Result<ResponseHead, Error> {
        let end =
            find_head_end(bytes, &mut HeadScan::default(), RESPONSE_LIMITS)?.expect("a whole head");
        parse_response(&bytes[..end])
    }

    #[test]
    fn response_heads() {
        let head =
            response(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nbody").unwrap();
        assert_eq!((head.status, head.reason.as_str()), (404, "Not Found"));
        assert_eq!(head.header("content-type"), Some("text/plain"));
        assert_eq!(head.body_framing(), Framing::Close);
        let head = response(b"HTTP/1.0 200\r\nContent-Length: 3\r\n\r\n").unwrap();
        assert_eq!(
            (head.status, head.body_framing()),
            (200, Framing::Length(3))
        );
        let head = response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(head.body_framing(), Framing::Chunked);
        for bad in [
            &b"SSH-2.0-OpenSSH_9.2\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 20x\r\n\r\n",
        ] {
            assert!(
                matches!(response(bad), Err(Error::BadResponse(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            response(b"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n"),
            Err(Error::BadResponse(_))
        ));
    }

    #[test]
    fn a_head_in_pieces_is_scanned_once() {
        let head = b"GET / HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n";
        let mut scan = HeadScan::default();
        for end in 0..head.len() {
            assert_eq!(
                find_head_end(&head[..end], &mut scan, REQUEST_LIMITS).unwrap(),
                None
            );
        }
        assert_eq!(
            find_head_end(head, &mut scan, REQUEST_LIMITS).unwrap(),
            Some(head.len())
        );
        assert_eq!(scan.fields, 2);
    }
}
