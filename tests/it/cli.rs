//! The `tinysse` binary (SPEC §3): help, flag errors, serving on a port it
//! reports, `--stdin`, `--token-file`, and no subcommand meaning `serve`.
//!
//! Every child process is killed when its test ends, passed or failed
//! ([`Served`] kills in `Drop`), and every wait is bounded.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::support::{
    BIN, Finished, PATIENCE, Served, publish, raw, run_to_end, serve_command, subscribe,
};

/// Runs the binary with `args` to its end (killed after [`PATIENCE`]).
fn run(args: &[&str]) -> Finished {
    let mut command = Command::new(BIN);
    command.args(args);
    run_to_end(command, PATIENCE)
}

/// Starts the binary with `args` and waits for the line saying where it listens.
fn serve(args: &[&str], stdin: Stdio) -> Served {
    let mut command = Command::new(BIN);
    command.args(args);
    serve_command(command, stdin)
}

fn healthz(addr: SocketAddr) -> (u16, String) {
    let response = raw(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    (response.status, response.text())
}

/// Every flag on the `tinysse serve` line of SPEC §3.
const SERVE_FLAGS: &[&str] = &[
    "--listen",
    "--token",
    "--token-file",
    "--subscribe-token",
    "--history",
    "--history-bytes",
    "--heartbeat",
    "--retry",
    "--max-subscribers",
    "--max-body",
    "--write-timeout",
    "--cors-origin",
    "--stdin",
    "--stdin-topic",
    "--stdin-event",
    "--quiet",
];

#[test]
fn help_exits_0_with_usage() {
    let finished = run(&["--help"]);
    assert!(finished.status.success(), "{}", finished.stderr);
    assert!(finished.stdout.contains("Usage"), "{}", finished.stdout);
    assert!(finished.stdout.contains("serve"), "{}", finished.stdout);
}

#[test]
fn version_prints_the_crate_version() {
    for flag in ["--version", "-V"] {
        let finished = run(&[flag]);
        assert!(finished.status.success(), "{flag}: {}", finished.stderr);
        assert_eq!(
            finished.stdout,
            format!("tinysse {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
        assert_eq!(finished.stderr, "", "{flag}");
    }
    assert!(run(&["--help"]).stdout.contains("--version"));
}

#[test]
fn serve_help_lists_every_flag() {
    let finished = run(&["serve", "--help"]);
    assert!(finished.status.success(), "{}", finished.stderr);
    for flag in SERVE_FLAGS {
        let listed = finished
            .stdout
            .split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == ',')
            .any(|word| word == *flag);
        assert!(listed, "{flag} missing from:\n{}", finished.stdout);
    }
}

#[test]
fn unknown_flags_and_bad_values_exit_2_with_one_line() {
    for args in [
        &["serve", "--no-such-flag"][..],
        &["serve", "--history", "five"],
        &["serve", "--listen", "nonsense"],
        &["serve", "--max-body", "4MB"],
        &["serve", "--history"],
        &["--history", "five"],
        &["--no-such-flag"],
        &["no-such-command"],
    ] {
        let finished = run(args);
        assert_eq!(
            finished.status.code(),
            Some(2),
            "{args:?}: {}",
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
    }
}

#[test]
fn serve_prints_where_it_listens_and_answers_healthz() {
    let mut served = serve(&["serve", "--listen", "127.0.0.1:0"], Stdio::null());
    assert!(served.banner.contains("demo"), "{}", served.banner);
    assert_eq!(healthz(served.addr), (200, "ok\n".to_string()));
    assert!(served.still_running());
}

#[test]
fn low_open_files_limit_gets_a_warning_at_startup() {
    // 1024 subscribers + 64 other connections do not fit in 256 descriptors.
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "ulimit -n 256 && exec \"$0\" \"$@\"",
        BIN,
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    let mut served = serve_command(command, Stdio::null());
    let warning = served.wait_for_line("open-files limit");
    assert!(
        warning.contains("is 256") && warning.contains("ulimit -n"),
        "{warning}"
    );
    assert_eq!(healthz(served.addr), (200, "ok\n".to_string()));

    let mut command = Command::new("sh");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--max-subscribers",
        "100",
    ];
    command
        .args(["-c", "ulimit -n 256 && exec \"$0\" \"$@\"", BIN])
        .args(args);
    let mut served = serve_command(command, Stdio::null());
    // No warning: the next line is the first subscriber's arrival.
    let _subscriber = subscribe(served.addr, "/events", "");
    let line = served.next_line("the arrival line");
    assert!(line.contains("arrived"), "{line}");
}

#[test]
fn a_non_loopback_address_without_a_token_gets_a_publish_warning() {
    let mut served = serve(&["serve", "--listen", "0.0.0.0:0"], Stdio::null());
    let warning = served.wait_for_line("POST /publish answers 403");
    assert!(
        warning.contains("0.0.0.0") && warning.contains("set --token"),
        "{warning}"
    );
    for args in [
        &["serve", "--listen", "0.0.0.0:0", "--token", "t"][..],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let mut served = serve(args, Stdio::null());
        // No warning: the next line is the first subscriber's arrival.
        let _subscriber = subscribe(served.addr, "/events", "");
        let line = served.next_line("the arrival line");
        assert!(line.contains("arrived"), "{args:?}: {line}");
    }
}

#[test]
fn no_subcommand_serves_like_serve() {
    let served = serve(&["--listen", "127.0.0.1:0"], Stdio::null());
    assert_eq!(healthz(served.addr), (200, "ok\n".to_string()));
    let mut subscriber = subscribe(served.addr, "/events?topic=t", "");
    let (status, _) = publish(served.addr, "?topic=t", None, b"hello");
    assert_eq!(status, 200);
    assert_eq!(subscriber.next_event().data, "hello");
}

#[test]
fn stdin_lines_become_events_then_eof_keeps_serving() {
    let mut served = serve(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--stdin",
            "--stdin-topic",
            "logs",
        ],
        Stdio::piped(),
    );
    let mut subscriber = subscribe(served.addr, "/events?topic=logs", "");
    let mut other = subscribe(served.addr, "/events?topic=other", "");
    // An empty line, or one of only spaces and tabs, is not an event; CRLF
    // ends a line like LF.
    served
        .stdin()
        .write_all(b"first line\n\n \t \nsecond line\r\n")
        .unwrap();
    served.stdin().flush().unwrap();
    let events = subscriber.events(2);
    assert_eq!(
        events
            .iter()
            .map(|event| (event.event.as_str(), event.data.as_str()))
            .collect::<Vec<_>>(),
        [("message", "first line"), ("message", "second line")]
    );

    // EOF: the process reads it (and says so), and keeps serving.
    drop(served.child.stdin.take());
    served.wait_for_line("standard input");
    assert!(served.still_running(), "the server exited at EOF");
    assert_eq!(healthz(served.addr), (200, "ok\n".to_string()));
    let (status, _) = publish(served.addr, "?topic=logs", None, b"after eof");
    assert_eq!(status, 200);
    assert_eq!(subscriber.next_event().data, "after eof");
    let (status, _) = publish(served.addr, "?topic=other", None, b"other topic");
    assert_eq!(status, 200);
    // The stdin events went to `logs` only.
    assert_eq!(other.next_event().data, "other topic");
    assert!(served.still_running());
}

/// A file removed when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn token_file_with_a_trailing_newline_is_the_token() {
    let file =
        TempFile(std::env::temp_dir().join(format!("tinysse-cli-token-{}", std::process::id())));
    std::fs::write(&file.0, "s3cret\n").unwrap();
    let served = serve(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            file.0.to_str().unwrap(),
        ],
        Stdio::null(),
    );
    let post = |authorization: &str| {
        let request = format!(
            "POST /publish?topic=t HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{authorization}Content-Length: 2\r\n\r\nhi"
        );
        raw(served.addr, request.as_bytes()).status
    };
    assert_eq!(post("Authorization: Bearer s3cret\r\n"), 200);
    assert_eq!(post(""), 401);
    assert_eq!(
        post("Authorization: Bearer s3cret \r\n"),
        200,
        "OWS is not part of the value"
    );
    assert_eq!(post("Authorization: Bearer s3cre\r\n"), 401);
}

