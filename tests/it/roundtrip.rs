//! Data round-trips (SPEC §1): whatever a publisher sends, in any body format
//! and with or without an event type, a subscriber's parser sees the same data
//! with every CRLF and lone CR turned into LF. Checked with the crate's own
//! WHATWG parser, and for a few cases byte for byte on the wire.

use std::time::Duration;

use tinysse::Message;

use crate::support::{self, Subscriber, TestServer};

/// The tricky payloads, each with a name for failure messages.
fn payloads() -> Vec<(&'static str, String)> {
    let big: String = "0123456789abcdef".repeat(60 * 1024 / 16);
    assert_eq!(big.len(), 60 * 1024);
    let many_lines = (0..1000)
        .map(|n| format!("line {n}"))
        .collect::<Vec<_>>()
        .join("\n");
    vec![
        ("empty", String::new()),
        ("leading space", " lead".into()),
        ("leading spaces and tab", "  \tx".into()),
        ("trailing space", "x ".into()),
        ("trailing newline", "end\n".into()),
        ("only newlines", "\n\n\n".into()),
        ("CRLF inside", "a\r\nb".into()),
        ("only CRLFs", "\r\n\r\n".into()),
        ("lone CR", "a\rb".into()),
        ("trailing CR", "x\r".into()),
        ("LF then CR", "a\n\rb".into()),
        ("CR CR LF", "\r\r\n".into()),
        ("multi-byte UTF-8", "é ü ß 中文 𝄞".into()),
        ("emoji", "🎉 👩‍👩‍👧 🏳️‍🌈".into()),
        ("NUL", "a\0b\0".into()),
        ("colon at start", ":not a comment".into()),
        ("colon at a later line start", "x\n: y\n:".into()),
        (
            "field lookalikes",
            "data: x\nid: 5\nevent: e\nretry: 1".into(),
        ),
        ("60 KiB", big),
        ("1000 lines", many_lines),
    ]
}

