//! SPEC §8, a journal on disk (`--journal DIR`): what is acknowledged
//! survives `kill -9` in every sync mode, ids continue across restarts, a
//! torn or damaged journal still starts and never serves a damaged event,
//! the directory stays bounded, and one server owns a directory.
//!
//! Each test runs the `tinysse` binary as a child process, kills it and
//! starts it again on the same directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

use tinysse::Message;

use crate::support::{
    BIN, PATIENCE, Served, read_response, run_to_end, serve_child, subscribe, wait_until,
};

/// A directory of its own for one test, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("tinysse-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// Files in it whose names end with `suffix`, sorted.
    fn files(&self, suffix: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .map(|dir| dir.filter_map(|entry| Some(entry.ok()?.path())).collect())
            .unwrap_or_default();
        files.retain(|path| path.to_string_lossy().ends_with(suffix));
        files.sort();
        files
    }

    /// Bytes of every file in it.
    fn bytes(&self) -> u64 {
        self.files("")
            .iter()
            .map(|path| path.metadata().map_or(0, |meta| meta.len()))
            .sum()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn serve_journal(dir: &TempDir, extra: &[&str]) -> Served {
    let mut args = vec!["--journal", dir.arg()];
    args.extend_from_slice(extra);
    serve_child(None, &args)
}

/// Publishes on a keep-alive connection; `None` once the server is gone.
struct Publisher(Option<std::net::TcpStream>, std::net::SocketAddr);

impl Publisher {
    fn new(addr: std::net::SocketAddr) -> Publisher {
        Publisher(None, addr)
    }

    fn post(&mut self, data: &str) -> Option<String> {
        let stream = match &mut self.0 {
            Some(stream) => stream,
            None => self.0.insert(std::net::TcpStream::connect(self.1).ok()?),
        };
        stream.set_read_timeout(Some(PATIENCE)).ok()?;
        let request = format!(
            "POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{data}",
            data.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let response =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_response(stream)))
                .ok()?;
        (response.status == 200).then(|| response.text().trim_end().to_string())
    }
}

/// Every event the server holds, oldest first: resumes from an id it
/// cannot know (a `gap`, then the whole history), reads until `last`.
fn everything(addr: std::net::SocketAddr, last: &str) -> Vec<Message> {
    let mut subscriber = subscribe(addr, "/events?last_event_id=0-0", "");
    let mut events = Vec::new();
    loop {
        let event = subscriber.next_event();
        if event.event == "gap" {
            continue;
        }
        let done = event.id == last;
        events.push(event);
        if done {
            return events;
        }
    }
}

/// Kills the server `cycles` times at random moments while publishers
/// publish, restarting it on the same directory, then checks that every
/// acknowledged event is served exactly once, in order, intact.
fn crash_loop(mode: &str, publishers: usize, cycles: u64) {
    let _serial = crate::support::serial();
    let dir = TempDir::new(&format!("crash-{mode}"));
    let flags = [
        "--journal-sync",
        mode,
        "--history",
        "100000",
        "--history-bytes",
        "64MiB",
    ];
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ cycles;
    for cycle in 0..cycles {
        let mut served = serve_journal(&dir, &flags);
        let report = served.wait_for_line("journal");
        assert!(report.contains("loaded"), "{report}");
        let target = acked.lock().unwrap().len() + 5 + (rng % 40) as usize;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let workers: Vec<_> = (0..publishers)
            .map(|worker| {
                let (addr, acked) = (served.addr, Arc::clone(&acked));
                thread::spawn(move || {
                    let mut publisher = Publisher::new(addr);
                    for n in 0.. {
                        let data = format!("cycle {cycle} worker {worker} event {n}");
                        let Some(id) = publisher.post(&data) else {
                            return;
                        };
                        acked.lock().unwrap().push((id, data));
                    }
                })
            })
            .collect();
        wait_until("enough publishes are acknowledged", || {
            acked.lock().unwrap().len() >= target
        });
        // kill -9 while the publishers keep going.
        served.child.kill().unwrap();
        let _ = served.child.wait();
        for worker in workers {
            worker.join().unwrap();
        }
    }
    let served = serve_journal(&dir, &flags);
    let mut acked = acked.lock().unwrap().clone();
    // Acknowledged ids, in the order the server gave them.
    acked.sort_by_key(|(id, _)| {
        let (run, seq) = id.split_once('-').unwrap();
        (run.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
    });
    let last = &acked.last().unwrap().0;
    let served_events = everything(served.addr, last);
    let mut at = 0;
    for (id, data) in &acked {
        // Events written but not acknowledged (killed before the answer)
        // may be there too; every acknowledged one must be, once, in order.
        while at < served_events.len() && served_events[at].id != *id {
            at += 1;
        }
        assert!(
            at < served_events.len(),
            "{mode}: acknowledged {id} is missing"
        );
        assert_eq!(&served_events[at].data, data, "{mode}: {id} changed");
        at += 1;
    }
    let mut ids: Vec<&str> = served_events
        .iter()
        .map(|event| event.id.as_str())
        .collect();
    let count = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), count, "{mode}: an event was served twice");
}

