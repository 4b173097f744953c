//! Shared helpers: a server per test on 127.0.0.1:0, raw-socket clients that
//! see exact bytes, a subscriber that parses with the crate's own parser, and
//! condition waits with deadlines (never sleeps to synchronise).

#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Once;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use tinysse::{Config, Message, Parser, Running, Server};

/// Runs heavy tests (floods, crash loops, thousands of connections) one at
/// a time, and keeps the few tests that assert timings away from them: on a
/// two-core machine they would otherwise starve each other. Hold the guard
/// for the whole test.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Safety net for every blocking read in the tests: a test that would hang
/// fails after this instead.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A config for tests: port 0 on loopback, no logging.
pub fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    }
}

/// A server that shuts down (and joins its threads) when dropped.
pub struct TestServer {
    running: Option<Running>,
    pub addr: SocketAddr,
}

pub fn start(config: Config) -> TestServer {
    let running = Server::bind(config).unwrap().start().unwrap();
    let addr = running.local_addr();
    TestServer {
        running: Some(running),
        addr,
    }
}

/// Wraps a server started by the test itself (with hooks, say).
impl TestServer {
    pub fn from_running(running: Running) -> TestServer {
        let addr = running.local_addr();
        TestServer {
            running: Some(running),
            addr,
        }
    }
}

pub fn start_default() -> TestServer {
    start(config())
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn hub(&self) -> &std::sync::Arc<tinysse::Hub> {
        self.running.as_ref().unwrap().hub()
    }

    /// Shuts down and returns how long it took.
    pub fn shutdown(mut self) -> Duration {
        let started = Instant::now();
        self.running.take().unwrap().shutdown().unwrap();
        started.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown();
        }
    }
}

/// A raw connection with a read timeout as a safety net.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response head (skipping `100 Continue` interim responses when
/// `skip_continue`) and then the body by `Content-Length`, or to the end of the
/// stream when there is none (a 204 or a HEAD response have no body).
pub fn read_response(stream: &mut TcpStream) -> RawResponse {
    read_response_with(stream, true, false)
}

pub fn read_response_with(
    stream: &mut TcpStream,
    skip_continue: bool,
    head_only: bool,
) -> RawResponse {
    loop {
        let head = read_head(stream);
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line in {head:?}"));
        if status == 100 && skip_continue {
            continue;
        }
        let mut response = RawResponse {
            status,
            head,
            body: Vec::new(),
        };
        if status == 100 || status == 204 || head_only {
            return response;
        }
        match response.header("content-length") {
            Some(length) => {
                let mut body = vec![0; length.parse().unwrap()];
                stream.read_exact(&mut body).unwrap();
                response.body = body;
            }
            None => {
                stream.read_to_end(&mut response.body).unwrap();
            }
        }
        return response;
    }
}

/// One `read` that is retried when a signal interrupts it: the bytes read,
/// never 0 (the stream must not end here).
pub fn read_some(stream: &mut impl Read, buf: &mut [u8]) -> usize {
    loop {
        match stream.read(buf) {
            Ok(0) => panic!("the stream ended"),
            Ok(count) => return count,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => panic!("read failed: {err}"),
        }
    }
}

/// Reads up to and including the empty line that ends a response head.
pub fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            other => panic!(
                "connection ended mid-head ({other:?}) after {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8(head).unwrap()
}

/// Sends `request` on a new connection and reads one response.
pub fn raw(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    read_response(&mut stream)
}

