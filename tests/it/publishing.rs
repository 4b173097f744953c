//! `POST /publish` over real sockets: each body format (form, raw, batch),
//! body framings (length, chunked, `Expect: 100-continue`), keep-alive
//! publishers, what is refused with 400 (and then never published), tokens,
//! and the loopback rule.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use tinysse::{Config, Running, Server};

use crate::support::{
    self, RawResponse, Subscriber, TestServer, config, connect, metric, publish, publish_form, raw,
    read_head, read_response, read_response_with, start, start_default, subscribe,
};

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
const BATCH: Option<&str> = Some("text/event-stream");
const PUBLISHED: &str = "tinysse_events_published_total";

/// `POST {target}` with `extra_headers` (lines ending in `\r\n`), a
/// `Content-Length` body and `Connection: close`.
fn post(addr: SocketAddr, target: &str, extra_headers: &str, body: &[u8]) -> RawResponse {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    raw(addr, &request)
}

/// The sequence number of an id `<run>-<seq>`.
fn seq(id: &str) -> u64 {
    let (run, seq) = id
        .rsplit_once('-')
        .unwrap_or_else(|| panic!("id {id:?} is not <run>-<seq>"));
    assert!(!run.is_empty(), "id {id:?} has no run part");
    seq.parse()
        .unwrap_or_else(|_| panic!("id {id:?} has no numeric seq"))
}

/// Checks a successful publish answer (200, text/plain, one id per line) and
/// returns the ids.
fn ids_of(response: &RawResponse) -> Vec<String> {
    assert_eq!(response.status, 200, "{response:?}");
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "Content-Type {content_type:?}"
    );
    let text = response.text();
    assert!(
        text.ends_with('\n'),
        "body {text:?} should end with a newline"
    );
    let ids: Vec<String> = text.lines().map(str::to_string).collect();
    for id in &ids {
        seq(id);
    }
    ids
}

/// The single id of a successful publish answer.
fn id_of(response: &RawResponse) -> String {
    let ids = ids_of(response);
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.into_iter().next().unwrap()
}

/// Checks a 400 (or other refusal) with a one-line text reason.
fn assert_refused(response: &RawResponse, status: u16, what: &str) {
    assert_eq!(response.status, status, "{what}: {response:?}");
    let text = response.text();
    let reason = text.strip_suffix('\n').unwrap_or_else(|| {
        panic!("{what}: reason {text:?} should be one line ending in a newline")
    });
    assert!(
        !reason.is_empty() && !reason.contains(['\n', '\r']),
        "{what}: reason {text:?} should be one non-empty line"
    );
}

/// Publishes a marker through the hub and checks it is the next event the
/// subscriber receives (so nothing was published in between).
fn assert_next_is_marker(server: &TestServer, subscriber: &mut Subscriber, marker: &str) {
    let id = server
        .hub()
        .publish("default", tinysse::Event::new(marker))
        .unwrap();
    let next = subscriber.next_event();
    assert_eq!(
        (next.data.as_str(), next.id.as_str()),
        (marker, id.as_str()),
        "the subscriber received something before the marker"
    );
}

#[test]
fn form_publish_then_subscriber_receives_it() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events?topic=news", "");
    let response = post(
        server.addr,
        "/publish",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        b"topic=news&event=greet&data=hello+w%C3%B6rld%21",
    );
    let id = id_of(&response);
    let message = subscriber.next_event();
    assert_eq!(message.event, "greet");
    assert_eq!(message.data, "hello w\u{f6}rld!");
    assert_eq!(message.id, id);
}

#[test]
fn form_type_alias_and_retry_reach_the_wire() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events", "");
    let response = post(
        server.addr,
        "/publish",
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n",
        b"data=x&type=note&retry=2500",
    );
    let id = id_of(&response);
    let message = subscriber.next_event();
    assert_eq!(
        (message.event.as_str(), message.data.as_str()),
        ("note", "x")
    );
    assert_eq!(message.id, id);
    let raw = String::from_utf8_lossy(&subscriber.raw).into_owned();
    assert!(
        raw.contains(&format!("id: {id}\n"))
            && raw.contains("\nretry: 2500\n")
            && raw.contains("\nevent: note\n"),
        "raw frame {raw:?}"
    );
}

