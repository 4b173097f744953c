//! The classic Server-Sent Events tutorial demo: the server's time every
//! second to every subscriber, and a `connecttime` event sent to each
//! subscriber alone as it connects. CORS is open, so a page on any origin can
//! `new EventSource('http://127.0.0.1:8080/events')`.
//!
//! ```sh
//! cargo run --example clock          # or: cargo run --example clock -- 127.0.0.1:9000
//! curl -N http://127.0.0.1:8080/events
//! ```

use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tinysse::{Config, Event, Server};

fn main() -> Result<(), tinysse::Error> {
    let listen = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let config = Config {
        listen: listen.parse().expect("an address like 127.0.0.1:8080"),
        // Every stream opens with `retry: 10000`: a client that loses the
        // connection waits 10 s before it reconnects.
        retry_ms: 10_000,
        // `Access-Control-Allow-Origin: *`, so a page from anywhere may subscribe.
        cors_origins: vec!["*".to_string()],
        // the one line printed below is all this example writes
        ..Config::default()
    };
    let server = Server::bind(config)?
        // Called for each new subscriber; what it returns goes to that
        // subscriber alone, before any published event, and not into the history.
        .on_subscribe(|_request| vec![Event::new(utc_time()).with_event("connecttime")])
        .start()?;
    eprintln!("listening on http://{}", server.local_addr());
    loop {
        // Wake at the next whole second, so that each tick shows a new second.
        let into_second = u64::from(since_epoch().subsec_nanos());
        thread::sleep(Duration::from_nanos(1_000_000_000 - into_second));
        // No event type: a browser's `onmessage` receives these.
        server.hub().publish("clock", Event::new(utc_time()))?;
    }
}

/// Time since the Unix epoch (zero for a clock set before 1970).
fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The time of day as `HH:MM:SS UTC`: Unix time has exactly 86 400 seconds a day.
fn utc_time() -> String {
    let seconds = since_epoch().as_secs() % 86_400;
    let (hours, minutes) = (seconds / 3600, seconds / 60 % 60);
    format!("{hours:02}:{minutes:02}:{:02} UTC", seconds % 60)
}
