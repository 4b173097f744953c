//! HTTP/1.1 by hand, shared by the server and the `tinysse` client: one
//! grammar for message heads ([`Request`], [`ResponseHead`]) with hard
//! limits, one decoder for chunked bodies, forms and percent-coding, and the
//! responses the server writes. [`Conn`] reads from a [`Stream`] given to
//! it; nothing here opens a socket.

mod body;
mod conn;
mod form;
mod head;
mod response;

pub use conn::{BodyReader, Conn, HEAD_TIMEOUT, Stream};
pub use form::percent_encode;
pub use head::{Framing, Request, ResponseHead};

pub(crate) use form::form_pairs;
pub(crate) use response::{CONTINUE, Response, STATUSES, stream_head};
