//! README.md shows what its commands print. Two kinds of marked blocks are
//! checked here, each against a real server:
//!
//! - `<!-- transcript: NAME -->`: the output of `tinysse listen --raw` while
//!   the commands of the nearest ```sh block above it run, in order
//!   (`serve` and `listen` stay running; each `publish` runs to its end);
//! - `<!-- session: NAME -->`: a terminal session, `$ curl …` lines each
//!   followed by what curl prints. This test plays curl (the options the
//!   README uses, nothing more) on a fresh server, or on the server of an
//!   earlier session with `<!-- session: NAME, continues EARLIER -->`.
//!
//! As in tests/it/protocol_doc.rs, the server's address is written
//! `127.0.0.1:8080` and the run part of ids is numbered in order of
//! appearance on both sides (the README's ids come from another run). A run
//! the README names in a command (`Last-Event-ID: 1795282987199-1`) is
//! replaced with the real run it stands for; one that only appears in a
//! command (an id from "an earlier run") is sent as it is.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Instant;

use crate::protocol_doc::{
    Listen, Served, dispatched, first_difference, normalise_runs_with, opened,
};
use crate::support::{PATIENCE, TestServer, config, connect, read_head, start};

const BIN: &str = env!("CARGO_BIN_EXE_tinysse");
const DOC: &str = "README.md";
/// The address the README's commands use.
const DOC_ADDR: &str = "127.0.0.1:8080";

const TRANSCRIPTS: &[&str] = &["wire"];
const SESSIONS: &[&str] = &["refusals", "resume", "gap"];

#[test]
fn every_marked_block_is_checked() {
    let blocks = blocks();
    let marked = |kind: &str| -> BTreeSet<String> {
        blocks
            .iter()
            .filter(|block| block.kind == kind)
            .map(|block| block.name.clone())
            .collect()
    };
    let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect();
    assert_eq!(
        marked("transcript"),
        names(TRANSCRIPTS),
        "{DOC}: transcripts"
    );
    assert_eq!(marked("session"), names(SESSIONS), "{DOC}: sessions");
}

#[test]
fn transcript_wire() {
    check_transcript("wire");
}

#[test]
fn session_refusals() {
    check_session("refusals");
}

#[test]
fn session_resume() {
    check_session("resume");
}

#[test]
fn session_gap() {
    check_session("gap");
}

// ---------------------------------------------------------------------------
// The README's blocks

/// A marked block: `<!-- KIND: NAME[, continues EARLIER] -->` and the fenced
/// block right after it.
struct Block {
    kind: String,
    name: String,
    continues: Option<String>,
    text: String,
    /// The nearest ```sh block above the marker.
    commands_above: Option<String>,
}

fn blocks() -> Vec<Block> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{DOC}: {err}"));
    let mut found = Vec::new();
    let mut last_sh: Option<String> = None;
    let mut lines = doc.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let at = format!("{DOC}:{}", number + 1);
        if line.starts_with("```") {
            let body = fenced_body(&mut lines, &at);
            if line == "```sh" {
                last_sh = Some(body);
            }
            continue;
        }
        let Some(marker) = line
            .trim()
            .strip_prefix("<!--")
            .and_then(|rest| rest.strip_suffix("-->"))
            .map(str::trim)
        else {
            continue;
        };
        let Some((kind, rest)) = marker.split_once(':') else {
            continue;
        };
        if kind != "transcript" && kind != "session" {
            continue;
        }
        let (name, continues) = match rest.split_once(", continues ") {
            Some((name, earlier)) => (name.trim(), Some(earlier.trim().to_string())),
            None => (rest.trim(), None),
        };
        let fence = lines.next().map(|(_, line)| line);
        assert!(
            fence.is_some_and(|fence| fence.starts_with("```")),
            "{at}: a marker must be followed at once by a fenced block"
        );
        found.push(Block {
            kind: kind.to_string(),
            name: name.to_string(),
            continues,
            text: fenced_body(&mut lines, &at),
            commands_above: last_sh.clone(),
        });
    }
    found
}

fn fenced_body<'a>(lines: &mut impl Iterator<Item = (usize, &'a str)>, at: &str) -> String {
    let mut body = Vec::new();
    loop {
        match lines.next() {
            Some((_, "```")) => return body.join("\n"),
            Some((_, line)) => body.push(line),
            None => panic!("{at}: a fenced block without its closing fence"),
        }
    }
}

fn block(kind: &str, name: &str) -> Block {
    blocks()
        .into_iter()
        .find(|block| block.kind == kind && block.name == name)
        .unwrap_or_else(|| panic!("{DOC} has no `<!-- {kind}: {name} -->` block"))
}