#[test]
fn acknowledged_events_survive_kill_9_with_everysec() {
    crash_loop("everysec", 1, 10);
}

#[test]
fn acknowledged_events_survive_kill_9_with_no() {
    crash_loop("no", 1, 10);
}

#[test]
fn acknowledged_events_survive_kill_9_with_always_and_four_publishers() {
    crash_loop("always", 4, 10);
}

#[test]
fn resume_across_a_restart_gets_exactly_the_later_events() {
    let dir = TempDir::new("restart");
    let served = serve_journal(&dir, &[]);
    let mut publisher = Publisher::new(served.addr);
    let ids: Vec<String> = (1..=3)
        .map(|n| publisher.post(&format!("e{n}")).unwrap())
        .collect();
    drop(served);
    let served = serve_journal(&dir, &[]);
    let mut subscriber = subscribe(
        served.addr,
        "/events",
        &format!("Last-Event-ID: {}\r\n", ids[0]),
    );
    let fourth = Publisher::new(served.addr).post("e4").unwrap();
    let got: Vec<(String, String)> = subscriber
        .events(3)
        .into_iter()
        .map(|event| (event.id, event.data))
        .collect();
    let expected = [(&ids[1], "e2"), (&ids[2], "e3"), (&fourth, "e4")];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(id, data)| (id.to_string(), data.to_string()))
        .collect();
    assert_eq!(got, expected, "no gap, nothing twice, ids continue");
}

/// Publishes `count` events of `size` bytes; returns their ids.
fn fill(served: &Served, count: usize, size: usize) -> Vec<String> {
    let mut publisher = Publisher::new(served.addr);
    (0..count)
        .map(|n| {
            publisher
                .post(&format!("{n:04}{}", "x".repeat(size)))
                .unwrap()
        })
        .collect()
}

#[test]
fn a_torn_last_record_is_cut_and_resuming_past_it_gets_a_gap() {
    let dir = TempDir::new("torn");
    let served = serve_journal(&dir, &[]);
    let ids = fill(&served, 5, 10);
    drop(served);
    // A crash in the middle of the last write: its last bytes never arrived.
    let segment = dir.files(".seg").pop().unwrap();
    let length = segment.metadata().unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(length - 3)
        .unwrap();
    let mut served = serve_journal(&dir, &[]);
    let report = served.wait_for_line("journal");
    assert!(
        report.contains("loaded 4 events") && report.contains("torn"),
        "{report}"
    );
    // The four whole events are served; the torn one never is.
    let mut from_third = subscribe(
        served.addr,
        "/events",
        &format!("Last-Event-ID: {}\r\n", ids[2]),
    );
    assert_eq!(from_third.next_event().id, ids[3]);
    let mut past = subscribe(
        served.addr,
        "/events",
        &format!("Last-Event-ID: {}\r\n", ids[4]),
    );
    let gap = past.next_event();
    assert_eq!(
        (gap.event.as_str(), gap.data.as_str()),
        ("gap", ids[4].as_str())
    );
    // New events continue after the cut, and are not mistaken for the old.
    let next = Publisher::new(served.addr).post("after").unwrap();
    assert_ne!(next, ids[4]);
    assert_eq!(from_third.next_event().data, "after");
}

