//! Subscribers that each bring their own token, against a running tinysse:
//! how fast they connect, and how late a shared topic's events reach them.
//! `scripts/bench-jwt` runs it against `--jwt-key-file` (a signed token per
//! subscriber) and against `--subscribe-token` (one shared secret).
//!
//! ```sh
//! cargo run --release --example token_bench -- --url http://127.0.0.1:8080 \
//!     --tokens tokens.txt --publish-token SECRET --topic shared
//! ```
//!
//! `--tokens FILE` holds one subscriber token per line (as many subscribers
//! as lines). Each subscriber opens `GET /events` with
//! `Authorization: Bearer` and its token, 32 at a time; they all leave and
//! connect again, `--connect-rounds` times in all [5] (connects/s is the
//! median round's). Then one publisher posts `--rate` events per second
//! [100] for `--duration` seconds [10] on `--topic`, each carrying its send
//! time, and every subscriber notes how late each one arrives. Prints one
//! line: connects/s, delivered, p50, p99.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Subscribers connecting at once.
const CONNECTING: usize = 32;

fn main() {
    if let Err(err) = run() {
        eprintln!("token_bench: {err}");
        std::process::exit(2);
    }
}

/// Microseconds since the Unix epoch: the clock the events carry.
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut tokens, mut publish_token, mut topic) = (None, None, None, None);
    let (mut rate, mut seconds, mut rounds) = (100.0, 10.0, 5usize);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: {value:?} is not a number");
        match flag.as_str() {
            "--url" => url = Some(value),
            "--tokens" => tokens = Some(value),
            "--publish-token" => publish_token = Some(value),
            "--topic" => topic = Some(value),
            "--rate" => rate = value.parse().map_err(|_| bad())?,
            "--duration" => seconds = value.parse().map_err(|_| bad())?,
            "--connect-rounds" => rounds = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let url = url.ok_or("--url http://HOST:PORT is required")?;
    let addr: SocketAddr = url
        .strip_prefix("http://")
        .ok_or("--url must start with http://")?
        .trim_end_matches('/')
        .to_socket_addrs()
        .map_err(|err| format!("--url: {err}"))?
        .next()
        .ok_or("--url: no address")?;
    let tokens = std::fs::read_to_string(tokens.ok_or("--tokens FILE is required")?)
        .map_err(|err| format!("--tokens: {err}"))?;
    let tokens: Vec<String> = tokens.lines().map(str::to_string).collect();
    let publish_token = publish_token.ok_or("--publish-token is required")?;
    let topic = topic.ok_or("--topic is required")?;

    // Connect all, `rounds` times; the streams of the last round stay.
    let tokens = Arc::new(tokens);
    let mut rates = Vec::new();
    let mut streams = Vec::new();
    for round in 0..rounds.max(1) {
        let started = Instant::now();
        streams = connect_all(addr, &tokens)?;
        rates.push(streams.len() as f64 / started.elapsed().as_secs_f64());
        if round + 1 < rounds {
            drop(std::mem::take(&mut streams));
            wait_for_no_subscribers(addr)?;
        }
    }
    rates.sort_by(f64::total_cmp);
    let connects_per_second = rates[rates.len() / 2];

    // Read: one thread per subscriber, each noting every event's lateness.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            let latencies = Arc::clone(&latencies);
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut mine = Vec::new();
                    let mut lines = BufReader::new(stream).lines();
                    while let Some(Ok(line)) = lines.next() {
                        if line == "data: end" {
                            break;
                        }
                        if let Some(sent) = line.strip_prefix("data: ") {
                            let sent: u64 = sent.parse().unwrap_or(u64::MAX);
                            mine.push(now_micros().saturating_sub(sent));
                        }
                    }
                    latencies.lock().unwrap().extend(mine);
                })
                .expect("a reader thread")
        })
        .collect();
    let subscribers = readers.len();

    // Publish at the rate, then "end", which stops every reader.
    let mut publisher = Publisher::connect(addr, &publish_token, &topic)?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let count = (rate * seconds) as usize;
    let begin = Instant::now();
    for index in 0..count {
        let due = begin + interval * index as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        publisher.publish(&now_micros().to_string())?;
    }
    publisher.publish("end")?;
    for reader in readers {
        reader.join().map_err(|_| "a reader panicked")?;
    }
    let mut latencies = Arc::try_unwrap(latencies).unwrap().into_inner().unwrap();
    latencies.sort_unstable();
    let at = |quantile: f64| {
        let index =
            ((latencies.len() as f64 * quantile) as usize).min(latencies.len().saturating_sub(1));
        latencies
            .get(index)
            .map_or(f64::NAN, |&micros| micros as f64 / 1000.0)
    };
    println!(
        "{subscribers} subscribers: {:.0} connects/s, delivered {:.1}%, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        connects_per_second,
        latencies.len() as f64 * 100.0 / (count * subscribers) as f64,
        at(0.50),
        at(0.99),
        at(1.0),
    );
    Ok(())
}

