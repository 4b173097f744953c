//! Events: build, validate and encode them to the exact bytes on the wire.
//!
//! This module does no I/O. The hub encodes each published event once, with
//! [`Event::encode_into`], and every subscriber writes those same bytes. A
//! stream is a `retry` frame, then events and comment frames.

use crate::Error;

/// One server-sent event, as a publisher describes it.
///
/// Build it in the "builder-lite" style and encode it to wire bytes:
///
/// ```
/// use tinysse::Event;
///
/// let event = Event::new("first line\nsecond line").with_event("note").with_id("7");
/// assert_eq!(
///     event.encode(),
///     b"id: 7\nevent: note\ndata: first line\ndata: second line\n\n"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The payload. Any UTF-8 text; CRLF and lone CR arrive as LF.
    pub data: String,
    /// The event type (`event:` field); `None` means the default `message`.
    pub event: Option<String>,
    /// The id (`id:` field). The hub sets it; publishers do not.
    pub id: Option<String>,
    /// The reconnection time in milliseconds (`retry:` field).
    pub retry: Option<u64>,
}

impl Event {
    /// An event carrying `data`, with no type, id or retry.
    ///
    /// ```
    /// use tinysse::Event;
    ///
    /// let event = Event::new("hi");
    /// assert_eq!((event.event, event.id, event.retry), (None, None, None));
    /// assert_eq!(Event::new("hi").encode(), b"data: hi\n\n");
    /// ```
    pub fn new(data: impl Into<String>) -> Event {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// Sets the event type. An empty name means the default type, `message`.
    ///
    /// ```
    /// use tinysse::Event;
    ///
    /// assert_eq!(Event::new("1").with_event("tick").encode(), b"event: tick\ndata: 1\n\n");
    /// assert_eq!(Event::new("1").with_event("").event, None);
    /// ```
    pub fn with_event(mut self, name: impl Into<String>) -> Event {
        let name = name.into();
        self.event = if name.is_empty() { None } else { Some(name) };
        self
    }

    /// Sets the id.
    ///
    /// ```
    /// use tinysse::Event;
    ///
    /// assert_eq!(Event::new("x").with_id("42").encode(), b"id: 42\ndata: x\n\n");
    /// ```
    pub fn with_id(mut self, id: impl Into<String>) -> Event {
        self.id = Some(id.into());
        self
    }

    /// Sets the reconnection time the client should use, in milliseconds.
    ///
    /// ```
    /// use tinysse::Event;
    ///
    /// assert_eq!(Event::new("x").with_retry(500).encode(), b"retry: 500\ndata: x\n\n");
    /// ```
    pub fn with_retry(mut self, millis: u64) -> Event {
        self.retry = Some(millis);
        self
    }

    /// Checks that the event can be written to the wire without changing meaning.
    ///
    /// The event type must not contain CR or LF (a line break would start a new
    /// field: an injection); the id must not contain CR, LF or NUL (a client
    /// ignores an `id` with NUL).
    ///
    /// ```
    /// use tinysse::Event;
    /// assert!(Event::new("ok").with_event("a\nb").validate().is_err());
    /// assert!(Event::new("NUL \0 and\nlines are fine in data").validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(name) = &self.event
            && name.contains(['\r', '\n'])
        {
            return Err(Error::InvalidEvent("event type contains CR or LF"));
        }
        if let Some(id) = &self.id
            && id.contains(['\r', '\n', '\0'])
        {
            return Err(Error::InvalidEvent("id contains CR, LF or NUL"));
        }
        Ok(())
    }

    /// Encodes the event to its wire bytes.
    ///
    /// Call [`Event::validate`] first; see [`Event::encode_into`].
    ///
    /// Each line of data, whatever its line ending, becomes one `data:` line:
    ///
    /// ```
    /// use tinysse::Event;
    ///
    /// let event = Event::new("a\r\nb\n");
    /// event.validate()?;
    /// assert_eq!(event.encode(), b"data: a\ndata: b\ndata: \n\n");
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 32);
        self.encode_into(&mut out);
        out
    }

    /// Appends the event's wire bytes to `out`: `id`, `event`, `retry`, one
    /// `data` line per line of data, then a blank line.
    ///
    /// A field with a line break in it would not round-trip; [`Event::validate`]
    /// refuses those, and this function never writes a CR or LF inside a field.
    ///
    /// ```
    /// use tinysse::Event;
    ///
    /// let mut out = Vec::new();
    /// Event::new("one").with_id("1").encode_into(&mut out);
    /// Event::new("two").with_id("2").encode_into(&mut out);
    /// assert_eq!(out, b"id: 1\ndata: one\n\nid: 2\ndata: two\n\n");
    /// ```
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Always "field: value" with one space: "If value starts with a U+0020
        // SPACE character, remove it from value" — so data that itself starts
        // with a space keeps it.
        if let Some(id) = &self.id {
            push_field(out, "id", id);
        }
        if let Some(name) = &self.event {
            push_field(out, "event", name);
        }
        if let Some(retry) = self.retry {
            push_field(out, "retry", &retry.to_string());
        }
        // "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE
        // FEED (CRLF) character pair, a single U+000A LINE FEED (LF) character,
        // or a single U+000D CARRIAGE RETURN (CR) character." So data is split on
        // all three, and each piece is one `data:` line. The client joins them
        // with LF and removes the last LF; data that ends with a line break
        // therefore ends with an empty `data:` line, and empty data is one empty
        // `data:` line (an event with no `data` line is never dispatched).
        for line in DataLines::new(&self.data) {
            push_field(out, "data", line);
        }
        out.push(b'\n');
    }
}

