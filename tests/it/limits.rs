//! SPEC §4, "Limits and bad input": every limit and every refusal provoked on
//! purpose over raw sockets. Each test checks the status, the one-line reason
//! in the body, and that the connection is closed where the spec says "close".
//! Limits are inclusive: a request exactly at a limit is accepted, one byte (or
//! one header) more is refused.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tinysse::Config;

use crate::support::{
    RawResponse, config, connect, metric, open_stream, publish, read_response, read_response_with,
    start, start_default, subscribe, wait_until,
};

/// The spec's limits (SPEC §4), written out rather than taken from the crate.
const REQUEST_LINE_LIMIT: usize = 8 * 1024;
const HEADER_SECTION_LIMIT: usize = 16 * 1024;
const HEADER_COUNT_LIMIT: usize = 100;
const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Connections allowed beyond `--max-subscribers`.
const EXTRA_CONNECTIONS: usize = 64;

/// Generous bound for anything the server should do "at once" on a busy
/// two-core machine.
const PROMPT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// helpers

/// Sends `request` on a new connection, reads one response (skipping a
/// `100 Continue`), and hands back the connection for further checks.
fn exchange(addr: SocketAddr, request: &[u8]) -> (RawResponse, TcpStream) {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    let response = read_response(&mut stream);
    (response, stream)
}

/// The reason of a 413 at `--max-body 1000`.
const TOO_LARGE_1000: &str = "request body too large (limit 1000 bytes, --max-body)";

/// The response has `status` and a body of exactly one line that mentions
/// `needle` (case-insensitive), so a client or a person sees why.
fn assert_reason(response: &RawResponse, status: u16, needle: &str) {
    let body = response.text();
    assert_eq!(response.status, status, "{}{body}", response.head);
    assert!(
        body.ends_with('\n') && body.trim_end().lines().count() == 1 && body.trim().len() > 1,
        "the reason is not one line: {body:?}"
    );
    assert!(
        body.to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase()),
        "the reason {body:?} does not mention {needle:?}"
    );
}

/// The server has closed `stream`: a read ends (end of stream, or a reset when
/// the server closed with bytes of ours unread) with no further bytes, well
/// before the read timeout.
fn assert_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(count) => rest.extend_from_slice(&chunk[..count]),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err)
                if matches!(
                    err.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                break;
            }
            Err(err) => panic!(
                "the connection is still open after {:?} ({err}); received {:?}",
                started.elapsed(),
                String::from_utf8_lossy(&rest)
            ),
        }
    }
    assert!(
        rest.is_empty(),
        "bytes after the response: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// Status and body of `GET {path}` on a new connection, or `None` if the
/// server did not answer with a complete response (e.g. past the connection
/// cap it may close without one). Never panics, for use in `wait_until`.
fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = connect(addr);
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Like [`metric`], but `None` when `/metrics` is refused (at the connection cap).
fn try_metric(addr: SocketAddr, name: &str) -> Option<u64> {
    match try_get(addr, "/metrics")? {
        (200, text) => text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()),
        _ => None,
    }
}

/// `GET /healthz` whose request line is exactly `length` bytes before its CRLF.
fn request_with_line_of(length: usize) -> Vec<u8> {
    let fixed = "GET /healthz?".len() + " HTTP/1.1".len();
    let line = format!("GET /healthz?{} HTTP/1.1", "a".repeat(length - fixed));
    assert_eq!(line.len(), length);
    format!("{line}\r\nHost: t\r\nConnection: close\r\n\r\n").into_bytes()
}

/// `GET /healthz` whose header section (every header line with its CRLF, not
/// the final empty line) is exactly `bytes` long.
fn request_with_header_section_of(bytes: usize) -> Vec<u8> {
    let host = "Host: t\r\n";
    let padding = bytes - host.len() - "X-Pad: \r\n".len();
    let section = format!("{host}X-Pad: {}\r\n", "p".repeat(padding));
    assert_eq!(section.len(), bytes);
    format!("GET /healthz HTTP/1.1\r\n{section}\r\n").into_bytes()
}