#[test]
fn form_with_empty_data_delivers_empty_string() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events", "");
    let id = id_of(&post(
        server.addr,
        "/publish",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        b"data=",
    ));
    let message = subscriber.next_event();
    assert_eq!(
        (message.data.as_str(), message.event.as_str()),
        ("", "message")
    );
    assert_eq!(message.id, id);
}

#[test]
fn form_without_data_field_is_refused() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events", "");
    for (query, body) in [
        ("", &b"topic=default"[..]),
        ("", b""),
        // Data in the query does not count for a form.
        ("?data=from-query", b"event=e"),
    ] {
        let response = post(
            server.addr,
            &format!("/publish{query}"),
            "Content-Type: application/x-www-form-urlencoded\r\n",
            body,
        );
        assert_refused(&response, 400, &format!("{query} {body:?}"));
    }
    assert_eq!(metric(server.addr, PUBLISHED), 0);
    assert_next_is_marker(&server, &mut subscriber, "marker");
}

/// `curl -d '{"temp":21}' …` sends JSON with a form type: refused (the rule
/// stays), with a reason that says how to publish the body as it is; with
/// `Content-Type: application/json` the body is the data, as it is.
#[test]
fn json_is_published_as_it_is_and_a_form_typed_one_gets_the_fix() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events?topic=sensors", "");
    let json = br#"{"temp":21}"#;
    let (status, reason) = publish(server.addr, "?topic=sensors", FORM, json);
    assert_eq!(
        (status, reason.as_str()),
        (
            400,
            "invalid event: form has no data field; to publish the body as it is, \
             send Content-Type: application/json or text/plain\n"
        )
    );
    for content_type in ["application/json", "application/json; charset=utf-8"] {
        let (status, id) = publish(server.addr, "?topic=sensors", Some(content_type), json);
        assert_eq!(status, 200, "{content_type}: {id}");
        let event = subscriber.next_event();
        assert_eq!(
            (event.id.as_str(), event.event.as_str(), event.data.as_str()),
            (id.trim_end(), "message", r#"{"temp":21}"#),
            "{content_type}"
        );
    }
}

#[test]
fn raw_body_takes_fields_from_the_query() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events?topic=logs", "");
    for content_type in [Some("text/plain"), None, Some("application/json")] {
        let (status, body) = publish(
            server.addr,
            "?topic=logs&event=line&retry=700",
            content_type,
            b" two\nlines & a=b",
        );
        assert_eq!(status, 200, "{content_type:?}: {body}");
        let id = body.trim_end();
        let message = subscriber.next_event();
        assert_eq!(message.event, "line", "{content_type:?}");
        assert_eq!(message.data, " two\nlines & a=b", "{content_type:?}");
        assert_eq!(message.id, id, "{content_type:?}");
    }
    let raw = String::from_utf8_lossy(&subscriber.raw).into_owned();
    assert_eq!(raw.matches("\nretry: 700\n").count(), 3, "raw {raw:?}");
}

