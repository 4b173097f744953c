//! A load generator for a running tinysse: N subscribers, a publish rate, T
//! seconds. It reports deliveries per second, latency percentiles and losses,
//! and, given the server's pid, its memory, threads and CPU.
//!
//! ```sh
//! tinysse serve --max-subscribers 2000 & SERVER=$!
//! cargo run --release --example bench -- --subs 1000 --rate 100 --duration 10 --pid $SERVER
//! ```
//!
//! With several CPUs, give the server and the generator one each
//! (`taskset -c 0 tinysse …`, `taskset -c 1 target/release/examples/bench …`).
//!
//! Event data is `<seq>-<ns>-xxx…`: a sequence number and when it was sent,
//! on a clock the subscribers share (they are threads of this process), so a
//! latency runs from just before the `POST` to the `read` that brought the
//! event in. Subscribers parse their raw `GET /events` with [`tinysse::Parser`].
//!
//! A load generator short of CPU reports its own delays as the server's: this
//! one measures its CPU too, and says when it, or the server, was the limit.

// Implementation notes
// --------------------
//
// * Readers. `--readers K` threads (one by default) share the subscribers. A
//   reader with several sockets sets them non-blocking and reads, in sweeps
//   with a short pause between them, those whose subscriber lacks an event
//   the publisher has sent: std has no `poll`, and reading only those keeps an
//   idle reader from spinning. With one socket each (`--readers N`), a reader
//   blocks in `read`. Measured on a 2-core VM, server and generator on a CPU
//   each: threads cost the generator more (100 subscribers at 1000 events/s:
//   58% of a core against 36%) and the server too, which wakes them: with
//   5000 subscribers at 100 events/s it delivered about 200k events/s to
//   threads, and all 500k/s to one sweeping reader. More sweeping readers on
//   one CPU only slow the publisher down.
// * A latency includes the time a reader takes to come round to the socket:
//   at most a pause and a sweep (about 0.2 ms more with 100 subscribers).
// * Memory is sampled before connecting and with the idle subscribers
//   connected, before any reader thread exists; this process's own growth is
//   taken out of the system figure.
// * Bounds: connecting stops after `CONNECT_PHASE`, publishing after
//   `--duration`, draining after `DRAIN_LIMIT`; sockets have timeouts; every
//   thread is joined. Nothing raises limits (std cannot): if a socket cannot
//   be opened, the run goes on with those open and says why.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::exit;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tinysse::http::percent_encode;
use tinysse::{Message, Parser};

const USAGE: &str = "\
usage: bench [options]   (a load generator for a running tinysse)
  --url URL         the server's address (http://127.0.0.1:8080)
  --subs N          subscribers (100)
  --rate R          events published per second (100)
  --duration SECS   seconds of publishing (10)
  --payload BYTES   bytes of data per event (64)
  --topic T         topic to subscribe and publish on (bench)
  --pid PID         the server's process: report its memory, threads and CPU
  --token T         sent as Authorization: Bearer T, to publish and subscribe
  --readers K       threads reading the subscribers (1; N: one thread each)
  --json            print one JSON line instead of text";

/// The largest `--payload`: more than any server takes by default (64 KiB).
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// Longest time spent opening subscribers; the run goes on with those open.
const CONNECT_PHASE: Duration = Duration::from_secs(60);
/// Longest wait to connect, for a response head, or for a publish answer.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// After publishing, stop waiting for deliveries once all arrived, nothing
/// arrived for `DRAIN_IDLE`, or `DRAIN_LIMIT` passed.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
const DRAIN_IDLE: Duration = Duration::from_secs(1);
/// A sweeping reader's pause between two sweeps over its sockets.
const SWEEP_PAUSE: Duration = Duration::from_micros(200);
/// How often a blocking reader looks whether it should stop.
const BLOCKING_READ: Duration = Duration::from_millis(100);
/// Time for the server's new threads to settle before memory is sampled.
const SETTLE: Duration = Duration::from_millis(300);
/// How often the server's RSS and threads are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Missing sequence numbers remembered per subscriber, to tell a late event
/// from a duplicate.
const MAX_MISSING: u64 = 1024;
/// `/proc/PID/stat` counts CPU time in ticks of `USER_HZ`, 100 on Linux
/// (std cannot ask `sysconf`).
const TICKS_PER_SECOND: f64 = 100.0;
/// The `errno` of "too many open files" on Linux, and how many subscribers
/// to close when it comes, so that the run has files to go on with.
const EMFILE: i32 = 24;
const SPARE_FILES: usize = 16;

