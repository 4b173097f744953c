//! docs/PROTOCOL.md teaches the wire protocol with transcripts of
//! `tinysse listen --raw`. Each fenced block right after a
//! `<!-- transcript: NAME -->` comment is checked here: the scenario NAME
//! below runs the same commands against a real server, and what
//! `listen --raw` prints must equal the block, line for line.
//!
//! Three things differ from run to run and are normalised on both sides:
//! - the server's address: the real `127.0.0.1:<port>` is written as the
//!   address the guide uses (`127.0.0.1:8080`, or `:9000` for the
//!   hand-written stream);
//! - the run part of ids (`<run>-<seq>`, the server's start time): each
//!   distinct run becomes `<run 1>`, `<run 2>`… in order of appearance, so
//!   the guide can show real ids and still tell two runs apart;
//! - in `full` only, the jittered reconnection time: both the guide's and
//!   the server's values must be in the jitter range (and `Retry-After` its
//!   ceiling in seconds), then they are compared as placeholders.
//!
//! Every block needs a scenario and every scenario a block. No sleeps: each
//! wait is for a line of output, with a deadline.
//!
//! To update a block after a deliberate change to the wire format, run
//! `TINYSSE_PRINT_TRANSCRIPTS=1 cargo test --test it protocol_doc -- --nocapture`:
//! each scenario prints its output (real ids, the guide's addresses), ready to
//! paste into the guide.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use tinysse::Config;

use crate::support::{PATIENCE, config, read_head, start, subscribe};

const BIN: &str = env!("CARGO_BIN_EXE_tinysse");
const DOC: &str = "docs/PROTOCOL.md";
/// The address the guide's commands use.
const DOC_ADDR: &str = "127.0.0.1:8080";

/// A scenario's output and how to compare it.
struct Output {
    text: String,
    /// The server's `--retry`, when the output carries a jittered one.
    jitter_base: Option<u64>,
}

type Scenario = fn() -> Output;

const SCENARIOS: &[(&str, Scenario)] = &[
    ("basic", basic),
    ("data-edges", data_edges),
    ("client-rules", client_rules),
    ("resume", resume),
    ("restart", restart),
    ("full", full),
    ("refused", refused),
];

#[test]
fn every_transcript_has_a_scenario_and_every_scenario_a_transcript() {
    let in_doc: BTreeSet<String> = transcripts().into_iter().map(|(name, _)| name).collect();
    let in_test: BTreeSet<String> = SCENARIOS.iter().map(|(name, _)| name.to_string()).collect();
    let no_scenario: Vec<_> = in_doc.difference(&in_test).collect();
    let no_transcript: Vec<_> = in_test.difference(&in_doc).collect();
    assert!(
        no_scenario.is_empty() && no_transcript.is_empty(),
        "{DOC}: transcripts without a scenario in tests/it/protocol_doc.rs: {no_scenario:?}; \
         scenarios without a transcript: {no_transcript:?}"
    );
}

#[test]
fn transcript_basic() {
    check("basic");
}

#[test]
fn transcript_data_edges() {
    check("data-edges");
}

#[test]
fn transcript_client_rules() {
    check("client-rules");
}

#[test]
fn transcript_resume() {
    check("resume");
}

#[test]
fn transcript_restart() {
    check("restart");
}

#[test]
fn transcript_full() {
    check("full");
}

#[test]
fn transcript_refused() {
    check("refused");
}

// ---------------------------------------------------------------------------
// The scenarios: each runs what the guide says was run.

/// `tinysse serve --heartbeat 0`, `listen --raw`, two publishes.
fn basic() -> Output {
    let server = start(quiet_server());
    let mut listen = Listen::start(&[&base_url(server.addr)]);
    listen.wait_for("the stream to open", opened(1));
    publish(
        server.addr,
        &["--topic", "news", "--event", "greeting", "hello\nworld"],
        b"",
    );
    publish(server.addr, &["--topic", "news", " leading space"], b"");
    listen.wait_for("2 events", dispatched(2));
    Output::plain(listen.finish(), server.addr, DOC_ADDR)
}

/// Data that needs care on the wire, published with `tinysse publish`.
fn data_edges() -> Output {
    let server = start(quiet_server());
    let mut listen = Listen::start(&[&base_url(server.addr)]);
    listen.wait_for("the stream to open", opened(1));
    publish(server.addr, &["ends with a newline\n"], b"");
    publish(server.addr, &[""], b"");
    publish(server.addr, &["crlf\r\nthen\rcr"], b"");
    publish(server.addr, &["-"], b"nul\0byte");
    publish(server.addr, &[": not a comment"], b"");
    listen.wait_for("5 events", dispatched(5));
    Output::plain(listen.finish(), server.addr, DOC_ADDR)
}