/// Splits shell text into commands of words: whitespace separates words, a
/// newline (outside quotes) or the end ends a command, `#` at the start of a
/// word starts a comment, `\` before a newline continues the line. Quotes:
/// `'…'` as is, and `$'…'` with `\n`, `\\` and `\'`. Anything fancier fails
/// the test, so that the README stays copyable into any shell.
fn shell_commands(text: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
            }
            '\n' | ' ' | '\t' => {
                words.extend(word.take());
                if ch == '\n' && !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            '#' if word.is_none() => {
                while chars.peek().is_some_and(|&next| next != '\n') {
                    chars.next();
                }
            }
            '$' if chars.peek() == Some(&'\'') => {
                chars.next();
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => word.push('\n'),
                            Some(other @ ('\\' | '\'')) => word.push(other),
                            other => panic!("unsupported escape \\{other:?} in $'…' in {text}"),
                        },
                        Some(other) => word.push(other),
                        None => panic!("unclosed $'…' in {text}"),
                    }
                }
            }
            '\'' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(other) => word.push(other),
                        None => panic!("unclosed '…' in {text}"),
                    }
                }
            }
            '"' | '`' | '|' | '<' | '>' | '&' | ';' | '*' | '$' => {
                panic!("{ch:?} is more shell than this test plays: {text}")
            }
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    words.extend(word);
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

// ---------------------------------------------------------------------------
// Transcripts

