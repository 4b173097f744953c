//! `tinysse listen` and `tinysse publish` (SPEC §3), run as child processes
//! against real servers on 127.0.0.1:0 and against fake servers (a
//! `TcpListener` thread) that send exact bytes and count connections.
//!
//! Every child is killed when its test ends, passed or failed ([`Cli`] kills
//! in `Drop`), and every wait has a deadline. Nothing sleeps to synchronise:
//! threads read the child's stdout and stderr into channels, and the tests
//! wait for what they expect with `recv_timeout`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tinysse::{Config, Event};

use crate::support::{PATIENCE, config, start, subscribe};

const BIN: &str = env!("CARGO_BIN_EXE_tinysse");

/// How long a refused `listen` may take to exit: no retry loop fits in it
/// (the default reconnection time is 3 s).
const PROMPTLY: Duration = Duration::from_millis(2500);

// ---------------------------------------------------------------------------
// Child processes

/// One output pipe of a child, read by a thread as the bytes come.
struct Pipe {
    chunks: Receiver<Vec<u8>>,
    bytes: Vec<u8>,
    /// Where [`Pipe::next_line`] continues.
    cursor: usize,
    ended: bool,
}

impl Pipe {
    fn new(mut pipe: impl Read + Send + 'static) -> Pipe {
        let (sender, chunks) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(count) => {
                        if sender.send(buf[..count].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Pipe {
            chunks,
            bytes: Vec::new(),
            cursor: 0,
            ended: false,
        }
    }

    /// Waits for more bytes until `deadline`; false if none came (the
    /// deadline passed or the pipe ended).
    fn pull(&mut self, deadline: Instant) -> bool {
        if self.ended {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.chunks.recv_timeout(left) {
            Ok(chunk) => {
                self.bytes.extend_from_slice(&chunk);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.ended = true;
                false
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Waits (at most `within`) until `done(everything so far)` holds; returns
    /// everything so far.
    fn wait_for_within(
        &mut self,
        what: &str,
        within: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.text();
            if done(&text) {
                return text;
            }
            if !self.pull(deadline) {
                let why = if self.ended {
                    "pipe ended"
                } else {
                    "timed out"
                };
                panic!("{what}: {why}; so far {text:?}");
            }
        }
    }

    /// Waits (at most [`PATIENCE`]) until the output contains `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        self.wait_for_within(&format!("waiting for {needle:?}"), PATIENCE, |text| {
            text.contains(needle)
        })
    }

    /// The next complete line (without its `\n`) after the last one returned.
    fn next_line(&mut self, what: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(end) = self.bytes[self.cursor..].iter().position(|&b| b == b'\n') {
                let line = &self.bytes[self.cursor..self.cursor + end];
                let line = String::from_utf8_lossy(line).into_owned();
                self.cursor += end + 1;
                return line;
            }
            if !self.pull(deadline) {
                panic!(
                    "no line ({what}); pipe {}; so far {:?}",
                    if self.ended { "ended" } else { "timed out" },
                    self.text()
                );
            }
        }
    }

    /// Skips lines until one contains `needle`; returns it.
    fn line_with(&mut self, needle: &str) -> String {
        loop {
            let line = self.next_line(&format!("a line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Reads until the child closes the pipe, at most until `deadline`.
    fn read_to_end(&mut self, deadline: Instant) {
        while self.pull(deadline) {}
        assert!(
            self.ended,
            "the pipe is still open after the deadline; so far {:?}",
            self.text()
        );
    }
}

/// A running `tinysse`; killed when dropped, even when the test fails.
struct Cli {
    child: Child,
    stdout: Pipe,
    stderr: Pipe,
    started: Instant,
    args: Vec<String>,
}

/// What a finished run printed, and how long it ran.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cli {
    /// Starts `tinysse args...` with no input.
    fn spawn(args: &[&str]) -> Cli {
        Cli::spawn_with(args, None)
    }

    /// Starts `tinysse args...`; writes `input` to its stdin, then closes it.
    fn spawn_with(args: &[&str], input: Option<&[u8]>) -> Cli {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            // Small inputs: the pipe buffer takes them whole. A child that
            // exits without reading makes this fail, which is fine.
            let _ = stdin.write_all(input);
        }
        let stdout = Pipe::new(child.stdout.take().unwrap());
        let stderr = Pipe::new(child.stderr.take().unwrap());
        Cli {
            child,
            stdout,
            stderr,
            started,
            args: args.iter().map(|arg| arg.to_string()).collect(),
        }
    }

    /// Waits (at most [`PATIENCE`]) for the child to exit.
    fn finish(&mut self) -> Finished {
        self.finish_within(PATIENCE)
    }

    /// [`Cli::finish`], waiting at most `limit`.
    fn finish_within(&mut self, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        self.stdout.read_to_end(deadline);
        self.stderr.read_to_end(deadline);
        let elapsed = self.started.elapsed();
        let status = self.child.wait().unwrap();
        Finished {
            status,
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
            elapsed,
        }
    }

    /// Runs to the end and checks it failed with `code` and exactly one
    /// stderr line, nothing on stdout; returns that line.
    fn fails_with(&mut self, code: i32) -> String {
        self.fails_with_timed(code).0
    }

    /// [`Cli::fails_with`], and how long the child ran.
    fn fails_with_timed(&mut self, code: i32) -> (String, Duration) {
        let finished = self.finish();
        let args = &self.args;
        assert_eq!(
            finished.status.code(),
            Some(code),
            "{args:?}: stderr {:?}",
            finished.stderr
        );
        assert_eq!(
            finished.stderr.lines().count(),
            1,
            "{args:?}: {:?}",
            finished.stderr
        );
        assert!(finished.stderr.ends_with('\n'), "{args:?}");
        assert!(
            finished.stdout.is_empty(),
            "{args:?}: {:?}",
            finished.stdout
        );
        (finished.stderr.trim_end().to_string(), finished.elapsed)
    }
}

/// Runs `tinysse args...` (with `input` on stdin, if any) to its end.
fn run(args: &[&str], input: Option<&[u8]>) -> Finished {
    Cli::spawn_with(args, input).finish()
}

/// The delay and the Last-Event-ID of a `reconnecting in N ms [with
/// Last-Event-ID X]` line.
fn reconnect_delay(line: &str) -> (u64, Option<String>) {
    let rest = line
        .split("reconnecting in ")
        .nth(1)
        .unwrap_or_else(|| panic!("not a reconnecting line: {line:?}"));
    let (millis, rest) = rest
        .split_once(" ms")
        .unwrap_or_else(|| panic!("no delay in {line:?}"));
    let id = rest
        .strip_prefix(" with Last-Event-ID ")
        .map(str::to_string);
    (millis.parse().unwrap(), id)
}

// ---------------------------------------------------------------------------
// Fake servers

/// A `TcpListener` on 127.0.0.1:0 that hands each connection, with its index
/// (0, 1, ...), to `handle` on a thread of its own, and counts connections.
/// Dropping it stops the accept loop and joins it.
struct FakeServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    fn new(handle: impl Fn(TcpStream, usize) + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let thread = thread::spawn({
            let connections = connections.clone();
            let stop = stop.clone();
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let index = connections.fetch_add(1, Ordering::SeqCst);
                    stream.set_read_timeout(Some(PATIENCE)).unwrap();
                    let handle = handle.clone();
                    thread::spawn(move || handle(stream, index));
                }
            }
        });
        FakeServer {
            addr,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request head, through its blank line; `None` at the end of the
/// connection.
fn read_request_head(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        match reader.read_until(b'\n', &mut head) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if head[start..] == *b"\r\n" || head[start..] == *b"\n" {
            return Some(head);
        }
    }
}

/// The value of header `name` in a request head.
fn header(head: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(head)
        .lines()
        .skip(1)
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
}

/// A fake server that answers every request with `response` and closes.
fn answering(response: &'static [u8]) -> FakeServer {
    FakeServer::new(move |stream, _| {
        let mut reader = BufReader::new(&stream);
        if read_request_head(&mut reader).is_some() {
            let _ = (&stream).write_all(response);
        }
    })
}

// ---------------------------------------------------------------------------
// Unescaping `--raw` output

/// Reverses the escaping of `--raw` lines: `\\`, `\r`, `\n`, `\xNN`.
fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.extend_from_slice(ch.encode_utf8(&mut [0u8; 4]).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => out.push(b'\\'),
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = u8::from_str_radix(&hex, 16)
                    .unwrap_or_else(|_| panic!("bad \\x escape in {text:?}"));
                out.push(byte);
            }
            other => panic!("unknown escape \\{other:?} in {text:?}"),
        }
    }
    out
}