/// `GET /healthz` with `count` header fields, `Host` included.
fn request_with_headers(count: usize) -> Vec<u8> {
    let mut request = String::from("GET /healthz HTTP/1.1\r\nHost: t\r\n");
    for index in 1..count {
        request.push_str(&format!("X-H{index}: {index}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

fn assert_healthy(response: &RawResponse) {
    assert_eq!(response.status, 200, "{}{}", response.head, response.text());
    assert_eq!(response.text(), "ok\n");
}

/// A chunked body of `sizes` chunks filled with `c`, with its last chunk.
fn chunked(sizes: &[usize]) -> Vec<u8> {
    let mut body = Vec::new();
    for &size in sizes {
        body.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'c', size));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

#[test]
fn config_defaults_match_the_spec_table() {
    let defaults = Config::default();
    assert_eq!(defaults.head_timeout, Duration::from_secs(10));
    assert_eq!(defaults.max_body, DEFAULT_MAX_BODY);
    assert_eq!(defaults.max_subscribers, 1024);
    assert_eq!(defaults.max_connections(), 1024 + EXTRA_CONNECTIONS);
    assert_eq!(defaults.write_timeout, Duration::from_secs(30));
    assert_eq!(
        (defaults.history, defaults.history_bytes),
        (1024, 4 * 1024 * 1024)
    );
}

// ---------------------------------------------------------------------------
// request line: 8 KiB, 414

#[test]
fn request_line_at_limit_accepted_one_byte_more_gets_414() {
    let server = start_default();
    let (response, _) = exchange(server.addr, &request_with_line_of(REQUEST_LINE_LIMIT));
    assert_healthy(&response);

    let (response, mut stream) =
        exchange(server.addr, &request_with_line_of(REQUEST_LINE_LIMIT + 1));
    assert_reason(&response, 414, "request line");
    assert_closed(&mut stream);
}

#[test]
fn request_line_over_limit_refused_before_its_end_arrives() {
    // The limit is checked while reading: a line that is already too long gets
    // its 414 without the server waiting for the CRLF (or the head timeout).
    let server = start(Config {
        head_timeout: Duration::from_secs(60),
        ..config()
    });
    let mut line = b"GET /healthz?".to_vec();
    line.resize(REQUEST_LINE_LIMIT + 1, b'a');
    let (response, mut stream) = exchange(server.addr, &line);
    assert_reason(&response, 414, "request line");
    assert_closed(&mut stream);
}

// ---------------------------------------------------------------------------
// header section: 16 KiB and 100 headers, 431

#[test]
fn header_section_at_limit_accepted_one_byte_more_gets_431() {
    let server = start_default();
    let (response, _) = exchange(
        server.addr,
        &request_with_header_section_of(HEADER_SECTION_LIMIT),
    );
    assert_healthy(&response);

    let (response, mut stream) = exchange(
        server.addr,
        &request_with_header_section_of(HEADER_SECTION_LIMIT + 1),
    );
    assert_reason(&response, 431, "header");
    assert_closed(&mut stream);
}

#[test]
fn header_section_over_limit_refused_before_the_head_ends() {
    let server = start(Config {
        head_timeout: Duration::from_secs(60),
        ..config()
    });
    // A header section already one byte over the limit before its last line
    // ends: leave off that line's CRLF and the empty line.
    let mut request = request_with_header_section_of(HEADER_SECTION_LIMIT + 3);
    request.truncate(request.len() - 4);
    let (response, mut stream) = exchange(server.addr, &request);
    assert_reason(&response, 431, "header");
    assert_closed(&mut stream);
}

#[test]
fn hundred_headers_accepted_hundred_and_one_get_431() {
    let server = start_default();
    let (response, _) = exchange(server.addr, &request_with_headers(HEADER_COUNT_LIMIT));
    assert_healthy(&response);

    let (response, mut stream) =
        exchange(server.addr, &request_with_headers(HEADER_COUNT_LIMIT + 1));
    assert_reason(&response, 431, "header");
    assert_closed(&mut stream);
}

// ---------------------------------------------------------------------------
// time to receive the head: 408, close

const SHORT_HEAD_TIMEOUT: Duration = Duration::from_secs(2);

fn short_head_timeout() -> Config {
    Config {
        head_timeout: SHORT_HEAD_TIMEOUT,
        ..config()
    }
}

/// The 408 came no earlier than the head timeout and not much later.
fn assert_on_time(elapsed: Duration) {
    assert!(
        elapsed >= SHORT_HEAD_TIMEOUT,
        "408 after {elapsed:?}, before the head timeout"
    );
    assert!(
        elapsed < SHORT_HEAD_TIMEOUT + Duration::from_secs(3),
        "408 after {elapsed:?}, long after the head timeout"
    );
}

#[test]
fn head_trickling_one_byte_at_a_time_gets_408_then_close() {
    let server = start(short_head_timeout());
    let started = Instant::now();
    let mut stream = connect(server.addr);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let stop = Arc::clone(&stop);
        // A header value that never ends, one byte every 300 ms: the client
        // is never silent for long, yet the head never completes.
        std::thread::spawn(move || {
            for _ in 0..40 {
                if stop.load(Ordering::SeqCst) || stream.write_all(b"a").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let response = read_response(&mut stream);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    assert_reason(&response, 408, "time");
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    assert_on_time(elapsed);
    assert_closed(&mut stream);
    writer.join().unwrap();
}

#[test]
fn silent_client_gets_408_after_head_timeout_then_close() {
    let server = start(short_head_timeout());
    let started = Instant::now();
    let mut stream = connect(server.addr);
    let response = read_response(&mut stream);
    assert_on_time(started.elapsed());
    assert_reason(&response, 408, "time");
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    assert_closed(&mut stream);
}

// ---------------------------------------------------------------------------
// malformed requests: 400, close; HTTP versions

#[test]
fn malformed_requests_get_400_and_close() {
    let cases: &[(&str, &[u8])] = &[
        ("no version", b"GET /healthz\r\nHost: t\r\n\r\n"),
        ("two spaces", b"GET  /healthz HTTP/1.1\r\nHost: t\r\n\r\n"),
        ("extra part", b"GET /healthz HTTP/1.1 x\r\nHost: t\r\n\r\n"),
        ("bad method", b"G(T /healthz HTTP/1.1\r\nHost: t\r\n\r\n"),
        ("bad target", b"GET healthz HTTP/1.1\r\nHost: t\r\n\r\n"),
        ("bad protocol", b"GET /healthz HTTX/1.1\r\nHost: t\r\n\r\n"),
        ("two-digit minor", b"GET /healthz HTTP/1.10\r\nHost: t\r\n\r\n"),
        ("no dot", b"GET /healthz HTTP/1\r\nHost: t\r\n\r\n"),
        ("not UTF-8", b"GET /\xff HTTP/1.1\r\nHost: t\r\n\r\n"),
        ("no colon", b"GET /healthz HTTP/1.1\r\nHost t\r\n\r\n"),
        ("space before colon", b"GET /healthz HTTP/1.1\r\nHost : t\r\n\r\n"),
        ("empty name", b"GET /healthz HTTP/1.1\r\nHost: t\r\n: x\r\n\r\n"),
        ("folded line", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n"),
        ("control char", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n"),
        ("two Hosts", b"GET /healthz HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n"),
        (
            "bad length",
            b"POST /publish HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n",
        ),
        (
            "two lengths",
            b"POST /publish HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ),
        (
            "length and chunked",
            b"POST /publish HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        (
            "bad chunk size",
            b"POST /publish HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
        ),
    ];
    let server = start_default();
    for (what, request) in cases {
        // A valid request pipelined after the bad one must not be answered:
        // after a 400 the connection closes.
        let mut bytes = request.to_vec();
        bytes.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        let (response, mut stream) = exchange(server.addr, &bytes);
        let body = response.text();
        assert_eq!(response.status, 400, "{what}: {}{body}", response.head);
        assert_reason(&response, 400, "bad request");
        assert_eq!(
            response.header("connection").as_deref(),
            Some("close"),
            "{what}"
        );
        assert_closed(&mut stream);
    }
    assert_eq!(
        metric(server.addr, "tinysse_events_published_total"),
        0,
        "a malformed publish published something"
    );
}

#[test]
fn http_1_1_without_host_gets_400_http_1_0_without_host_is_served() {
    let server = start_default();
    let (response, mut stream) = exchange(server.addr, b"GET /healthz HTTP/1.1\r\n\r\n");
    assert_reason(&response, 400, "host");
    assert_closed(&mut stream);

    let (response, _) = exchange(server.addr, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_healthy(&response);
}

#[test]
fn http_major_version_other_than_1_gets_505() {
    let server = start_default();
    for request in [
        &b"GET /healthz HTTP/2.0\r\nHost: t\r\n\r\n"[..],
        b"GET /healthz HTTP/3.0\r\nHost: t\r\n\r\n",
        b"GET /healthz HTTP/0.9\r\nHost: t\r\n\r\n",
        // The HTTP/2 connection preface (prior knowledge h2c).
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let (response, _) = exchange(server.addr, request);
        assert_reason(&response, 505, "HTTP/1");
    }
}

#[test]
fn http_1_2_is_served_as_http_1_1() {
    let server = start_default();
    let mut stream = connect(server.addr);
    // As 1.1: kept alive by default, so a second request on the same connection works.
    for _ in 0..2 {
        stream
            .write_all(b"GET /healthz HTTP/1.2\r\nHost: t\r\n\r\n")
            .unwrap();
        let response = read_response(&mut stream);
        assert!(
            response.head.starts_with("HTTP/1.1 200 "),
            "{}",
            response.head
        );
        assert_healthy(&response);
        assert_eq!(response.header("connection"), None);
    }
    // As 1.1: Host is required.
    let (response, mut stream) = exchange(server.addr, b"GET /healthz HTTP/1.2\r\n\r\n");
    assert_reason(&response, 400, "host");
    assert_closed(&mut stream);
}

// ---------------------------------------------------------------------------
// publish bodies: 411, 413, 501

#[test]
fn publish_without_length_or_chunked_gets_411() {
    let server = start_default();
    let (response, _) = exchange(
        server.addr,
        b"POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n\r\n",
    );
    assert_reason(&response, 411, "Content-Length");
    assert_eq!(metric(server.addr, "tinysse_events_published_total"), 0);
}

#[test]
fn publish_body_at_max_body_accepted_by_length_and_by_chunks() {
    let server = start_default();
    let mut subscriber = subscribe(server.addr, "/events", "");

    let body = vec![b'l'; DEFAULT_MAX_BODY];
    let (status, id) = publish(server.addr, "", Some("text/plain"), &body);
    assert_eq!(status, 200, "{id}");
    let event = subscriber.next_event();
    assert_eq!(
        (event.id.as_str(), event.data.len()),
        (id.trim_end(), DEFAULT_MAX_BODY)
    );

    // One byte more (only the head is sent: the answer does not wait for
    // the body): the reason names the limit and the flag that sets it.
    let head = format!(
        "POST /publish HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        DEFAULT_MAX_BODY + 1
    );
    let (response, _) = exchange(server.addr, head.as_bytes());
    assert_reason(
        &response,
        413,
        "request body too large (limit 65536 bytes, --max-body)",
    );

    let mut request = b"POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    request.extend(chunked(&[DEFAULT_MAX_BODY / 2, DEFAULT_MAX_BODY / 2]));
    let (response, _) = exchange(server.addr, &request);
    assert_eq!(response.status, 200, "{}", response.text());
    let event = subscriber.next_event();
    assert_eq!(
        (event.id.as_str(), event.data.len()),
        (response.text().trim_end(), DEFAULT_MAX_BODY)
    );
}

#[test]
fn publish_length_over_max_body_gets_413_before_the_body_is_sent() {
    let max_body = 1000;
    let server = start(Config {
        max_body,
        ..config()
    });
    let head = format!(
        "POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
        max_body + 1
    );
    // Only the head is sent: the answer must not wait for the body.
    let (response, _) = exchange(server.addr, format!("{head}\r\n").as_bytes());
    assert_reason(&response, 413, TOO_LARGE_1000);

    // With `Expect: 100-continue` the first thing back is the 413, not a 100.
    let mut stream = connect(server.addr);
    stream
        .write_all(format!("{head}Expect: 100-continue\r\n\r\n").as_bytes())
        .unwrap();
    let response = read_response_with(&mut stream, false, false);
    assert_reason(&response, 413, TOO_LARGE_1000);

    // One byte less is accepted (and gets its 100 Continue first).
    let mut stream = connect(server.addr);
    stream
        .write_all(
            format!(
                "POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {max_body}\r\nExpect: 100-continue\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let interim = read_response_with(&mut stream, false, true);
    assert_eq!(interim.status, 100, "{}", interim.head);
    stream.write_all(&vec![b'b'; max_body]).unwrap();
    let response = read_response(&mut stream);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(metric(server.addr, "tinysse_events_published_total"), 1);
}

#[test]
fn publish_chunked_over_max_body_gets_413() {
    let max_body = 1000;
    let server = start(Config {
        max_body,
        ..config()
    });
    let head = "POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";

    // Refused as soon as the chunk that crosses the limit is announced: the
    // rest of the body is never sent.
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(format!("{:x}\r\n", max_body / 2).as_bytes());
    request.extend(std::iter::repeat_n(b'c', max_body / 2));
    request.extend_from_slice(format!("\r\n{:x}\r\n", max_body / 2 + 1).as_bytes());
    let (response, _) = exchange(server.addr, &request);
    assert_reason(&response, 413, TOO_LARGE_1000);

    // The whole body sent at once, in many small chunks.
    let mut request = head.as_bytes().to_vec();
    let mut sizes = vec![100; max_body / 100];
    sizes.push(1);
    request.extend(chunked(&sizes));
    let (response, _) = exchange(server.addr, &request);
    assert_reason(&response, 413, TOO_LARGE_1000);

    // Exactly at the limit, in the same small chunks, is accepted.
    let mut request = head.as_bytes().to_vec();
    request.extend(chunked(&vec![100; max_body / 100]));
    let (response, _) = exchange(server.addr, &request);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(metric(server.addr, "tinysse_events_published_total"), 1);
}

#[test]
fn publish_with_transfer_encoding_other_than_chunked_gets_501() {
    let server = start_default();
    for coding in ["gzip", "gzip, chunked", "chunked, chunked", "x-custom"] {
        let request = format!(
            "POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nTransfer-Encoding: {coding}\r\n\r\n"
        );
        let (response, _) = exchange(server.addr, request.as_bytes());
        assert_reason(&response, 501, "chunked");
    }
    assert_eq!(metric(server.addr, "tinysse_events_published_total"), 0);
}

// ---------------------------------------------------------------------------
// subscribers: 200, full comment, jittered retry, close

#[test]
fn third_subscriber_over_cap_told_to_retry_later_then_one_leaves_and_a_new_one_gets_in() {
    let retry_ms = 1500;
    let server = start(Config {
        max_subscribers: 2,
        retry_ms,
        // The server notices that a subscriber left when a write to it fails;
        // frequent heartbeats make that quick.
        heartbeat: Duration::from_secs(1),
        ..config()
    });
    let first = subscribe(server.addr, "/events", "");
    let mut second = subscribe(server.addr, "/events", "");

    let attempts = 5;
    let mut retries = Vec::new();
    for _ in 0..attempts {
        let mut refused = open_stream(server.addr, "/events", "");
        // 200, not an error status: a browser's EventSource would give up for good.
        assert!(
            refused.head.starts_with("HTTP/1.1 200 "),
            "{}",
            refused.head
        );
        let response = RawResponse {
            status: 200,
            head: refused.head.clone(),
            body: Vec::new(),
        };
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{}",
            refused.head
        );
        let retry_after = response
            .header("retry-after")
            .unwrap_or_else(|| panic!("no Retry-After in {}", refused.head));
        assert!(
            retry_after.parse::<u64>().is_ok_and(|seconds| seconds >= 1),
            "Retry-After: {retry_after}"
        );
        // The body, to the end: the server closes after it.
        let mut body = Vec::new();
        match refused.stream.read_to_end(&mut body) {
            Ok(_) => {}
            Err(err) => panic!(
                "the stream did not end cleanly ({err}); received {:?}",
                String::from_utf8_lossy(&body)
            ),
        }
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.lines()
                .any(|line| line.starts_with(':') && line.to_ascii_lowercase().contains("full")),
            "no comment saying the server is full in {body:?}"
        );
        assert!(!body.contains("data:"), "an event in {body:?}");
        let retry: Vec<u64> = body
            .lines()
            .filter_map(|line| line.strip_prefix("retry: "))
            .map(|value| {
                assert!(value.bytes().all(|b| b.is_ascii_digit()), "{body:?}");
                value.parse().unwrap()
            })
            .collect();
        assert_eq!(retry.len(), 1, "one retry field in {body:?}");
        retries.push(retry[0]);
    }
    let spread = retry_ms.max(1000);
    assert!(
        retries
            .iter()
            .all(|&retry| (retry_ms..retry_ms + spread).contains(&retry)),
        "retry values {retries:?} outside [{retry_ms}, {})",
        retry_ms + spread
    );
    // Equal by chance with probability (1/1500)^4.
    assert!(
        retries.iter().any(|&retry| retry != retries[0]),
        "retry values {retries:?} are not jittered"
    );
    assert_eq!(
        metric(
            server.addr,
            r#"tinysse_subscribers_dropped_total{reason="full"}"#
        ),
        attempts
    );
    assert_eq!(metric(server.addr, "tinysse_subscribers"), 2);

    // One leaves; a new subscriber gets in and receives events.
    drop(first);
    wait_until("the first subscriber has left", || {
        metric(server.addr, "tinysse_subscribers") == 1
    });
    let mut third = subscribe(server.addr, "/events", "");
    let (status, id) = publish(server.addr, "", Some("text/plain"), b"welcome");
    assert_eq!(status, 200, "{id}");
    for subscriber in [&mut second, &mut third] {
        let event = subscriber.next_event();
        assert_eq!(
            (event.id.as_str(), event.data.as_str()),
            (id.trim_end(), "welcome")
        );
    }
}

// ---------------------------------------------------------------------------
// connections in all: max_subscribers + 64, 503 with Retry-After, close

#[test]
fn connection_over_cap_gets_503_when_none_waits_for_a_head_then_a_freed_slot_is_reused() {
    let server = start(Config {
        max_subscribers: 1,
        ..config()
    });
    // Fill the cap with connections past their head, which are never closed
    // to make room (SPEC §4): one subscriber and 64 publishes whose body is
    // still arriving. No other connection is made before the one that must
    // be refused, so the count is exact: the server counts each connection
    // when it accepts it, in order, and none of these ends.
    let _subscriber = subscribe(server.addr, "/events", "");
    let mut idle: Vec<TcpStream> = (0..EXTRA_CONNECTIONS)
        .map(|_| {
            let mut stream = connect(server.addr);
            let head = "POST /publish HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n";
            stream.write_all(head.as_bytes()).unwrap();
            // The server read the head: it asks for the body.
            let response = read_response_with(&mut stream, false, true);
            assert_eq!(response.status, 100);
            stream.write_all(b"half").unwrap();
            stream
        })
        .collect();

    let (response, mut stream) = exchange(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_reason(&response, 503, "connections");
    let retry_after = response
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After in {}", response.head));
    assert!(
        retry_after.parse::<u64>().is_ok_and(|seconds| seconds >= 1),
        "Retry-After: {retry_after}"
    );
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    assert_closed(&mut stream);

    // Still full: even /metrics is refused.
    assert_eq!(
        try_get(server.addr, "/metrics").map(|(status, _)| status),
        Some(503)
    );

    // One publisher leaves; its slot goes to the next client (here the
    // metrics request itself, counted among the 65).
    drop(idle.pop());
    wait_until("a freed connection slot is reused", || {
        try_metric(server.addr, "tinysse_connections") == Some(65)
    });
    // The subscriber and the other publishers were not disturbed. (Asked
    // of the hub, not over a connection: the cap is full again.)
    assert_eq!(server.hub().subscriber_count(), 1);
    for stream in &mut idle {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let read = stream.read(&mut byte);
        assert!(
            matches!(&read, Err(err) if err.kind() == ErrorKind::WouldBlock),
            "a publisher mid-body was answered or closed: {read:?}"
        );
    }
}

#[test]
fn past_the_cap_the_longest_waiting_head_gets_408_to_make_room() {
    let server = start(Config {
        max_subscribers: 1,
        head_timeout: Duration::from_secs(60),
        ..config()
    });
    // Fill the cap with connections that sent part of a head, oldest first.
    let _subscriber = subscribe(server.addr, "/events", "");
    let mut slow: Vec<TcpStream> = (0..EXTRA_CONNECTIONS)
        .map(|_| {
            let mut stream = connect(server.addr);
            stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            stream
        })
        .collect();
    // A real client still gets in: the oldest slow head makes room.
    let (response, _stream) = exchange(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((response.status, response.text().as_str()), (200, "ok\n"));
    let oldest = &mut slow[0];
    let response = read_response(oldest);
    assert_reason(&response, 408, "in time");
    assert_closed(oldest);
    // The others were left alone.
    for stream in &mut slow[1..] {
        stream.set_nonblocking(true).unwrap();
        let read = stream.read(&mut [0u8; 1]);
        assert!(
            matches!(&read, Err(err) if err.kind() == ErrorKind::WouldBlock),
            "a newer slow head was answered or closed: {read:?}"
        );
    }
    let refused = "tinysse_connections_refused_total{reason=\"slow_head\"}";
    assert!(metric(server.addr, refused) >= 1);
}

// ---------------------------------------------------------------------------
// a subscriber whose socket accepts nothing: dropped after the write timeout

#[test]
fn stalled_subscriber_dropped_while_reader_and_publishers_keep_going() {
    let _serial = crate::support::serial();
    let server = start(Config {
        write_timeout: Duration::from_secs(1),
        // A small history: the stalled subscriber's thread is stuck in a write,
        // not reading the history, so the history size does not matter to it;
        // the reader takes each event before the next is published, so it never
        // falls out of even a small history. Small keeps memory low while the
        // test pushes many MiB through.
        history_bytes: 1024 * 1024,
        ..config()
    });
    let mut reader = subscribe(server.addr, "/events", "");
    // Subscribed (head and retry frame read), then never read again: its
    // socket buffers fill up and the server's writes block.
    let mut stalled = subscribe(server.addr, "/events", "");

    let data = "x".repeat(60 * 1024);
    let dropped = r#"tinysse_subscribers_dropped_total{reason="write_timeout"}"#;
    let limit = 2000;
    let mut published = 0;
    while metric(server.addr, dropped) == 0 {
        assert!(
            published < limit,
            "the stalled subscriber was not dropped after {limit} events of 60 KiB"
        );
        let started = Instant::now();
        let (status, id) = publish(server.addr, "", Some("text/plain"), data.as_bytes());
        let answered = started.elapsed();
        assert_eq!(status, 200, "{id}");
        assert!(
            answered < PROMPT,
            "publish #{published} answered after {answered:?}"
        );
        let event = reader.next_event();
        let received = started.elapsed();
        assert!(
            received < PROMPT,
            "event #{published} reached the reader after {received:?}"
        );
        assert_eq!(event.event, "message");
        assert_eq!(event.id, id.trim_end());
        assert_eq!(event.data.len(), data.len());
        published += 1;
    }
    assert_eq!(metric(server.addr, dropped), 1);
    wait_until("the stalled subscriber's slot is freed", || {
        metric(server.addr, "tinysse_subscribers") == 1
    });

    // The server closed the stalled connection: what was buffered, then the end.
    let mut rest = Vec::new();
    stalled
        .stream
        .read_to_end(&mut rest)
        .expect("the stalled connection ends cleanly");

    // The reader is still live.
    let started = Instant::now();
    let (status, id) = publish(server.addr, "", Some("text/plain"), b"after");
    assert_eq!(status, 200, "{id}");
    let event = reader.next_event();
    assert!(started.elapsed() < PROMPT);
    assert_eq!(
        (event.id.as_str(), event.data.as_str()),
        (id.trim_end(), "after")
    );
}