/// Opens a subscription per token, `CONNECTING` at a time.
fn connect_all(addr: SocketAddr, tokens: &Arc<Vec<String>>) -> Result<Vec<TcpStream>, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let connectors: Vec<_> = (0..CONNECTING)
        .map(|_| {
            let (next, tokens) = (Arc::clone(&next), Arc::clone(tokens));
            thread::spawn(move || -> Result<Vec<TcpStream>, String> {
                let mut streams = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(token) = tokens.get(index) else {
                        return Ok(streams);
                    };
                    streams.push(open(addr, token)?);
                }
            })
        })
        .collect();
    let mut streams = Vec::new();
    for connector in connectors {
        streams.extend(connector.join().map_err(|_| "a connector panicked")??);
    }
    Ok(streams)
}

/// Waits (at most 10 s) until the server's `/metrics` counts no subscriber.
fn wait_for_no_subscribers(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mut stream = TcpStream::connect(addr).map_err(|err| format!("connect: {err}"))?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .map_err(|err| format!("write: {err}"))?;
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        if text.lines().any(|line| line == "tinysse_subscribers 0") {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err("the subscribers did not leave within 10 s".into())
}

/// Opens a subscription with `token` and reads its head: a `200` or an error.
fn open(addr: SocketAddr, token: &str) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(addr).map_err(|err| format!("connect: {err}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|err| err.to_string())?;
    let request = format!(
        "GET /events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|err| format!("write: {err}"))?;
    // The head, byte by byte, so nothing of the stream is read past it.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return Err("the server closed the stream before its head".into()),
        }
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(format!("refused: {}", String::from_utf8_lossy(&head)));
    }
    Ok(stream)
}

/// One keep-alive publishing connection.
struct Publisher {
    stream: TcpStream,
    head: String,
}

impl Publisher {
    fn connect(addr: SocketAddr, token: &str, topic: &str) -> Result<Publisher, String> {
        let stream = TcpStream::connect(addr).map_err(|err| format!("connect: {err}"))?;
        stream.set_nodelay(true).map_err(|err| err.to_string())?;
        let head = format!(
            "POST /publish?topic={topic} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: text/plain\r\n"
        );
        Ok(Publisher { stream, head })
    }

    /// Publishes `data` and waits for the `200`.
    fn publish(&mut self, data: &str) -> Result<(), String> {
        let request = format!("{}Content-Length: {}\r\n\r\n{data}", self.head, data.len());
        self.stream
            .write_all(request.as_bytes())
            .map_err(|err| format!("write: {err}"))?;
        // The answer: a head with Content-Length, then the id.
        let mut answer = Vec::new();
        let mut buffer = [0u8; 1024];
        loop {
            let count = self
                .stream
                .read(&mut buffer)
                .map_err(|err| format!("read: {err}"))?;
            if count == 0 {
                return Err("the server closed the publishing connection".into());
            }
            answer.extend_from_slice(&buffer[..count]);
            let text = String::from_utf8_lossy(&answer);
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            let length: usize = text[..end]
                .lines()
                .find_map(|line| line.strip_prefix("Content-Length: "))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            if answer.len() < end + 4 + length {
                continue;
            }
            if !text.starts_with("HTTP/1.1 200") {
                return Err(format!("publish refused: {text}"));
            }
            break;
        }
        Ok(())
    }
}
