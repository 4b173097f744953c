//! Responses as the server writes them: a status line, headers, and a body
//! sent with `Content-Length`; the head of an event stream; `100 Continue`.

use std::io::{self, Write};

/// The statuses tinysse sends, with their reason phrases (RFC 9110 §15).
pub(crate) const STATUSES: [(u16, &str); 17] = [
    (100, "Continue"),
    (200, "OK"),
    (204, "No Content"),
    (400, "Bad Request"),
    (401, "Unauthorized"),
    (403, "Forbidden"),
    (404, "Not Found"),
    (405, "Method Not Allowed"),
    (408, "Request Timeout"),
    (411, "Length Required"),
    (413, "Content Too Large"),
    (414, "URI Too Long"),
    (431, "Request Header Fields Too Large"),
    (500, "Internal Server Error"),
    (501, "Not Implemented"),
    (503, "Service Unavailable"),
    (505, "HTTP Version Not Supported"),
];

/// The interim answer to `Expect: 100-continue`.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The head of an event stream (SPEC §2): `Content-Type: text/event-stream`,
/// no caching, no proxy buffering, then `extra` headers; ends with the empty
/// line.
pub(crate) fn stream_head(extra: &[(&'static str, String)]) -> Vec<u8> {
    let mut head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n".to_vec();
    for (name, value) in extra {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn reason_phrase(status: u16) -> &'static str {
    STATUSES
        .iter()
        .find(|(known, _)| *known == status)
        .map_or("Unknown", |(_, reason)| reason)
}

/// A response to write: status, headers, and a body sent with `Content-Length`.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// A `text/plain` response.
    pub(crate) fn text(status: u16, body: impl Into<String>) -> Response {
        Response::typed(status, "text/plain; charset=utf-8", body)
    }

    /// A response with this content type.
    pub(crate) fn typed(status: u16, content_type: &str, body: impl Into<String>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body: body.into().into_bytes(),
        }
    }

    /// A response with no body.
    pub(crate) fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The answer to an error: its status and its one-line reason.
    /// The error's status and one-line reason; a 401 names the scheme it
    /// wants, as RFC 9110 §11.6.1 requires.
    pub(crate) fn error(err: &crate::Error) -> Response {
        let response = Response::text(err.status(), format!("{err}\n"));
        match err.status() {
            401 => response.with_header("WWW-Authenticate", "Bearer"),
            _ => response,
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn with_headers(
        mut self,
        headers: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Response {
        self.headers.extend(headers);
        self
    }

    /// Writes the response in one `write_all`.
    pub(crate) fn write_to(
        &self,
        out: &mut impl Write,
        head_only: bool,
        keep_alive: bool,
    ) -> io::Result<()> {
        out.write_all(&self.to_bytes(head_only, keep_alive))?;
        out.flush()
    }

    /// The bytes on the wire; `Connection: close` unless `keep_alive`.
    pub(crate) fn to_bytes(&self, head_only: bool, keep_alive: bool) -> Vec<u8> {
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
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(299), "Unknown");
        assert_eq!(
            stream_head(&[("Vary", "Origin".into())]),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nVary: Origin\r\n\r\n"
        );
    }
}
