//! Follows a file, like `tail -f`, and publishes each new line on topic `tail`.
//!
//! ```sh
//! cargo run --example tail -- /var/log/syslog      # or: -- FILE 127.0.0.1:9000
//! curl -N 'http://127.0.0.1:8080/events?topic=tail'
//! ```

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::process::exit;
use std::thread;
use std::time::Duration;

use tinysse::{Config, Event, Server};

/// The most bytes read per check, so memory stays bounded however fast the
/// file grows; a line longer than this is published in pieces.
const MAX_READ: u64 = 64 * 1024;

fn main() -> Result<(), tinysse::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: tail FILE [ADDR]  (publishes each new line of FILE on topic tail)");
        exit(2);
    };
    // Start at the end: only lines written from now on are published.
    let mut position = fs::metadata(path)?.len();
    let listen = args.get(1).map_or("127.0.0.1:8080", String::as_str);
    let config = Config {
        listen: listen.parse().expect("an address like 127.0.0.1:8080"),
        // the one line printed below is all this example writes
        ..Config::default()
    };
    let server = Server::bind(config)?.start()?;
    eprintln!("listening on http://{}", server.local_addr());
    loop {
        thread::sleep(Duration::from_millis(200)); // then look for growth
        // Open it anew each time, to follow a file replaced by log rotation.
        let Ok(mut file) = File::open(path) else {
            continue; // Missing for now (being rotated, say): look again later.
        };
        if file.metadata()?.len() < position {
            position = 0; // It shrank (truncated): read it again from its beginning.
        }
        file.seek(SeekFrom::Start(position))?;
        let mut chunk = Vec::new();
        file.take(MAX_READ).read_to_end(&mut chunk)?;
        // Only complete lines go out; an unfinished one waits for its newline.
        let complete = match chunk.iter().rposition(|&byte| byte == b'\n') {
            Some(newline) => newline + 1,
            None if chunk.len() as u64 == MAX_READ => chunk.len(),
            None => 0,
        };
        for line in chunk[..complete].split_inclusive(|&byte| byte == b'\n') {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line); // CRLF files too
            let data = String::from_utf8_lossy(line);
            server.hub().publish("tail", Event::new(data))?;
        }
        position += complete as u64;
    }
}
