//! Lifecycle: subscribers that vanish, shutdown with busy and stalled clients,
//! and servers started and stopped in a row — none of it may leave a thread
//! behind (SPEC §4 "leak a thread", §6 "joins every thread it started").
//!
//! Counting threads needs a process of its own: the tests of this binary run
//! in parallel threads of one process, so its thread count moves under any one
//! test. Each thread-counting test is therefore a pair: the parent test
//! re-executes this test binary with only its child test selected and
//! [`CHILD_ENV`] set, and checks that the child ran and passed. The child test
//! does the work only when [`CHILD_ENV`] names it; in a normal run it returns
//! at once.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tinysse::Event;

use crate::support::{
    self, Finished, Subscriber, TestServer, connect, metric, raw, read_response, run_to_end,
    subscribe, thread_count, wait_until,
};

/// Set, to the child test's name, in the environment of a re-executed test binary.
const CHILD_ENV: &str = "TINYSSE_LIFECYCLE_CHILD";
/// A child test process that runs longer than this is killed and fails its parent.
const CHILD_DEADLINE: Duration = Duration::from_secs(90);

/// Runs the test `lifecycle::{child}` alone in a new process of this test
/// binary and asserts that it ran (exactly one test passed) and passed.
fn run_in_child(child: &str) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            format!("lifecycle::{child}").as_str(),
            "--exact",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ENV, child);
    let Finished {
        status,
        stdout,
        stderr,
    } = run_to_end(command, CHILD_DEADLINE);
    assert!(
        status.success(),
        "child test {child} failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "child test {child} did not run\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

/// Whether this process is the child run for the test named `child`.
fn is_child(child: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(child)
}

fn wait_for_threads(count: usize) {
    wait_until(&format!("the process has {count} threads"), || {
        thread_count() == count
    });
}

fn healthz(server: &TestServer) -> u16 {
    raw(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .status
}

/// A fresh subscriber receives an event published after it subscribed.
fn assert_serves_a_fresh_subscriber(server: &TestServer) {
    let mut fresh = subscribe(server.addr, "/events?topic=fresh", "");
    let (status, _) = support::publish(server.addr, "?topic=fresh", None, b"still here");
    assert_eq!(status, 200);
    assert_eq!(fresh.next_event().data, "still here");
}

#[test]
fn two_hundred_subscribers_vanish_while_events_flow_then_threads_return() {
    run_in_child("vanish_child");
}

/// The child half of
/// [`two_hundred_subscribers_vanish_while_events_flow_then_threads_return`]:
/// does nothing unless run by it.
#[test]
fn vanish_child() {
    if !is_child("vanish_child") {
        return;
    }
    const SUBSCRIBERS: usize = 200;
    let server = support::start_default();
    // After the start: the accept thread is part of the baseline.
    let baseline = thread_count();
    let subscribers: Vec<Subscriber> = (0..SUBSCRIBERS)
        .map(|_| subscribe(server.addr, "/events", ""))
        .collect();
    wait_until("200 subscribers are counted", || {
        metric(server.addr, "tinysse_subscribers") == SUBSCRIBERS as u64
    });
    // The count sees the server's threads: one per subscriber.
    wait_for_threads(baseline + SUBSCRIBERS);

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (hub, stop) = (Arc::clone(server.hub()), Arc::clone(&stop));
        thread::spawn(move || {
            let mut published = 0u64;
            while !stop.load(Ordering::SeqCst) {
                hub.publish("default", Event::new(format!("tick {published}")))
                    .unwrap();
                published += 1;
                thread::sleep(Duration::from_millis(1));
            }
            published
        })
    };
    let mut subscribers = subscribers.into_iter();
    let mut first = subscribers.next().unwrap();
    assert!(first.next_event().data.starts_with("tick "));
    drop(first);
    // Gone without reading what the server sent: closing a socket with unread
    // data makes the kernel send a reset, the most abrupt end a client has.
    for (index, subscriber) in subscribers.enumerate() {
        if index % 2 == 0 {
            let _ = subscriber.stream.shutdown(Shutdown::Both);
        }
        drop(subscriber);
    }
    wait_until("every subscriber has left the hub", || {
        metric(server.addr, "tinysse_subscribers") == 0
    });
    stop.store(true, Ordering::SeqCst);
    assert!(publisher.join().unwrap() > 0);
    wait_for_threads(baseline);

    assert_eq!(healthz(&server), 200);
    assert_serves_a_fresh_subscriber(&server);
}

/// A client that closes its end gets one last comment: one that only
/// half-closed reads it before the end of the stream, and the kernel of one
/// that closed answers it with a reset, so its socket is not left in
/// `TIME_WAIT` for a minute (as it was before the comment).
#[test]
fn a_client_that_closes_gets_a_last_comment_and_keeps_no_time_wait() {
    let server = support::start_default();

    let mut half = subscribe(server.addr, "/events", "");
    let opening = half.raw.len();
    half.stream.shutdown(Shutdown::Write).unwrap();
    let raw = half.read_to_end();
    assert_eq!(&raw[opening..], b": bye\n\n");

    let gone = subscribe(server.addr, "/events", "");
    let port = gone.stream.local_addr().unwrap().port();
    drop(gone);
    // /proc/net/tcp: "sl local_address rem_address st ...", addresses as
    // hex "IP:PORT"; 06 is TIME_WAIT. The socket must vanish, not linger.
    let local = format!(":{port:04X} ");
    wait_until(
        "the closed client's socket is gone, not in TIME_WAIT",
        || {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
            !table.lines().any(|line| {
                let local_address = line.split_whitespace().nth(1).unwrap_or("");
                format!("{local_address} ").ends_with(&local)
            })
        },
    );
    wait_until("both subscribers have left", || {
        metric(server.addr, "tinysse_subscribers") == 0
    });
}

#[test]
fn shutdown_with_reading_stalled_idle_and_half_sent_clients_is_quick_and_joins_every_thread() {
    run_in_child("busy_shutdown_child");
}

/// Bytes that certainly do not fit in the socket buffers of a connection
/// whose receiver never reads: the largest send buffer the kernel grows to,
/// plus the receive buffer it starts with, plus a margin.
fn more_than_socket_buffers() -> usize {
    let third = |path: &str, fallback: usize| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.split_whitespace().nth(2)?.parse().ok())
            .unwrap_or(fallback)
    };
    let second = |path: &str, fallback: usize| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(fallback)
    };
    third("/proc/sys/net/ipv4/tcp_wmem", 4 << 20)
        + second("/proc/sys/net/ipv4/tcp_rmem", 128 << 10)
        + (2 << 20)
}

