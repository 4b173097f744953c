//! Resuming (SPEC §2, "Resuming" and "Slow subscribers"): a last event id from
//! the `Last-Event-ID` header or the query resumes after it; an unknown one gets
//! a `gap` (without an `id:` line) and the whole matching history; the history
//! is bounded by count and by bytes; nothing is missed or repeated.

use std::net::SocketAddr;
use std::time::Duration;

use tinysse::{Config, Message};

use crate::support::{self, Subscriber};
use crate::topics::{publish_on, run, seq};

fn message(data: &str, id: &str) -> Message {
    Message {
        event: "message".into(),
        data: data.into(),
        id: id.into(),
    }
}

/// A server without heartbeats, so a stream holds only frames.
fn quiet_config() -> Config {
    Config {
        heartbeat: Duration::ZERO,
        ..support::config()
    }
}

/// Publishes `count` events `prefix0`, `prefix1`, ... on `topic`; returns ids.
fn publish_numbered(addr: SocketAddr, topic: &str, prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|n| publish_on(addr, topic, &format!("{prefix}{n}")))
        .collect()
}

/// The wire frame of a plain event.
fn frame(id: &str, data: &str) -> String {
    format!("id: {id}\ndata: {data}\n\n")
}

/// The frames of events `prefix<n>` with ids `ids[n]`, for `n` in `range`.
fn numbered_frames(ids: &[String], prefix: &str, range: std::ops::Range<usize>) -> String {
    range
        .map(|n| frame(&ids[n], &format!("{prefix}{n}")))
        .collect()
}

/// The wire frame of a gap event: no `id:` line.
fn gap_frame(data: &str) -> String {
    format!("event: gap\ndata: {data}\n\n")
}

/// Reads until the stream holds as many bytes as `expected`, then checks they
/// are exactly those, and takes the events in them off the subscriber's queue
/// (so that its next event is the one after them).
fn assert_stream(subscriber: &mut Subscriber, expected: &str) -> Vec<Message> {
    let length = expected.len();
    subscriber.read_until(|raw| raw.len() >= length);
    assert_eq!(String::from_utf8_lossy(&subscriber.raw), expected);
    let events = expected
        .split("\n\n")
        .filter(|block| block.lines().any(|line| line.starts_with("data:")))
        .count();
    subscriber.events(events)
}

/// Publishes one more event on `topic` and checks it is the very next thing
/// the subscriber gets: proves nothing else was queued before it.
fn assert_next_is_live(addr: SocketAddr, subscriber: &mut Subscriber, topic: &str) {
    let id = publish_on(addr, topic, "live");
    assert_eq!(subscriber.next_event(), message("live", &id));
}

#[test]
fn publish_then_resume_with_last_event_id_header_replays_the_rest_then_live() {
    let server = support::start(quiet_config());
    let ids = publish_numbered(server.addr, "t", "e", 4);
    let mut subscriber = support::subscribe(
        server.addr,
        "/events",
        &format!("Last-Event-ID: {}\r\n", ids[1]),
    );
    let live = publish_on(server.addr, "t", "live");
    let expected = format!(
        "retry: 3000\n\n{}{}{}",
        frame(&ids[2], "e2"),
        frame(&ids[3], "e3"),
        frame(&live, "live")
    );
    assert_stream(&mut subscriber, &expected);
}

#[test]
fn publish_then_resume_with_query_parameter_under_both_names() {
    for name in ["last_event_id", "lastEventId"] {
        let server = support::start_default();
        let ids = publish_numbered(server.addr, "t", "e", 4);
        let mut subscriber =
            support::subscribe(server.addr, &format!("/events?{name}={}", ids[1]), "");
        assert_eq!(
            subscriber.events(2),
            [message("e2", &ids[2]), message("e3", &ids[3])],
            "{name}"
        );
        let live = publish_on(server.addr, "t", name);
        assert_eq!(subscriber.next_event(), message(name, &live), "{name}");
    }
}

#[test]
fn publish_then_resume_with_header_and_query_the_header_wins() {
    let server = support::start_default();
    let ids = publish_numbered(server.addr, "t", "e", 4);
    // Header later than query, and header earlier than query: the header decides.
    for (header, query, first) in [(2, 0, 3), (0, 2, 1)] {
        for name in ["last_event_id", "lastEventId"] {
            let mut subscriber = support::subscribe(
                server.addr,
                &format!("/events?{name}={}", ids[query]),
                &format!("Last-Event-ID: {}\r\n", ids[header]),
            );
            let expected: Vec<Message> = (first..4)
                .map(|n| message(&format!("e{n}"), &ids[n]))
                .collect();
            assert_eq!(
                subscriber.events(expected.len()),
                expected,
                "header {header}, {name} {query}"
            );
        }
    }
}