/// What `listen` (a client) does with bytes that tinysse never sends.
const HAND_WRITTEN: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
\r\n\
: a comment: ignored\n\
data:no space\n\
data:  two spaces\n\
\n\
id: 7\n\
data: has id 7\n\
\n\
id: 8\0\n\
data: still 7\n\
\n\
retry: 2s\n\
retry: 2500\n\
data\n\
\n\
id: 9\n\
\n\
data: CR line endings\r\
\r\
event: tick\r\n\
data: CRLF too\r\n\
\r\n";

/// `listen --raw` against a stream written by hand (served by this test).
fn client_rules() -> Output {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        read_head(&mut stream);
        stream.write_all(HAND_WRITTEN).unwrap();
        // Hold the stream open until the client goes away.
        let _ = stream.read(&mut [0u8; 1]);
    });
    let mut listen = Listen::start(&[&base_url(addr)]);
    listen.wait_for("6 events", dispatched(6));
    let text = listen.finish();
    server.join().unwrap();
    Output::plain(text, addr, "127.0.0.1:9000")
}

/// `listen --raw --topic news --last-event-id <first id>` against a server
/// that already has events (and sends a heartbeat every second).
fn resume() -> Output {
    let server = start(Config {
        heartbeat: Duration::from_secs(1),
        ..config()
    });
    let first = publish(server.addr, &["--topic", "news", "one"], b"");
    publish(server.addr, &["--topic", "weather", "cloudy"], b"");
    publish(server.addr, &["--topic", "news", "two"], b"");
    publish(server.addr, &["--topic", "news", "three"], b"");
    let mut listen = Listen::start(&[
        "--topic",
        "news",
        "--last-event-id",
        &first,
        &base_url(server.addr),
    ]);
    listen.wait_for("2 events and a heartbeat", |lines| {
        count(lines, "=> dispatch:") == 2
            && lines.ends_with(&["| : heartbeat\\n".into(), "| \\n".into()])
    });
    Output::plain(listen.finish(), server.addr, DOC_ADDR)
}

/// `listen --raw` across a restart of `tinysse serve` (killed, as Ctrl-C
/// does, then started again on the same port).
fn restart() -> Output {
    let args = ["--heartbeat", "0", "--retry", "1000"];
    let first = Served::start("127.0.0.1:0", &args);
    let addr = first.addr;
    let mut listen = Listen::start(&[&base_url(addr)]);
    listen.wait_for("the stream to open", opened(1));
    publish(addr, &["one"], b"");
    publish(addr, &["two"], b"");
    listen.wait_for("2 events", dispatched(2));
    drop(first); // killed, and waited for
    let _second = Served::start(&addr.to_string(), &args);
    listen.wait_for("the gap after reconnecting", dispatched(3));
    publish(addr, &["three"], b"");
    listen.wait_for("the new server's first event", dispatched(4));
    Output::plain(listen.finish(), addr, DOC_ADDR)
}

/// `listen --raw` against a server at `--max-subscribers 1` that has one.
fn full() -> Output {
    let server = start(Config {
        max_subscribers: 1,
        ..quiet_server()
    });
    let _first = subscribe(server.addr, "/events", "");
    let mut listen = Listen::start(&[&base_url(server.addr)]);
    listen.wait_for("the full answer", |lines| {
        lines
            .iter()
            .any(|line| line.starts_with("=> reconnection time"))
            && lines.last().is_some_and(|line| line == "| \\n")
    });
    let mut output = Output::plain(listen.finish(), server.addr, DOC_ADDR);
    output.jitter_base = Some(Config::default().retry_ms);
    output
}

/// `listen --raw` without the subscriber token: 401, and listen stops.
fn refused() -> Output {
    let server = start(Config {
        subscribe_token: Some("s3cret".to_string()),
        ..quiet_server()
    });
    let mut listen = Listen::start(&[&base_url(server.addr)]);
    let status = listen.wait_for_exit();
    assert_eq!(status.code(), Some(1), "listen should stop for good");
    Output::plain(listen.seen.join("\n"), server.addr, DOC_ADDR)
}

// ---------------------------------------------------------------------------
// Checking a transcript.