struct Options {
    events: Target,
    publish: Target,
    subs: usize,
    rate: f64,
    duration: Duration,
    payload: usize,
    pid: Option<String>,
    token: Option<String>,
    readers: usize,
    json: bool,
}

fn parse_options(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let (mut url, mut topic) = ("http://127.0.0.1:8080".to_string(), "bench".to_string());
    let (mut subs, mut rate, mut duration, mut payload) = (100, 100.0, 10.0, 64);
    let (mut pid, mut token, mut readers, mut json) = (None, None, None, false);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                exit(0);
            }
            "--json" => json = true,
            "--url" => url = value()?,
            "--topic" => topic = value()?,
            "--token" => token = Some(value()?),
            "--subs" => subs = count(&flag, &value()?)?,
            "--rate" => rate = positive(&flag, &value()?)?,
            "--duration" => duration = positive(&flag, &value()?)?,
            "--payload" => payload = count(&flag, &value()?)?,
            "--pid" => pid = Some(count(&flag, &value()?)?.to_string()),
            "--readers" => readers = Some(count(&flag, &value()?)?),
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    if payload > MAX_PAYLOAD {
        return Err(format!("--payload: at most {MAX_PAYLOAD} bytes"));
    }
    let authority = url
        .strip_prefix("http://")
        .map(|rest| rest.strip_suffix('/').unwrap_or(rest))
        .filter(|authority| !authority.is_empty() && !authority.contains(['/', '?', '@']))
        .ok_or(format!(
            "--url {url:?}: give the server's address, like http://127.0.0.1:8080"
        ))?;
    let at = |path: &str| Target {
        authority: authority.to_string(),
        path: path.into(),
    };
    Ok(Options {
        events: at("/events").with_query(&[("topic", &topic)]),
        publish: at("/publish").with_query(&[("topic", &topic)]),
        subs,
        rate,
        duration: Duration::try_from_secs_f64(duration)
            .map_err(|err| format!("--duration: {err}"))?,
        payload,
        pid,
        token,
        readers: readers.unwrap_or(1).min(subs),
        json,
    })
}

fn positive(flag: &str, text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(number) if number > 0.0 && number.is_finite() => Ok(number),
        _ => Err(format!("{flag}: {text:?} is not a positive number")),
    }
}

fn count(flag: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(format!("{flag}: {text:?} is not a positive whole number")),
    }
}