#[test]
fn publish_then_resume_from_unknown_id_gets_gap_without_id_then_whole_history() {
    let server = support::start(quiet_config());
    let ids = publish_numbered(server.addr, "t", "e", 3);
    // Made-up ids: not an id at all, another run's, and this run's but in the future.
    let future = format!("{}-{}", run(&ids[0]), seq(&ids[2]) + 100);
    for unknown in ["nonsense", "1-1", future.as_str()] {
        let mut subscriber = support::subscribe(
            server.addr,
            "/events",
            &format!("Last-Event-ID: {unknown}\r\n"),
        );
        let expected = format!(
            "retry: 3000\n\n{}{}{}{}",
            gap_frame(unknown),
            frame(&ids[0], "e0"),
            frame(&ids[1], "e1"),
            frame(&ids[2], "e2")
        );
        let messages = assert_stream(&mut subscriber, &expected);
        // As a browser sees it: a `gap` with the id as data, which leaves the
        // last event id empty, then the history.
        assert_eq!(
            messages,
            [
                Message {
                    event: "gap".into(),
                    data: unknown.into(),
                    id: String::new(),
                },
                message("e0", &ids[0]),
                message("e1", &ids[1]),
                message("e2", &ids[2]),
            ]
        );
    }
    // The same through the query parameter.
    let mut subscriber = support::subscribe(server.addr, "/events?lastEventId=nonsense", "");
    let expected = format!(
        "retry: 3000\n\n{}{}{}{}",
        gap_frame("nonsense"),
        frame(&ids[0], "e0"),
        frame(&ids[1], "e1"),
        frame(&ids[2], "e2")
    );
    assert_stream(&mut subscriber, &expected);
}

#[test]
fn publish_shutdown_restart_then_resume_from_old_run_id_gets_gap() {
    let first = support::start_default();
    let old_ids = publish_numbered(first.addr, "t", "old", 3);
    first.shutdown();

    let second = support::start_default();
    let new_ids = publish_numbered(second.addr, "t", "new", 3);
    assert_ne!(run(&old_ids[0]), run(&new_ids[0]));
    for id in &new_ids {
        assert!(!old_ids.contains(id), "{id} was issued by both runs");
    }
    let last_old = old_ids.last().unwrap();
    let mut subscriber = support::subscribe(
        second.addr,
        "/events",
        &format!("Last-Event-ID: {last_old}\r\n"),
    );
    let gap = subscriber.next_event();
    assert_eq!(
        (gap.event.as_str(), gap.data.as_str()),
        ("gap", last_old.as_str())
    );
    let replay = subscriber.events(3);
    let expected: Vec<Message> = (0..3)
        .map(|n| message(&format!("new{n}"), &new_ids[n]))
        .collect();
    assert_eq!(replay, expected);
    let text = String::from_utf8_lossy(&subscriber.raw).into_owned();
    assert!(
        text.contains(&gap_frame(last_old)),
        "the gap has an id line or other fields: {text:?}"
    );
}

#[test]
fn publish_more_than_history_count_then_resume_keeps_exactly_the_last_five() {
    let server = support::start(Config {
        history: 5,
        ..quiet_config()
    });
    let ids = publish_numbered(server.addr, "t", "e", 8);
    assert_eq!(support::metric(server.addr, "tinysse_history_events"), 5);

    // Unknown id: gap, then exactly events 3..8, then only live events.
    let mut subscriber = support::subscribe(server.addr, "/events?last_event_id=nonsense", "");
    let mut expected = format!("retry: 3000\n\n{}", gap_frame("nonsense"));
    expected.push_str(&numbered_frames(&ids, "e", 3..8));
    assert_stream(&mut subscriber, &expected);
    assert_next_is_live(server.addr, &mut subscriber, "t");
}

#[test]
fn publish_more_than_history_count_then_resume_from_evicted_ids() {
    let server = support::start(Config {
        history: 5,
        ..quiet_config()
    });
    let ids = publish_numbered(server.addr, "t", "e", 8);

    // The newest evicted event (e2) still tells where to resume: nothing after
    // it was lost, so no gap.
    let mut subscriber = support::subscribe(
        server.addr,
        "/events",
        &format!("Last-Event-ID: {}\r\n", ids[2]),
    );
    let mut expected = "retry: 3000\n\n".to_string();
    expected.push_str(&numbered_frames(&ids, "e", 3..8));
    assert_stream(&mut subscriber, &expected);

    // One older (e1): e2 was lost, so a gap with the given id, then the history.
    let mut subscriber = support::subscribe(
        server.addr,
        "/events",
        &format!("Last-Event-ID: {}\r\n", ids[1]),
    );
    let mut expected = format!("retry: 3000\n\n{}", gap_frame(&ids[1]));
    expected.push_str(&numbered_frames(&ids, "e", 3..8));
    assert_stream(&mut subscriber, &expected);
}