/// What a client sees for published `data` (SPEC §1).
fn expected_data(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

/// Percent-encodes everything but unreserved characters; a space becomes `+`
/// when `plus` (form bodies) and `%20` otherwise (query strings).
pub fn percent_encode(text: &str, plus: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A publish answer: status 200 and one id followed by a line break.
fn id_from(status: u16, body: &str) -> String {
    assert_eq!(status, 200, "{body}");
    let id = body
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no line break after the id: {body:?}"));
    assert!(!id.is_empty() && !id.contains(['\n', '\r', '\0']), "{id:?}");
    id.to_string()
}

/// Publishes through `publish` (which returns the id) each payload and checks
/// what a subscriber to all topics parses.
fn check_all(
    server: &TestServer,
    event_type: &str,
    mut publish: impl FnMut(&TestServer, &str) -> String,
) {
    let mut subscriber = support::subscribe(server.addr, "/events", "");
    for (name, data) in payloads() {
        let id = publish(server, &data);
        assert!(!id.is_empty(), "payload {name:?}: no id");
        let message = subscriber.next_event();
        assert_eq!(
            message,
            Message {
                event: event_type.to_string(),
                data: expected_data(&data),
                id,
            },
            "payload {name:?}"
        );
    }
}

#[test]
fn subscribe_then_publish_form_with_ureq_round_trips_every_payload() {
    let server = support::start_default();
    check_all(&server, "message", |server, data| {
        support::publish_form(server, "default", data)
    });
}

#[test]
fn subscribe_then_publish_hand_encoded_form_round_trips_every_payload() {
    let server = support::start_default();
    check_all(&server, "message", |server, data| {
        let body = format!("topic=rt&data={}", percent_encode(data, true));
        let (status, text) = support::publish(
            server.addr,
            "",
            Some("application/x-www-form-urlencoded"),
            body.as_bytes(),
        );
        id_from(status, &text)
    });
}

#[test]
fn subscribe_then_publish_plain_body_round_trips_every_payload() {
    let server = support::start_default();
    check_all(&server, "message", |server, data| {
        let (status, text) = support::publish(
            server.addr,
            "?topic=rt",
            Some("text/plain; charset=utf-8"),
            data.as_bytes(),
        );
        id_from(status, &text)
    });
}

#[test]
fn subscribe_then_publish_body_without_content_type_round_trips_every_payload() {
    let server = support::start_default();
    check_all(&server, "message", |server, data| {
        let (status, text) = support::publish(server.addr, "?topic=rt", None, data.as_bytes());
        id_from(status, &text)
    });
}

#[test]
fn subscribe_then_publish_form_with_event_type_round_trips_every_payload() {
    let server = support::start_default();
    check_all(&server, "update", |server, data| {
        let body = format!("event=update&data={}&topic=rt", percent_encode(data, true));
        let (status, text) = support::publish(
            server.addr,
            "",
            Some("application/x-www-form-urlencoded"),
            body.as_bytes(),
        );
        id_from(status, &text)
    });
}

#[test]
fn subscribe_then_publish_plain_body_with_event_type_round_trips_every_payload() {
    let server = support::start_default();
    check_all(&server, "näme:with-üñicode", |server, data| {
        let query = format!(
            "?topic=rt&event={}",
            percent_encode("näme:with-üñicode", false)
        );
        let (status, text) =
            support::publish(server.addr, &query, Some("text/plain"), data.as_bytes());
        id_from(status, &text)
    });
}

/// Reads until `raw` holds `expected` bytes in all and returns them as text.
fn read_exactly(subscriber: &mut Subscriber, expected: &str) -> String {
    let length = expected.len();
    subscriber.read_until(|raw| raw.len() >= length);
    String::from_utf8_lossy(&subscriber.raw).into_owned()
}

#[test]
fn subscribe_then_publish_shows_exact_data_lines_on_the_wire() {
    // No heartbeats, so the stream holds nothing but the frames below.
    let server = support::start(tinysse::Config {
        heartbeat: Duration::ZERO,
        ..support::config()
    });
    let mut subscriber = support::subscribe(server.addr, "/events", "");
    // (published data, the data lines expected on the wire)
    let cases = [
        ("a\r\nb", "data: a\ndata: b\n"),
        ("end\n", "data: end\ndata: \n"),
        ("", "data: \n"),
        ("\n\n\n", "data: \ndata: \ndata: \ndata: \n"),
        ("a\rb\r", "data: a\ndata: b\ndata: \n"),
        (" lead", "data:  lead\n"),
        (":x\n:y", "data: :x\ndata: :y\n"),
        ("nul\0", "data: nul\0\n"),
        ("id: 1\nevent: x", "data: id: 1\ndata: event: x\n"),
    ];
    let mut expected = String::from("retry: 3000\n\n");
    for (data, lines) in cases {
        let (status, text) =
            support::publish(server.addr, "?topic=w", Some("text/plain"), data.as_bytes());
        let id = id_from(status, &text);
        expected.push_str(&format!("id: {id}\n{lines}\n"));
    }
    // A named type comes after the id and before the data.
    let (status, text) = support::publish(
        server.addr,
        "",
        Some("application/x-www-form-urlencoded"),
        b"data=x%0D%0Ay&event=note",
    );
    let id = id_from(status, &text);
    expected.push_str(&format!("id: {id}\nevent: note\ndata: x\ndata: y\n\n"));
    assert_eq!(read_exactly(&mut subscriber, &expected), expected);
}

#[test]
fn event_type_with_line_break_is_refused_and_never_reaches_the_wire() {
    let server = support::start(tinysse::Config {
        heartbeat: Duration::ZERO,
        ..support::config()
    });
    let mut subscriber = support::subscribe(server.addr, "/events", "");
    for event in ["a%0Ab", "a%0Db", "a%0D%0Aid:%209"] {
        let body = format!("data=x&event={event}");
        let (status, text) = support::publish(
            server.addr,
            "",
            Some("application/x-www-form-urlencoded"),
            body.as_bytes(),
        );
        assert_eq!(status, 400, "{event}: {text}");
        let (status, text) = support::publish(
            server.addr,
            &format!("?event={event}"),
            Some("text/plain"),
            b"x",
        );
        assert_eq!(status, 400, "{event}: {text}");
    }
    // The next event the subscriber sees is this one: nothing got through before it.
    let (status, text) = support::publish(server.addr, "", Some("text/plain"), b"after");
    let id = id_from(status, &text);
    let expected = format!("retry: 3000\n\nid: {id}\ndata: after\n\n");
    assert_eq!(read_exactly(&mut subscriber, &expected), expected);
}
