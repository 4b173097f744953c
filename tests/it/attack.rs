//! SPEC §4 under attack: one descriptor per connection, the open-files
//! limit, slow heads, connections per address, stalled subscribers, and
//! threads coming back. Each test runs the `tinysse` binary as a child
//! process, so that its descriptors, threads and memory can be read from
//! `/proc/PID`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    connect, metric, publish, raw, read_response, serve_child as serve, subscribe, wait_until,
};

/// Opens `count` connections that each ask for `/events` and do not wait.
fn open_streams(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut stream = connect(addr);
            let _ = stream.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
            stream
        })
        .collect()
}

/// How many connections the open-files limit of the test process allows,
/// leaving some for the rest of the test.
fn affordable(wanted: usize) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits
                .lines()
                .find(|line| line.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(1024);
    let count = wanted.min(soft.saturating_sub(100));
    if count < wanted {
        println!("open-files limit {soft}: {count} connections instead of {wanted}");
    }
    count
}

#[test]
fn each_connection_costs_one_descriptor() {
    let _serial = crate::support::serial();
    let served = serve(None, &[]);
    let before = served.descriptors();
    let subscribers: Vec<_> = (0..100)
        .map(|_| subscribe(served.addr, "/events", ""))
        .collect();
    let during = served.descriptors();
    assert!(
        during <= before + 100,
        "{before} descriptors before, {during} with 100 subscribers"
    );
    drop(subscribers);
    wait_until("the descriptors are given back", || {
        served.descriptors() <= before
    });
}

#[test]
fn at_the_open_files_limit_it_keeps_serving_logs_rarely_and_recovers() {
    let _serial = crate::support::serial();
    let served = serve(Some(300), &[]);
    // More connections than descriptors: the server takes what it can.
    let waiting = open_streams(served.addr, affordable(400));
    wait_until("the server is at its open-files limit", || {
        served.descriptors() >= 295
    });
    // The connections it took are served.
    let mut first = waiting.into_iter();
    let mut served_one = first.next().unwrap();
    let head = crate::support::read_head(&mut served_one);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Accepting fails and is retried; the condition is logged, not flooded.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        lines.extend(served.lines());
        thread::sleep(Duration::from_millis(50));
    }
    let accept_lines: Vec<_> = lines
        .iter()
        .filter(|line| line.contains("accept"))
        .collect();
    assert!(
        (1..=2).contains(&accept_lines.len()),
        "accept errors logged {} times: {accept_lines:?}",
        accept_lines.len()
    );
    assert!(
        accept_lines[0].contains("still serving"),
        "{accept_lines:?}"
    );
    // Load drops: the server recovers by itself.
    drop(served_one);
    drop(first);
    let subscriber = subscribe(served.addr, "/events", "");
    drop(subscriber);
    assert!(metric(served.addr, "tinysse_accept_errors_total") >= 1);
}

#[test]
fn a_flood_of_slow_heads_cannot_keep_a_real_client_out() {
    let _serial = crate::support::serial();
    // 264 connection slots; the flood holds far more than that, one byte of
    // a head each, and reopens every connection the server closes.
    let served = serve(None, &["--max-subscribers", "200"]);
    let flood_size = affordable(1200).saturating_sub(50);
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let flood = {
        let (addr, stop, ready) = (served.addr, Arc::clone(&stop), Arc::clone(&ready));
        thread::spawn(move || {
            let open = || {
                let mut stream = TcpStream::connect(addr).ok()?;
                stream.write_all(b"G").ok()?;
                stream.set_nonblocking(true).ok()?;
                Some(stream)
            };
            let mut streams: Vec<TcpStream> = (0..flood_size).filter_map(|_| open()).collect();
            ready.store(true, Ordering::SeqCst);
            let mut reopened = 0;
            while !stop.load(Ordering::SeqCst) {
                for stream in &mut streams {
                    let closed = match stream.read(&mut [0u8; 512]) {
                        Ok(_) => true,
                        Err(err) => err.kind() != ErrorKind::WouldBlock,
                    };
                    if closed && let Some(new) = open() {
                        *stream = new;
                        reopened += 1;
                    }
                }
                thread::sleep(Duration::from_millis(5));
            }
            reopened
        })
    };
    wait_until("the flood is open", || ready.load(Ordering::SeqCst));
    assert!(served.descriptors() > 264);
    for _ in 0..5 {
        let started = Instant::now();
        let mut subscriber = subscribe(served.addr, "/events?topic=real", "");
        let (status, _) = publish(served.addr, "?topic=real", None, b"through");
        assert_eq!(status, 200);
        assert_eq!(subscriber.next_event().data, "through");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "a real client took {took:?}");
    }
    stop.store(true, Ordering::SeqCst);
    let reopened = flood.join().unwrap();
    assert!(reopened > 0, "no slow head was closed to make room");
}

