//! Publish requests: turn a request body into the events to publish.
//!
//! Three body formats (by `Content-Type`):
//! - `application/x-www-form-urlencoded`: fields `data`, `topic`, `event`
//!   (alias `type`), `retry`;
//! - `text/event-stream`: a batch of events (`data`, `event`, `retry`
//!   fields), published all or nothing;
//! - anything else: the body is the data; `topic`, `event`, `retry` come from
//!   the query string.
//!
//! This module does no network I/O; [`pump_lines`] reads any `BufRead` (the
//! binary gives it standard input).
//!
//! ```
//! use tinysse::{Event, publish::read_publication};
//!
//! let form = Some("application/x-www-form-urlencoded");
//! let publication = read_publication(form, &[], b"data=a%20b&topic=news&retry=500")?;
//! assert_eq!(publication.topic, "news");
//! assert_eq!(publication.events, [Event::new("a b").with_retry(500)]);
//! # Ok::<(), tinysse::Error>(())
//! ```

use std::io::{self, BufRead, Read};

use crate::Error;
use crate::event::Event;
use crate::hub::{Hub, check_topic};
use crate::parse::{Line, Lines, classify};

/// The topic used when a publisher names none.
///
/// ```
/// use tinysse::publish::{DEFAULT_TOPIC, read_publication};
///
/// assert_eq!(read_publication(None, &[], b"hello")?.topic, DEFAULT_TOPIC);
/// # Ok::<(), tinysse::Error>(())
/// ```
pub const DEFAULT_TOPIC: &str = "default";

/// What one publish request asks for: events for one topic, in order.
///
/// It is ready for [`Hub::publish_batch`]:
///
/// ```
/// use tinysse::{Hub, publish::read_publication};
///
/// let hub = Hub::new();
/// let publication = read_publication(Some("text/plain"), &[], b"hi")?;
/// let ids = hub.publish_batch(&publication.topic, publication.events)?;
/// assert_eq!(ids.len(), 1);
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The topic, already checked.
    pub topic: String,
    /// The events, already checked; at least one.
    pub events: Vec<Event>,
}

/// Reads a publish request: its `Content-Type` (if any), its decoded query
/// parameters, and its body. Any invalid part rejects the whole request.
///
/// ```
/// use tinysse::publish::read_publication;
///
/// let query = vec![("topic".to_string(), "news".to_string())];
/// let batch = read_publication(Some("text/event-stream"), &query, b"data: a\n\nevent: b\ndata: c")?;
/// assert_eq!(batch.topic, "news");
/// assert_eq!(batch.events.len(), 2);
/// assert_eq!(batch.events[1].event.as_deref(), Some("b"));
/// # Ok::<(), tinysse::Error>(())
/// ```
pub fn read_publication(
    content_type: Option<&str>,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Publication, Error> {
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let body = std::str::from_utf8(body).map_err(|_| Error::InvalidEvent("body is not UTF-8"))?;
    match media_type.as_str() {
        "application/x-www-form-urlencoded" => {
            let form = crate::http::form_pairs(body)?;
            let mut fields = Fields::from_pairs(query);
            fields.data = None; // a form carries its data in the body
            fields.merge(&form);
            let data = fields
                .data
                .take()
                .ok_or(Error::InvalidEvent("form has no data field"))?;
            fields.into_publication(vec![data])
        }
        "text/event-stream" => {
            let fields = Fields::from_pairs(query);
            let topic = fields.topic()?;
            let events = read_batch(body)?;
            Ok(Publication { topic, events })
        }
        _ => Fields::from_pairs(query).into_publication(vec![body.to_string()]),
    }
}

/// The named fields of a form or query string; later values win.
#[derive(Debug, Default)]
struct Fields {
    data: Option<String>,
    topic: Option<String>,
    event: Option<String>,
    retry: Option<String>,
}

impl Fields {
    fn from_pairs(pairs: &[(String, String)]) -> Fields {
        let mut fields = Fields::default();
        fields.merge(pairs);
        fields
    }

    fn merge(&mut self, pairs: &[(String, String)]) {
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "data" => &mut self.data,
                "topic" => &mut self.topic,
                "event" | "type" => &mut self.event,
                "retry" => &mut self.retry,
                _ => continue,
            };
            *slot = Some(value.clone());
        }
    }

    fn topic(&self) -> Result<String, Error> {
        let topic = self.topic.as_deref().unwrap_or(DEFAULT_TOPIC);
        check_topic(topic)?;
        Ok(topic.to_string())
    }

    fn into_publication(self, data: Vec<String>) -> Result<Publication, Error> {
        let topic = self.topic()?;
        let retry = self.retry.as_deref().map(parse_retry).transpose()?;
        let events = data
            .into_iter()
            .map(|data| {
                let mut event = Event::new(data).with_event(self.event.clone().unwrap_or_default());
                event.retry = retry;
                event.validate().map(|()| event)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Publication { topic, events })
    }
}