/// One screen line of `listen --raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RawLine {
    /// `> ...`: request bytes, unescaped.
    Sent(Vec<u8>),
    /// `| ...`: received bytes, unescaped.
    Got(Vec<u8>),
    /// `=> ...`: a marker, as printed.
    Marker(String),
}

fn raw_lines(stdout: &str) -> Vec<RawLine> {
    stdout
        .lines()
        .map(|line| {
            if let Some(sent) = line.strip_prefix("> ") {
                RawLine::Sent(unescape(sent))
            } else if let Some(got) = line.strip_prefix("| ") {
                RawLine::Got(unescape(got))
            } else if line.starts_with("=> ") {
                RawLine::Marker(line.to_string())
            } else {
                panic!("not a --raw line: {line:?}")
            }
        })
        .collect()
}

/// The bytes of one wire line without its line ending (LF, CRLF or a lone
/// CR), checking it has exactly one, at its end.
fn one_wire_line(line: &[u8]) -> &[u8] {
    let content = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .or_else(|| line.strip_suffix(b"\r"))
        .unwrap_or_else(|| panic!("no line ending: {:?}", String::from_utf8_lossy(line)));
    assert!(
        !content.contains(&b'\r') && !content.contains(&b'\n'),
        "more than one wire line on a screen line: {:?}",
        String::from_utf8_lossy(line)
    );
    content
}

fn dispatch_marker(event: &str, id: &str, data: &str) -> String {
    format!("=> dispatch: type {event:?}, id {id:?}, data {data:?}")
}

// ---------------------------------------------------------------------------
// listen

/// Events reach `listen` as published and print as `== type (id X)`, the data
/// as is (inner, trailing and CRLF line breaks as LF, a leading space kept),
/// and a blank line; other topics do not.
#[test]
fn listen_prints_published_events() {
    let server = start(config());
    let url = format!("http://{}/", server.addr);
    let mut listen = Cli::spawn(&["listen", &url, "--topic", "a"]);
    let connected = listen.stderr.next_line("the connected line");
    assert_eq!(
        connected,
        format!(
            "tinysse: connected to http://{}/events?topic=a",
            server.addr
        )
    );

    let hub = server.hub();
    hub.publish("b", Event::new("other topic")).unwrap();
    let first = hub.publish("a", Event::new("hello")).unwrap();
    let second = hub
        .publish(
            "a",
            Event::new(" leading space\nsecond line\r\nthird\n").with_event("note"),
        )
        .unwrap();
    let third = hub.publish("a", Event::new("")).unwrap();

    let expected = format!(
        "== message (id {first})\nhello\n\n\
         == note (id {second})\n leading space\nsecond line\nthird\n\n\n\
         == message (id {third})\n\n\n"
    );
    let stdout = listen
        .stdout
        .wait_for_within("the three events", PATIENCE, |text| {
            text.len() >= expected.len()
        });
    assert_eq!(stdout, expected);
    assert!(listen.child.try_wait().unwrap().is_none(), "listen exited");
}