#[test]
fn batch_publishes_every_event_in_order_with_consecutive_ids() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events?topic=batch", "");
    let body =
        b": a comment\ndata: one\n\nevent: two\ndata: 2a\ndata: 2b\n\nretry: 900\ndata: three";
    let response = post(
        server.addr,
        "/publish?topic=batch",
        "Content-Type: text/event-stream\r\n",
        body,
    );
    let ids = ids_of(&response);
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(seq(&ids[1]), seq(&ids[0]) + 1, "{ids:?}");
    assert_eq!(seq(&ids[2]), seq(&ids[1]) + 1, "{ids:?}");
    let got: Vec<(String, String, String)> = subscriber
        .events(3)
        .into_iter()
        .map(|message| (message.event, message.data, message.id))
        .collect();
    let expected: Vec<(String, String, String)> =
        [("message", "one"), ("two", "2a\n2b"), ("message", "three")]
            .iter()
            .zip(&ids)
            .map(|((event, data), id)| (event.to_string(), data.to_string(), id.clone()))
            .collect();
    assert_eq!(got, expected);
    let raw = String::from_utf8_lossy(&subscriber.raw).into_owned();
    assert!(raw.contains("\nretry: 900\n"), "raw {raw:?}");
    assert_eq!(metric(server.addr, PUBLISHED), 3);
}

#[test]
fn batch_with_one_bad_event_publishes_nothing() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events", "");
    let cases: [(&str, &[u8]); 4] = [
        ("an id field", b"data: fine\n\nid: 7\ndata: bad\n\n"),
        (
            "a non-digit retry",
            b"data: fine\n\nretry: 1s\ndata: bad\n\n",
        ),
        (
            "a negative retry",
            b"data: fine\n\nretry: -1\ndata: bad\n\n",
        ),
        ("bad UTF-8", b"data: fine\n\ndata: \xff\xfe\n\n"),
    ];
    for (what, body) in cases {
        let before = metric(server.addr, PUBLISHED);
        let (status, text) = publish(server.addr, "", BATCH, body);
        let response = RawResponse {
            status,
            head: String::new(),
            body: text.into_bytes(),
        };
        assert_refused(&response, 400, what);
        assert_eq!(metric(server.addr, PUBLISHED), before, "{what}");
    }
    assert_next_is_marker(&server, &mut subscriber, "after the bad batches");
}

#[test]
fn chunked_upload_with_extensions_is_published() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events", "");
    let mut stream = connect(server.addr);
    stream
        .write_all(
            b"POST /publish?event=chunky HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n\
              Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    for chunk in [
        &b"5;ext=1\r\nhello\r\n"[..],
        b"1 ; name=\"quoted ; value\"\r\n \r\n",
        b"A\r\nchunked wo\r\n",
        b"3;a;b=c\r\nrld\r\n",
        b"0\r\n\r\n",
    ] {
        stream.write_all(chunk).unwrap();
        stream.flush().unwrap();
    }
    let id = id_of(&read_response(&mut stream));
    let message = subscriber.next_event();
    assert_eq!(message.data, "hello chunked world");
    assert_eq!(message.event, "chunky");
    assert_eq!(message.id, id);
}

#[test]
fn expect_continue_gets_100_before_the_body_is_sent() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events", "");
    let body = "x".repeat(2000);
    let mut stream = connect(server.addr);
    stream
        .write_all(
            format!(
                "POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
    // Nothing of the body has been sent: the server must answer first.
    let interim = read_head(&mut stream);
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body.as_bytes()).unwrap();
    let response = read_response_with(&mut stream, false, false);
    let id = id_of(&response);
    let message = subscriber.next_event();
    assert_eq!((message.data, message.id), (body, id));
}

#[test]
fn publish_without_expect_gets_no_interim_response() {
    let server = start_default();
    let mut stream = connect(server.addr);
    stream
        .write_all(
            b"POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
        )
        .unwrap();
    let response = read_response_with(&mut stream, false, false);
    id_of(&response);
}

