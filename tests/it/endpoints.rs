//! The endpoints besides publishing: the demo page, `/healthz`, `/metrics`,
//! HEAD, 404/405, OPTIONS and CORS, and the head, opening frame and
//! heartbeats of a `GET /events` stream.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use tinysse::{Config, Event, Parser};

use crate::support::{
    RawResponse, config, connect, metric, publish, raw, read_head, read_response,
    read_response_with, start, start_default, subscribe, wait_until,
};

/// `{method} {target}` with extra header lines and `Connection: close`.
fn request(addr: SocketAddr, method: &str, target: &str, extra_headers: &str) -> RawResponse {
    let mut stream = connect(addr);
    stream
        .write_all(
            format!(
                "{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra_headers}\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    read_response_with(&mut stream, true, method == "HEAD")
}

/// Sends `{method} {target}` and then `GET /healthz` on the same connection,
/// and reads both answers. The second one parses only if the first carried
/// exactly the body its head announced (none for HEAD and 204).
fn then_healthz(addr: SocketAddr, method: &str, target: &str, extra_headers: &str) -> RawResponse {
    let mut stream = connect(addr);
    stream
        .write_all(
            format!(
                "{method} {target} HTTP/1.1\r\nHost: t\r\n{extra_headers}\r\n\
                 GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let first = read_response_with(&mut stream, false, method == "HEAD");
    let second = read_response(&mut stream);
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "ok\n"),
        "after {method} {target}: {first:?} then {second:?}"
    );
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "after {method} {target}: {:?}",
        String::from_utf8_lossy(&rest)
    );
    first
}

/// The header names of a response head, but `Connection` (which depends on
/// the request, not the resource).
fn header_names(head: &str) -> Vec<String> {
    let mut names: Vec<String> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.to_ascii_lowercase())
        .filter(|name| name != "connection")
        .collect();
    names.sort();
    names
}

/// The comma-separated items of a header value, trimmed and lowercased.
fn items(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

#[test]
fn demo_page_is_self_contained() {
    let server = start_default();
    let response = request(server.addr, "GET", "/", "");
    assert_eq!(response.status, 200);
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "Content-Type {content_type:?}"
    );
    let page = response.text();
    assert!(page.contains("EventSource"), "{page}");
    let lower = page.to_ascii_lowercase();
    for external in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "src=\"//",
        "href=\"//",
        "@import",
    ] {
        assert!(!lower.contains(external), "the page loads {external}...");
    }
}

#[test]
fn head_gives_the_get_headers_without_a_body() {
    let server = start_default();
    for path in ["/", "/healthz", "/metrics"] {
        let get = request(server.addr, "GET", path, "");
        let head = then_healthz(server.addr, "HEAD", path, "");
        assert_eq!(head.status, 200, "{path}: {head:?}");
        assert_eq!(
            header_names(&head.head),
            header_names(&get.head),
            "HEAD {path} headers differ from GET"
        );
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
        let length: usize = head
            .header("content-length")
            .unwrap_or_else(|| panic!("HEAD {path} has no Content-Length"))
            .parse()
            .unwrap();
        if path == "/metrics" {
            // The counters move between the two requests; the size is close.
            assert!(length > 0, "{path}");
        } else {
            assert_eq!(length, get.body.len(), "{path}");
        }
    }
}

#[test]
fn healthz_answers_ok() {
    let server = start_default();
    let response = request(server.addr, "GET", "/healthz", "");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "ok\n");
    assert_eq!(response.header("content-length").as_deref(), Some("3"));
}

#[test]
fn metrics_lists_every_spec_metric() {
    let server = start_default();
    let response = request(server.addr, "GET", "/metrics", "");
    assert_eq!(response.status, 200);
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "Content-Type {content_type:?}"
    );
    let text = response.text();
    // Every sample line is `name{labels} value`, with a TYPE line for its name.
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        let name = series.split('{').next().unwrap();
        assert!(
            text.lines()
                .any(|type_line| type_line.starts_with(&format!("# TYPE {name} "))),
            "no TYPE line for {name}"
        );
    }
    for (what, prefix) in [
        ("subscribers now", "tinysse_subscribers "),
        ("connections now", "tinysse_connections "),
        ("events published", "tinysse_events_published_total "),
        ("events delivered", "tinysse_events_delivered_total "),
        ("bytes sent", "tinysse_bytes_sent_total "),
        (
            "subscribers dropped by reason",
            "tinysse_subscribers_dropped_total{reason=\"",
        ),
        ("history length", "tinysse_history_events "),
        ("history bytes", "tinysse_history_bytes "),
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(prefix)),
            "no {what} ({prefix}...) in\n{text}"
        );
    }
    // Requests by status code: earlier answers are counted.
    request(server.addr, "GET", "/nowhere", "");
    let text = request(server.addr, "GET", "/metrics", "").text();
    for code in ["200", "404"] {
        let prefix = format!("tinysse_requests_total{{code=\"{code}\"}} ");
        assert!(
            text.lines().any(|line| line.starts_with(&prefix)),
            "no {prefix}... in\n{text}"
        );
    }
}

