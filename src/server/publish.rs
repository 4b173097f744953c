//! Publishing: `POST /publish`, from the request body to events in the hub
//! (SPEC §2). Three body formats, by `Content-Type`:
//! - `application/x-www-form-urlencoded`: fields `data`, `topic`, `event`
//!   (alias `type`), `retry`;
//! - `text/event-stream`: a batch of events (`data`, `event`, `retry`
//!   fields), published all or nothing;
//! - anything else: the body is the data; `topic`, `event`, `retry` come from
//!   the query string.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Shared;
use super::accept::Socket;
use super::access::decide;
use super::route::{After, cors_headers, respond_error};
use crate::Error;
use crate::http::{CONTINUE, Conn, Framing, Request, Response, form_pairs};
use crate::wire::event::{self, Event};
use crate::wire::parse::{Line, Lines, classify};
use crate::wire::topic::{DEFAULT_TOPIC, check_topic};

pub(super) fn publish(
    shared: &Arc<Shared>,
    conn: &mut Conn<Socket>,
    request: &Request,
    framing: Framing,
    peer: SocketAddr,
) -> After {
    let refuse = |conn: &mut Conn<Socket>, err: Error| {
        respond_error(shared, conn, &err, Some(request));
        After::Close
    };
    let access = match decide(shared, request, peer) {
        Ok(access) => access,
        Err(err) => return refuse(conn, err),
    };
    match framing {
        Framing::None | Framing::Close => return refuse(conn, Error::LengthRequired),
        Framing::Length(length) if length > shared.config.max_body as u64 => {
            let limit = shared.config.max_body;
            return refuse(conn, Error::BodyTooLarge { limit });
        }
        _ => {}
    }
    if request.expects_continue() && conn.get_mut().write_all(CONTINUE).is_err() {
        return After::Close;
    }
    let body = match conn.read_body(framing, shared.config.max_body) {
        Ok(body) => body,
        Err(Error::Io(_)) => return After::Close,
        Err(err) => return refuse(conn, err),
    };
    // The body has been read: the connection stays usable after a 400.
    let result = request
        .query_pairs()
        .and_then(|query| read_publication(request.header("content-type"), &query, &body))
        .and_then(|publication| match access.may_publish(&publication.topic) {
            true => Ok(publication),
            false => Err(Error::NotAllowed("publish on this topic")),
        })
        .and_then(|publication| {
            shared
                .hub
                .publish_deferred(&publication.topic, publication.events)
        });
    let keep_alive = request.keep_alive() && !shared.shutting_down.load(Ordering::SeqCst);
    let (response, published) = match result {
        Ok(published) => (
            Response::text(200, published.ids.join("\n") + "\n"),
            Some(published),
        ),
        Err(err) => (Response::error(&err), None),
    };
    let response = response.with_headers(cors_headers(shared, request));
    shared.metrics.request(response.status);
    shared.metrics.sent(response.body.len());
    let bytes = response.to_bytes(false, keep_alive);
    // Answer the publisher before waking the subscribers: once thousands of
    // subscriber threads are runnable, this thread would wait its turn among
    // them, and a publisher that waits for each answer would be throttled.
    // The answer goes out without blocking; if it cannot (a publisher that
    // does not read), the subscribers are woken first, so that no publisher
    // can delay them.
    let sent = write_now(conn.get_ref(), &bytes);
    drop(published);
    let written = match sent {
        Ok(count) => conn.get_mut().write_all(&bytes[count..]).is_ok(),
        Err(_) => false,
    };
    if written && keep_alive {
        After::KeepAlive
    } else {
        After::Close
    }
}

/// Writes what the socket takes without blocking; returns how many bytes.
fn write_now(mut stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    stream.set_nonblocking(true)?;
    let mut written = 0;
    let result = loop {
        match stream.write(&bytes[written..]) {
            Ok(0) => break Ok(written),
            Ok(count) => {
                written += count;
                if written == bytes.len() {
                    break Ok(written);
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break Ok(written),
            Err(err) => break Err(err),
        }
    };
    stream.set_nonblocking(false)?;
    result
}

/// What one publish request asks for: events for one topic, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Publication {
    /// The topic, already checked.
    pub(super) topic: String,
    /// The events, already checked; at least one.
    pub(super) events: Vec<Event>,
}

/// Reads a publish request: its `Content-Type` (if any), its decoded query
/// parameters, and its body. Any invalid part rejects the whole request.
pub(super) fn read_publication(
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
            let form = form_pairs(body)?;
            let mut fields = Fields::from_pairs(query);
            fields.data = None; // a form carries its data in the body
            fields.merge(&form);
            let data = fields
                .data
                .take()
                // curl -d sends a form type: point a JSON publisher to the fix.
                .ok_or(Error::InvalidEvent(
                    "form has no data field; to publish the body as it is, \
                     send Content-Type: application/json or text/plain",
                ))?;
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
    event::parse_retry(text).ok_or(Error::InvalidEvent(
        "retry must be ASCII digits (milliseconds)",
    ))
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
            Err(
                "invalid event: form has no data field; to publish the body as it is, \
                 send Content-Type: application/json or text/plain",
            ),
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
}
