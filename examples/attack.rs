//! Attacks a running tinysse server and prints what it cost the server:
//! descriptors per connection, how long a real client waits under a flood of
//! slow request heads, memory with stalled subscribers and large events, and
//! threads after a storm. Std only, like the crate: run it on the box itself.
//!
//! ```sh
//! target/release/tinysse serve --listen 127.0.0.1:8080 --quiet &
//! cargo run --release --example attack -- --url http://127.0.0.1:8080 --pid $(pidof tinysse)
//! ```
//!
//! Flags (defaults in brackets): `--slow N` slow heads [1200], `--stalled N`
//! stalled subscribers [1000], `--events N` [200] of `--size BYTES` [61440],
//! `--storm N` subscribers that come and go [300]. Needs an open-files limit
//! above the largest N (`ulimit -n 4096`).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(10);

fn main() {
    if let Err(err) = run() {
        eprintln!("attack: {err}");
        std::process::exit(2);
    }
}

struct Options {
    addr: SocketAddr,
    pid: u32,
    slow: usize,
    stalled: usize,
    events: usize,
    size: usize,
    storm: usize,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut pid) = (None, None);
    let mut options = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        pid: 0,
        slow: 1200,
        stalled: 1000,
        events: 200,
        size: 60 * 1024,
        storm: 300,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--url" => url = Some(value.clone()),
            "--pid" => pid = Some(number()? as u32),
            "--slow" => options.slow = number()?,
            "--stalled" => options.stalled = number()?,
            "--events" => options.events = number()?,
            "--size" => options.size = number()?,
            "--storm" => options.storm = number()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let url = url.ok_or("--url http://HOST:PORT is required")?;
    let authority = url
        .strip_prefix("http://")
        .ok_or("--url must start with http://")?;
    options.addr = authority
        .trim_end_matches('/')
        .to_socket_addrs()
        .map_err(|err| format!("--url: {err}"))?
        .next()
        .ok_or("--url: no address")?;
    options.pid = pid.ok_or("--pid PID of the server is required")?;
    Ok(options)
}

fn run() -> Result<(), String> {
    let options = options()?;
    println!("| measure | figure |\n|---|---|");
    descriptors(&options)?;
    slow_heads(&options)?;
    stalled(&options)?;
    storm(&options)?;
    Ok(())
}

/// A number from `/proc/PID/status` (`VmRSS` in KiB, `Threads`).
fn status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn descriptors_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// Opens `GET /events` and reads until its head and the opening `retry:`.
fn subscribe(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(addr).map_err(|err| format!("connect: {err}"))?;
    stream
        .set_read_timeout(Some(PATIENCE))
        .map_err(|err| err.to_string())?;
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: attack\r\n\r\n")
        .map_err(|err| err.to_string())?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    // The head, then a first frame (`retry:` and a blank line).
    let opened = |got: &[u8]| {
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n");
        head_end.is_some_and(|end| got[end + 4..].windows(2).any(|w| w == b"\n\n"))
    };
    while !opened(&got) {
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("closed: {:?}", String::from_utf8_lossy(&got))),
            Ok(count) => got.extend_from_slice(&chunk[..count]),
            Err(err) => {
                return Err(format!(
                    "subscribe: {err} after {:?}",
                    String::from_utf8_lossy(&got)
                ));
            }
        }
    }
    if !got.starts_with(b"HTTP/1.1 200") {
        return Err(format!("subscribe: {:?}", String::from_utf8_lossy(&got)));
    }
    Ok(stream)
}

fn publish(addr: SocketAddr, body: &[u8]) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|err| format!("connect: {err}"))?;
    stream
        .set_read_timeout(Some(PATIENCE))
        .map_err(|err| err.to_string())?;
    let head = format!(
        "POST /publish HTTP/1.1\r\nHost: attack\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .map_err(|err| err.to_string())?;
    stream.write_all(body).map_err(|err| err.to_string())?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    if !answer.starts_with("HTTP/1.1 200") {
        return Err(format!("publish: {:?}", answer.lines().next()));
    }
    Ok(())
}

