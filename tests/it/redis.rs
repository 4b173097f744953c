//! SPEC §9, several servers on one Redis stream (`--redis URL`), against a
//! real `redis-server` started by each test on a free loopback port
//! (`redis_server.rs`; skipped with one line when it is not installed,
//! unless `TINYSSE_REQUIRE_REDIS=1`). The servers are `tinysse` child
//! processes.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;
use crate::support::{
    BIN, PATIENCE, Served, Subscriber, publish, raw, run_to_end, serve_child, subscribe, wait_until,
};

/// `redis-cli -p PORT ARGS...`, its output.
fn cli(redis: &RedisServer, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli comes with redis-server");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The ids of the stream's entries, oldest first.
fn stream_ids(redis: &RedisServer) -> Vec<String> {
    let output = cli(redis, &["XRANGE", "tinysse", "-", "+"]);
    output
        .lines()
        .filter(|line| {
            line.split_once('-')
                .is_some_and(|(ms, seq)| ms.len() > 10 && seq.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
        .collect()
}

fn serve_redis(redis: &RedisServer, extra: &[&str]) -> Served {
    let url = redis.url("");
    let mut args = vec!["--redis", url.as_str()];
    args.extend_from_slice(extra);
    serve_child(None, &args)
}

/// Publishes `data` on `topic` to `served`; the id.
fn publish_to(served: &Served, topic: &str, data: &str) -> String {
    let (status, body) = publish(
        served.addr,
        &format!("?topic={topic}"),
        None,
        data.as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    body.trim_end().to_string()
}

fn ids_of(subscriber: &mut Subscriber, count: usize) -> Vec<String> {
    subscriber
        .events(count)
        .into_iter()
        .map(|event| event.id)
        .collect()
}

#[test]
fn three_servers_send_the_same_ids_in_the_same_order_as_the_stream() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let servers: Vec<Served> = (0..3).map(|_| serve_redis(&redis, &[])).collect();
    let mut subscribers: Vec<Subscriber> = servers
        .iter()
        .map(|served| subscribe(served.addr, "/events", ""))
        .collect();
    let answered: Vec<String> = (0..6)
        .map(|n| publish_to(&servers[n % 2], ["a", "b"][n % 2], &format!("event {n}")))
        .collect();
    let stream = stream_ids(&redis);
    // A publish's answer is the entry id Redis gave it.
    assert_eq!(answered, stream);
    for subscriber in &mut subscribers {
        assert_eq!(ids_of(subscriber, 6), stream);
    }
}

#[test]
fn entries_added_by_another_program_are_published_and_bad_ones_skipped() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let served = serve_redis(&redis, &[]);
    let mut subscriber = subscribe(served.addr, "/events?topic=news", "");
    cli(
        &redis,
        &[
            "XADD", "tinysse", "*", "topic", "news", "data", "hello", "event", "greeting",
        ],
    );
    cli(&redis, &["XADD", "tinysse", "*", "topic", "news"]);
    cli(
        &redis,
        &["XADD", "tinysse", "*", "topic", "no spaces", "data", "x"],
    );
    cli(
        &redis,
        &[
            "XADD",
            "tinysse",
            "*",
            "topic",
            "news",
            "data",
            "still going",
        ],
    );
    let first = subscriber.next_event();
    assert_eq!(
        (first.event.as_str(), first.data.as_str()),
        ("greeting", "hello")
    );
    assert_eq!(subscriber.next_event().data, "still going");
}

#[test]
fn a_client_resumes_on_another_server_with_no_gap() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let (a, b) = (serve_redis(&redis, &[]), serve_redis(&redis, &[]));
    let ids: Vec<String> = (0..4)
        .map(|n| publish_to(&a, "t", &format!("e{n}")))
        .collect();
    wait_until("b has read the stream", || {
        crate::support::metric(b.addr, "tinysse_redis_entries_read_total") == 4
    });
    let mut moved = subscribe(b.addr, "/events", &format!("Last-Event-ID: {}\r\n", ids[1]));
    let got: Vec<(String, String)> = moved
        .events(2)
        .into_iter()
        .map(|event| (event.id, event.data))
        .collect();
    assert_eq!(
        got,
        [
            (ids[2].clone(), "e2".to_string()),
            (ids[3].clone(), "e3".to_string())
        ]
    );
}

#[test]
fn a_server_started_later_replays_from_the_stream_what_its_history_does_not_hold() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let a = serve_redis(&redis, &[]);
    let ids: Vec<String> = (0..50)
        .map(|n| publish_to(&a, "t", &format!("e{n}")))
        .collect();
    // It loads only the newest 20; the 11th to 30th come from Redis.
    let late = serve_redis(&redis, &["--history", "20"]);
    let mut resumed = subscribe(
        late.addr,
        "/events",
        &format!("Last-Event-ID: {}\r\n", ids[9]),
    );
    let got = resumed.events(40);
    assert!(got.iter().all(|event| event.event == "message"), "no gap");
    let got_ids: Vec<&str> = got.iter().map(|event| event.id.as_str()).collect();
    assert_eq!(
        got_ids,
        ids[10..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(got[39].data, "e49");
}

#[test]
fn an_id_older_than_the_trimmed_stream_gets_a_gap() {
    // Small stream nodes, so that MAXLEN ~ trims close to the limit.
    let Some(redis) = RedisServer::start(&["--stream-node-max-entries", "5"]) else {
        return;
    };
    let served = serve_redis(&redis, &["--history", "10"]);
    let first = publish_to(&served, "t", "the first");
    for n in 0..60 {
        publish_to(&served, "t", &format!("e{n}"));
    }
    assert!(
        !stream_ids(&redis).contains(&first),
        "the stream was trimmed"
    );
    let mut late = subscribe(
        served.addr,
        "/events",
        &format!("Last-Event-ID: {first}\r\n"),
    );
    let gap = late.next_event();
    assert_eq!(
        (gap.event.as_str(), gap.data.as_str()),
        ("gap", first.as_str())
    );
}

#[test]
fn while_redis_is_down_publishes_get_503_subscribers_get_heartbeats_and_it_recovers() {
    let Some(mut redis) = RedisServer::start(&[]) else {
        return;
    };
    let served = serve_redis(&redis, &["--heartbeat", "1"]);
    let mut subscriber = subscribe(served.addr, "/events", "");
    publish_to(&served, "t", "before");
    assert_eq!(subscriber.next_event().data, "before");

    redis.kill();
    let started = Instant::now();
    let (status, reason) = publish(served.addr, "?topic=t", None, b"lost");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 503, "{reason}");
    assert_eq!(reason.trim_end().lines().count(), 1, "{reason}");
    assert!(reason.contains("redis"), "{reason}");
    let ready = |path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        raw(served.addr, request.as_bytes()).status
    };
    wait_until("/readyz answers 503", || ready("/readyz") == 503);
    assert_eq!(ready("/healthz"), 200);
    // The open stream stays, with heartbeats.
    let seen = subscriber.raw.len();
    subscriber.read_until(|raw| raw[seen..].windows(12).any(|w| w == b": heartbeat\n"));

    redis.restart();
    let back = Instant::now();
    let id = loop {
        let (status, body) = publish(served.addr, "?topic=t", None, b"after");
        if status == 200 {
            break body.trim_end().to_string();
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "still {status}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // The restarted Redis lost the stream: the reader cannot tell whether
    // events were lost with it, so a gap may come first.
    let mut event = subscriber.next_event();
    if event.event == "gap" {
        event = subscriber.next_event();
    }
    assert_eq!(
        (event.id.as_str(), event.data.as_str()),
        (id.as_str(), "after")
    );
    wait_until("/readyz answers 200", || ready("/readyz") == 200);
}

#[test]
fn passwords_from_the_url_and_from_a_file_and_a_wrong_one_is_one_line() {
    let Some(redis) = RedisServer::start(&["--requirepass", "s3cret"]) else {
        return;
    };
    let with_url = serve_child(None, &["--redis", &redis.url_with(":s3cret")]);
    publish_to(&with_url, "t", "by url");
    let file = std::env::temp_dir().join(format!("tinysse-redis-pw-{}", std::process::id()));
    std::fs::write(&file, "s3cret\n").unwrap();
    let with_file = serve_child(
        None,
        &[
            "--redis",
            &redis.url(""),
            "--redis-password-file",
            file.to_str().unwrap(),
        ],
    );
    publish_to(&with_file, "t", "by file");
    std::fs::remove_file(&file).unwrap();

    let mut command = Command::new(BIN);
    command.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--redis",
        &redis.url_with(":wrong"),
    ]);
    let refused = run_to_end(command, PATIENCE);
    assert_eq!(refused.status.code(), Some(2), "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("password"), "{}", refused.stderr);
    assert!(
        !refused.stderr.contains("wrong"),
        "the password leaked: {}",
        refused.stderr
    );
}

#[test]
fn a_batch_is_consecutive_entries_and_a_refused_batch_publishes_nothing() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let served = serve_redis(&redis, &[]);
    let batch = b"data: one\n\ndata: two\n\ndata: three\n";
    let (status, body) = publish(served.addr, "?topic=t", Some("text/event-stream"), batch);
    assert_eq!(status, 200, "{body}");
    let ids: Vec<String> = body.lines().map(str::to_string).collect();
    assert_eq!(ids, stream_ids(&redis));
    assert_eq!(ids.len(), 3);

    // A key of another type: Redis refuses every XADD of the batch.
    cli(&redis, &["DEL", "tinysse"]);
    cli(&redis, &["SET", "tinysse", "not a stream"]);
    let (status, reason) = publish(served.addr, "?topic=t", Some("text/event-stream"), batch);
    assert_eq!(status, 503, "{reason}");
    assert_eq!(cli(&redis, &["GET", "tinysse"]).trim(), "not a stream");
}

#[test]
fn journal_and_redis_together_exit_2() {
    let mut command = Command::new(BIN);
    command.args([
        "serve",
        "--journal",
        "/tmp/x",
        "--redis",
        "redis://127.0.0.1:1",
    ]);
    let finished = run_to_end(command, PATIENCE);
    assert_eq!(finished.status.code(), Some(2), "{}", finished.stderr);
    assert_eq!(finished.stderr.lines().count(), 1, "{}", finished.stderr);
    let mut command = Command::new(BIN);
    command.args(["serve", "--redis", "rediss://h"]);
    let finished = run_to_end(command, PATIENCE);
    assert_eq!(finished.status.code(), Some(2), "{}", finished.stderr);
}
