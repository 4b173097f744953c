//! Publish throughput and latency against a running tinysse: `--publishers N`
//! threads, each on a keep-alive connection of its own, publish as fast as
//! the server answers for `--duration` seconds. Prints publishes per second
//! and the latency of the answer (from the request's write to the `200`).
//!
//! ```sh
//! tinysse serve --journal /tmp/j --journal-sync always &
//! cargo run --release --example publish_bench -- --url http://127.0.0.1:8080 --publishers 4
//! ```
//!
//! Flags (defaults in brackets): `--publishers N` [1], `--duration S` [5],
//! `--payload BYTES` [64].

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    if let Err(err) = run() {
        eprintln!("publish_bench: {err}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut publishers, mut seconds, mut payload) = (None, 1, 5.0, 64);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: {value:?} is not a number");
        match flag.as_str() {
            "--url" => url = Some(value.clone()),
            "--publishers" => publishers = value.parse().map_err(|_| bad())?,
            "--duration" => seconds = value.parse().map_err(|_| bad())?,
            "--payload" => payload = value.parse().map_err(|_| bad())?,
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
    let duration = Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..publishers.max(1))
        .map(|_| thread::spawn(move || publish_for(addr, duration, payload)))
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.join().map_err(|_| "a publisher panicked")??);
    }
    latencies.sort_unstable();
    let at = |quantile: f64| {
        let index =
            ((latencies.len() as f64 * quantile) as usize).min(latencies.len().saturating_sub(1));
        latencies
            .get(index)
            .map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
    };
    println!(
        "publishers {publishers}: {:.0} publishes/s, latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} publishes)",
        latencies.len() as f64 / seconds,
        at(0.50),
        at(0.99),
        at(1.0),
        latencies.len()
    );
    Ok(())
}

/// Publishes until `duration` has passed; returns each publish's latency.
fn publish_for(
    addr: SocketAddr,
    duration: Duration,
    payload: usize,
) -> Result<Vec<Duration>, String> {
    let mut stream = TcpStream::connect(addr).map_err(|err| format!("connect: {err}"))?;
    stream.set_nodelay(true).map_err(|err| err.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|err| err.to_string())?;
    let body = "x".repeat(payload);
    let request = format!(
        "POST /publish HTTP/1.1\r\nHost: bench\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut latencies = Vec::new();
    let mut buffer = vec![0u8; 4096];
    let started = Instant::now();
    while started.elapsed() < duration {
        let sent = Instant::now();
        stream
            .write_all(request.as_bytes())
            .map_err(|err| format!("write: {err}"))?;
        // The answer: a head with Content-Length, then the id.
        let mut got = 0;
        loop {
            let count = stream
                .read(&mut buffer[got..])
                .map_err(|err| format!("read: {err}"))?;
            if count == 0 {
                return Err("the server closed the connection".into());
            }
            got += count;
            let text = String::from_utf8_lossy(&buffer[..got]);
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|line| line.strip_prefix("Content-Length: "))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or(0);
                if got >= end + 4 + length {
                    if !text.starts_with("HTTP/1.1 200") {
                        return Err(format!("answer: {:?}", text.lines().next()));
                    }
                    break;
                }
            }
            if got == buffer.len() {
                return Err("answer too long".into());
            }
        }
        latencies.push(sent.elapsed());
    }
    Ok(latencies)
}