fn descriptors(options: &Options) -> Result<(), String> {
    let before = descriptors_of(options.pid);
    let streams = (0..100)
        .map(|_| subscribe(options.addr))
        .collect::<Result<Vec<_>, _>>()?;
    let during = descriptors_of(options.pid);
    println!(
        "| descriptors with 100 subscribers (before: {before}) | {during} ({:.2} per subscriber) |",
        (during - before) as f64 / 100.0
    );
    drop(streams);
    Ok(())
}

fn slow_heads(options: &Options) -> Result<(), String> {
    let open = || -> Option<TcpStream> {
        let mut stream = TcpStream::connect(options.addr).ok()?;
        stream.write_all(b"G").ok()?;
        stream.set_nonblocking(true).ok()?;
        Some(stream)
    };
    let mut flood: Vec<TcpStream> = (0..options.slow).filter_map(|_| open()).collect();
    let opened = flood.len();
    // The attacker reopens every connection the server closes, while real
    // clients try to get in.
    let mut waits = Vec::new();
    let mut reopened = 0;
    for _ in 0..5 {
        for stream in &mut flood {
            let closed = match stream.read(&mut [0u8; 512]) {
                Ok(_) => true,
                Err(err) => err.kind() != ErrorKind::WouldBlock,
            };
            if closed && let Some(new) = open() {
                *stream = new;
                reopened += 1;
            }
        }
        let started = Instant::now();
        let served = subscribe(options.addr);
        waits.push(match served {
            Ok(_) => format!("{} ms", started.elapsed().as_millis()),
            Err(err) => format!("refused ({err})"),
        });
    }
    println!(
        "| slow heads: {opened} open, reopened as closed ({reopened}); a real subscriber's wait, 5 tries | {} |",
        waits.join(", ")
    );
    Ok(())
}

fn stalled(options: &Options) -> Result<(), String> {
    let before = status(options.pid, "VmRSS");
    let streams = (0..options.stalled)
        .map(|_| subscribe(options.addr))
        .collect::<Result<Vec<_>, _>>()?;
    let connected = status(options.pid, "VmRSS");
    let body = vec![b'x'; options.size];
    for _ in 0..options.events {
        publish(options.addr, &body)?;
    }
    thread::sleep(Duration::from_millis(500));
    let after = status(options.pid, "VmRSS");
    println!(
        "| RSS: before, with {} stalled subscribers, after {} events of {} bytes | {:.1} → {:.1} → {:.1} MiB ({:.1} KiB per stalled subscriber for the events) |",
        options.stalled,
        options.events,
        options.size,
        before as f64 / 1024.0,
        connected as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(connected) as f64 / options.stalled.max(1) as f64
    );
    drop(streams);
    Ok(())
}

fn storm(options: &Options) -> Result<(), String> {
    thread::sleep(Duration::from_secs(3));
    let baseline = status(options.pid, "Threads");
    let streams = (0..options.storm)
        .map(|_| subscribe(options.addr))
        .collect::<Result<Vec<_>, _>>()?;
    let peak = status(options.pid, "Threads");
    drop(streams);
    // A publisher posts every 20 ms while the threads should come back.
    let started = Instant::now();
    let mut back = None;
    while started.elapsed() < Duration::from_secs(15) {
        publish(options.addr, b"tick")?;
        if back.is_none() && status(options.pid, "Threads") <= baseline + 2 {
            back = Some(started.elapsed());
        }
        thread::sleep(Duration::from_millis(20));
    }
    let now = status(options.pid, "Threads");
    let back = back.map_or("not within 15 s".to_string(), |took| {
        format!("{:.1} s", took.as_secs_f64())
    });
    println!(
        "| threads: before, with {} subscribers, 15 s after they left (publishing every 20 ms) | {baseline} → {peak} → {now}; back to baseline + 2 after {back} |",
        options.storm
    );
    Ok(())
}