/// The `retry: <millis>` frame a stream starts with (and ends with at shutdown).
pub(crate) fn retry_frame(millis: u64) -> Vec<u8> {
    format!("retry: {millis}\n\n").into_bytes()
}

/// A comment frame: `: text` and a blank line. Clients ignore it; it keeps
/// proxies and idle connections alive. Line breaks in `text` become spaces.
pub(crate) fn comment_frame(text: &str) -> Vec<u8> {
    let text = text.replace(['\r', '\n'], " ");
    format!(": {text}\n\n").into_bytes()
}

/// A `retry` value: "If the field value consists of only ASCII digits, then
/// interpret the field value as an integer in base ten". `None` for anything
/// else, the empty string included; a value too large for a `u64` saturates.
/// The one check for every `retry` tinysse reads: stream fields and publish
/// requests.
pub(crate) fn parse_retry(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.bytes().fold(0u64, |n, digit| {
        n.saturating_mul(10).saturating_add(u64::from(digit - b'0'))
    }))
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// The lines of `data`, split on CRLF, lone CR and lone LF. Yields one empty
/// line for empty data and a last empty line when data ends with a break.
struct DataLines<'a> {
    rest: Option<&'a str>,
}

impl<'a> DataLines<'a> {
    fn new(data: &'a str) -> DataLines<'a> {
        DataLines { rest: Some(data) }
    }
}

impl<'a> Iterator for DataLines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.find(['\r', '\n']) {
            None => {
                self.rest = None;
                Some(rest)
            }
            Some(at) => {
                let line = &rest[..at];
                let after = if rest[at..].starts_with("\r\n") {
                    at + 2
                } else {
                    at + 1
                };
                self.rest = Some(&rest[after..]);
                Some(line)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(event: Event, expected: &str) {
        assert_eq!(String::from_utf8(event.encode()).unwrap(), expected);
    }

    #[test]
    fn encodes_fields_in_order() {
        check(Event::new("x"), "data: x\n\n");
        check(
            Event::new("a\nb").with_id("7"),
            "id: 7\ndata: a\ndata: b\n\n",
        );
        check(
            Event::new("x")
                .with_id("1-2")
                .with_event("tick")
                .with_retry(500),
            "id: 1-2\nevent: tick\nretry: 500\ndata: x\n\n",
        );
        check(Event::new("x").with_event(""), "data: x\n\n");
    }

    #[test]
    fn splits_data_on_every_line_ending() {
        check(Event::new(""), "data: \n\n");
        check(Event::new("\n"), "data: \ndata: \n\n");
        check(
            Event::new("a\r\nb\rc\nd"),
            "data: a\ndata: b\ndata: c\ndata: d\n\n",
        );
        check(Event::new("a\r\n"), "data: a\ndata: \n\n");
        check(Event::new("a\n\rb"), "data: a\ndata: \ndata: b\n\n");
        check(Event::new("\r\r\n"), "data: \ndata: \ndata: \n\n");
        check(Event::new(" lead"), "data:  lead\n\n");
        check(Event::new(": not a comment"), "data: : not a comment\n\n");
        check(Event::new("nul \0 é 🎉"), "data: nul \0 é 🎉\n\n");
    }

    #[test]
    fn validate_refuses_line_breaks_in_fields() {
        assert!(Event::new("x").with_event("a\rb").validate().is_err());
        assert!(Event::new("x").with_event("a\nb").validate().is_err());
        assert!(Event::new("x").with_id("a\0").validate().is_err());
        assert!(Event::new("x").with_event("ok:name").validate().is_ok());
    }

    #[test]
    fn frames() {
        assert_eq!(retry_frame(0), b"retry: 0\n\n");
        assert_eq!(retry_frame(3000), b"retry: 3000\n\n");
        assert_eq!(comment_frame("heartbeat"), b": heartbeat\n\n");
        assert_eq!(comment_frame("a\nb"), b": a b\n\n");
    }

    #[test]
    fn retry_values() {
        for (text, expected) in [
            ("0", Some(0)),
            ("3000", Some(3000)),
            ("007", Some(7)),
            ("99999999999999999999999", Some(u64::MAX)),
            ("", None),
            ("1s", None),
            ("-1", None),
            (" 1", None),
            ("１", None),
        ] {
            assert_eq!(parse_retry(text), expected, "{text:?}");
        }
    }
}