/// How many digits a run id has now: the start time in milliseconds with
/// 20 random bits below it (the same count for any random bits until 2037).
fn run_digits_now() -> usize {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    (millis << 20).to_string().len()
}

#[test]
fn publish_more_than_history_bytes_then_resume_keeps_what_fits() {
    // Seqs 1..=7 have one digit, so every frame has the same size:
    // "id: <run>-<seq>\n" + "data: <data>\n" + "\n".
    let data = "d".repeat(100);
    let frame_len =
        "id: ".len() + run_digits_now() + "-1\n".len() + "data: ".len() + data.len() + "\n\n".len();
    // The limit is inclusive: exactly three frames fit; one byte less, two.
    for (history_bytes, held) in [(3 * frame_len, 3), (3 * frame_len - 1, 2)] {
        let server = support::start(Config {
            history_bytes,
            ..quiet_config()
        });
        let ids: Vec<String> = (0..7)
            .map(|_| publish_on(server.addr, "t", &data))
            .collect();
        assert_eq!(
            frame(&ids[0], &data).len(),
            frame_len,
            "frame size computed wrongly for {}",
            ids[0]
        );
        assert_eq!(
            support::metric(server.addr, "tinysse_history_bytes"),
            (held * frame_len) as u64,
            "history_bytes {history_bytes}"
        );
        let mut subscriber = support::subscribe(server.addr, "/events?last_event_id=nonsense", "");
        let mut expected = format!("retry: 3000\n\n{}", gap_frame("nonsense"));
        for id in &ids[7 - held..] {
            expected.push_str(&frame(id, &data));
        }
        assert_stream(&mut subscriber, &expected);
        assert_next_is_live(server.addr, &mut subscriber, "t");
    }
}

#[test]
fn publish_then_resume_from_newest_id_replays_nothing_then_live() {
    let server = support::start(quiet_config());
    let ids = publish_numbered(server.addr, "t", "e", 3);
    let mut subscriber = support::subscribe(
        server.addr,
        "/events",
        &format!("Last-Event-ID: {}\r\n", ids[2]),
    );
    let live = publish_on(server.addr, "t", "live");
    assert_stream(
        &mut subscriber,
        &format!("retry: 3000\n\n{}", frame(&live, "live")),
    );
}

#[test]
fn publish_while_resuming_delivers_every_event_once_in_order() {
    let server = support::start_default();
    let before = publish_numbered(server.addr, "t", "before", 20);
    let addr = server.addr;
    const DURING: usize = 300;
    for resume_from in [5, 19] {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let publisher = {
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                publish_numbered(addr, "t", "during", DURING)
            })
        };
        barrier.wait();
        let mut subscriber = support::subscribe(
            server.addr,
            "/events",
            &format!("Last-Event-ID: {}\r\n", before[resume_from]),
        );
        let during = publisher.join().unwrap();
        let last = seq(during.last().unwrap());
        // Consecutive seqs from the one after the resume point to the last
        // published: no gap, no loss, no duplicate, in order.
        let mut previous = before[resume_from].clone();
        while seq(&previous) < last {
            let message = subscriber.next_event();
            assert_eq!(message.event, "message", "after {previous}");
            assert_eq!(seq(&message.id), seq(&previous) + 1, "after {previous}");
            previous = message.id;
        }
        // And nothing more: the next event is a new live one.
        assert_next_is_live(server.addr, &mut subscriber, "t");
    }
}

