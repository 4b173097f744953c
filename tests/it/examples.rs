//! The programs in `examples/`, each run briefly as its own process on
//! 127.0.0.1:0 and talked to over real sockets.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{PATIENCE, example_binary, publish, raw, subscribe, wait_until};

/// A child process, killed (and reaped) when dropped, even by a failing test.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running example and the address it listens on.
struct Example {
    _process: Process,
    addr: SocketAddr,
}

impl Example {
    /// Starts example `name` with `args` and `127.0.0.1:0` as its last
    /// argument; returns once it has said where it listens.
    fn start(name: &str, args: &[&str]) -> Example {
        let mut process = Process(
            Command::new(example_binary(name))
                .args(args)
                .arg("127.0.0.1:0")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|err| panic!("cannot run example {name}: {err}")),
        );
        let first_line = first_stderr_line(&mut process.0);
        let addr = first_line
            .strip_prefix("listening on http://")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("{name} first said {first_line:?}"));
        Example {
            _process: process,
            addr,
        }
    }
}

/// The first line the child writes to stderr (waiting at most [`PATIENCE`]).
/// A thread goes on reading the rest, so the child never blocks on a full pipe.
fn first_stderr_line(child: &mut Child) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        let _ = sender.send(lines.next());
        for _ in lines {}
    });
    match receiver.recv_timeout(PATIENCE) {
        Ok(Some(Ok(line))) => line,
        other => panic!("no first line on stderr: {other:?}"),
    }
}

/// `HH:MM:SS UTC`, a time of day.
fn is_utc_time(text: &str) -> bool {
    let Some(time) = text.strip_suffix(" UTC") else {
        return false;
    };
    let fields: Vec<&str> = time.split(':').collect();
    fields.len() == 3
        && fields.iter().zip([24, 60, 60]).all(|(field, limit)| {
            field.len() == 2
                && field.bytes().all(|byte| byte.is_ascii_digit())
                && field.parse::<u32>().unwrap() < limit
        })
}

/// An id `<run>-<seq>` as numbers, which order ids of one server.
fn id_numbers(id: &str) -> (u64, u64) {
    let parse = || {
        let (run, seq) = id.split_once('-')?;
        Some((run.parse().ok()?, seq.parse().ok()?))
    };
    parse().unwrap_or_else(|| panic!("not an id: {id:?}"))
}

#[test]
fn utc_time_pattern() {
    for (text, expected) in [
        ("00:00:00 UTC", true),
        ("23:59:59 UTC", true),
        ("24:00:00 UTC", false),
        ("12:60:00 UTC", false),
        ("1:02:03 UTC", false),
        ("+1:02:03 UTC", false),
        ("12:34:56", false),
    ] {
        assert_eq!(is_utc_time(text), expected, "{text}");
    }
}

#[test]
fn clock_greets_each_subscriber_then_ticks() {
    let clock = Example::start("clock", &[]);
    let mut subscriber = subscribe(
        clock.addr,
        "/events",
        "Origin: http://elsewhere.example\r\n",
    );
    assert!(
        subscriber
            .head
            .contains("\r\nAccess-Control-Allow-Origin: *\r\n"),
        "{}",
        subscriber.head
    );
    let greeting = subscriber.next_event();
    assert!(
        subscriber
            .raw
            .starts_with(b"retry: 10000\n\nevent: connecttime\n"),
        "{:?}",
        String::from_utf8_lossy(&subscriber.raw)
    );
    assert!(is_utc_time(&greeting.data), "{greeting:?}");

    let waiting = Instant::now();
    let tick = subscriber.next_event();
    assert!(waiting.elapsed() < Duration::from_secs(3), "{tick:?}");
    assert_eq!(tick.event, "message", "{tick:?}");
    assert!(is_utc_time(&tick.data), "{tick:?}");
    assert!(!tick.id.is_empty(), "published events have ids: {tick:?}");
}

#[test]
fn chat_serves_its_page_and_keeps_rooms_apart() {
    let chat = Example::start("chat", &[]);
    let page = raw(
        chat.addr,
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("new EventSource("), "{}", page.text());
    assert!(page.text().contains("'room:'"), "{}", page.text());

    let mut lobby = subscribe(chat.addr, "/events?topic=room:lobby", "");
    // Posted the way the page posts (`URLSearchParams`): another room first,
    // so the lobby's first event shows that rooms are kept apart.
    let form = Some("application/x-www-form-urlencoded;charset=UTF-8");
    let (status, _) = publish(chat.addr, "", form, b"topic=room%3Akitchen&data=elsewhere");
    assert_eq!(status, 200);
    let (status, id) = publish(chat.addr, "", form, b"topic=room%3Alobby&data=hi+%3Cb%3E");
    assert_eq!(status, 200);
    let message = lobby.next_event();
    assert_eq!(
        (message.data.as_str(), message.id.as_str()),
        ("hi <b>", id.trim_end())
    );
}

#[test]
fn ticker_sends_named_prices_with_increasing_ids() {
    let ticker = Example::start("ticker", &[]);
    let mut prices = subscribe(ticker.addr, "/events?topic=prices", "");
    let events = prices.events(6);
    let mut previous_id = (0, 0);
    for event in &events {
        // `event: ACME` and `data: ACME 101.25`.
        let (symbol, price) = event.data.split_once(' ').expect("symbol and price");
        assert_eq!(symbol, event.event, "{event:?}");
        let (units, cents) = price.split_once('.').expect("a decimal price");
        assert!(
            units.parse::<u64>().is_ok() && cents.len() == 2,
            "{event:?}"
        );
        assert!(cents.bytes().all(|byte| byte.is_ascii_digit()), "{event:?}");
        let id = id_numbers(&event.id);
        assert!(id > previous_id, "ids go up: {events:?}");
        previous_id = id;
    }
    let symbols: std::collections::HashSet<&str> =
        events.iter().map(|event| event.event.as_str()).collect();
    assert!(symbols.len() > 1, "several symbols: {events:?}");
}

/// A file under the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn tail_publishes_new_lines_and_starts_over_after_truncation() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let file = TempFile(
        std::env::temp_dir().join(format!("tinysse-tail-{}-{nanos}.log", std::process::id())),
    );
    fs::write(&file.0, "a line written before the example started\n").unwrap();
    let tail = Example::start("tail", &[file.0.to_str().unwrap()]);
    let mut lines = subscribe(tail.addr, "/events?topic=tail", "");

    let mut appender = OpenOptions::new().append(true).open(&file.0).unwrap();
    appender.write_all(b"first\nsecond\n").unwrap();
    let data: Vec<String> = lines
        .events(2)
        .into_iter()
        .map(|event| event.data)
        .collect();
    assert_eq!(data, ["first", "second"]);

    // Shorter than before: the example sees that the file shrank.
    fs::write(&file.0, "after truncation\n").unwrap();
    assert_eq!(lines.next_event().data, "after truncation");
}

#[test]
fn tail_without_a_file_prints_usage_and_exits_2() {
    let mut tail = Process(
        Command::new(example_binary("tail"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let usage = first_stderr_line(&mut tail.0);
    let mut status = None;
    wait_until("tail exits", || {
        status = tail.0.try_wait().unwrap();
        status.is_some()
    });
    assert!(usage.starts_with("usage: tail FILE [ADDR]"), "{usage}");
    assert_eq!(status.unwrap().code(), Some(2));
}