/// The child half of
/// [`shutdown_with_reading_stalled_idle_and_half_sent_clients_is_quick_and_joins_every_thread`]:
/// does nothing unless run by it.
#[test]
fn busy_shutdown_child() {
    if !is_child("busy_shutdown_child") {
        return;
    }
    const RETRY_MS: u64 = 2000;
    const BIG: usize = 256 * 1024;
    let big_events = more_than_socket_buffers().div_ceil(BIG);
    let baseline = thread_count();
    let server = support::start(tinysse::Config {
        retry_ms: RETRY_MS,
        // Only the shutdown can end the stalled write.
        write_timeout: Duration::from_secs(60),
        history_bytes: 2 * (big_events + 4) * BIG,
        ..support::config()
    });

    let mut readers: Vec<Subscriber> = (0..3)
        .map(|_| subscribe(server.addr, "/events?topic=news", ""))
        .collect();

    // A subscriber that never reads, sent more than its socket can hold.
    let stalled = subscribe(server.addr, "/events?topic=big", "");
    let payload = "x".repeat(BIG);
    for _ in 0..big_events {
        server
            .hub()
            .publish("big", Event::new(payload.as_str()))
            .unwrap();
    }

    // A publisher whose keep-alive connection stays open and idle.
    let mut publisher = connect(server.addr);
    let body = "before shutdown";
    write!(
        publisher,
        "POST /publish?topic=news HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let response = read_response(&mut publisher);
    assert_eq!(response.status, 200, "{}", response.text());
    for reader in &mut readers {
        assert_eq!(reader.next_event().data, body);
    }

    // A client that sent half a request head.
    let mut half = connect(server.addr);
    half.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n")
        .unwrap();

    // 3 readers, the stalled subscriber, the publisher, the half head, and the
    // connection asking for the metric.
    wait_until("every client is connected", || {
        metric(server.addr, "tinysse_connections") == 7
    });
    // The stalled subscriber's writes stop moving: its socket is full.
    let mut last = (u64::MAX, Instant::now());
    wait_until("the stalled subscriber's socket is full", || {
        let delivered = metric(server.addr, "tinysse_events_delivered_total");
        if delivered != last.0 {
            last = (delivered, Instant::now());
        }
        last.1.elapsed() > Duration::from_millis(300)
    });
    let delivered = metric(server.addr, "tinysse_events_delivered_total");
    assert!(
        delivered < (readers.len() + big_events) as u64,
        "the stalled subscriber received all {big_events} big events ({delivered} delivered): it did not stall"
    );

    let took = server.shutdown();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");

    for reader in &mut readers {
        let read = reader.stream.read_to_end(&mut reader.raw);
        assert!(read.is_ok(), "a reader's stream did not end: {read:?}");
        let text = String::from_utf8(reader.raw.clone()).unwrap();
        let last_frame = text
            .strip_suffix("\n\n")
            .and_then(|rest| rest.rsplit("\n\n").next())
            .unwrap_or_else(|| panic!("no last frame in {text:?}"));
        let retry: u64 = last_frame
            .strip_prefix("retry: ")
            .and_then(|millis| millis.parse().ok())
            .unwrap_or_else(|| panic!("the stream did not end with a retry frame: {text:?}"));
        assert!(retry >= RETRY_MS, "last retry {retry} < {RETRY_MS}");
    }
    for (what, mut stream) in [
        ("publisher", publisher),
        ("half head", half),
        ("stalled", stalled.stream),
    ] {
        let mut rest = Vec::new();
        match stream.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::ConnectionReset => {}
            Err(err) => panic!("the {what} connection was not closed: {err}"),
        }
    }
    wait_for_threads(baseline);
}

#[test]
fn idle_shutdown_is_quick_and_twenty_restarts_leave_no_thread() {
    run_in_child("restarts_child");
}

/// The child half of [`idle_shutdown_is_quick_and_twenty_restarts_leave_no_thread`]:
/// does nothing unless run by it.
#[test]
fn restarts_child() {
    if !is_child("restarts_child") {
        return;
    }
    let baseline = thread_count();
    let server = support::start_default();
    assert_eq!(thread_count(), baseline + 1, "one accept thread");
    let took = server.shutdown();
    assert!(took < Duration::from_secs(2), "idle shutdown took {took:?}");
    wait_for_threads(baseline);

    for round in 0..20 {
        let server = support::start_default();
        assert_eq!(healthz(&server), 200, "round {round}");
        // Every fifth round ends with a keep-alive connection still open
        // (each costs the shutdown its grace period).
        let open = (round % 5 == 4).then(|| {
            let mut stream: TcpStream = connect(server.addr);
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            assert_eq!(read_response(&mut stream).status, 200);
            stream
        });
        let took = server.shutdown();
        assert!(took < Duration::from_secs(5), "round {round}: {took:?}");
        drop(open);
        wait_for_threads(baseline);
    }
}