#[test]
fn three_pipelined_publishes_on_one_keep_alive_connection() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events", "");
    let mut stream = connect(server.addr);
    let mut requests = Vec::new();
    for data in ["first", "second", "third"] {
        requests.extend_from_slice(
            format!(
                "POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{data}",
                data.len()
            )
            .as_bytes(),
        );
    }
    // All three at once, before reading any answer.
    stream.write_all(&requests).unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = read_response(&mut stream);
        assert_eq!(
            response.header("connection"),
            None,
            "the connection should stay open: {response:?}"
        );
        ids.push(id_of(&response));
    }
    assert!(
        seq(&ids[0]) < seq(&ids[1]) && seq(&ids[1]) < seq(&ids[2]),
        "{ids:?}"
    );
    let got: Vec<(String, String)> = subscriber
        .events(3)
        .into_iter()
        .map(|message| (message.data, message.id))
        .collect();
    let expected: Vec<(String, String)> = ["first", "second", "third"]
        .iter()
        .map(|data| data.to_string())
        .zip(ids)
        .collect();
    assert_eq!(got, expected);

    // The same connection still works, and closes when asked to.
    stream
        .write_all(b"POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 4\r\n\r\nlast")
        .unwrap();
    let response = read_response(&mut stream);
    id_of(&response);
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    assert_closed(&mut stream);
}

/// The server has closed the connection: a read returns end of stream.
fn assert_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "unexpected bytes {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn http10_publisher_is_closed_after_the_answer_unless_keep_alive() {
    let server = start_default();

    let mut stream = connect(server.addr);
    stream
        .write_all(b"POST /publish HTTP/1.0\r\nContent-Length: 3\r\n\r\none")
        .unwrap();
    let response = read_response(&mut stream);
    id_of(&response);
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    assert_closed(&mut stream);

    let mut stream = connect(server.addr);
    let mut ids = Vec::new();
    for data in ["two", "three"] {
        stream
            .write_all(
                format!(
                    "POST /publish HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{data}",
                    data.len()
                )
                .as_bytes(),
            )
            .unwrap();
        let response = read_response(&mut stream);
        assert_ne!(
            response.header("connection").as_deref(),
            Some("close"),
            "{response:?}"
        );
        ids.push(id_of(&response));
    }
    assert!(seq(&ids[0]) < seq(&ids[1]), "{ids:?}");
    assert_eq!(metric(server.addr, PUBLISHED), 3);
}

#[test]
fn invalid_publishes_answer_400_and_publish_nothing() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events", "");
    let long_topic = "t".repeat(129);
    let long_topic_query = format!("?topic={long_topic}");
    let cases: Vec<(&str, &str, Option<&str>, &[u8])> = vec![
        ("raw bad UTF-8", "", None, b"ok \xc3\x28"),
        ("text/plain bad UTF-8", "", Some("text/plain"), b"\xff"),
        ("form raw bad UTF-8", "", FORM, b"data=\xff"),
        ("form escaped bad UTF-8", "", FORM, b"data=%ff%fe"),
        ("query bad UTF-8", "?event=%ff", None, b"x"),
        ("form event with LF", "", FORM, b"data=x&event=a%0Ab"),
        ("form event with CR", "", FORM, b"data=x&event=a%0Db"),
        (
            "form type with CRLF",
            "",
            FORM,
            b"data=x&type=a%0D%0Adata%3A+evil",
        ),
        ("query event with LF", "?event=a%0Ab", None, b"x"),
        (
            "query event with CR",
            "?event=a%0D",
            Some("text/plain"),
            b"x",
        ),
        ("form retry 1s", "", FORM, b"data=x&retry=1s"),
        ("form retry -1", "", FORM, b"data=x&retry=-1"),
        ("form retry empty", "", FORM, b"data=x&retry="),
        ("query retry 1s", "?retry=1s", None, b"x"),
        ("query retry -1", "?retry=-1", None, b"x"),
        ("query retry empty", "?retry=", None, b"x"),
        ("query retry with space", "?retry=+5", None, b"x"),
        ("form topic with space", "", FORM, b"data=x&topic=a%20b"),
        ("form empty topic", "", FORM, b"data=x&topic="),
        ("query empty topic", "?topic=", None, b"x"),
        ("query topic with !", "?topic=a!", None, b"x"),
        ("query topic too long", &long_topic_query, None, b"x"),
        ("batch empty topic", "?topic=", BATCH, b"data: x\n\n"),
    ];
    for (what, query, content_type, body) in cases {
        let (status, text) = publish(server.addr, query, content_type, body);
        let response = RawResponse {
            status,
            head: String::new(),
            body: text.into_bytes(),
        };
        assert_refused(&response, 400, what);
    }
    assert_eq!(metric(server.addr, PUBLISHED), 0);
    assert_next_is_marker(&server, &mut subscriber, "marker");
    // The longest allowed topic is fine.
    let ok_topic = format!("?topic={}", "t".repeat(128));
    let (status, body) = publish(server.addr, &ok_topic, None, b"x");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn refusal_has_text_plain_one_line_reason_and_keeps_the_connection() {
    let server = start_default();
    let mut stream = connect(server.addr);
    stream
        .write_all(
            b"POST /publish?retry=soon HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx\
              POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1\r\n\r\ny",
        )
        .unwrap();
    let refused = read_response(&mut stream);
    assert_refused(&refused, 400, "retry=soon");
    assert!(
        refused
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain"),
        "{refused:?}"
    );
    assert!(refused.text().contains("retry"), "{refused:?}");
    // The body was read, so the next request on the connection is served.
    id_of(&read_response(&mut stream));
}