/// What the readers and the publisher share.
struct Shared {
    /// Every timestamp is in nanoseconds since this instant.
    epoch: Instant,
    /// Set once, when the readers and the sampler should finish.
    stop: AtomicBool,
    /// Events the publisher has started to send: sequence numbers below this.
    sent: AtomicU64,
    /// Events received for the first time, all subscribers together.
    unique: AtomicU64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// Everything a run measured, for the report.
struct Run {
    connected: usize,
    connect_secs: f64,
    connect_error: Option<io::Error>,
    published: Published,
    tally: Tally,
    /// Before connecting, with the subscribers connected, at the end.
    memory: [Memory; 3],
    peak_rss: Option<u64>,
    peak_threads: Option<u64>,
    /// Percent of one core, each, from the start of publishing to the end.
    bench_cpu: Option<f64>,
    server_cpu: Option<f64>,
}

fn main() {
    let options = parse_options(std::env::args().skip(1)).unwrap_or_else(|message| {
        eprintln!("bench: {message} (see --help)");
        exit(2);
    });
    let run = run(&options);
    report(&options, &run).print();
}

fn run(options: &Options) -> Run {
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        unique: AtomicU64::new(0),
    });
    let pid = options.pid.as_deref();

    // 1. Subscribers connect one at a time: none waits in the listen backlog.
    let before = Memory::sample(pid);
    let connecting = Instant::now();
    let accept = "Accept: text/event-stream\r\n\r\n";
    let request = request_head("GET", &options.events, &options.token, accept);
    let (mut subscribers, mut connect_error) = (Vec::new(), None);
    while subscribers.len() < options.subs && connecting.elapsed() < CONNECT_PHASE {
        match open_stream(&options.events, &request) {
            Ok(subscriber) => subscribers.push(subscriber),
            Err(err) => {
                if err.raw_os_error() == Some(EMFILE) {
                    // Leave files for the publisher's socket and for /proc.
                    subscribers.truncate(subscribers.len().saturating_sub(SPARE_FILES));
                }
                connect_error = Some(err);
                break;
            }
        }
    }
    let (connected, connect_secs) = (subscribers.len(), connecting.elapsed().as_secs_f64());
    if let (0, Some(err)) = (connected, &connect_error) {
        let url = format!("http://{}{}", options.events.authority, options.events.path);
        eprintln!("bench: cannot subscribe at {url}: {err}");
        exit(1);
    }
    thread::sleep(SETTLE);
    let with_subscribers = Memory::sample(pid);

    // 2. Readers and a sampler; the publisher runs on this thread.
    let mut groups: Vec<Vec<Subscriber>> = (0..options.readers).map(|_| Vec::new()).collect();
    for (index, subscriber) in subscribers.into_iter().enumerate() {
        groups[index % options.readers].push(subscriber);
    }
    let readers: Vec<_> = groups
        .into_iter()
        .map(|group| {
            let shared = Arc::clone(&shared);
            let builder = thread::Builder::new().stack_size(64 * 1024);
            builder.spawn(move || read_streams(group, &shared))
        })
        .collect::<Result<_, _>>()
        .expect("a thread for each reader (try fewer --readers)");
    let sampler = {
        let (shared, pid) = (Arc::clone(&shared), options.pid.clone());
        thread::spawn(move || sample_peaks(pid.as_deref(), &shared))
    };
    let cpu_before = [cpu_seconds("self"), pid.and_then(cpu_seconds)];
    let published = publish(options, &shared);

    // 3. Wait for the last deliveries, then stop everything.
    let expected = published.ok * connected as u64;
    let draining = Instant::now();
    let (mut last_unique, mut last_progress) = (0, Instant::now());
    while shared.unique.load(Ordering::Relaxed) < expected && draining.elapsed() < DRAIN_LIMIT {
        let unique = shared.unique.load(Ordering::Relaxed);
        if unique != last_unique {
            (last_unique, last_progress) = (unique, Instant::now());
        } else if last_progress.elapsed() > DRAIN_IDLE {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let run_secs = (shared.now_ns() - published.started_ns) as f64 / 1e9;
    let cpu_after = [cpu_seconds("self"), pid.and_then(cpu_seconds)];
    shared.stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for reader in readers {
        tally.merge(reader.join().expect("a reader finished"));
    }
    let (peak_rss, peak_threads) = sampler.join().expect("the sampler finished");
    let percent = |index: usize| Some((cpu_after[index]? - cpu_before[index]?) / run_secs * 100.0);
    Run {
        connected,
        connect_secs,
        connect_error,
        published,
        tally,
        memory: [before, with_subscribers, Memory::sample(pid)],
        peak_rss,
        peak_threads,
        bench_cpu: percent(0),
        server_cpu: percent(1),
    }
}

/// One subscriber's stream and what it has seen.
struct Subscriber {
    stream: TcpStream,
    parser: Parser,
    /// Body bytes that came in with the response head.
    early: Vec<u8>,
    seen: Seen,
    /// Events received for the first time.
    unique: u64,
    open: bool,
}

/// Opens `GET /events` and reads the response head: `200` and `text/event-stream`.
/// Where a request goes: `host:port` and the request target.
#[derive(Debug, Clone)]
struct Target {
    authority: String,
    path: String,
}

impl Target {
    /// The same target with `pairs` added to its query.
    fn with_query(&self, pairs: &[(&str, &str)]) -> Target {
        let mut path = self.path.clone();
        for (name, value) in pairs {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&format!(
                "{}={}",
                percent_encode(name),
                percent_encode(value)
            ));
        }
        Target {
            authority: self.authority.clone(),
            path,
        }
    }
}

