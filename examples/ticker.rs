//! Stock-style prices as named events: every ~500 ms, one event per symbol on
//! topic `prices`, with the symbol as the event type (`event: ACME`) and data
//! like `ACME 101.25`. The hub gives each event its id, so a client that
//! reconnects with `Last-Event-ID` gets the prices it missed.
//!
//! ```sh
//! cargo run --example ticker
//! curl -N 'http://127.0.0.1:8080/events?topic=prices'
//! ```
//!
//! In a browser: `source.addEventListener('ACME', (e) => ...)`.

use std::thread;
use std::time::Duration;

use tinysse::{Config, Event, Server};

fn main() -> Result<(), tinysse::Error> {
    let listen = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let config = Config {
        listen: listen.parse().expect("an address like 127.0.0.1:8080"),
        // the one line printed below is all this example writes
        ..Config::default()
    };
    let server = Server::bind(config)?.start()?;
    eprintln!("listening on http://{}", server.local_addr());
    // Prices in cents, so that they stay exact.
    let mut prices = [("ACME", 10_000_i64), ("GLOBEX", 4_250), ("INITECH", 1_999)];
    let mut random = XorShift(0x2545_f491_4f6c_dd1d);
    loop {
        for (symbol, cents) in &mut prices {
            // A random walk: up or down by up to 50 cents, never below 1 cent.
            let step = (random.next() % 101) as i64 - 50;
            *cents = (*cents + step).max(1);
            let data = format!("{symbol} {}.{:02}", *cents / 100, *cents % 100);
            server
                .hub()
                .publish("prices", Event::new(data).with_event(*symbol))?;
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// Marsaglia's xorshift64: a tiny, fast, deterministic (same seed, same walk)
/// generator; fine for a demo, not for anything secret.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