#[test]
fn publish_on_several_topics_then_resume_with_topics_replays_only_those() {
    let server = support::start(quiet_config());
    let events = [
        ("a", "a0"),
        ("b", "b0"),
        ("c", "c0"),
        ("a", "a1"),
        ("c", "c1"),
        ("b", "b1"),
    ];
    let ids: Vec<String> = events
        .iter()
        .map(|(topic, data)| publish_on(server.addr, topic, data))
        .collect();

    // Known id (a `c` event, which this subscriber would not even get).
    let mut subscriber = support::subscribe(
        server.addr,
        "/events?topic=a&topic=b",
        &format!("Last-Event-ID: {}\r\n", ids[2]),
    );
    let expected = format!(
        "retry: 3000\n\n{}{}",
        frame(&ids[3], "a1"),
        frame(&ids[5], "b1")
    );
    assert_stream(&mut subscriber, &expected);
    let c2 = publish_on(server.addr, "c", "c2");
    assert_next_is_live(server.addr, &mut subscriber, "b");

    // Unknown id: the gap, then the whole matching history only.
    let mut subscriber = support::subscribe(server.addr, "/events?topic=c&last_event_id=x", "");
    let expected = format!(
        "retry: 3000\n\n{}{}{}{}",
        gap_frame("x"),
        frame(&ids[2], "c0"),
        frame(&ids[4], "c1"),
        frame(&c2, "c2")
    );
    assert_stream(&mut subscriber, &expected);
    assert_next_is_live(server.addr, &mut subscriber, "c");
}

#[test]
fn subscriber_stops_reading_while_more_than_history_is_published_then_gets_gap() {
    const HISTORY: usize = 5;
    const SIZE: usize = 60 * 1024;
    // Events in one hand-out from the hub at most: it stops adding events once
    // it holds `MAX_BATCH_BYTES` (64 KiB: two of these).
    const BATCH: usize = 64 * 1024 / SIZE + 1;
    let server = support::start(Config {
        history: HISTORY,
        // The stalled subscriber must outlive the publishing below.
        write_timeout: Duration::from_secs(120),
        ..quiet_config()
    });
    let mut subscriber = support::subscribe(server.addr, "/events", "");
    let data = "x".repeat(SIZE);
    // Publish until the subscriber is more than the history behind: once the
    // events it has been handed are all older than the oldest event held, and
    // as nothing more is published, its next hand-out must be a gap. The
    // socket buffers fill up because the subscriber reads nothing, so this
    // happens after a few MiB however large the kernel's buffers are (no
    // timing involved); the cap only bounds the test.
    let cap = 64 * 1024 * 1024 / data.len();
    let mut ids = Vec::new();
    let early_gaps = loop {
        ids.push(publish_on(server.addr, "t", &data));
        // One snapshot. If no gap had been handed out when `gaps` was read,
        // the subscriber had been handed at most `delivered + BATCH` events
        // then (`delivered` only grows, whether read before or after).
        let metrics = metrics_text(server.addr);
        let delivered = metric_in(&metrics, "tinysse_events_delivered_total") as usize;
        let gaps = metric_in(&metrics, "tinysse_gaps_sent_total");
        if delivered + BATCH + HISTORY < ids.len() {
            break gaps;
        }
        assert!(
            ids.len() < cap,
            "the subscriber kept up with 64 MiB without reading"
        );
    };
    let oldest_held = &ids[ids.len() - HISTORY];
    let last = ids.last().unwrap().clone();

    // Now read: events in order, no duplicates; every jump is announced by a
    // gap naming the last event received before it (empty if none), and after
    // the last gap come exactly the events still held.
    let mut previous: Option<String> = None;
    let mut after_last_gap = None;
    while previous.as_ref() != Some(&last) {
        let message = subscriber.next_event();
        if message.event == "gap" {
            assert_eq!(message.data, previous.clone().unwrap_or_default());
            let next = subscriber.next_event();
            assert_eq!(next.event, "message");
            let lost = previous.as_deref().map_or(seq(&ids[0]), |id| seq(id) + 1);
            assert!(
                seq(&next.id) > lost,
                "gap but nothing lost before {}",
                next.id
            );
            after_last_gap = Some(next.id.clone());
            previous = Some(next.id);
        } else {
            assert_eq!(message.data.len(), data.len());
            let expected = previous.as_deref().map_or(seq(&ids[0]), |id| seq(id) + 1);
            assert_eq!(seq(&message.id), expected, "a loss without a gap");
            previous = Some(message.id);
        }
    }
    assert!(after_last_gap.is_some(), "events were lost without a gap");
    // Unless the subscriber thread already fell behind while the socket still
    // took data (a scheduling accident on a loaded machine), its one gap came
    // after the publishing stopped: it continues from the oldest event held.
    if early_gaps == 0 {
        assert_eq!(after_last_gap.as_ref(), Some(oldest_held));
    }
    assert!(support::metric(server.addr, "tinysse_gaps_sent_total") >= 1);
    // The stream goes on live.
    assert_next_is_live(server.addr, &mut subscriber, "t");
}

fn metrics_text(addr: SocketAddr) -> String {
    let response = support::raw(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    response.text()
}

/// The value of an unlabelled metric in a `/metrics` text.
fn metric_in(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
        .parse()
        .unwrap()
}