#[test]
fn metrics_move_when_events_flow() {
    let server = start_default();
    assert_eq!(metric(server.addr, "tinysse_events_published_total"), 0);
    assert_eq!(metric(server.addr, "tinysse_events_delivered_total"), 0);
    assert_eq!(metric(server.addr, "tinysse_history_events"), 0);
    assert_eq!(metric(server.addr, "tinysse_history_bytes"), 0);
    assert_eq!(metric(server.addr, "tinysse_subscribers"), 0);
    let bytes_before = metric(server.addr, "tinysse_bytes_sent_total");

    let mut subscriber = subscribe(server.addr, "/events", "");
    assert_eq!(metric(server.addr, "tinysse_subscribers"), 1);
    // The subscriber and the connection asking for metrics.
    assert!(metric(server.addr, "tinysse_connections") >= 2);
    for data in ["one", "two"] {
        let (status, body) = publish(server.addr, "", None, data.as_bytes());
        assert_eq!(status, 200, "{body}");
    }
    let received: Vec<String> = subscriber
        .events(2)
        .into_iter()
        .map(|message| message.data)
        .collect();
    assert_eq!(received, ["one", "two"]);
    assert_eq!(metric(server.addr, "tinysse_events_published_total"), 2);
    // Counted once the write returned, which may be just after the client read it.
    wait_until("2 events are counted as delivered", || {
        metric(server.addr, "tinysse_events_delivered_total") >= 2
    });
    assert_eq!(metric(server.addr, "tinysse_history_events"), 2);
    assert!(metric(server.addr, "tinysse_history_bytes") > 0);
    assert!(
        metric(server.addr, "tinysse_bytes_sent_total")
            > bytes_before + subscriber.raw.len() as u64
    );
    assert!(metric(server.addr, "tinysse_requests_total{code=\"200\"}") >= 3);

    drop(subscriber);
    // The server notices a closed stream when a write to it fails.
    wait_until("the subscriber is gone", || {
        server.hub().publish("default", Event::new("more")).unwrap();
        metric(server.addr, "tinysse_subscribers") == 0
    });
}

#[test]
fn unknown_path_is_404() {
    let server = start_default();
    for (method, target) in [
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("GET", "/events/more"),
        ("GET", "/healthz/"),
        ("OPTIONS", "/nope"),
        ("GET", "/index.html"),
    ] {
        let response = request(server.addr, method, target, "");
        assert_eq!(response.status, 404, "{method} {target}: {response:?}");
        assert_eq!(
            response.header("content-length"),
            Some(response.body.len().to_string()),
            "{method} {target}"
        );
    }
}

#[test]
fn known_path_with_wrong_method_is_405_with_allow() {
    let server = start_default();
    for (method, target, allowed) in [
        ("DELETE", "/events", &["GET", "OPTIONS"][..]),
        ("POST", "/events", &["GET", "OPTIONS"]),
        ("HEAD", "/events", &["GET", "OPTIONS"]),
        ("GET", "/publish", &["POST", "OPTIONS"]),
        ("PUT", "/publish", &["POST", "OPTIONS"]),
        ("POST", "/healthz", &["GET", "HEAD", "OPTIONS"]),
        ("DELETE", "/metrics", &["GET", "HEAD", "OPTIONS"]),
        ("POST", "/", &["GET", "HEAD", "OPTIONS"]),
    ] {
        let response = then_healthz(server.addr, method, target, "");
        assert_eq!(response.status, 405, "{method} {target}: {response:?}");
        let allow = response
            .header("allow")
            .unwrap_or_else(|| panic!("{method} {target}: no Allow in {response:?}"));
        let mut got = items(&allow);
        got.sort();
        let mut expected: Vec<String> = allowed.iter().map(|m| m.to_ascii_lowercase()).collect();
        expected.sort();
        assert_eq!(got, expected, "{method} {target}: Allow {allow:?}");
    }
}