fn check(name: &str) {
    let expected = transcripts()
        .into_iter()
        .find(|(found, _)| found == name)
        .unwrap_or_else(|| panic!("{DOC} has no `<!-- transcript: {name} -->` block"))
        .1;
    let scenario = SCENARIOS
        .iter()
        .find(|(found, _)| *found == name)
        .unwrap_or_else(|| panic!("no scenario for transcript {name}"))
        .1;
    let started = Instant::now();
    let output = scenario();
    if std::env::var_os("TINYSSE_PRINT_TRANSCRIPTS").is_some() {
        println!("<!-- transcript: {name} -->\n```text\n{}\n```", output.text);
    }
    let (expected, actual) = match output.jitter_base {
        Some(base) => (
            normalise_jitter(&expected, base, "the guide"),
            normalise_jitter(&output.text, base, "the server"),
        ),
        None => (expected, output.text),
    };
    let (expected, actual) = (normalise_runs(&expected), normalise_runs(&actual));
    if expected != actual {
        panic!(
            "{DOC}, transcript `{name}`: the guide and what tinysse printed differ{}\n\
             --- the guide (normalised) ---\n{expected}\n--- tinysse printed (normalised) ---\n{actual}\n",
            first_difference(&expected, &actual)
        );
    }
    // The budget the guide's tests keep to (the restart waits 1 s to reconnect).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "scenario {name} took {:?}",
        started.elapsed()
    );
}

/// Every marked block of the guide: (name, text without the fences).
fn transcripts() -> Vec<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{DOC}: {err}"));
    let mut found: Vec<(String, String)> = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- transcript:")
            .and_then(|rest| rest.strip_suffix("-->"))
            .map(str::trim)
        else {
            continue;
        };
        let at = format!("{DOC}:{}", number + 1);
        assert!(
            !found.iter().any(|(seen, _)| seen == name),
            "{at}: transcript {name} twice"
        );
        let fence = lines.next().map(|(_, line)| line);
        assert!(
            fence.is_some_and(|fence| fence.starts_with("```")),
            "{at}: a transcript marker must be followed at once by a fenced block"
        );
        let mut body = Vec::new();
        loop {
            match lines.next() {
                Some((_, "```")) => break,
                Some((_, line)) => body.push(line),
                None => panic!("{at}: transcript {name} has no closing fence"),
            }
        }
        found.push((name.to_string(), body.join("\n")));
    }
    found
}

impl Output {
    /// `lines` with the server's real address written as `doc_addr`.
    fn plain(text: String, addr: SocketAddr, doc_addr: &str) -> Output {
        Output {
            text: text.replace(&addr.to_string(), doc_addr),
            jitter_base: None,
        }
    }
}

/// Writes each distinct run of `<run>-<seq>` ids (10 or more digits before
/// `-` and a digit) as `<run 1>`, `<run 2>`… in order of appearance.
fn normalise_runs(text: &str) -> String {
    normalise_runs_with(text, &mut Vec::new())
}

/// [`normalise_runs`], numbering runs after those already in `runs` (which
/// gets the new ones), so that several texts share one numbering.
pub(crate) fn normalise_runs_with(text: &str, runs: &mut Vec<String>) -> String {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut index = 0;
    while index < bytes.len() {
        let starts_number =
            bytes[index].is_ascii_digit() && (index == 0 || !bytes[index - 1].is_ascii_digit());
        if starts_number {
            let end = index
                + bytes[index..]
                    .iter()
                    .take_while(|byte| byte.is_ascii_digit())
                    .count();
            let is_run = end - index >= 10
                && bytes.get(end) == Some(&b'-')
                && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
            if is_run {
                let run = &text[index..end];
                let ordinal = match runs.iter().position(|seen| seen == run) {
                    Some(position) => position + 1,
                    None => {
                        runs.push(run.to_string());
                        runs.len()
                    }
                };
                out.push_str(&format!("<run {ordinal}>"));
            } else {
                out.push_str(&text[index..end]);
            }
            index = end;
        } else {
            let ch = text[index..].chars().next().unwrap();
            out.push(ch);
            index += ch.len_utf8();
        }
    }
    out
}