#[test]
fn nul_in_data_arrives_intact() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events", "");
    let cases: [(Option<&str>, &[u8], &str); 3] = [
        (FORM, b"data=a%00b", "a\0b"),
        (None, b"\0lead and trail\0", "\0lead and trail\0"),
        (BATCH, b"data: x\0y\n\n", "x\0y"),
    ];
    for (content_type, body, expected) in cases {
        let (status, text) = publish(server.addr, "", content_type, body);
        assert_eq!(status, 200, "{content_type:?}: {text}");
        let message = subscriber.next_event();
        assert_eq!(message.data, expected, "{content_type:?}");
        assert_eq!(message.id, text.trim_end());
    }
}

#[test]
fn publish_token_is_required() {
    let server = start(Config {
        token: Some("secret".to_string()),
        ..config()
    });
    let mut subscriber = subscribe(server.addr, "/events", "");
    for (what, header) in [
        ("missing", ""),
        ("wrong", "Authorization: Bearer secreT\r\n"),
        ("longer", "Authorization: Bearer secret2\r\n"),
        ("prefix", "Authorization: Bearer secre\r\n"),
        ("empty", "Authorization: Bearer \r\n"),
        ("other scheme", "Authorization: Basic c2VjcmV0\r\n"),
        ("as query only", ""),
    ] {
        let target = if what == "as query only" {
            "/publish?token=secret"
        } else {
            "/publish"
        };
        let response = post(server.addr, target, header, b"x");
        assert_refused(&response, 401, what);
        assert_eq!(
            response.header("www-authenticate").as_deref(),
            Some("Bearer"),
            "{what}: {response:?}"
        );
    }
    assert_eq!(metric(server.addr, PUBLISHED), 0);
    let response = post(
        server.addr,
        "/publish",
        "Authorization: Bearer secret\r\n",
        b"allowed",
    );
    let id = id_of(&response);
    let message = subscriber.next_event();
    assert_eq!((message.data.as_str(), message.id), ("allowed", id));
}

#[test]
fn subscribe_token_is_required_for_streams() {
    let server = start(Config {
        subscribe_token: Some("sub".to_string()),
        ..config()
    });
    for (what, target, header) in [
        ("missing", "/events", ""),
        ("wrong query", "/events?token=subx", ""),
        ("empty query", "/events?token=", ""),
        ("wrong bearer", "/events", "Authorization: Bearer su\r\n"),
    ] {
        let mut stream = support::open_stream(server.addr, target, header);
        assert!(
            stream.head.starts_with("HTTP/1.1 401 "),
            "{what}: {}",
            stream.head
        );
        assert!(
            !stream.head.contains("text/event-stream"),
            "{what}: {}",
            stream.head
        );
        stream.read_to_end();
    }
    assert_eq!(server.hub().subscriber_count(), 0);
    let mut by_query = subscribe(server.addr, "/events?token=sub", "");
    let mut by_header = subscribe(server.addr, "/events", "Authorization: Bearer sub\r\n");
    let id = publish_form(&server, "default", "hi");
    for subscriber in [&mut by_query, &mut by_header] {
        let message = subscriber.next_event();
        assert_eq!((message.data.as_str(), message.id.as_str()), ("hi", &*id));
    }
}