/// A port on 127.0.0.1 that nothing listens on right now, for a server
/// that does not print where it listens (`--quiet`).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the process `pid` has a thread named `name` (Linux: /proc).
fn has_thread(pid: u32, name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
    })
}

/// `--quiet` logs errors only (SPEC §3): no startup line, no warning, no
/// subscriber arriving or leaving, no "standard input ended". With
/// `logread -f | tinysse serve --stdin --quiet`, any of them would go to the
/// system log and back into the stream.
#[test]
fn quiet_prints_nothing_but_errors() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // A low open-files limit, which would get a warning without --quiet.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -n 256 && exec \"$0\" \"$@\"", BIN])
        .args(["serve", "--listen", &listen, "--quiet", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let addr: SocketAddr = listen.parse().unwrap();
    crate::support::wait_until("the quiet server answers", || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    assert_eq!(healthz(addr), (200, "ok\n".to_string()));
    let mut subscriber = subscribe(addr, "/events", "");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"a log line\n").unwrap();
    assert_eq!(subscriber.next_event().data, "a log line");
    drop(subscriber);
    crate::support::wait_until("the subscriber has left", || {
        crate::support::metric(addr, "tinysse_subscribers") == 0
    });
    drop(stdin);
    crate::support::wait_until("standard input has been read to its end", || {
        !has_thread(child.id(), "tinysse-stdin")
    });
    assert_eq!(healthz(addr), (200, "ok\n".to_string()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(stderr.join().unwrap(), "", "--quiet printed lines");

    // An error is still printed: standard input that cannot be read.
    let directory = std::fs::File::open("/").unwrap();
    let mut served = Command::new(BIN);
    served.args(["serve", "--listen", "127.0.0.1:0", "--quiet", "--stdin"]);
    let mut child = served
        .stdin(directory)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, lines) = mpsc::channel();
    let pipe = BufReader::new(child.stderr.take().unwrap());
    thread::spawn(move || {
        for line in pipe.lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let first = lines.recv_timeout(PATIENCE);
    child.kill().unwrap();
    child.wait().unwrap();
    let first = first.expect("an error line on stderr");
    assert!(
        first.starts_with("tinysse: error: reading standard input: "),
        "{first:?}"
    );
}

/// `--listen localhost:PORT` listens on the first address `localhost`
/// resolves to (a loopback one); `--listen :PORT` on every IPv4 address,
/// with the rules of a non-loopback address (publishing needs a token).
#[test]
fn listen_accepts_localhost_and_a_port_alone() {
    let served = serve(&["serve", "--listen", "localhost:0"], Stdio::null());
    let shown: SocketAddr = served
        .banner
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no address in {:?}", served.banner));
    assert!(shown.ip().is_loopback(), "{}", served.banner);
    assert_eq!(healthz(shown), (200, "ok\n".to_string()));

    let mut served = serve(&["serve", "--listen", ":0"], Stdio::null());
    assert!(
        served.banner.contains("listening on http://0.0.0.0:"),
        "{}",
        served.banner
    );
    served.wait_for_line("POST /publish answers 403");
    assert_eq!(healthz(served.addr), (200, "ok\n".to_string()));
}