/// Checks the jittered reconnection time in `text` (from `whose`) and
/// replaces it with placeholders: `retry: N`, the `=> reconnection time is
/// now N ms` line and `Retry-After: S` must agree, with N in
/// `[base, base + max(base, 1000))` and S = N / 1000 rounded up.
fn normalise_jitter(text: &str, base: u64, whose: &str) -> String {
    let number_after = |prefix: &str| -> Vec<u64> {
        text.lines()
            .filter_map(|line| line.strip_prefix(prefix))
            .map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits
                    .parse()
                    .unwrap_or_else(|_| panic!("{whose}: no number after {prefix:?}"))
            })
            .collect()
    };
    let retries = number_after("| retry: ");
    let announced = number_after("=> reconnection time is now ");
    let seconds = number_after("| Retry-After: ");
    let [retry] = retries[..] else {
        panic!("{whose}: expected one retry: line, found {retries:?}")
    };
    assert_eq!(
        announced,
        [retry],
        "{whose}: the => line must repeat retry:"
    );
    assert_eq!(
        seconds,
        [retry.div_ceil(1000)],
        "{whose}: Retry-After must be retry: in seconds, rounded up"
    );
    assert!(
        (base..base + base.max(1000)).contains(&retry),
        "{whose}: retry: {retry} is not a jitter of {base}"
    );
    text.replace(&format!("retry: {retry}"), "retry: <jittered>")
        .replace(&format!("now {retry} ms"), "now <jittered> ms")
        .replace(
            &format!("Retry-After: {}", retry.div_ceil(1000)),
            "Retry-After: <seconds>",
        )
}

pub(crate) fn first_difference(expected: &str, actual: &str) -> String {
    let mut expected_lines = expected.lines();
    let mut actual_lines = actual.lines();
    for number in 1.. {
        match (expected_lines.next(), actual_lines.next()) {
            (None, None) => break,
            (wanted, got) if wanted != got => {
                return format!(
                    " from line {number} of the block:\n  guide:   {wanted:?}\n  printed: {got:?}"
                );
            }
            _ => {}
        }
    }
    String::new()
}

// ---------------------------------------------------------------------------
// Running the binary.

fn quiet_server() -> Config {
    Config {
        heartbeat: Duration::ZERO,
        ..config()
    }
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|line| line.starts_with(prefix)).count()
}

/// The `n`th stream has opened: its `retry:` frame's blank line arrived.
pub(crate) fn opened(n: usize) -> impl Fn(&[String]) -> bool {
    move |lines| lines.iter().filter(|line| *line == "| \\n").count() >= n
}

pub(crate) fn dispatched(n: usize) -> impl Fn(&[String]) -> bool {
    move |lines| count(lines, "=> dispatch:") >= n
}

/// `tinysse publish http://ADDR ARGS…` with `stdin`; returns the id it printed.
fn publish(addr: SocketAddr, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(BIN)
        .arg("publish")
        .arg(base_url(addr))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "tinysse publish {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// A running `tinysse listen --raw`, its stdout read line by line; killed
/// when dropped, even when the test fails.
pub(crate) struct Listen {
    child: Child,
    lines: Receiver<String>,
    /// Every line printed so far.
    seen: Vec<String>,
}

impl Listen {
    pub(crate) fn start(args: &[&str]) -> Listen {
        let mut child = Command::new(BIN)
            .args(["listen", "--raw"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Listen {
            lines: read_lines(child.stdout.take().unwrap()),
            child,
            seen: Vec::new(),
        }
    }

    /// Reads lines until `done(every line so far)` holds.
    pub(crate) fn wait_for(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(err) => panic!(
                    "waiting for {what}, listen {}; it printed:\n{}",
                    match err {
                        RecvTimeoutError::Timeout => "timed out",
                        RecvTimeoutError::Disconnected => "ended",
                    },
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Reads every line until listen ends by itself; returns how it ended.
    fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("listen did not stop; it printed:\n{}", self.seen.join("\n"))
                }
            }
        }
        self.child.wait().unwrap()
    }

    /// Stops listen; returns what it printed.
    pub(crate) fn finish(mut self) -> String {
        std::mem::take(&mut self.seen).join("\n")
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends each line of `pipe` on the returned channel, as it comes.
fn read_lines(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A running `tinysse serve`; killed (as by Ctrl-C: no goodbye to its
/// streams) and waited for when dropped.
pub(crate) struct Served {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Served {
    pub(crate) fn start(listen: &str, args: &[&str]) -> Served {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", listen])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = read_lines(child.stderr.take().unwrap());
        let mut served = Served {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = stderr
                .recv_timeout(left)
                .unwrap_or_else(|err| panic!("tinysse serve --listen {listen}: no banner ({err})"));
            if let Some(rest) = line.split("listening on http://").nth(1) {
                served.addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                break;
            }
        }
        // Keep draining its stderr so that it never blocks on a full pipe.
        thread::spawn(move || while stderr.recv().is_ok() {});
        served
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