#[test]
fn options_without_cors_is_204_with_allow_only() {
    let server = start_default();
    for (target, origin) in [
        ("/events", ""),
        ("/publish", "Origin: https://app.example\r\n"),
        ("/healthz", ""),
    ] {
        let response = then_healthz(server.addr, "OPTIONS", target, origin);
        assert_eq!(response.status, 204, "{target}: {response:?}");
        assert!(response.header("allow").is_some(), "{target}: {response:?}");
        assert_eq!(response.header("content-length"), None, "{target}");
        assert!(
            !response
                .head
                .to_ascii_lowercase()
                .contains("access-control-"),
            "{target}: {}",
            response.head
        );
    }
}

/// An `OPTIONS` preflight from `origin` to a server allowing `allowed`.
fn preflight(allowed: &[&str], target: &str, origin: &str) -> RawResponse {
    let server = start(Config {
        cors_origins: allowed.iter().map(|origin| origin.to_string()).collect(),
        ..config()
    });
    then_healthz(
        server.addr,
        "OPTIONS",
        target,
        &format!(
            "Origin: {origin}\r\nAccess-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: authorization, content-type\r\n"
        ),
    )
}

#[test]
fn cors_preflight_from_an_allowed_origin() {
    for target in ["/events", "/publish"] {
        let response = preflight(
            &["https://other.example", "https://app.example"],
            target,
            "https://app.example",
        );
        assert_eq!(response.status, 204, "{response:?}");
        assert_eq!(response.header("content-length"), None);
        assert_eq!(
            response.header("access-control-allow-origin").as_deref(),
            Some("https://app.example"),
            "{target}: {response:?}"
        );
        // Browsers refuse a preflight whose headers repeat.
        for name in [
            "access-control-allow-origin",
            "vary",
            "access-control-allow-credentials",
        ] {
            let count = response
                .head
                .lines()
                .filter(|line| line.to_ascii_lowercase().starts_with(&format!("{name}:")))
                .count();
            assert_eq!(count, 1, "{target}: {name} in {:?}", response.head);
        }
        let methods = items(
            &response
                .header("access-control-allow-methods")
                .unwrap_or_default(),
        );
        for method in ["get", "post"] {
            assert!(methods.iter().any(|m| m == method), "{target}: {methods:?}");
        }
        let headers = items(
            &response
                .header("access-control-allow-headers")
                .unwrap_or_default(),
        );
        for header in ["authorization", "content-type", "last-event-id"] {
            assert!(headers.iter().any(|h| h == header), "{target}: {headers:?}");
        }
    }
}

#[test]
fn cors_preflight_from_another_origin_gets_no_cors_headers() {
    for origin in [
        "https://evil.example",
        "https://app.example.evil",
        "http://app.example",
    ] {
        let response = preflight(&["https://app.example"], "/events", origin);
        assert_eq!(response.status, 204, "{response:?}");
        assert_eq!(
            response.header("access-control-allow-origin"),
            None,
            "{origin}: {response:?}"
        );
    }
}