#[test]
fn a_damaged_record_ends_the_journal_its_segment_is_kept_aside_and_nothing_damaged_is_sent() {
    let dir = TempDir::new("damaged");
    // Segments of 64 KiB: 40 events of 10 KB make several.
    let flags = ["--history-bytes", "256KiB"];
    let served = serve_journal(&dir, &flags);
    let ids = fill(&served, 40, 10_000);
    drop(served);
    let segments = dir.files(".seg");
    assert!(segments.len() >= 3, "{segments:?}");
    // Flip a byte in the middle of the second segment.
    let victim = &segments[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(victim, &bytes).unwrap();
    let mut served = serve_journal(&dir, &flags);
    let report = served.wait_for_line("journal");
    assert!(report.contains("damaged"), "{report}");
    assert!(
        !dir.files(".damaged").is_empty(),
        "the damaged segment is kept aside"
    );
    // Whatever is served is whole: every event's data is one the publisher sent.
    let last = Publisher::new(served.addr)
        .post("after the damage")
        .unwrap();
    let served_events = everything(served.addr, &last);
    for event in &served_events[..served_events.len() - 1] {
        let n: usize = event.data[..4].parse().unwrap();
        assert_eq!(event.id, ids[n]);
        assert_eq!(event.data, format!("{n:04}{}", "x".repeat(10_000)));
    }
    // A client that had the last event before the kill resumes with a gap.
    let mut late = subscribe(
        served.addr,
        "/events",
        &format!("Last-Event-ID: {}\r\n", ids[39]),
    );
    assert_eq!(late.next_event().event, "gap");
}

#[test]
fn the_journal_stays_within_the_history_plus_one_segment() {
    let dir = TempDir::new("bound");
    let served = serve_journal(&dir, &["--history", "100", "--history-bytes", "64KiB"]);
    let mut publisher = Publisher::new(served.addr);
    let mut largest = 0;
    for n in 0..5000 {
        publisher
            .post(&format!("event {n} {}", "y".repeat(50)))
            .unwrap();
        if n % 250 == 0 {
            largest = largest.max(dir.bytes());
        }
    }
    largest = largest.max(dir.bytes());
    // 64 KiB of history, plus one segment (64 KiB at least), plus a record's
    // framing (26 bytes) for each of the 100 events.
    let bound = 64 * 1024 + 64 * 1024 + 100 * 26;
    assert!(
        largest <= bound,
        "the journal reached {largest} bytes (bound {bound})"
    );
}

#[test]
fn one_server_owns_a_journal_and_bad_settings_exit_at_once() {
    let dir = TempDir::new("owner");
    let _first = serve_journal(&dir, &[]);
    let mut command = Command::new(BIN);
    command.args(["serve", "--listen", "127.0.0.1:0", "--journal", dir.arg()]);
    let second = run_to_end(command, PATIENCE);
    assert_eq!(second.status.code(), Some(1), "{}", second.stderr);
    assert_eq!(second.stderr.lines().count(), 1, "{}", second.stderr);
    assert!(second.stderr.contains("in use"), "{}", second.stderr);

    let mut command = Command::new(BIN);
    command.args([
        "serve",
        "--journal",
        dir.arg(),
        "--journal-sync",
        "sometimes",
    ]);
    let bad = run_to_end(command, PATIENCE);
    assert_eq!(bad.status.code(), Some(2), "{}", bad.stderr);
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);

    // A directory that cannot be made: under a regular file.
    let file = dir.0.join("tinysse.lock");
    let under_a_file: &Path = &file.join("journal");
    let mut command = Command::new(BIN);
    command.args(["serve", "--listen", "127.0.0.1:0", "--journal"]);
    command.arg(under_a_file);
    let unwritable = run_to_end(command, PATIENCE);
    assert_eq!(unwritable.status.code(), Some(1), "{}", unwritable.stderr);
    assert_eq!(
        unwritable.stderr.lines().count(),
        1,
        "{}",
        unwritable.stderr
    );
    assert!(
        unwritable.stderr.contains("journal"),
        "{}",
        unwritable.stderr
    );
}