#[test]
fn max_per_address_refuses_the_connection_past_it_with_retry_after() {
    let _serial = crate::support::serial();
    // std cannot choose a client's source address; Python can.
    let Some(python) = ["python3", "python"].into_iter().find(|name| {
        Command::new(name)
            .arg("-c")
            .arg("1")
            .output()
            .is_ok_and(|out| out.status.success())
    }) else {
        let required = std::env::var("TINYSSE_REQUIRE_PYTHON").is_ok_and(|value| value == "1");
        assert!(!required, "python3 is required (TINYSSE_REQUIRE_PYTHON=1)");
        println!("skipped: python3 not installed (apt-get install python3)");
        return;
    };
    let served = serve(None, &["--max-per-address", "3"]);
    // From 127.0.0.2: three connections held open, then a fourth. From
    // 127.0.0.3: one more. Each answer's first line and Retry-After.
    let script = r#"
import socket, sys
port = int(sys.argv[1])
def conn(source):
    s = socket.socket(); s.settimeout(10); s.bind((source, 0)); s.connect(("127.0.0.1", port)); return s
def ask(s):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk: break
        data += chunk
    head = data.split(b"\r\n\r\n")[0].decode()
    retry = [l for l in head.split("\r\n") if l.lower().startswith("retry-after:")]
    return head.split("\r\n")[0] + " | " + (retry[0] if retry else "")
held = [conn("127.0.0.2") for _ in range(3)]
for s in held: s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
print(ask(conn("127.0.0.2")))
print(ask(conn("127.0.0.3")))
"#;
    let output = Command::new(python)
        .args(["-c", script, &served.addr.port().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        lines[0].starts_with("HTTP/1.1 503") && lines[0].contains("Retry-After:"),
        "{stdout}"
    );
    assert!(lines[1].starts_with("HTTP/1.1 200"), "{stdout}");
    let refused = "tinysse_connections_refused_total{reason=\"per_address\"}";
    assert_eq!(metric(served.addr, refused), 1);
}

#[test]
fn stalled_subscribers_share_the_frames_of_large_events() {
    let _serial = crate::support::serial();
    let served = serve(None, &[]);
    let count = affordable(1000);
    // Subscribers that read their head, then stop reading.
    let stalled: Vec<_> = (0..count)
        .map(|_| subscribe(served.addr, "/events", ""))
        .collect();
    let body = vec![b'x'; 60 * 1024];
    for _ in 0..200 {
        let (status, _) = publish(served.addr, "", Some("text/plain"), &body);
        assert_eq!(status, 200);
    }
    let rss_kib = served.status("VmRSS");
    assert!(
        rss_kib < 48 * 1024,
        "{count} stalled subscribers and 200 events of 60 KB: {rss_kib} KiB resident"
    );
    // They are stalled, not gone.
    assert_eq!(metric(served.addr, "tinysse_subscribers"), count as u64);
    drop(stalled);
}

#[test]
fn threads_come_back_after_a_storm_while_a_publisher_keeps_posting() {
    let _serial = crate::support::serial();
    let served = serve(None, &[]);
    let baseline = served.status("Threads");
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (addr, stop) = (served.addr, Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // A new connection each time, like curl in a loop.
                let response = raw(
                    addr,
                    b"POST /publish HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
                );
                assert_eq!(response.status, 200);
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let storm: Vec<_> = (0..300)
        .map(|_| subscribe(served.addr, "/events", ""))
        .collect();
    assert!(served.status("Threads") > baseline + 250);
    drop(storm);
    let ended = Instant::now();
    wait_until("the threads come back", || {
        served.status("Threads") <= baseline + 2
    });
    let took = ended.elapsed();
    stop.store(true, Ordering::SeqCst);
    publisher.join().unwrap();
    assert!(
        took < Duration::from_secs(8),
        "threads came back after {took:?}"
    );
}

#[test]
fn sixty_four_topics_are_accepted_sixty_five_refused() {
    let _serial = crate::support::serial();
    let served = serve(None, &[]);
    let query = |count: usize| {
        let topics: Vec<String> = (0..count).map(|n| format!("topic={n}")).collect();
        format!("/events?{}", topics.join("&"))
    };
    let _subscriber = subscribe(served.addr, &query(64), "");
    let mut stream = connect(served.addr);
    let request = format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", query(65));
    stream.write_all(request.as_bytes()).unwrap();
    let response = read_response(&mut stream);
    assert_eq!(response.status, 400, "{}", response.head);
    assert!(response.text().contains("64 topics"), "{}", response.text());
}