fn check_transcript(name: &str) {
    let block = block("transcript", name);
    let commands = block
        .commands_above
        .as_deref()
        .map(shell_commands)
        .unwrap_or_else(|| panic!("{DOC}: transcript {name} has no ```sh block above it"));
    let started = Instant::now();
    let mut server: Option<Served> = None;
    let mut listen: Option<Listen> = None;
    let mut published = 0;
    for command in &commands {
        let words: Vec<&str> = command.iter().map(String::as_str).collect();
        let addr = server.as_ref().map(|served| served.addr);
        let addr = || addr.expect("`tinysse serve` comes first");
        match words.as_slice() {
            ["tinysse", "serve", args @ ..] => {
                assert!(
                    !args.contains(&"--listen"),
                    "{words:?}: the test picks the port"
                );
                server = Some(Served::start("127.0.0.1:0", args));
            }
            ["tinysse", "listen", args @ ..] => {
                assert!(
                    args.contains(&"--raw"),
                    "{words:?}: the transcript is --raw"
                );
                let args = with_address(args, addr());
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut started = Listen::start(&args);
                started.wait_for("the stream to open", opened(1));
                listen = Some(started);
            }
            ["tinysse", "publish", args @ ..] => {
                let output = Command::new(BIN)
                    .arg("publish")
                    .args(with_address(args, addr()))
                    .output()
                    .unwrap();
                assert!(
                    output.status.success(),
                    "{words:?}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                published += 1;
            }
            _ => panic!("{DOC}: transcript {name}: this test does not run {words:?}"),
        }
    }
    let mut listen = listen.expect("a `tinysse listen --raw` command");
    listen.wait_for("every event published", dispatched(published));
    let printed = listen
        .finish()
        .replace(&server.unwrap().addr.to_string(), DOC_ADDR);
    compare(
        name,
        &block.text,
        &printed,
        &mut Vec::new(),
        &mut Vec::new(),
    );
    assert!(
        started.elapsed() < PATIENCE,
        "transcript {name} took {:?}",
        started.elapsed()
    );
}

/// `args` with the README's address written as the server's.
fn with_address(args: &[&str], addr: SocketAddr) -> Vec<String> {
    args.iter()
        .map(|arg| arg.replace(DOC_ADDR, &addr.to_string()))
        .collect()
}

/// Checks `printed` against the README's `expected`, each with its runs
/// numbered (in `doc_runs` and `real_runs`, shared across a session).
fn compare(
    name: &str,
    expected: &str,
    printed: &str,
    doc_runs: &mut Vec<String>,
    real_runs: &mut Vec<String>,
) {
    let expected = normalise_runs_with(expected, doc_runs);
    let printed = normalise_runs_with(printed, real_runs);
    assert!(
        expected == printed,
        "{DOC}, `{name}`: the README and what was printed differ{}\n\
         --- the README (normalised) ---\n{expected}\n--- printed (normalised) ---\n{printed}\n",
        first_difference(&expected, &printed)
    );
}

// ---------------------------------------------------------------------------
// Sessions

/// Runs the session `name` (and first the one it continues) on its server.
fn check_session(name: &str) {
    let block = block("session", name);
    let mut state = match &block.continues {
        Some(earlier) => {
            let mut state = Session::new();
            run_session(&self::block("session", earlier), &mut state);
            state
        }
        None => Session::new(),
    };
    run_session(&block, &mut state);
}

/// A server, and the runs seen so far on each side.
struct Session {
    server: TestServer,
    doc_runs: Vec<String>,
    real_runs: Vec<String>,
}

impl Session {
    fn new() -> Session {
        Session {
            server: start(config()),
            doc_runs: Vec::new(),
            real_runs: Vec::new(),
        }
    }
}

fn run_session(block: &Block, state: &mut Session) {
    let mut steps: Vec<(String, Vec<&str>)> = Vec::new();
    // Each line, the empty ones too: a stream's output ends with one.
    for line in block.text.split('\n') {
        match line.strip_prefix("$ ") {
            Some(command) => steps.push((command.to_string(), Vec::new())),
            None => steps
                .last_mut()
                .unwrap_or_else(|| panic!("{DOC}: session {} starts with output", block.name))
                .1
                .push(line),
        }
    }
    for (command, output) in steps {
        let expected = output.join("\n") + "\n";
        // The README's runs in the command, as the real runs they stand for.
        let mut real_command = command.clone();
        for run in runs_in(&command) {
            let known = state.doc_runs.iter().position(|seen| *seen == run);
            match known.and_then(|index| state.real_runs.get(index)) {
                Some(real) => real_command = real_command.replace(&run, real),
                None => {
                    state.doc_runs.push(run.clone());
                    state.real_runs.push(run);
                }
            }
        }
        let words = shell_commands(&real_command);
        let [words] = words.as_slice() else {
            panic!("{DOC}: `$ {command}` is not one command");
        };
        assert_eq!(
            words[0], "curl",
            "{DOC}: this test plays curl only: {command}"
        );
        let printed = curl(&words[1..], state.server.addr, &expected);
        compare(
            &format!("{}: $ {command}", block.name),
            &expected,
            &printed,
            &mut state.doc_runs,
            &mut state.real_runs,
        );
    }
}

/// The runs of the `<run>-<seq>` ids in `text`, in order.
fn runs_in(text: &str) -> Vec<String> {
    let mut runs = Vec::new();
    normalise_runs_with(text, &mut runs);
    runs
}

/// What `curl ARGS` prints against `addr`: `-N`, `-i`, `-d`, `-H` and the
/// URL. A stream (`-N` and no `Content-Length`) is read until it holds as
/// many events (blank lines) as `expected`.
fn curl(args: &[String], addr: SocketAddr, expected: &str) -> String {
    let (mut include_head, mut stream) = (false, false);
    let (mut data, mut headers, mut url) = (Vec::new(), Vec::new(), None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-N" => stream = true,
            "-i" => include_head = true,
            "-d" => data.push(args.next().expect("-d needs a value").clone()),
            "-H" => headers.push(args.next().expect("-H needs a value").clone()),
            url_arg if url_arg.starts_with("http://") => url = Some(url_arg.to_string()),
            other => panic!("this test does not play curl {other}"),
        }
    }
    let url = url.expect("a URL");
    let target = url
        .strip_prefix(&format!("http://{DOC_ADDR}"))
        .unwrap_or_else(|| panic!("{url}: not on {DOC_ADDR}"));
    let body = data.join("&");
    let mut request = format!(
        "{} {target} HTTP/1.1\r\nHost: {DOC_ADDR}\r\nUser-Agent: curl\r\nAccept: */*\r\n",
        if data.is_empty() { "GET" } else { "POST" }
    );
    let has_type = headers
        .iter()
        .any(|header| header.to_ascii_lowercase().starts_with("content-type:"));
    for header in &headers {
        request.push_str(&format!("{header}\r\n"));
    }
    if !data.is_empty() {
        if !has_type {
            request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(&body);

    let mut socket = connect(addr);
    socket.write_all(request.as_bytes()).unwrap();
    let head = read_head(&mut socket);
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().unwrap())
    });
    let mut received = Vec::new();
    match length {
        Some(length) => {
            received.resize(length, 0);
            socket.read_exact(&mut received).unwrap();
        }
        None => {
            assert!(stream, "{url}: a body without a length, and no -N");
            let events = expected.matches("\n\n").count();
            let deadline = Instant::now() + PATIENCE;
            let mut chunk = [0u8; 4096];
            while String::from_utf8_lossy(&received).matches("\n\n").count() < events {
                assert!(Instant::now() < deadline, "{url}: timed out");
                match socket.read(&mut chunk) {
                    Ok(0) => panic!("{url}: the stream ended"),
                    Ok(count) => received.extend_from_slice(&chunk[..count]),
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(err) => panic!("{url}: {err}"),
                }
            }
        }
    }
    let body = String::from_utf8(received).unwrap();
    if include_head {
        head.replace("\r\n", "\n") + &body
    } else {
        body
    }
}