fn open_stream(target: &Target, request: &[u8]) -> io::Result<Subscriber> {
    let mut stream = connect(target)?;
    stream.write_all(request)?;
    let (mut head, mut chunk) = (Vec::new(), [0; 4096]);
    let end = loop {
        if let Some(end) = head.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let count = stream.read(&mut chunk).map_err(|err| match err.kind() {
            io::ErrorKind::WouldBlock => io::Error::other("no answer within 5 s"),
            _ => err,
        })?;
        if count == 0 || head.len() > 16 * 1024 {
            return Err(io::Error::other(
                "the server closed the connection unanswered",
            ));
        }
        head.extend_from_slice(&chunk[..count]);
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let lowercase = text.to_ascii_lowercase();
    if !lowercase.starts_with("http/1.1 200")
        || !lowercase.contains("\ncontent-type: text/event-stream")
    {
        let status_line = text.lines().next().unwrap_or_default();
        return Err(io::Error::other(format!(
            "not an event stream: {status_line}"
        )));
    }
    Ok(Subscriber {
        stream,
        parser: Parser::new(),
        early: head[end..].to_vec(),
        seen: Seen::default(),
        unique: 0,
        open: true,
    })
}

fn connect(target: &Target) -> io::Result<TcpStream> {
    let mut addresses = target.authority.to_socket_addrs()?;
    let address = addresses.next().ok_or(io::Error::other("no address"))?;
    let stream = TcpStream::connect_timeout(&address, SOCKET_TIMEOUT)?;
    stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A request line and headers; `rest` ends the head (and may add headers).
fn request_head(method: &str, target: &Target, token: &Option<String>, rest: &str) -> Vec<u8> {
    let (path, host) = (&target.path, &target.authority);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str(rest);
    head.into_bytes()
}

/// The sequence numbers one subscriber has seen, to tell new from repeated.
#[derive(Default)]
struct Seen {
    /// One past the highest sequence number seen.
    next: u64,
    /// Numbers below `next` that have not arrived, the newest `MAX_MISSING`.
    missing: BTreeSet<u64>,
}

enum Arrival {
    InOrder,
    /// After a higher sequence number.
    Late,
    Duplicate,
}

impl Seen {
    fn arrive(&mut self, seq: u64) -> Arrival {
        if seq < self.next {
            return match self.missing.remove(&seq) {
                true => Arrival::Late,
                false => Arrival::Duplicate,
            };
        }
        let skipped = self.next.max(seq.saturating_sub(MAX_MISSING))..seq;
        self.missing.extend(skipped);
        while self.missing.len() > MAX_MISSING as usize {
            self.missing.pop_first();
        }
        self.next = seq + 1;
        Arrival::InOrder
    }
}

/// What the readers saw, added up.
#[derive(Default)]
struct Tally {
    unique: u64,
    duplicates: u64,
    late: u64,
    gaps: u64,
    /// Events that are not this run's: someone else publishes on the topic.
    foreign: u64,
    closed: u64,
    /// `read` calls, and those that found nothing to read yet.
    reads: u64,
    empty_reads: u64,
    last_delivery_ns: u64,
    latency: Histogram,
    unique_per_subscriber: Vec<u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.unique += other.unique;
        self.duplicates += other.duplicates;
        self.late += other.late;
        self.gaps += other.gaps;
        self.foreign += other.foreign;
        self.closed += other.closed;
        self.reads += other.reads;
        self.empty_reads += other.empty_reads;
        self.last_delivery_ns = self.last_delivery_ns.max(other.last_delivery_ns);
        self.latency.merge(&other.latency);
        self.unique_per_subscriber
            .extend(other.unique_per_subscriber);
    }
}

/// Reads `subscribers` until told to stop: one socket blocking, several in
/// sweeps over those that lack an event the publisher has sent.
fn read_streams(mut subscribers: Vec<Subscriber>, shared: &Shared) -> Tally {
    let alone = subscribers.len() == 1;
    let mut tally = Tally::default();
    let (mut buffer, mut messages) = (vec![0; 8 * 1024], Vec::new());
    for subscriber in &mut subscribers {
        let stream = &subscriber.stream;
        let set_up = stream
            .set_nonblocking(!alone)
            .and(stream.set_read_timeout(Some(BLOCKING_READ)));
        subscriber.open = set_up.is_ok();
        // Only the opening `retry:` comes before the first publish.
        let _ = subscriber.parser.feed(&subscriber.early, &mut messages);
        messages.clear();
    }
    while !shared.stop.load(Ordering::Relaxed) {
        let sent = shared.sent.load(Ordering::Relaxed);
        for subscriber in &mut subscribers {
            if subscriber.open && (alone || subscriber.seen.next < sent) {
                read_once(subscriber, &mut buffer, &mut messages, &mut tally, shared);
            }
        }
        if !alone {
            thread::sleep(SWEEP_PAUSE);
        }
    }
    tally.unique_per_subscriber = subscribers
        .iter()
        .map(|subscriber| subscriber.unique)
        .collect();
    tally
}

/// One `read` from a subscriber's socket, and the events it completed.
fn read_once(
    subscriber: &mut Subscriber,
    buffer: &mut [u8],
    messages: &mut Vec<Message>,
    tally: &mut Tally,
    shared: &Shared,
) {
    tally.reads += 1;
    let count = match subscriber.stream.read(buffer) {
        Ok(count) => count,
        // Nothing yet (or, blocking, nothing for `BLOCKING_READ`).
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
            tally.empty_reads += 1;
            return;
        }
        Err(err) if err.kind() == io::ErrorKind::Interrupted => return,
        Err(_) => 0,
    };
    if count == 0 {
        (subscriber.open, tally.closed) = (false, tally.closed + 1);
        return;
    }
    let received_ns = shared.now_ns();
    let unique_before = tally.unique;
    let _ = subscriber.parser.feed(&buffer[..count], messages);
    for message in messages.drain(..) {
        record(&message, received_ns, subscriber, tally);
    }
    let new = tally.unique - unique_before;
    shared.unique.fetch_add(new, Ordering::Relaxed);
}