/// `POST /publish?{query}` with a body and a content type; returns status and body.
pub fn publish(
    addr: SocketAddr,
    query: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut request = format!(
        "POST /publish{query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(content_type) = content_type {
        request.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    let response = raw(addr, &bytes);
    (response.status, response.text())
}

/// Publishes `data` as a form on `topic`; returns the id. Uses ureq, a client
/// this project did not write.
pub fn publish_form(server: &TestServer, topic: &str, data: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into();
    let mut response = agent
        .post(&server.url("/publish"))
        .send_form([("topic", topic), ("data", data)])
        .unwrap();
    let body = response.body_mut().read_to_string().unwrap();
    assert_eq!(response.status().as_u16(), 200, "{body}");
    body.trim_end().to_string()
}

/// An open `GET /events` stream, parsed with the crate's own parser.
pub struct Subscriber {
    pub stream: TcpStream,
    pub head: String,
    /// Every body byte received so far.
    pub raw: Vec<u8>,
    parser: Parser,
    events: std::collections::VecDeque<Message>,
}

/// Opens `GET {target}` with extra header lines (each ending in `\r\n`) and
/// returns once the response head and the opening `retry:` frame arrived, so
/// the subscription exists in the hub.
pub fn subscribe(addr: SocketAddr, target: &str, extra_headers: &str) -> Subscriber {
    let mut subscriber = open_stream(addr, target, extra_headers);
    assert!(
        subscriber.head.starts_with("HTTP/1.1 200"),
        "{}",
        subscriber.head
    );
    subscriber
        .read_until(|raw| raw.starts_with(b"retry: ") && raw.windows(2).any(|w| w == b"\n\n"));
    subscriber
}

/// Opens `GET {target}` and returns after the response head, whatever the status.
pub fn open_stream(addr: SocketAddr, target: &str, extra_headers: &str) -> Subscriber {
    let mut stream = connect(addr);
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{extra_headers}\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let head = read_head(&mut stream);
    Subscriber {
        stream,
        head,
        raw: Vec::new(),
        parser: Parser::new(),
        events: Default::default(),
    }
}

impl Subscriber {
    /// Reads until `done(raw bytes so far)` holds; panics after [`PATIENCE`]
    /// or if the stream ends first.
    pub fn read_until(&mut self, mut done: impl FnMut(&[u8]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.raw) {
            self.read_some(deadline);
        }
    }

    /// The next dispatched event, waiting for it.
    pub fn next_event(&mut self) -> Message {
        let deadline = Instant::now() + PATIENCE;
        while self.events.is_empty() {
            self.read_some(deadline);
        }
        self.events.pop_front().unwrap()
    }

    /// One read (retried on EINTR), parsed; panics if the stream ended or
    /// the deadline passed.
    fn read_some(&mut self, deadline: Instant) {
        let received = |raw: &[u8]| String::from_utf8_lossy(raw).into_owned();
        assert!(
            Instant::now() < deadline,
            "timed out; received {:?}",
            received(&self.raw)
        );
        let mut chunk = [0u8; 8192];
        let count = loop {
            match self.stream.read(&mut chunk) {
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(count) => break count,
                Err(err) => panic!("read failed ({err}); received {:?}", received(&self.raw)),
            }
        };
        assert!(
            count > 0,
            "stream ended; received {:?}",
            received(&self.raw)
        );
        self.raw.extend_from_slice(&chunk[..count]);
        let mut parsed = Vec::new();
        self.parser.feed(&chunk[..count], &mut parsed).unwrap();
        self.events.extend(parsed);
    }

    /// The next `count` events.
    pub fn events(&mut self, count: usize) -> Vec<Message> {
        (0..count).map(|_| self.next_event()).collect()
    }

    /// Reads to the end of the stream (the server closed it) and returns all raw bytes.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let _ = self.stream.read_to_end(&mut self.raw);
        self.raw.clone()
    }
}