/// `retry` is ASCII digits only (milliseconds).
fn parse_retry(text: &str) -> Result<u64, Error> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidEvent(
            "retry must be ASCII digits (milliseconds)",
        ));
    }
    text.parse()
        .map_err(|_| Error::InvalidEvent("retry is too large"))
}

/// Parses a `text/event-stream` batch strictly: an `id:` field or a `retry:`
/// that is not digits rejects it; a block with no `data:` line is not an event;
/// the end of the body ends the last event.
fn read_batch(body: &str) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    let mut current = Event::default();
    let mut has_data = false;
    let mut failure = None;
    let mut on_line = |line: &str| {
        if failure.is_some() {
            return;
        }
        match classify(line) {
            Line::Comment(_) => {}
            Line::Blank => {
                let event = std::mem::take(&mut current);
                if std::mem::take(&mut has_data) {
                    events.push(event);
                }
            }
            Line::Field("data", value) => {
                if has_data {
                    current.data.push('\n');
                }
                current.data.push_str(value);
                has_data = true;
            }
            Line::Field("event", value) => current = std::mem::take(&mut current).with_event(value),
            Line::Field("retry", value) => match parse_retry(value) {
                Ok(millis) => current.retry = Some(millis),
                Err(err) => failure = Some(err),
            },
            Line::Field("id", _) => {
                failure = Some(Error::InvalidEvent("ids are assigned by the server"))
            }
            Line::Field(..) => {}
        }
    };
    let mut lines = Lines::new(body.len() + 1);
    lines.feed(body.as_bytes(), &mut on_line)?;
    // "The end of the body ends the last event": finish the last line, then
    // the event. A body ending in CR gets CRLF here, still one line ending.
    lines.feed(b"\n\n", &mut on_line)?;
    if let Some(err) = failure {
        return Err(err);
    }
    if events.is_empty() {
        return Err(Error::InvalidEvent(
            "no event in the body (an event needs a data: line)",
        ));
    }
    Ok(events)
}