fn record(message: &Message, received_ns: u64, subscriber: &mut Subscriber, tally: &mut Tally) {
    if message.event == "gap" {
        tally.gaps += 1;
        return;
    }
    let mut fields = message.data.split('-').map(str::parse::<u64>);
    let (Some(Ok(seq)), Some(Ok(sent_ns))) = (fields.next(), fields.next()) else {
        tally.foreign += 1;
        return;
    };
    match subscriber.seen.arrive(seq) {
        Arrival::Duplicate => {
            tally.duplicates += 1;
            return;
        }
        Arrival::Late => tally.late += 1,
        Arrival::InOrder => {}
    }
    subscriber.unique += 1;
    tally.unique += 1;
    tally.last_delivery_ns = tally.last_delivery_ns.max(received_ns);
    tally
        .latency
        .record(received_ns.saturating_sub(sent_ns) / 1000);
}

/// Durations in microseconds: exact below 32, then 16 buckets per doubling,
/// so a percentile (the middle of its bucket) is within 3%.
#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    max_us: u64,
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        let doubling = (63 - us.max(1).leading_zeros()).saturating_sub(4);
        (doubling * 16) as usize + (us >> doubling) as usize
    }

    /// The middle of bucket `index`: the inverse of [`Histogram::bucket`].
    fn middle(index: usize) -> f64 {
        let doubling = (index / 16).saturating_sub(1);
        let low = ((index - doubling * 16) as u64) << doubling;
        low as f64 + ((1u64 << doubling) - 1) as f64 / 2.0
    }

    fn record(&mut self, us: u64) {
        let index = Histogram::bucket(us);
        if index >= self.counts.len() {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] += 1;
        self.max_us = self.max_us.max(us);
    }

    fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.max_us = self.max_us.max(other.max_us);
    }

    fn quantile(&self, quantile: f64) -> Option<f64> {
        let total: u64 = self.counts.iter().sum();
        let rank = (quantile * total as f64).ceil().max(1.0) as u64;
        let mut below = 0;
        let index = self.counts.iter().position(|&count| {
            below += count;
            below >= rank
        })?;
        Some(Histogram::middle(index).min(self.max_us as f64).round())
    }
}

/// What the publisher did.
#[derive(Default)]
struct Published {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    /// From writing a request to reading its answer: each, and all together.
    answer: Histogram,
    waiting: Duration,
    /// When publishing started, on the shared clock.
    started_ns: u64,
    /// From the first publish to the last answer, at least `--duration`.
    secs: f64,
}