#[test]
fn cors_wildcard_allows_any_origin() {
    let response = preflight(&["*"], "/publish", "https://anyone.example");
    assert_eq!(response.status, 204, "{response:?}");
    assert_eq!(
        response.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
}

#[test]
fn stream_from_an_allowed_origin_carries_acao() {
    let server = start(Config {
        cors_origins: vec!["https://app.example".to_string()],
        ..config()
    });
    let allowed = subscribe(server.addr, "/events", "Origin: https://app.example\r\n");
    assert!(
        allowed
            .head
            .contains("\r\nAccess-Control-Allow-Origin: https://app.example\r\n"),
        "{}",
        allowed.head
    );
    let other = subscribe(server.addr, "/events", "Origin: https://evil.example\r\n");
    assert!(
        !other.head.contains("Access-Control-Allow-Origin"),
        "{}",
        other.head
    );
    // Non-stream answers carry it too.
    let response = request(
        server.addr,
        "GET",
        "/healthz",
        "Origin: https://app.example\r\n",
    );
    assert_eq!(
        response.header("access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
}

#[test]
fn stream_head_is_exact_and_body_opens_with_retry() {
    for (retry_ms, opening) in [
        (None, &b"retry: 3000\n\n"[..]),
        (Some(1234), b"retry: 1234\n\n"),
    ] {
        let mut config = config();
        if let Some(retry_ms) = retry_ms {
            config.retry_ms = retry_ms;
        }
        let server = start(config);
        let mut subscriber = subscribe(server.addr, "/events", "");
        let head = &subscriber.head;
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        let header = |name: &str| {
            let values: Vec<&str> = head
                .lines()
                .skip(1)
                .filter_map(|line| line.split_once(':'))
                .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.trim())
                .collect();
            values
        };
        assert_eq!(header("content-type"), ["text/event-stream"], "{head}");
        assert_eq!(header("cache-control"), ["no-cache"], "{head}");
        assert_eq!(header("x-accel-buffering"), ["no"], "{head}");
        assert!(header("content-length").is_empty(), "{head}");
        assert!(header("transfer-encoding").is_empty(), "{head}");
        assert!(
            subscriber.raw.starts_with(opening),
            "{:?}",
            String::from_utf8_lossy(&subscriber.raw)
        );
        // Then live events.
        let id = server.hub().publish("default", Event::new("live")).unwrap();
        let message = subscriber.next_event();
        assert_eq!((message.data.as_str(), message.id), ("live", id));
    }
}

#[test]
fn heartbeat_comment_arrives_while_idle() {
    let server = start(Config {
        heartbeat: Duration::from_secs(1),
        ..config()
    });
    let mut subscriber = subscribe(server.addr, "/events", "");
    let opening = b"retry: 3000\n\n".len();
    subscriber.read_until(|raw| raw.len() > opening && raw[opening..].contains(&b'\n'));
    let after = String::from_utf8_lossy(&subscriber.raw[opening..]).into_owned();
    assert!(after.starts_with(": "), "{after:?}");
    // A comment is not an event.
    let id = server.hub().publish("default", Event::new("real")).unwrap();
    let message = subscriber.next_event();
    assert_eq!((message.data.as_str(), message.id), ("real", id));
}

#[test]
fn heartbeat_zero_sends_nothing_while_idle() {
    let server = start(Config {
        heartbeat: Duration::ZERO,
        ..config()
    });
    let mut subscriber = subscribe(server.addr, "/events", "");
    subscriber
        .stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut byte = [0u8; 64];
    match subscriber.stream.read(&mut byte) {
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!(
            "expected silence, got {other:?}: {:?}",
            String::from_utf8_lossy(&byte)
        ),
    }
    // The stream is still open and live.
    subscriber
        .stream
        .set_read_timeout(Some(crate::support::PATIENCE))
        .unwrap();
    let id = server
        .hub()
        .publish("default", Event::new("still here"))
        .unwrap();
    let message = subscriber.next_event();
    assert_eq!((message.data.as_str(), message.id), ("still here", id));
}

#[test]
fn http10_subscriber_gets_the_stream() {
    let server = start_default();
    let mut stream = connect(server.addr);
    stream
        .write_all(b"GET /events HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let head = read_head(&mut stream);
    assert!(
        head.starts_with("HTTP/1.1 200 ") || head.starts_with("HTTP/1.0 200 "),
        "{head}"
    );
    assert!(
        head.contains("\r\nContent-Type: text/event-stream\r\n"),
        "{head}"
    );
    let mut raw = Vec::new();
    let mut chunk = [0u8; 1024];
    while !raw.ends_with(b"\n\n") {
        let count = crate::support::read_some(&mut stream, &mut chunk);
        assert!(count > 0, "{:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&chunk[..count]);
    }
    assert_eq!(raw, b"retry: 3000\n\n");
    wait_until("the HTTP/1.0 subscriber is subscribed", || {
        server.hub().subscriber_count() == 1
    });
    let id = server
        .hub()
        .publish("default", Event::new("old client"))
        .unwrap();
    let mut parser = Parser::new();
    let mut messages = Vec::new();
    while messages.is_empty() {
        let count = crate::support::read_some(&mut stream, &mut chunk);
        assert!(count > 0, "the stream ended");
        parser.feed(&chunk[..count], &mut messages).unwrap();
    }
    assert_eq!(
        (messages[0].data.as_str(), messages[0].id.as_str()),
        ("old client", id.as_str())
    );
}

#[test]
fn non_stream_responses_carry_content_length_and_204_has_none() {
    let server = start_default();
    let answers = [
        ("GET", "/", ""),
        ("GET", "/healthz", ""),
        ("GET", "/metrics", ""),
        ("GET", "/nope", ""),
        ("DELETE", "/events", ""),
        ("POST", "/publish?topic=", "Content-Length: 1\r\n\r\nx"),
    ];
    for (method, target, rest) in answers {
        // Read to the end of the connection: the body must be exactly the
        // announced length.
        let mut stream = connect(server.addr);
        let head_end = if rest.is_empty() { "\r\n" } else { "" };
        stream
            .write_all(
                format!(
                    "{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{rest}{head_end}"
                )
                .as_bytes(),
            )
            .unwrap();
        let head = read_head(&mut stream);
        let mut body = Vec::new();
        stream.read_to_end(&mut body).unwrap();
        let response = RawResponse {
            status: 0,
            head,
            body,
        };
        assert_eq!(
            response.header("content-length"),
            Some(response.body.len().to_string()),
            "{method} {target}: {}",
            response.head
        );
        assert!(!response.body.is_empty(), "{method} {target}");
    }
    let publish_ok = raw(
        server.addr,
        b"POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(
        publish_ok.header("content-length"),
        Some(publish_ok.body.len().to_string())
    );
    let no_content = then_healthz(server.addr, "OPTIONS", "/events", "");
    assert_eq!(no_content.status, 204);
    assert_eq!(no_content.header("content-length"), None);
    assert_eq!(no_content.header("transfer-encoding"), None);
}

#[test]
fn client_closes_idle_stream_then_slot_is_freed_at_the_next_heartbeat() {
    // The first write after a client left still succeeds, so a server that
    // only notices failed writes needs two heartbeats (about 6 s here); the
    // server looks for the client's FIN first and needs one (about 3 s).
    let server = start(Config {
        heartbeat: Duration::from_secs(3),
        ..config()
    });
    let subscriber = subscribe(server.addr, "/events", "");
    assert_eq!(server.hub().subscriber_count(), 1);
    let closed_at = std::time::Instant::now();
    drop(subscriber);
    wait_until("the subscriber's slot is freed", || {
        server.hub().subscriber_count() == 0
    });
    let took = closed_at.elapsed();
    assert!(took < Duration::from_millis(5000), "took {took:?}");
}

#[test]
fn client_leaving_soon_after_an_event_is_found_without_waiting_for_the_heartbeat() {
    let _serial = crate::support::serial();
    let server = start(Config {
        heartbeat: Duration::from_secs(60),
        ..config()
    });
    let mut subscriber = subscribe(server.addr, "/events", "");
    // Idle long enough that its checks for a departed client are seconds
    // apart (1 ms, 2 ms, ... 2 s)...
    std::thread::sleep(Duration::from_secs(3));
    // ...then traffic: the checks start again soon after it.
    let (status, _) = publish(server.addr, "", None, b"one");
    assert_eq!(status, 200);
    assert_eq!(subscriber.next_event().data, "one");
    let closed_at = std::time::Instant::now();
    drop(subscriber);
    wait_until("the subscriber's slot is freed", || {
        server.hub().subscriber_count() == 0
    });
    let took = closed_at.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[test]
fn settings_at_their_largest_do_not_overflow() {
    let server = start(Config {
        retry_ms: u64::MAX,
        heartbeat: Duration::MAX,
        head_timeout: Duration::MAX,
        write_timeout: Duration::MAX,
        max_subscribers: 1,
        ..config()
    });
    let mut first = subscribe(server.addr, "/events", "");
    assert!(String::from_utf8_lossy(&first.raw).starts_with(&format!("retry: {}\n", u64::MAX)));
    // The full answer's jittered retry saturates.
    let mut full = crate::support::open_stream(server.addr, "/events", "");
    assert!(full.head.contains("Retry-After: "), "{}", full.head);
    let body = String::from_utf8_lossy(&full.read_to_end()).into_owned();
    assert!(body.contains(&format!("retry: {}\n", u64::MAX)), "{body}");
    let (status, _) = publish(server.addr, "", None, b"still fine");
    assert_eq!(status, 200);
    assert_eq!(first.next_event().data, "still fine");
    assert!(server.shutdown() < Duration::from_secs(5));
}