/// Threads in this test process now (Linux: /proc/self/task).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Polls `condition` until it holds; panics with `what` after [`PATIENCE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The value of `name` in the server's `/metrics` text (a line `name value`).
pub fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = raw(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .text();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// What a finished child process printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` with standard input closed and its output captured, to its
/// end; kills it and panics (showing its output) after `limit`.
pub fn run_to_end(mut command: Command, limit: Duration) -> Finished {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} still running after {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                stdout.join().unwrap(),
                stderr.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    Finished {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The executable of `examples/<name>.rs`, built with the test's own profile
/// (`target/debug/deps/it-…` → `target/debug/examples/<name>`).
///
/// `cargo test` builds examples, but `cargo test --test it` does not, and an
/// executable left by an earlier build may be stale: so every example is
/// built here, once per test process (quick when nothing changed).
pub fn example_binary(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let test_executable = std::env::current_exe().unwrap();
    let profile_dir = test_executable
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps");
    BUILD.call_once(|| {
        let mut command = Command::new(env!("CARGO"));
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--examples", "--target-dir"])
            .arg(profile_dir.parent().expect("<target>/<profile>"));
        // The `dev` profile builds into `debug`; other profiles into their own name.
        match profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") | None => {}
            Some(profile) => {
                command.args(["--profile", profile]);
            }
        }
        let output = command.output().expect("cargo runs");
        assert!(
            output.status.success(),
            "building the examples failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(binary.exists(), "no example at {}", binary.display());
    binary
}

/// The `tinysse` binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_tinysse");

/// A running `tinysse` that serves; killed when dropped, even when the test
/// fails.
pub struct Served {
    pub child: Child,
    pub pid: u32,
    /// Where it listens, reached on loopback.
    pub addr: SocketAddr,
    /// The first line it printed on stderr.
    pub banner: String,
    /// Its later stderr lines, as they come.
    pub stderr: Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tinysse serve --listen 127.0.0.1:0 ARGS`, under `ulimit -n LIMIT`
/// when given, and waits for the line saying where it listens.
pub fn serve_child(open_files: Option<u32>, args: &[&str]) -> Served {
    let mut command = Command::new("sh");
    let limit = open_files.map_or(String::new(), |limit| format!("ulimit -n {limit} && "));
    command
        .arg("-c")
        .arg(format!(
            "{limit}exec \"$0\" serve --listen 127.0.0.1:0 \"$@\""
        ))
        .arg(BIN)
        .args(args);
    serve_command(command, Stdio::null())
}

/// Starts `command`, a `tinysse` that serves, and waits for the line saying
/// where it listens.
pub fn serve_command(mut command: Command, stdin: Stdio) -> Served {
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, stderr) = mpsc::channel();
    let pipe = BufReader::new(child.stderr.take().unwrap());
    thread::spawn(move || {
        for line in pipe.lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let pid = child.id();
    let mut served = Served {
        child,
        pid,
        addr: "127.0.0.1:0".parse().unwrap(),
        banner: String::new(),
        stderr,
    };
    served.banner = served.next_line("the line saying where it listens");
    // The port of the address it listens on; reached on loopback.
    let port = served
        .banner
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse::<SocketAddr>().ok())
        .map(|addr| addr.port())
        .unwrap_or_else(|| panic!("no address in {:?}", served.banner));
    assert_ne!(port, 0, "{}", served.banner);
    served.addr = SocketAddr::from(([127, 0, 0, 1], port));
    served
}

impl Served {
    /// The next stderr line, waiting at most [`PATIENCE`].
    pub fn next_line(&mut self, what: &str) -> String {
        match self.stderr.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(err) => {
                let status = self.child.try_wait();
                panic!("no stderr line ({what}): {err}; process status {status:?}")
            }
        }
    }

    pub fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.child.stdin.as_mut().unwrap()
    }

    pub fn proc(&self, file: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.pid)).unwrap_or_default()
    }

    /// Open file descriptors now.
    pub fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, |dir| dir.count())
    }

    /// A number from `/proc/PID/status`, such as `Threads` or `VmRSS` (KiB).
    pub fn status(&self, field: &str) -> u64 {
        self.proc("status")
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid))
    }

    /// Waits for a stderr line containing `needle`; returns it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(err) => panic!("no stderr line with {needle:?}: {err}"),
            }
        }
    }

    /// The stderr lines printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}