/// Publishes at `--rate` over one keep-alive connection for `--duration`.
/// Event `seq` is due at `start + seq / rate`: one slow answer does not push
/// the rest back, and a publisher that is late sends at once, until on time
/// or out of time.
fn publish(options: &Options, shared: &Shared) -> Published {
    let started = Instant::now();
    let started_ns = shared.now_ns();
    let mut published = Published {
        started_ns,
        ..Published::default()
    };
    let text = "Content-Type: text/plain\r\n";
    let head = request_head("POST", &options.publish, &options.token, text);
    let mut connection = None;
    let end = started + options.duration;
    for seq in 0.. {
        let due = started + Duration::from_secs_f64(seq as f64 / options.rate);
        if due >= end || Instant::now() >= end {
            break; // A publisher that fell behind does not make up for it.
        }
        thread::sleep(due.saturating_duration_since(Instant::now()));
        shared.sent.store(seq + 1, Ordering::Relaxed);
        let mut data = format!("{seq}-{}-", shared.now_ns());
        let padding = options.payload.saturating_sub(data.len());
        data.extend(std::iter::repeat_n('x', padding));
        let mut request = head.clone();
        request.extend(format!("Content-Length: {}\r\n\r\n{data}", data.len()).bytes());
        let sending = Instant::now();
        let answer = post(&mut connection, &options.publish, &request);
        published.waiting += sending.elapsed();
        published
            .answer
            .record(sending.elapsed().as_micros() as u64);
        match answer {
            Ok(200) => published.ok += 1,
            failure => {
                published.failed += 1;
                let reason =
                    failure.map_or_else(|err| err.to_string(), |status| format!("status {status}"));
                published.first_error.get_or_insert(reason);
            }
        }
    }
    // The last answer may come after `--duration`: count the time it took.
    published.secs = started.elapsed().max(options.duration).as_secs_f64();
    published
}

/// Sends one publish on the kept-alive connection (opened if there is none)
/// and returns the answer's status.
fn post(connection: &mut Option<Connection>, target: &Target, request: &[u8]) -> io::Result<u16> {
    let (mut stream, mut reader) = match connection.take() {
        Some(open) => open,
        None => {
            let stream = connect(target)?;
            let reader = BufReader::new(stream.try_clone()?);
            (stream, reader)
        }
    };
    stream.write_all(request)?;
    let (status, keep_alive) = read_answer(&mut reader)?;
    if keep_alive {
        *connection = Some((stream, reader));
    }
    Ok(status)
}

/// A publisher's connection: for writing, and buffered for reading answers.
type Connection = (TcpStream, BufReader<TcpStream>);

/// Reads the answer to a publish: its status, and whether the connection stays open.
fn read_answer(reader: &mut BufReader<TcpStream>) -> io::Result<(u16, bool)> {
    let (mut line, mut length, mut keep_alive) = (String::new(), 0, true);
    reader.read_line(&mut line)?;
    let status = line.split(' ').nth(1).and_then(|code| code.parse().ok());
    let status = status.ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break; // the blank line that ends the head
        };
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "connection" => keep_alive = !value.trim().eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    io::copy(&mut reader.take(length), &mut io::sink())?;
    Ok((status, keep_alive))
}

/// Memory at one moment, in KiB.
struct Memory {
    server_rss: Option<u64>,
    bench_rss: Option<u64>,
    /// The system's MemAvailable.
    available: Option<u64>,
}

impl Memory {
    fn sample(pid: Option<&str>) -> Memory {
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Memory {
            server_rss: pid.and_then(|pid| status(pid, "VmRSS:")),
            bench_rss: status("self", "VmRSS:"),
            available: field(&meminfo, "MemAvailable:"),
        }
    }
}

/// A number from `/proc/PID/status`: `VmRSS:` (in KiB), `Threads:`.
fn status(pid: &str, name: &str) -> Option<u64> {
    field(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        name,
    )
}

fn field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find_map(|line| line.strip_prefix(name))?;
    line.split_whitespace().next()?.parse().ok()
}

/// User plus system CPU time of a process, in seconds.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name in parentheses may hold spaces. utime and stime are fields
    // 14 and 15: the 12th and 13th after the closing parenthesis.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / TICKS_PER_SECOND)
}

/// Samples the server's RSS and threads until `stop`; returns the peaks.
fn sample_peaks(pid: Option<&str>, shared: &Shared) -> (Option<u64>, Option<u64>) {
    let (mut rss, mut threads) = (None, None);
    while let Some(pid) = pid.filter(|_| !shared.stop.load(Ordering::Relaxed)) {
        rss = rss.max(status(pid, "VmRSS:"));
        threads = threads.max(status(pid, "Threads:"));
        thread::sleep(SAMPLE_EVERY);
    }
    (rss, threads)
}