/// Publishes each non-empty line of `reader` as one event on `topic` (with
/// type `event` when not empty) until end of input. Lines end with LF or
/// CRLF; invalid UTF-8 is replaced with U+FFFD. A line longer than
/// `max_line` bytes is published in pieces of `max_line` bytes.
/// Returns how many events were published.
///
/// ```
/// use tinysse::{Hub, publish::pump_lines};
///
/// let hub = Hub::new();
/// let input: &[u8] = b"one\r\n\nabcdefghijklmnop\n";
/// assert_eq!(pump_lines(&hub, input, "logs", "line", 8)?, 3); // "one", "abcdefgh", "ijklmnop"
/// assert_eq!(hub.stats().published, 3);
/// # Ok::<(), tinysse::Error>(())
/// ```
pub fn pump_lines(
    hub: &Hub,
    reader: impl BufRead,
    topic: &str,
    event: &str,
    max_line: usize,
) -> Result<u64, Error> {
    check_topic(topic)?;
    Event::new("").with_event(event).validate()?;
    let max_line = max_line.max(1);
    let mut reader = reader;
    let mut line = Vec::new();
    let mut published = 0;
    loop {
        line.clear();
        let read = reader
            .by_ref()
            .take(max_line as u64)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) => return Ok(published),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::Io(err)),
        }
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
        }
        if line.is_empty() {
            continue;
        }
        let data = String::from_utf8_lossy(&line).into_owned();
        hub.publish(topic, Event::new(data).with_event(event))?;
        published += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn check(
        content_type: Option<&str>,
        pairs: &[(&str, &str)],
        body: &str,
        expected: Result<(&str, Vec<Event>), &str>,
    ) {
        let got = read_publication(content_type, &query(pairs), body.as_bytes());
        match (got, expected) {
            (Ok(publication), Ok((topic, events))) => {
                assert_eq!(publication.topic, topic);
                assert_eq!(publication.events, events);
            }
            (Err(err), Err(message)) => assert_eq!(err.to_string(), message),
            (got, expected) => panic!("{body:?}: got {got:?}, expected {expected:?}"),
        }
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    const BATCH: Option<&str> = Some("text/event-stream; charset=utf-8");

    #[test]
    fn form_bodies() {
        check(
            FORM,
            &[],
            "data=hi",
            Ok(("default", vec![Event::new("hi")])),
        );
        check(FORM, &[], "data=", Ok(("default", vec![Event::new("")])));
        check(
            FORM,
            &[("topic", "q")],
            "data=a%0Ab&type=note&retry=10",
            Ok((
                "q",
                vec![Event::new("a\nb").with_event("note").with_retry(10)],
            )),
        );
        check(
            FORM,
            &[],
            "data=x&topic=t2&event=e",
            Ok(("t2", vec![Event::new("x").with_event("e")])),
        );
        check(
            FORM,
            &[("data", "from-query")],
            "topic=t",
            Err("invalid event: form has no data field"),
        );
        check(
            FORM,
            &[],
            "data=x&event=a%0Db",
            Err("invalid event: event type contains CR or LF"),
        );
        check(
            FORM,
            &[],
            "data=x&retry=1s",
            Err("invalid event: retry must be ASCII digits (milliseconds)"),
        );
        check(
            FORM,
            &[],
            "data=x&topic=a%20b",
            Err(Error::BadTopic.to_string().as_str()),
        );
        check(
            FORM,
            &[],
            "data=%ff",
            Err("bad request: form or query is not UTF-8"),
        );
    }

    #[test]
    fn raw_bodies() {
        check(None, &[], "", Ok(("default", vec![Event::new("")])));
        check(
            Some("text/plain"),
            &[("event", "e"), ("topic", "t")],
            " x\r\n",
            Ok(("t", vec![Event::new(" x\r\n").with_event("e")])),
        );
        check(
            None,
            &[("retry", "")],
            "x",
            Err("invalid event: retry must be ASCII digits (milliseconds)"),
        );
        check(
            None,
            &[("topic", "")],
            "x",
            Err(Error::BadTopic.to_string().as_str()),
        );
        assert!(read_publication(None, &[], b"\xff").is_err());
    }

    #[test]
    fn batches() {
        check(
            BATCH,
            &[],
            ": comment\ndata: a\ndata:  b\r\n\r\nevent: e\nretry: 5\ndata\n\nevent: lost\n\ndata: last",
            Ok((
                "default",
                vec![
                    Event::new("a\n b"),
                    Event::new("").with_event("e").with_retry(5),
                    Event::new("last"),
                ],
            )),
        );
        check(
            BATCH,
            &[],
            "data: a\r",
            Ok(("default", vec![Event::new("a")])),
        );
        check(
            BATCH,
            &[],
            "data: a\n\nid: 3\ndata: b\n\n",
            Err("invalid event: ids are assigned by the server"),
        );
        check(
            BATCH,
            &[],
            "data: a\n\nretry: x\ndata: b\n\n",
            Err("invalid event: retry must be ASCII digits (milliseconds)"),
        );
        check(
            BATCH,
            &[],
            "event: only\n\n: c\n",
            Err("invalid event: no event in the body (an event needs a data: line)"),
        );
        check(
            BATCH,
            &[],
            "",
            Err("invalid event: no event in the body (an event needs a data: line)"),
        );
    }

    #[test]
    fn pumps_lines() {
        let hub = std::sync::Arc::new(Hub::new());
        let input: &[u8] = b"one\r\n\ntwo\nthree-is-long\n\xff";
        assert_eq!(pump_lines(&hub, input, "logs", "line", 8).unwrap(), 5);
        assert_eq!(hub.stats().published, 5);
        assert!(pump_lines(&hub, &b"x"[..], "bad topic", "", 8).is_err());
    }
}
