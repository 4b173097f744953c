//! The crate's one error type.
//!
//! Its `Display` text and [`Error::status`] make up the HTTP answer:
//!
//! ```
//! use tinysse::Event;
//!
//! let err = Event::new("x").with_event("a\nb").validate().unwrap_err();
//! assert_eq!(err.to_string(), "invalid event: event type contains CR or LF");
//! assert_eq!(err.status(), 400);
//! ```

use std::fmt;
use std::io;

/// Everything that can go wrong in tinysse.
///
/// HTTP-facing variants map to a status code with [`Error::status`]; their
/// `Display` text is the one-line reason sent in the response body.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A socket or file operation failed.
    Io(io::Error),
    /// The request line is longer than its limit, 8 KiB (414).
    RequestLineTooLong,
    /// The header section is over 16 KiB or has more than 100 headers (431).
    HeadersTooLarge,
    /// The request head did not arrive in time (408).
    HeadTimeout,
    /// The request body did not arrive in time (408).
    BodyTimeout,
    /// The request is malformed; the text says how (400).
    BadRequest(&'static str),
    /// A response (read by a client) is malformed; the text says how.
    BadResponse(&'static str),
    /// The request's HTTP major version is not 1 (505).
    VersionNotSupported,
    /// A request with a body has neither `Content-Length` nor chunked encoding (411).
    LengthRequired,
    /// The request body is larger than the configured maximum (413).
    BodyTooLarge {
        /// The largest body accepted, in bytes (`Config::max_body`).
        limit: usize,
    },
    /// A published event is invalid; the text says why (400).
    InvalidEvent(&'static str),
    /// A topic is empty, too long or has a character outside the allowed set (400).
    BadTopic,
    /// A token is missing or wrong (401).
    Unauthorized,
    /// A signed token is refused; the text says why (401).
    BadToken(&'static str),
    /// The client's rights do not cover a topic it asked to read or write;
    /// the text says which way (401).
    NotAllowed(&'static str),
    /// Publishing without a token on a non-loopback address (403).
    Forbidden,
    /// A line or an event in a parsed stream is over the parser's limit.
    EventTooLarge,
    /// The request uses a transfer coding other than `chunked` (501).
    UnsupportedTransferEncoding,
    /// The hub is at its subscriber limit.
    Full,
    /// The hub or server has been shut down.
    Closed,
    /// Where events are kept (a journal on disk, Redis) cannot take them
    /// now; the text says why (503).
    Unavailable(String),
    /// A setting cannot work (a bad Redis URL, a refused password, settings
    /// that exclude each other); the text says which.
    BadConfig(String),
    /// A thread the server started panicked.
    Panicked,
}

impl Error {
    /// The HTTP status code this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Error::RequestLineTooLong => 414,
            Error::HeadersTooLarge => 431,
            Error::HeadTimeout | Error::BodyTimeout => 408,
            Error::VersionNotSupported => 505,
            Error::LengthRequired => 411,
            Error::BodyTooLarge { .. } | Error::EventTooLarge => 413,
            Error::Unauthorized | Error::BadToken(_) | Error::NotAllowed(_) => 401,
            Error::Forbidden => 403,
            Error::UnsupportedTransferEncoding => 501,
            Error::Full | Error::Closed | Error::Unavailable(_) => 503,
            Error::Io(_) | Error::BadResponse(_) | Error::Panicked | Error::BadConfig(_) => 500,
            Error::BadRequest(_) | Error::InvalidEvent(_) | Error::BadTopic => 400,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(err) => write!(f, "i/o error: {err}"),
            Error::RequestLineTooLong => f.write_str("request line too long"),
            Error::HeadersTooLarge => f.write_str("request header section too large"),
            Error::HeadTimeout => f.write_str("request head not received in time"),
            Error::BodyTimeout => f.write_str("request body not received in time"),
            Error::BadRequest(why) => write!(f, "bad request: {why}"),
            Error::BadResponse(why) => write!(f, "bad response: {why}"),
            Error::VersionNotSupported => f.write_str("only HTTP/1.x is supported"),
            Error::LengthRequired => {
                f.write_str("a body needs Content-Length or Transfer-Encoding: chunked")
            }
            Error::BodyTooLarge { limit } => {
                write!(
                    f,
                    "request body too large (limit {limit} bytes, --max-body)"
                )
            }
            Error::InvalidEvent(why) => write!(f, "invalid event: {why}"),
            Error::BadTopic => {
                f.write_str("bad topic: use 1-128 characters of A-Z a-z 0-9 - _ . ~ : /")
            }
            Error::Unauthorized => f.write_str("missing or wrong token"),
            Error::BadToken(why) => write!(f, "bad token: {why}"),
            Error::NotAllowed(what) => write!(f, "not allowed to {what}"),
            Error::Forbidden => {
                f.write_str("publishing without --token is allowed only on a loopback address")
            }
            Error::EventTooLarge => f.write_str("event stream line or event too large"),
            Error::UnsupportedTransferEncoding => {
                f.write_str("only Transfer-Encoding: chunked is supported")
            }
            Error::Full => f.write_str("too many subscribers, try again later"),
            Error::Closed => f.write_str("the server is shutting down"),
            Error::Unavailable(why) | Error::BadConfig(why) => f.write_str(why),
            Error::Panicked => f.write_str("a server thread panicked"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        Error::Io(err)
    }
}