fn report(options: &Options, run: &Run) -> Report {
    let (published, tally) = (&run.published, &run.tally);
    let [before, connected, after] = &run.memory;
    let subs = run.connected as f64;
    let expected = published.ok * run.connected as u64;
    let publish_rate = published.ok as f64 / published.secs;
    let delivering = tally.last_delivery_ns.saturating_sub(published.started_ns) as f64 / 1e9;
    let delivery_rate = tally.unique as f64 / delivering.max(published.secs);
    let latency = |quantile| tally.latency.quantile(quantile);
    let growth = |start: Option<u64>, end: Option<u64>| Some(end? as f64 - start? as f64);
    let rss_growth = growth(before.server_rss, connected.server_rss);
    let own_growth = growth(before.bench_rss, connected.bench_rss).unwrap_or(0.0);
    // Only with --pid: the server is on this box, so its memory is in the system's.
    let system = growth(connected.available, before.available)
        .filter(|_| options.pid.is_some())
        .map(|kib| kib - own_growth);
    let per_subscriber = |kib: Option<f64>| kib.map(|kib| kib / subs);
    let empty_reads = tally.empty_reads as f64 * 100.0 / tally.reads.max(1) as f64;
    let short = tally
        .unique_per_subscriber
        .iter()
        .filter(|&&unique| unique < published.ok);

    let mut report = Report {
        json: options.json,
        ..Report::default()
    };
    report.add("subscribers connected", subs);
    report.add("connect time (s)", run.connect_secs);
    report.add("publish rate target (events/s)", options.rate);
    report.add("publish rate achieved (events/s)", publish_rate);
    report.add("published", published.ok);
    report.add("publish failures", published.failed);
    report.add("publish answer p50 (µs)", published.answer.quantile(0.5));
    report.add("publish answer p99 (µs)", published.answer.quantile(0.99));
    report.add("delivery rate (events/s)", delivery_rate);
    report.add("deliveries expected", expected);
    report.add("deliveries made", tally.unique);
    report.add(
        "delivered (%)",
        tally.unique as f64 * 100.0 / expected.max(1) as f64,
    );
    report.add("latency p50 (µs)", latency(0.5));
    report.add("latency p90 (µs)", latency(0.9));
    report.add("latency p99 (µs)", latency(0.99));
    report.add(
        "latency max (µs)",
        Some(tally.latency.max_us).filter(|_| tally.unique > 0),
    );
    report.add("deliveries lost", expected.saturating_sub(tally.unique));
    report.add("subscribers missing events", short.count() as u64);
    report.add("duplicates", tally.duplicates);
    report.add("out of order", tally.late);
    report.add("gap events", tally.gaps);
    report.add("streams closed by the server", tally.closed);
    report.add("server RSS before subscribers (KiB)", before.server_rss);
    report.add("server RSS with subscribers (KiB)", connected.server_rss);
    report.add("server RSS peak (KiB)", run.peak_rss);
    report.add("server RSS after (KiB)", after.server_rss);
    report.add(
        "server RSS per subscriber (KiB)",
        per_subscriber(rss_growth),
    );
    report.add("server threads peak", run.peak_threads);
    report.add("system memory per subscriber (KiB)", per_subscriber(system));
    report.add("server CPU (% of a core)", run.server_cpu);
    report.add("load generator CPU (% of a core)", run.bench_cpu);
    report.add("empty reads by the generator (%)", empty_reads);

    // Say when the figures describe something other than the server at ease.
    // A sweeping reader that mostly finds nothing is waiting for the server.
    match run.bench_cpu.filter(|&cpu| cpu > 80.0) {
        Some(cpu) if empty_reads > 50.0 => report.note(format!(
            "the load generator used {cpu:.0}% of a core, but {empty_reads:.0}% of its reads \
             found nothing yet: it was waiting for the server"
        )),
        Some(cpu) => report.note(format!(
            "the load generator used {cpu:.0}% of a core: figures are limited by it, \
             not by the server"
        )),
        None => {}
    }
    if let Some(cpu) = run.server_cpu.filter(|&cpu| cpu > 90.0) {
        report.note(format!(
            "the server used {cpu:.0}% of a core: on one CPU, it is flat out"
        ));
    }
    let attempted = (published.ok + published.failed) as f64 / published.secs;
    if attempted < 0.95 * options.rate {
        // One connection, one request at a time: slow answers hold it back.
        let waiting = published.waiting.as_secs_f64() * 100.0 / published.secs;
        let cause = match waiting {
            50.0.. => "the server was slow to answer",
            _ => "the publisher itself (one thread, one connection) was the limit",
        };
        let rate = options.rate;
        report.note(format!(
            "the publisher fell behind {rate}/s and spent {waiting:.0}% of its time \
             waiting for answers: {cause}"
        ));
    }
    if let Some(err) = &run.connect_error {
        let hint = match (err.raw_os_error(), err.kind()) {
            (Some(EMFILE), _) => ": raise this shell's limit (ulimit -n)",
            (_, io::ErrorKind::ConnectionReset) => ": is the server out of files? (its ulimit -n)",
            _ => "",
        };
        let wanted = options.subs;
        report.note(format!(
            "connected {subs} of {wanted} subscribers, then: {err}{hint}"
        ));
    }
    if tally.closed > 0 {
        let closed = tally.closed;
        report.note(format!(
            "the server closed {closed} streams: full? (--max-subscribers)"
        ));
    }
    if tally.foreign > 0 {
        let foreign = tally.foreign;
        report.note(format!(
            "{foreign} events were not this run's: another publisher?"
        ));
    }
    if let Some(err) = &published.first_error {
        report.note(format!("the first publish failure: {err}"));
    }
    report.note(match options.pid {
        None => "give --pid PID (the server's) for its memory, threads and CPU".into(),
        Some(_) => "system memory per subscriber is the drop in MemAvailable: unlike RSS, \
            it counts the kernel's memory for the server's thread and both ends of the \
            socket, and anything else that changed on this box meanwhile"
            .into(),
    });
    report
}