/// The server goes away and comes back on the same port (a new run: new ids,
/// empty history). `listen` reconnects by itself after the reconnection time,
/// sends the old run's last id, gets a `gap` with that id (printed, and said
/// on stderr) and then the new run's events. A `--raw` listener on the same
/// server shows that the delay honours the last `retry:` it received (the
/// server sends a jittered one when it shuts down).
#[test]
fn listen_survives_a_server_restart_and_resumes_with_a_gap() {
    const RETRY_MS: u64 = 300;
    let retry_config = Config {
        retry_ms: RETRY_MS,
        ..config()
    };
    let server = start(retry_config.clone());
    let addr = server.addr;
    let url = format!("http://{addr}");
    let mut listen = Cli::spawn(&["listen", &url]);
    let mut raw = Cli::spawn(&["listen", &url, "--raw"]);
    listen.stderr.line_with("tinysse: connected to");
    raw.stderr.line_with("tinysse: connected to");

    let one = server.hub().publish("t", Event::new("one")).unwrap();
    let two = server.hub().publish("t", Event::new("two")).unwrap();
    listen
        .stdout
        .wait_for(&format!("== message (id {two})\ntwo\n\n"));
    raw.stdout
        .wait_for(&dispatch_marker("message", &two, "two"));

    server.shutdown();
    let server = start(Config {
        listen: addr,
        ..retry_config
    });

    // The first attempt waits the reconnection time, plus at most 25% jitter.
    // The server's last `retry:` is itself jittered: RETRY_MS plus up to 1 s.
    let line = listen.stderr.line_with("reconnecting in");
    assert!(
        line.starts_with("tinysse: the server closed the stream;"),
        "{line}"
    );
    let (delay, id) = reconnect_delay(&line);
    assert_eq!(id.as_deref(), Some(two.as_str()), "{line}");
    let most = (RETRY_MS + 1000) * 5 / 4;
    assert!((RETRY_MS..=most).contains(&delay), "{line}");
    listen.stderr.line_with("tinysse: connected to");
    let gap = listen.stderr.next_line("the gap line");
    assert_eq!(
        gap,
        format!("tinysse: gap: the server could not find id {two:?}; events may have been missed")
    );

    let three = server.hub().publish("t", Event::new("three")).unwrap();
    assert_ne!(three, one);
    let expected = format!(
        "== message (id {one})\none\n\n\
         == message (id {two})\ntwo\n\n\
         == gap (id {two})\n{two}\n\n\
         == message (id {three})\nthree\n\n"
    );
    let stdout = listen
        .stdout
        .wait_for_within("the events after the restart", PATIENCE, |text| {
            text.len() >= expected.len()
        });
    assert_eq!(stdout, expected);

    // --raw: the delay is within [R, R * 1.25] for the last retry R it got,
    // and the second request carries the old run's id.
    let line = raw.stderr.line_with("reconnecting in");
    let (delay, id) = reconnect_delay(&line);
    assert_eq!(id.as_deref(), Some(two.as_str()), "{line}");
    let text = raw
        .stdout
        .wait_for(&dispatch_marker("message", &three, "three"));
    let lines = raw_lines(&text);
    let second_request = lines
        .iter()
        .rposition(|line| matches!(line, RawLine::Sent(bytes) if bytes.starts_with(b"GET ")))
        .unwrap();
    let last_retry: u64 = lines[..second_request]
        .iter()
        .rev()
        .find_map(|line| match line {
            RawLine::Marker(marker) => marker
                .strip_prefix("=> reconnection time is now ")?
                .strip_suffix(" ms")?
                .parse()
                .ok(),
            _ => None,
        })
        .expect("a reconnection time marker before the second request");
    assert!(
        (RETRY_MS..RETRY_MS + 1000).contains(&last_retry),
        "{last_retry}"
    );
    assert!(
        (last_retry..=last_retry + last_retry / 4).contains(&delay),
        "retry {last_retry}, {line}"
    );
    assert!(
        lines[second_request..].contains(&RawLine::Sent(
            format!("Last-Event-ID: {two}\r\n").into_bytes()
        )),
        "{text}"
    );
}

/// A server that sends `retry: 200` and closes: `listen` waits 200 ms plus at
/// most 25% (its log says so, and the next connection comes no sooner), then
/// sends the last id. The second answer, 204, stops it for good.
#[test]
fn listen_honours_retry_and_sends_last_event_id() {
    let closed_at = Arc::new(Mutex::new(None::<Instant>));
    let second = Arc::new(Mutex::new(None::<(Instant, Vec<u8>)>));
    let fake = FakeServer::new({
        let closed_at = closed_at.clone();
        let second = second.clone();
        move |stream, index| {
            let mut reader = BufReader::new(&stream);
            let Some(head) = read_request_head(&mut reader) else {
                return;
            };
            if index == 0 {
                let _ = (&stream).write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n\
                      retry: 200\nid: abc\ndata: one\n\n",
                );
                *closed_at.lock().unwrap() = Some(Instant::now());
            } else {
                *second.lock().unwrap() = Some((Instant::now(), head));
                let _ = (&stream).write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
            }
        }
    });
    let mut listen = Cli::spawn(&["listen", &fake.url("")]);
    listen.stderr.line_with("tinysse: connected to");
    let line = listen.stderr.next_line("the reconnecting line");
    assert!(
        line.starts_with("tinysse: the server closed the stream;"),
        "{line}"
    );
    let (delay, id) = reconnect_delay(&line);
    assert!((200..=260).contains(&delay), "{line}");
    assert_eq!(id.as_deref(), Some("abc"), "{line}");

    let finished = listen.finish();
    assert_eq!(finished.status.code(), Some(1), "{}", finished.stderr);
    assert_eq!(finished.stdout, "== message (id abc)\none\n\n");
    let last = finished.stderr.lines().last().unwrap();
    assert_eq!(last, "tinysse: the server answered 204 No Content");
    assert_eq!(finished.stderr.lines().count(), 3, "{}", finished.stderr);

    let closed_at = closed_at.lock().unwrap().expect("first connection");
    let (reconnected_at, head) = second.lock().unwrap().clone().expect("second connection");
    let waited = reconnected_at - closed_at;
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(header(&head, "last-event-id").as_deref(), Some("abc"));
    assert_eq!(fake.connections(), 2);
}