#[test]
fn publish_token_subscribes_but_subscribe_token_does_not_publish() {
    let server = start(Config {
        token: Some("pub".to_string()),
        subscribe_token: Some("sub".to_string()),
        ..config()
    });
    let mut by_query = subscribe(server.addr, "/events?token=pub", "");
    let mut by_header = subscribe(server.addr, "/events", "Authorization: Bearer pub\r\n");
    let response = post(
        server.addr,
        "/publish",
        "Authorization: Bearer sub\r\n",
        b"nope",
    );
    assert_refused(&response, 401, "subscribe token used to publish");
    assert_eq!(
        response.header("www-authenticate").as_deref(),
        Some("Bearer")
    );
    assert_eq!(metric(server.addr, PUBLISHED), 0);
    let id = id_of(&post(
        server.addr,
        "/publish",
        "Authorization: Bearer pub\r\n",
        b"yes",
    ));
    for subscriber in [&mut by_query, &mut by_header] {
        let message = subscriber.next_event();
        assert_eq!((message.data.as_str(), message.id.as_str()), ("yes", &*id));
    }
}

/// A server run directly (not through `support::start`), shut down on drop.
struct Direct(Option<Running>);

impl Drop for Direct {
    fn drop(&mut self) {
        if let Some(running) = self.0.take() {
            let _ = running.shutdown();
        }
    }
}

/// Binds `0.0.0.0:0` with `token`; returns the
/// running server with a loopback address to reach it.
fn start_on_all_interfaces(token: Option<&str>) -> (Direct, SocketAddr) {
    let server = Server::bind(Config {
        listen: "0.0.0.0:0".parse().unwrap(),
        token: token.map(str::to_string),
        ..config()
    })
    .unwrap();
    let running = server.start().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], running.local_addr().port()));
    (Direct(Some(running)), addr)
}

#[test]
fn non_loopback_without_token_refuses_publish_with_403() {
    let (_direct, addr) = start_on_all_interfaces(None);
    let response = post(addr, "/publish", "", b"x");
    assert_refused(&response, 403, "no token on 0.0.0.0");
    assert!(response.text().contains("loopback"), "{response:?}");
    assert_eq!(metric(addr, "tinysse_events_published_total"), 0);
    // Subscribing is still allowed.
    let _subscriber = subscribe(addr, "/events", "");
}

#[test]
fn non_loopback_with_token_publishes_with_the_bearer() {
    let (_direct, addr) = start_on_all_interfaces(Some("secret"));
    let mut subscriber = subscribe(addr, "/events", "");
    assert_refused(&post(addr, "/publish", "", b"x"), 401, "no bearer");
    let id = id_of(&post(
        addr,
        "/publish",
        "Authorization: Bearer secret\r\n",
        b"from the network",
    ));
    let message = subscriber.next_event();
    assert_eq!(
        (message.data.as_str(), message.id),
        ("from the network", id)
    );
}

#[test]
fn ureq_form_publish_reaches_subscriber() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events?topic=ureq", "");
    let first = publish_form(&server, "ureq", "a b&c=d\u{e9}\n2nd line");
    let second = publish_form(&server, "ureq", "");
    assert_eq!(seq(&second), seq(&first) + 1);
    let messages = subscriber.events(2);
    assert_eq!(messages[0].data, "a b&c=d\u{e9}\n2nd line");
    assert_eq!(messages[0].id, first);
    assert_eq!(messages[1].data, "");
    assert_eq!(messages[1].id, second);
}