/// A figure in the report: a number, or none when it could not be measured.
trait Figure {
    fn value(self) -> Option<f64>;
}

impl Figure for f64 {
    fn value(self) -> Option<f64> {
        Some(self).filter(|value| value.is_finite())
    }
}

impl Figure for u64 {
    fn value(self) -> Option<f64> {
        Some(self as f64)
    }
}

impl<T: Figure> Figure for Option<T> {
    fn value(self) -> Option<f64> {
        self.and_then(Figure::value)
    }
}

/// The figures, printed as text (one a line) or as one JSON line.
#[derive(Default)]
struct Report {
    json: bool,
    lines: Vec<String>,
    notes: Vec<String>,
}

impl Report {
    /// Adds a figure. Its JSON key is the label in snake case, with the unit
    /// spelt out: `latency p50 (µs)` is `latency_p50_us`.
    fn add(&mut self, label: &str, figure: impl Figure) {
        let shown = figure.value().map_or("n/a".into(), |value| {
            let decimals = match value.abs() {
                _ if value.fract() == 0.0 => 0,
                ..10.0 => 2,
                ..1000.0 => 1,
                _ => 0,
            };
            format!("{value:.decimals$}")
        });
        if !self.json {
            self.lines.push(format!("{label:<38}{shown}"));
            return;
        }
        let label = label
            .to_ascii_lowercase()
            .replace("µs", "us")
            .replace('%', "percent");
        let label = label.replace("events/s", "per_s");
        let words = label.split(|c: char| !c.is_ascii_alphanumeric() && c != '_');
        let key = words
            .filter(|word| !word.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        let value = if shown == "n/a" { "null".into() } else { shown };
        self.lines.push(format!("\"{key}\":{value}"));
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn print(&self) {
        if self.json {
            let notes: Vec<String> = self.notes.iter().map(|note| json_string(note)).collect();
            let (figures, notes) = (self.lines.join(","), notes.join(","));
            println!("{{{figures},\"notes\":[{notes}]}}");
            return;
        }
        for line in &self.lines {
            println!("{line}");
        }
        for note in &self.notes {
            println!("note: {note}");
        }
    }
}

fn json_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for character in text.chars() {
        match character {
            '"' | '\\' => quoted.extend(['\\', character]),
            character if character < ' ' => {
                quoted.push_str(&format!("\\u{:04x}", character as u32))
            }
            character => quoted.push(character),
        }
    }
    quoted + "\""
}