/// A status other than 200, or a 200 that is not `text/event-stream`, stops
/// `listen` for good: exit 1, one line saying why, no retry loop.
#[test]
fn listen_stops_for_good_on_401_404_and_a_wrong_content_type() {
    let _serial = crate::support::serial();
    let server = start(Config {
        subscribe_token: Some("letmein".to_string()),
        ..config()
    });
    let base = format!("http://{}", server.addr);

    let mut no_token = Cli::spawn(&["listen", &base]);
    let mut not_found = Cli::spawn(&["listen", &format!("{base}/nope")]);
    let fake =
        answering(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello");
    let mut html = Cli::spawn(&["listen", &fake.url("/")]);

    for (cli, expected) in [
        (
            &mut no_token,
            "tinysse: the server answered 401 Unauthorized: missing or wrong token",
        ),
        (
            &mut not_found,
            "tinysse: the server answered 404 Not Found: ",
        ),
        (
            &mut html,
            "tinysse: the server answered with Content-Type \"text/html\", not text/event-stream",
        ),
    ] {
        let (line, elapsed) = cli.fails_with_timed(1);
        assert!(line.starts_with(expected), "{line:?}");
        assert!(elapsed < PROMPTLY, "{elapsed:?}: {line}");
    }
    assert_eq!(fake.connections(), 1, "listen tried again");

    // The same server with the token in the URL's query: a stream.
    let mut with_token = Cli::spawn(&["listen", &format!("{base}/?token=letmein")]);
    let line = with_token.stderr.next_line("the connected line");
    assert_eq!(
        line,
        format!("tinysse: connected to {base}/events?token=letmein")
    );
}

/// `listen --token T` sends `Authorization: Bearer T` (a subscriber token
/// or the publish token); a wrong one stops it with the server's 401.
#[test]
fn listen_sends_its_token_as_a_bearer() {
    let server = start(Config {
        subscribe_token: Some("letmein".to_string()),
        token: Some("publisher".to_string()),
        ..config()
    });
    let base = format!("http://{}", server.addr);
    for token in ["letmein", "publisher"] {
        let mut listen = Cli::spawn(&["listen", &base, "--topic", "t", "--token", token]);
        listen.stderr.line_with("tinysse: connected to");
        let id = server.hub().publish("t", Event::new(token)).unwrap();
        listen
            .stdout
            .wait_for(&format!("== message (id {id})\n{token}\n\n"));
    }
    let line = Cli::spawn(&["listen", &base, "--token", "wrong"]).fails_with(1);
    assert_eq!(
        line,
        "tinysse: the server answered 401 Unauthorized: missing or wrong token"
    );

    let received = Arc::new(Mutex::new(None::<Vec<u8>>));
    let fake = FakeServer::new({
        let received = received.clone();
        move |stream, _| {
            let mut reader = BufReader::new(&stream);
            if let Some(head) = read_request_head(&mut reader) {
                *received.lock().unwrap() = Some(head);
                let _ = (&stream).write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
            }
        }
    });
    Cli::spawn(&["listen", &fake.url(""), "--token=s p"]).fails_with(1);
    let head = received.lock().unwrap().clone().expect("a request");
    assert_eq!(
        header(&head, "authorization").as_deref(),
        Some("Bearer s p")
    );
    let line = Cli::spawn(&["listen", &fake.url(""), "--token", ""]).fails_with(2);
    assert!(line.contains("--token"), "{line}");
    assert_eq!(fake.connections(), 1, "a usage error sent a request");
}

/// `--raw` shows exactly the bytes that came: the `| ` lines, unescaped and
/// joined, are the response byte for byte (LF, CRLF and lone CR endings, a
/// comment, a byte that is not UTF-8, a tab, a multi-byte character,
/// backslashes that look like escapes), one wire line per screen line. The
/// `> ` lines are the request the server received, with `Last-Event-ID`.
/// A `=> dispatch` marker follows the blank line ending each event, and a
/// `=> reconnection time` marker the `retry:` line.
#[test]
fn listen_raw_shows_every_byte_and_marks_dispatches() {
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
        Content-Type: text/event-stream\r\n\
        Cache-Control: no-cache\r\n\
        X-Path: C:\\tmp\\x41\r\n\
        \r\n";
    const BODY: &[u8] = b": a comment, a tab\t and a byte that is not UTF-8: \xff\n\
        retry: 1500\r\n\
        \r\n\
        id: 7\n\
        event: greet\r\n\
        data: caf\xc3\xa9 \xf0\x9f\x98\x80\r\
        data: back\\slash, \\x41 and \\n are not escapes\n\
        \r\n\
        data:no space\r\
        \r\
        data: last\n\
        \n";
    let received = Arc::new(Mutex::new(None::<Vec<u8>>));
    let fake = FakeServer::new({
        let received = received.clone();
        move |stream, index| {
            let mut reader = BufReader::new(&stream);
            let Some(head) = read_request_head(&mut reader) else {
                return;
            };
            if index > 0 {
                return;
            }
            *received.lock().unwrap() = Some(head);
            let mut stream = &stream;
            stream.set_nodelay(true).unwrap();
            let _ = stream.write_all(HEAD);
            // One byte per write: the client reads in pieces that split lines,
            // CRLFs and characters anywhere.
            for byte in BODY {
                let _ = stream.write_all(&[*byte]);
            }
        }
    });
    let mut listen = Cli::spawn(&["listen", &fake.url(""), "--raw", "--last-event-id", "41"]);
    let line = listen.stderr.line_with("reconnecting in");
    let (delay, id) = reconnect_delay(&line);
    assert!((1500..=1875).contains(&delay), "{line}");
    assert_eq!(id.as_deref(), Some("7"), "{line}");
    let dispatches = [
        dispatch_marker(
            "greet",
            "7",
            "café 😀\nback\\slash, \\x41 and \\n are not escapes",
        ),
        dispatch_marker("message", "7", "no space"),
        dispatch_marker("message", "7", "last"),
    ];
    listen.stdout.wait_for(&dispatches[2]);
    let stdout = String::from_utf8(listen.stdout.bytes.clone()).expect("--raw prints UTF-8");
    let lines = raw_lines(&stdout);

    // The request, as the server received it.
    let sent: Vec<u8> = lines
        .iter()
        .filter_map(|line| match line {
            RawLine::Sent(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let request = received.lock().unwrap().clone().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sent),
        String::from_utf8_lossy(&request)
    );
    assert!(request.starts_with(b"GET /events HTTP/1.1\r\n"));
    assert_eq!(header(&request, "last-event-id").as_deref(), Some("41"));
    let sent_lines = lines
        .iter()
        .filter(|line| matches!(line, RawLine::Sent(_)))
        .count();
    assert_eq!(sent_lines, request.split(|&b| b == b'\n').count() - 1);

    // Every received byte, in order, one wire line per screen line.
    let got: Vec<&Vec<u8>> = lines
        .iter()
        .filter_map(|line| match line {
            RawLine::Got(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let joined: Vec<u8> = got.iter().flat_map(|bytes| bytes.iter().copied()).collect();
    assert_eq!(joined, [HEAD, BODY].concat(), "{stdout}");
    for pair in got.windows(2) {
        one_wire_line(pair[0]);
        assert!(
            !(pair[0].ends_with(b"\r") && pair[1].starts_with(b"\n")),
            "a CRLF shown on two lines"
        );
    }
    one_wire_line(got[got.len() - 1]);

    // The markers, each right after the line that caused it.
    let markers: Vec<(&[u8], &str)> = lines
        .windows(2)
        .filter_map(|pair| match pair {
            [RawLine::Got(line), RawLine::Marker(marker)] => {
                Some((line.as_slice(), marker.as_str()))
            }
            [RawLine::Marker(_), RawLine::Marker(_)] => panic!("two markers in a row"),
            _ => None,
        })
        .collect();
    assert_eq!(
        markers,
        [
            (
                &b"retry: 1500\r\n"[..],
                "=> reconnection time is now 1500 ms"
            ),
            (&b"\r\n"[..], dispatches[0].as_str()),
            (b"\r", dispatches[1].as_str()),
            (b"\n", dispatches[2].as_str()),
        ]
    );
    assert!(matches!(lines.last(), Some(RawLine::Marker(_))));
}

/// The parser dispatches an event whose blank line is a lone CR as soon as
/// the CR arrives, without waiting for a byte that may never come.
#[test]
fn listen_dispatches_an_event_ended_by_a_lone_cr_at_once() {
    let _serial = crate::support::serial();
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let fake = FakeServer::new(move |stream, _| {
        let mut reader = BufReader::new(&stream);
        if read_request_head(&mut reader).is_none() {
            return;
        }
        let _ = (&stream)
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: lone\r\r");
        // Hold the stream open, quiet, until the test is done.
        let _ = released.lock().unwrap().recv_timeout(PATIENCE);
    });
    let mut listen = Cli::spawn(&["listen", &fake.url("")]);
    let stdout = listen
        .stdout
        .wait_for_within("the event", PROMPTLY, |text| text.contains("\n\n"));
    assert_eq!(stdout, "== message\nlone\n\n");
    drop(release);
}

/// `--raw` shows an event ended by a lone CR (and dispatches it) as soon as
/// the CR arrives, like the parser does; and when the server closes, it shows
/// the bytes of a last line that has no line ending.
#[test]
fn listen_raw_shows_a_final_cr_at_once_and_the_last_bytes_at_close() {
    let _serial = crate::support::serial();
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let fake = FakeServer::new(move |stream, index| {
        let mut reader = BufReader::new(&stream);
        if read_request_head(&mut reader).is_none() || index > 0 {
            return;
        }
        let mut stream = &stream;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: lone\r\r");
        // Quiet until the test has seen the event, then a last line with no
        // ending, and close.
        let _ = released.lock().unwrap().recv_timeout(PATIENCE);
        let _ = stream.write_all(b": unterminated");
    });
    let mut listen = Cli::spawn(&["listen", &fake.url(""), "--raw"]);
    let marker = dispatch_marker("message", "", "lone");
    listen
        .stdout
        .wait_for_within("the dispatch of an event ended by CR", PROMPTLY, |text| {
            text.contains(&marker)
        });
    release.send(()).unwrap();
    listen.stderr.line_with("reconnecting in");
    let stdout = listen
        .stdout
        .wait_for_within("the unterminated line", PROMPTLY, |text| {
            text.contains("| : unterminated\n")
        });
    let got: Vec<u8> = raw_lines(&stdout)
        .into_iter()
        .filter_map(|line| match line {
            RawLine::Got(bytes) => Some(bytes),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        got.ends_with(b"\r\n\r\ndata: lone\r\r: unterminated"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------
// publish

/// `publish URL DATA` prints the id; the subscriber gets the data as given.
#[test]
fn publish_data_argument_prints_the_id() {
    let server = start(config());
    let mut subscriber = subscribe(server.addr, "/events?topic=t", "");
    let url = format!("http://{}", server.addr);
    let finished = run(&["publish", &url, "--topic", "t", " hello, world"], None);
    assert!(finished.status.success(), "{}", finished.stderr);
    assert_eq!(finished.stderr, "");
    let event = subscriber.next_event();
    assert_eq!(finished.stdout, format!("{}\n", event.id));
    assert_eq!(
        (event.event.as_str(), event.data.as_str()),
        ("message", " hello, world")
    );
}

/// `publish URL -` sends all of stdin as one event, one trailing newline
/// removed, inner (and other trailing) newlines kept.
#[test]
fn publish_reads_stdin_and_removes_one_trailing_newline() {
    let server = start(config());
    let mut subscriber = subscribe(server.addr, "/events?topic=t", "");
    let url = format!("http://{}/", server.addr);
    let finished = run(
        &["publish", &url, "--topic", "t", "-"],
        Some(b"line one\n\n  indented\n\n"),
    );
    assert!(finished.status.success(), "{}", finished.stderr);
    let event = subscriber.next_event();
    assert_eq!(finished.stdout, format!("{}\n", event.id));
    assert_eq!(event.data, "line one\n\n  indented\n");
}

/// `--each-line` posts one event per line (LF or CRLF, the last line may
/// lack one; lines empty or of only spaces and tabs skipped) over ONE
/// keep-alive connection, and prints each id.
#[test]
fn publish_each_line_uses_one_connection() {
    let requests = Arc::new(Mutex::new(Vec::<(Vec<u8>, Vec<u8>)>::new()));
    let fake = FakeServer::new({
        let requests = requests.clone();
        move |stream, _| {
            let mut reader = BufReader::new(&stream);
            while let Some(head) = read_request_head(&mut reader) {
                let length: usize = header(&head, "content-length").unwrap().parse().unwrap();
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let count = {
                    let mut requests = requests.lock().unwrap();
                    requests.push((head, body));
                    requests.len()
                };
                let id = format!("id-{count}\n");
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{id}",
                    id.len()
                );
                if (&stream).write_all(response.as_bytes()).is_err() {
                    return;
                }
            }
        }
    });
    let finished = run(
        &[
            "publish",
            &fake.url(""),
            "--topic",
            "lines",
            "--each-line",
            "-",
        ],
        Some(b"one\n\n  \t\r\ntwo\r\n\n\t\nthree"),
    );
    assert!(finished.status.success(), "{}", finished.stderr);
    assert_eq!(finished.stdout, "id-1\nid-2\nid-3\n");
    assert_eq!(fake.connections(), 1, "one keep-alive connection");
    let requests = requests.lock().unwrap();
    let bodies: Vec<&[u8]> = requests.iter().map(|(_, body)| body.as_slice()).collect();
    assert_eq!(bodies, [&b"one"[..], b"two", b"three"]);
    for (head, _) in requests.iter() {
        assert!(
            head.starts_with(b"POST /publish?topic=lines HTTP/1.1\r\n"),
            "{}",
            String::from_utf8_lossy(head)
        );
        assert!(header(head, "connection").is_none_or(|value| value != "close"));
    }
}

/// `--each-line` against the real server: the events arrive in order, with
/// the ids it printed.
#[test]
fn publish_each_line_to_the_server_in_order() {
    let server = start(config());
    let mut subscriber = subscribe(server.addr, "/events?topic=lines", "");
    let url = format!("http://{}", server.addr);
    let finished = run(
        &["publish", &url, "--topic", "lines", "--each-line", "-"],
        Some(b"first\nsecond\n\n third\n"),
    );
    assert!(finished.status.success(), "{}", finished.stderr);
    let events = subscriber.events(3);
    let data: Vec<&str> = events.iter().map(|event| event.data.as_str()).collect();
    assert_eq!(data, ["first", "second", " third"]);
    let ids: String = events
        .iter()
        .map(|event| format!("{}\n", event.id))
        .collect();
    assert_eq!(finished.stdout, ids);
}

/// `--topic`, `--event`, `--retry` and `--token` reach the server; without the
/// token (or with a wrong one), exit 1 with the server's reason; a bad topic is
/// a usage error (exit 2) and sends nothing.
#[test]
fn publish_flags_reach_the_server_and_refusals_exit_1() {
    let server = start(Config {
        token: Some("pub-secret".to_string()),
        ..config()
    });
    let mut subscriber = subscribe(server.addr, "/events?topic=news", "");
    let url = format!("http://{}", server.addr);
    let finished = run(
        &[
            "publish",
            &url,
            "--topic",
            "news",
            "--event",
            "alert",
            "--retry",
            "250",
            "--token",
            "pub-secret",
            "x y",
        ],
        None,
    );
    assert!(finished.status.success(), "{}", finished.stderr);
    let event = subscriber.next_event();
    assert_eq!(
        (event.event.as_str(), event.data.as_str()),
        ("alert", "x y")
    );
    assert_eq!(finished.stdout, format!("{}\n", event.id));
    let frame = format!("id: {}\nevent: alert\nretry: 250\ndata: x y\n\n", event.id);
    assert!(
        String::from_utf8_lossy(&subscriber.raw).ends_with(&frame),
        "{:?}",
        String::from_utf8_lossy(&subscriber.raw)
    );

    for token in [&[][..], &["--token", "wrong"]] {
        let mut args = vec!["publish", &url, "--topic", "news"];
        args.extend_from_slice(token);
        args.push("refused");
        let line = Cli::spawn(&args).fails_with(1);
        assert_eq!(
            line,
            "tinysse: the server answered 401: missing or wrong token"
        );
    }
    // Nothing was published by the refused runs.
    let finished = run(
        &[
            "publish",
            &url,
            "--topic",
            "news",
            "--token",
            "pub-secret",
            "after",
        ],
        None,
    );
    assert!(finished.status.success(), "{}", finished.stderr);
    assert_eq!(subscriber.next_event().data, "after");

    let fake = answering(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
    for topic in ["bad topic", ""] {
        let line = Cli::spawn(&["publish", &fake.url(""), "--topic", topic, "x"]).fails_with(2);
        assert!(line.contains("--topic"), "{line}");
    }
    let line = Cli::spawn(&["listen", &fake.url(""), "--topic", "bad topic"]).fails_with(2);
    assert!(line.contains("--topic"), "{line}");
    assert_eq!(fake.connections(), 0, "a usage error sent a request");
}

// ---------------------------------------------------------------------------
// errors

/// A server at `--max-subscribers` answers with a comment and closes:
/// `listen` says what the comment said in its reconnecting line.
#[test]
fn listen_says_why_a_full_server_closed_the_stream() {
    let server = start(Config {
        max_subscribers: 1,
        ..config()
    });
    let _first = subscribe(server.addr, "/events", "");
    let mut listen = Cli::spawn(&["listen", &format!("http://{}", server.addr)]);
    listen.stderr.line_with("tinysse: connected to");
    let line = listen.stderr.next_line("the reconnecting line");
    assert!(
        line.starts_with(
            r#"tinysse: the server closed the stream, saying ": server full, try again later"; reconnecting in "#
        ),
        "{line}"
    );
}

/// The comment named is the last one since the last `data:` line, and
/// never a heartbeat.
#[test]
fn listen_names_the_last_comment_since_the_last_event() {
    const BODIES: [&[u8]; 4] = [
        b": hello\n\nretry: 10\n\n: bye\r\nid: 1\n\n",
        b"retry: 10\n\n: old news\n\ndata: x\n\n: heartbeat\n\n",
        b"retry: 10\n: split across two writes",
        b"\n\n",
    ];
    let fake = FakeServer::new(|stream, index| {
        let mut reader = BufReader::new(&stream);
        if read_request_head(&mut reader).is_none() {
            return;
        }
        let mut stream = &stream;
        if index >= 3 {
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
            return;
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
        stream.set_nodelay(true).unwrap();
        for body in &BODIES[index..] {
            let _ = stream.write_all(body);
            if index < 2 {
                break;
            }
        }
    });
    let finished = Cli::spawn(&["listen", &fake.url("")]).finish();
    let reasons: Vec<&str> = finished
        .stderr
        .lines()
        .filter_map(|line| line.split("; reconnecting in").next())
        .filter(|line| !line.starts_with("tinysse: connected"))
        .collect();
    assert_eq!(
        reasons,
        [
            r#"tinysse: the server closed the stream, saying ": bye""#,
            "tinysse: the server closed the stream",
            r#"tinysse: the server closed the stream, saying ": split across two writes""#,
            "tinysse: the server answered 204 No Content",
        ],
        "{}",
        finished.stderr
    );
}

/// A server that accepts and never answers: after 10 s, `publish` exits 1
/// and `listen` reconnects, each saying there was no answer within 10 s.
#[test]
fn a_server_that_never_answers_is_named_as_such() {
    let (done, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    let fake = FakeServer::new(move |stream, _| {
        let mut reader = BufReader::new(&stream);
        let _ = read_request_head(&mut reader);
        // Silent until the test ends.
        let _ = wait.lock().unwrap().recv_timeout(PATIENCE * 3);
    });
    let mut publish = Cli::spawn(&["publish", &fake.url(""), "x"]);
    let mut listen = Cli::spawn(&["listen", &fake.url("")]);
    let finished = publish.finish_within(PATIENCE * 2);
    assert_eq!(finished.status.code(), Some(1), "{}", finished.stderr);
    assert_eq!(finished.stderr, "tinysse: no answer within 10 s\n");
    assert!(
        finished.elapsed >= Duration::from_secs(10),
        "{:?}",
        finished.elapsed
    );
    let line = listen.stderr.line_with("reconnecting in");
    assert!(
        line.starts_with("tinysse: no answer within 10 s; reconnecting in "),
        "{line}"
    );
    drop(done);
}

/// A port that answers something other than HTTP (an SSH server, say):
/// the clients say what came, escaped and cut short.
#[test]
fn an_answer_that_is_not_http_is_shown() {
    let fake = FakeServer::new(|stream, index| {
        let mut stream = &stream;
        let greeting: &[u8] = if index < 2 {
            b"SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n"
        } else {
            b"\x00 this line is far too long to be shown whole in one line of an error message\n"
        };
        let _ = stream.write_all(greeting);
        let mut reader = BufReader::new(stream);
        let _ = read_request_head(&mut reader);
        let _ = stream.write_all(b"Invalid SSH identification string.\r\n");
    });
    let line = Cli::spawn(&["publish", &fake.url(""), "x"]).fails_with(1);
    assert_eq!(
        line,
        r#"tinysse: the server did not answer in HTTP; it sent "SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n""#
    );
    let mut listen = Cli::spawn(&["listen", &fake.url("")]);
    let line = listen.stderr.line_with("reconnecting in");
    assert!(
        line.starts_with(
            r#"tinysse: the server did not answer in HTTP; it sent "SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n"; reconnecting in "#
        ),
        "{line}"
    );
    let line = Cli::spawn(&["publish", &fake.url(""), "x"]).fails_with(1);
    assert_eq!(
        line,
        r#"tinysse: the server did not answer in HTTP; it sent "\x00 this line is far too long to be shown whole in one line of...""#
    );
}

/// A URL without a scheme is taken as `http://`.
#[test]
fn a_url_without_a_scheme_is_http() {
    let server = start(config());
    let bare = server.addr.to_string();
    let mut listen = Cli::spawn(&["listen", &bare, "--topic", "t"]);
    let line = listen.stderr.next_line("the connected line");
    assert_eq!(
        line,
        format!("tinysse: connected to http://{bare}/events?topic=t")
    );
    let finished = run(&["publish", &bare, "--topic", "t", "hello"], None);
    assert!(finished.status.success(), "{}", finished.stderr);
    let id = finished.stdout.trim_end();
    listen
        .stdout
        .wait_for(&format!("== message (id {id})\nhello\n\n"));
}

// ---------------------------------------------------------------------------
// usage

/// `--help` exits 0 with the usage; a missing URL or data, an https URL, an
/// unknown flag exit 2 with one line.
#[test]
fn listen_and_publish_help_and_usage_errors() {
    for (command, usage) in [
        ("listen", "Usage: tinysse listen URL"),
        ("publish", "Usage: tinysse publish URL"),
    ] {
        let finished = run(&[command, "--help"], None);
        assert!(finished.status.success(), "{}", finished.stderr);
        assert!(finished.stdout.starts_with(usage), "{}", finished.stdout);
        assert_eq!(finished.stderr, "");
    }
    let mut children: Vec<Cli> = [
        &["listen"][..],
        &["publish"],
        &["publish", "http://127.0.0.1:9"],
        &["listen", "https://127.0.0.1:9"],
        &["publish", "https://127.0.0.1:9", "x"],
        &["listen", "http://127.0.0.1:9", "--no-such-flag"],
        &["publish", "http://127.0.0.1:9", "--no-such-flag", "x"],
        &["publish", "http://127.0.0.1:9", "--each-line", "x"],
        &["listen", "http://127.0.0.1:9", "http://127.0.0.1:10"],
    ]
    .into_iter()
    .map(Cli::spawn)
    .collect();
    for child in &mut children {
        let line = child.fails_with(2);
        assert!(line.starts_with("tinysse: "), "{line}");
    }
    let https = run(&["listen", "https://127.0.0.1:9"], None);
    assert!(https.stderr.contains("http://"), "{}", https.stderr);
}

/// A fake server for `publish --each-line`: records each request body and
/// answers it with `id-N`; `after_first` runs once the first answer is sent
/// (on the first connection), with the stream and its reader.
fn recording_server(
    after_first: impl Fn(&TcpStream, &mut BufReader<&TcpStream>, &Mutex<Vec<Vec<u8>>>)
    + Send
    + Sync
    + 'static,
) -> (FakeServer, Arc<Mutex<Vec<Vec<u8>>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let read_body = |reader: &mut BufReader<&TcpStream>, bodies: &Mutex<Vec<Vec<u8>>>| {
        let head = read_request_head(reader)?;
        let length: usize = header(&head, "content-length")?.parse().ok()?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        let mut bodies = bodies.lock().unwrap();
        bodies.push(body);
        Some(bodies.len())
    };
    let fake = FakeServer::new({
        let bodies = bodies.clone();
        move |stream, index| {
            let mut reader = BufReader::new(&stream);
            while let Some(count) = read_body(&mut reader, &bodies) {
                let id = format!("id-{count}\n");
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{id}",
                    id.len()
                );
                if (&stream).write_all(response.as_bytes()).is_err() {
                    return;
                }
                if index == 0 && count == 1 {
                    after_first(&stream, &mut reader, &bodies);
                    return;
                }
            }
        }
    });
    (fake, bodies)
}

/// `tinysse publish URL --each-line -` with its stdin kept open.
fn publish_lines(url: &str) -> Child {
    Command::new(BIN)
        .args(["publish", url, "--each-line", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` (killed after [`PATIENCE`]); its status, stdout, stderr.
fn outcome(child: Child) -> (ExitStatus, String, String) {
    let deadline = Instant::now() + PATIENCE;
    let id = child.id();
    let waiter = thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            let _ = Command::new("kill").arg(id.to_string()).status();
        }
        thread::sleep(Duration::from_millis(10));
    }
    let output = waiter.join().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status, text(output.stdout), text(output.stderr))
}

/// A kept-alive connection the server closed while it sat idle is replaced
/// before the next request is written: both lines are published, once each.
#[test]
fn publish_replaces_a_connection_the_server_closed_while_idle() {
    let (closed_tx, closed_rx) = mpsc::channel();
    let closed_tx = Mutex::new(closed_tx);
    let (fake, bodies) = recording_server(move |stream, _, _| {
        let _ = stream.shutdown(Shutdown::Both);
        let _ = closed_tx.lock().unwrap().send(());
    });
    let mut child = publish_lines(&fake.url("/publish"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\n").unwrap();
    closed_rx.recv_timeout(PATIENCE).unwrap();
    stdin.write_all(b"two\n").unwrap();
    drop(stdin);
    let (status, stdout, stderr) = outcome(child);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "id-1\nid-2\n");
    assert_eq!(*bodies.lock().unwrap(), [b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(fake.connections(), 2);
}

/// A request that reached the server is never sent again, even when the
/// connection then breaks without an answer (the server may have published
/// it): the client says so and exits 1.
#[test]
fn publish_never_sends_a_request_twice() {
    let (fake, bodies) = recording_server(|stream, reader, bodies| {
        // Read the second request, then close without answering.
        if let Some(head) = read_request_head(reader) {
            let length: usize = header(&head, "content-length").unwrap().parse().unwrap();
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                bodies.lock().unwrap().push(body);
            }
        }
        let _ = stream.shutdown(Shutdown::Both);
    });
    let mut child = publish_lines(&fake.url("/publish"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\nthree\n").unwrap();
    drop(stdin);
    let (status, stdout, stderr) = outcome(child);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "id-1\n");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("may have been published; not sending it again"),
        "{stderr}"
    );
    assert_eq!(*bodies.lock().unwrap(), [b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(
        fake.connections(),
        1,
        "no second connection to send it again"
    );
}
