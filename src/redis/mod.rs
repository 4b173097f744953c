//! Several servers on one Redis stream (`--redis URL`, SPEC §9): the `redis`
//! feature, behind the hub's `Log` seam (`hub/log.rs`).
//!
//! A publish is an `XADD` (a batch is one `MULTI`/`EXEC`); its `200` and ids
//! come once Redis has accepted it, and Redis's entry ids are the SSE ids.
//! The history is not touched by the publish: one reader thread per hub
//! (`tinysse-redis`) reads the stream with a blocking `XREAD` on a connection
//! of its own and inserts every entry, this server's own publishes included,
//! so every server sends the same events in the same order. A resume older
//! than the history is replayed from the stream (`XRANGE`). While Redis is
//! down, publishes answer 503, `/readyz` answers 503, and the reader
//! reconnects with a jittered, capped backoff, continuing from the last id
//! it inserted.
//!
//! The client underneath is std only: `resp.rs` (RESP2, with hard limits),
//! `url.rs` (`redis://` URLs), `conn.rs` (a blocking connection: timeouts,
//! `AUTH`, `SELECT`), `stream.rs` (the stream commands), `error.rs`.

mod conn;
mod error;
mod resp;
mod stream;
mod url;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::Error;
use crate::hub::{Entry, Hub, Level, Log, Logger, Published, lock};
use crate::wire::event::{Event, parse_retry};
use crate::wire::id::{Id, random_u64};
use crate::wire::topic::check_topic;

use conn::Conn;
use error::RedisError;
use url::RedisUrl;

/// Time to connect to Redis and for each command's answer; a publish
/// answers 503 within about twice this when Redis is down.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How long the reader's `XREAD` blocks: also how soon it sees a shutdown.
const BLOCK: Duration = Duration::from_secs(1);
/// Entries the reader takes per `XREAD`.
const READ_COUNT: u64 = 1000;
/// The first and the longest pause between the reader's reconnections
/// (doubling in between, with jitter).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where the hub's events are kept: a Redis stream. The hub owns it; the
/// reader thread shares it.
struct RedisLog(Arc<Shared>);

/// What the hub's log and its reader thread share.
struct Shared {
    url: RedisUrl,
    password: Option<String>,
    key: Vec<u8>,
    /// `MAXLEN ~` of each `XADD`: the history's event count.
    max_len: u64,
    /// Guards the connection publishes use; `None` after an error.
    publisher: Mutex<Option<Conn>>,
    /// The reader thread, joined at close.
    reader: Mutex<Option<JoinHandle<()>>>,
    /// Set at close: the reader ends.
    stopping: AtomicBool,
    /// The reader's connection works; and why not, when not.
    up: AtomicBool,
    down_why: Mutex<String>,
    logger: OnceLock<Logger>,
    entries_read: AtomicU64,
    publishes: AtomicU64,
    reconnects: AtomicU64,
    /// The last `XADD` round trip, in microseconds.
    xadd_micros: AtomicU64,
}

// Written by hand, and only the URL as `Display` writes it (password
// hidden): the hub's `dyn Log` keeps this in every binary, and derived or
// `RedisUrl`'s Debug would bring the Debug code of every field along.
impl std::fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLog")
            .field("url", &format_args!("{}", self.0.url))
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub fed from the Redis stream `stream` at `url`
    /// (`redis://[[USER]:PASSWORD@]HOST[:6379][/DB]`), shared with every
    /// other server on it (SPEC §9). `password` replaces the URL's (read
    /// from a file, say). Set the history's limits first: the newest
    /// `history` entries are loaded now, and the stream is trimmed to about
    /// that many. Starts the hub's `tinysse-redis` reader thread, which
    /// [`Hub::close`] stops.
    ///
    /// Fails with [`Error::BadConfig`] for a bad URL or a refused password;
    /// a Redis that cannot be reached now is not an error: the hub starts
    /// and the reader keeps trying.
    ///
    /// ```no_run
    /// use tinysse::{Config, Event, Hub, Server};
    ///
    /// let hub = Hub::new().with_redis("redis://127.0.0.1:6379", "tinysse", None)?;
    /// hub.publish("news", Event::new("to every server"))?; // returns once Redis has it
    /// let server = Server::with_hub(Config::new("127.0.0.1:8080".parse().unwrap()), hub)?;
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_redis(
        self,
        url: &str,
        stream: &str,
        password: Option<&str>,
    ) -> Result<Arc<Hub>, Error> {
        let url = RedisUrl::parse(url).map_err(|err| Error::BadConfig(err.to_string()))?;
        if stream.is_empty() {
            return Err(Error::BadConfig(
                "the redis stream key is empty".to_string(),
            ));
        }
        let (max_events, _) = self.history_limits();
        let log = Shared {
            url,
            password: password.map(str::to_string),
            key: stream.as_bytes().to_vec(),
            max_len: max_events as u64,
            publisher: Mutex::new(None),
            reader: Mutex::new(None),
            stopping: AtomicBool::new(false),
            up: AtomicBool::new(false),
            down_why: Mutex::new("not connected to redis yet".to_string()),
            logger: OnceLock::new(),
            entries_read: AtomicU64::new(0),
            publishes: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            xadd_micros: AtomicU64::new(0),
        };
        // The newest entries, for clients that resume here.
        let mut loaded = Vec::new();
        match log.connect() {
            Ok(mut conn) => {
                let newest = conn
                    .xrevrange(&log.key, "+", "-", log.max_len)
                    .map_err(|err| Error::Unavailable(err.to_string()))?;
                loaded = newest
                    .into_iter()
                    .rev()
                    .filter_map(|entry| log.entry(entry))
                    .collect();
                *lock(&log.publisher) = Some(conn);
            }
            Err(err @ (RedisError::Auth(_) | RedisError::Url(_))) => {
                return Err(Error::BadConfig(err.to_string()));
            }
            Err(err) => log.down(err.to_string()),
        }
        let after = loaded
            .last()
            .map_or("0-0".to_string(), |(id, ..)| id.to_string());
        let loaded = loaded
            .into_iter()
            .map(|(id, topic, event)| (id, topic, event.encode()));
        let shared = Arc::new(log);
        let hub = Arc::new(self.with_log(Box::new(RedisLog(Arc::clone(&shared))), loaded, None));
        let (weak, reading) = (Arc::downgrade(&hub), Arc::clone(&shared));
        let reader = thread::Builder::new()
            .name("tinysse-redis".to_string())
            .spawn(move || read(&weak, &reading, after))?;
        *lock(&shared.reader) = Some(reader);
        Ok(hub)
    }
}

impl Shared {
    fn connect(&self) -> Result<Conn, RedisError> {
        Conn::open(&self.url, self.password.as_deref(), TIMEOUT)
    }

    fn log(&self, level: Level, line: &str) {
        if let Some(logger) = self.logger.get() {
            logger(level, line);
        }
    }

    /// Redis cannot be reached (or answer): say so once.
    fn down(&self, why: String) {
        if self.up.swap(false, Ordering::SeqCst) || lock(&self.down_why).is_empty() {
            self.log(Level::Error, &format!("redis is unreachable: {why}"));
        }
        *lock(&self.down_why) = why;
    }

    fn up(&self) {
        if !self.up.swap(true, Ordering::SeqCst) {
            lock(&self.down_why).clear();
            self.log(Level::Info, "connected to redis");
        }
    }

    /// A stream entry as an event: `topic`, `data`, and `event` and `retry`
    /// when set. An entry another program added that is not a valid event
    /// is skipped with one log line.
    fn entry(&self, entry: stream::Entry) -> Option<(Id, Arc<str>, Event)> {
        let text = |name: &[u8]| {
            entry
                .field(name)
                .map(|value| String::from_utf8_lossy(value))
        };
        let parsed = (|| {
            let (ms, seq) = stream::parse_id(&entry.id).ok_or("a bad id")?;
            let topic = text(b"topic").unwrap_or("default".into());
            check_topic(&topic).map_err(|_| "a bad topic")?;
            let data = text(b"data").ok_or("no data field")?;
            let mut event = Event::new(data).with_event(text(b"event").unwrap_or_default());
            if let Some(retry) = text(b"retry") {
                event.retry = Some(parse_retry(&retry).ok_or("a bad retry")?);
            }
            event.validate().map_err(|_| "a bad event type")?;
            Ok::<_, &str>((Id { run: ms, seq }, Arc::from(&*topic), event))
        })();
        match parsed {
            Ok(event) => Some(event),
            Err(why) => {
                let id = &entry.id;
                self.log(
                    Level::Error,
                    &format!("redis: skipped stream entry {id}: {why}"),
                );
                None
            }
        }
    }
}

impl RedisLog {
    /// The fields of one event's entry.
    fn fields<'e>(topic: &'e str, event: &'e Event, retry: &'e str) -> Vec<(&'e [u8], &'e [u8])> {
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b"topic", topic.as_bytes()),
            (b"data", event.data.as_bytes()),
        ];
        if let Some(name) = &event.event {
            fields.push((b"event", name.as_bytes()));
        }
        if event.retry.is_some() {
            fields.push((b"retry", retry.as_bytes()));
        }
        fields
    }
}

impl Log for RedisLog {
    fn append<'h>(
        &self,
        hub: &'h Hub,
        topic: &Arc<str>,
        events: &[Event],
        _bodies: Vec<Vec<u8>>,
    ) -> Result<Published<'h>, Error> {
        let log = &self.0;
        let retries: Vec<String> = events
            .iter()
            .map(|event| {
                event
                    .retry
                    .map(|retry| retry.to_string())
                    .unwrap_or_default()
            })
            .collect();
        let batch: Vec<_> = (events.iter().zip(&retries))
            .map(|(event, retry)| RedisLog::fields(topic, event, retry))
            .collect();
        let mut publisher = lock(&log.publisher);
        let started = Instant::now();
        let result = match &mut *publisher {
            Some(conn) => add(conn, &log.key, log.max_len, &batch),
            None => Err(RedisError::Closed),
        };
        let result = match result {
            // A connection lost since (or never made): one fresh try.
            Err(
                RedisError::Closed | RedisError::Broken | RedisError::Io(_) | RedisError::Timeout,
            ) => {
                *publisher = None;
                log.connect().and_then(|mut conn| {
                    let ids = add(&mut conn, &log.key, log.max_len, &batch);
                    *publisher = Some(conn);
                    ids
                })
            }
            other => other,
        };
        drop(publisher);
        match result {
            Ok(ids) => {
                let micros = started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                log.xadd_micros.store(micros, Ordering::Relaxed);
                log.publishes.fetch_add(1, Ordering::Relaxed);
                // The subscribers get the events when the reader brings them back.
                Ok(Published::ids_only(hub, ids))
            }
            Err(RedisError::Server(why)) => Err(Error::Unavailable(format!(
                "redis refused the event, nothing was published: {why}"
            ))),
            Err(err) => {
                *lock(&log.publisher) = None;
                Err(Error::Unavailable(format!(
                    "redis is unreachable, nothing was published: {err}"
                )))
            }
        }
    }

    fn replay(&self, after: Id, limit: usize) -> Option<Vec<Entry>> {
        let log = &self.0;
        // SPEC §9: "one older than the local history but still in the stream
        // is replayed from Redis (XRANGE); only an id gone from both gets a
        // gap". Its own entry must still be there, or events after it may
        // have been trimmed.
        let after = after.to_string();
        let mut conn = log.connect().ok()?;
        if conn.xrange(&log.key, &after, &after, 1).ok()?.is_empty() {
            return None;
        }
        let start = format!("({after}");
        let entries = conn.xrange(&log.key, &start, "+", limit as u64).ok()?;
        let entries = entries.into_iter().filter_map(|entry| log.entry(entry));
        Some(
            entries
                .map(|(id, topic, event)| Entry::new(id, topic, &event.encode()))
                .collect(),
        )
    }

    fn ready(&self) -> Result<(), String> {
        match self.0.up.load(Ordering::SeqCst) {
            true => Ok(()),
            false => Err(format!("redis is unreachable: {}", lock(&self.0.down_why))),
        }
    }

    fn set_logger(&self, logger: Logger) {
        let _ = self.0.logger.set(logger);
    }

    fn close(&self) {
        self.0.stopping.store(true, Ordering::SeqCst);
        let reader = lock(&self.0.reader).take();
        // Not from the reader itself (it may drop the last hub).
        if let Some(reader) = reader.filter(|reader| reader.thread().id() != thread::current().id())
        {
            let _ = reader.join();
        }
    }

    fn metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let log = &self.0;
        let up = u64::from(log.up.load(Ordering::SeqCst));
        let rows: [(&str, &str, &str, String); 5] = [
            (
                "up",
                "gauge",
                "1 while the reader's connection to Redis works.",
                up.to_string(),
            ),
            (
                "entries_read_total",
                "counter",
                "Stream entries read.",
                log.entries_read.load(Ordering::Relaxed).to_string(),
            ),
            (
                "publishes_total",
                "counter",
                "Publishes (XADD or MULTI/EXEC) Redis accepted.",
                log.publishes.load(Ordering::Relaxed).to_string(),
            ),
            (
                "reconnects_total",
                "counter",
                "Reconnections of the reader.",
                log.reconnects.load(Ordering::Relaxed).to_string(),
            ),
            (
                "xadd_seconds",
                "gauge",
                "The last XADD's round trip.",
                seconds_of_micros(log.xadd_micros.load(Ordering::Relaxed)),
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(
                out,
                "# HELP tinysse_redis_{name} {help}\n# TYPE tinysse_redis_{name} {kind}\ntinysse_redis_{name} {value}"
            );
        }
    }
}

/// Microseconds as seconds with six decimals: the text of `{:.6}` of
/// `micros as f64 / 1e6`, without linking std's float printer (about 17 KB).
/// The two agree below 2^33 s (272 years); a round trip ends within seconds.
fn seconds_of_micros(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// One `XADD` or, for several events, one `MULTI`/`EXEC`.
fn add(
    conn: &mut Conn,
    key: &[u8],
    max_len: u64,
    batch: &[Vec<(&[u8], &[u8])>],
) -> Result<Vec<String>, RedisError> {
    match batch {
        [one] => conn.xadd(key, max_len, one).map(|id| vec![id]),
        _ => conn.xadd_batch(key, max_len, batch),
    }
}

/// The reader thread: reads the stream after `after` and inserts every
/// entry into the hub, until the hub closes or is dropped.
fn read(hub: &Weak<Hub>, log: &Shared, mut after: String) {
    let mut conn: Option<Conn> = None;
    let mut backoff = FIRST_BACKOFF;
    while !log.stopping.load(Ordering::SeqCst) {
        let result = match &mut conn {
            Some(conn) => conn.xread_block(&log.key, &after, READ_COUNT, BLOCK.as_millis() as u64),
            None => log.connect().and_then(|mut fresh| {
                // Back after an outage: if the stream was trimmed past the
                // last id read, events were lost: every subscriber gets a gap.
                if after != "0-0" && fresh.xrange(&log.key, &after, &after, 1)?.is_empty() {
                    let first = fresh.xrange(&log.key, "-", "+", 1)?;
                    let newer = |entry: &stream::Entry| {
                        stream::parse_id(&entry.id) > stream::parse_id(&after)
                    };
                    if first.first().is_some_and(newer)
                        && let Some(hub) = hub.upgrade()
                    {
                        hub.lose();
                    }
                }
                conn = Some(fresh);
                Ok(Vec::new())
            }),
        };
        match result {
            Ok(entries) => {
                log.up();
                backoff = FIRST_BACKOFF;
                log.entries_read
                    .fetch_add(entries.len() as u64, Ordering::Relaxed);
                let Some(hub) = hub.upgrade() else {
                    return;
                };
                for entry in entries {
                    after.clone_from(&entry.id);
                    if let Some((id, topic, event)) = log.entry(entry) {
                        drop(hub.insert(&topic, std::iter::once((id, event.encode()))));
                    }
                }
            }
            Err(err) => {
                conn = None;
                log.down(err.to_string());
                log.reconnects.fetch_add(1, Ordering::Relaxed);
                // Jittered, capped, and in short steps, so that a shutdown
                // is seen at once.
                let half = backoff.as_millis() as u64 / 2;
                let pause = Duration::from_millis(half + random_u64() % (half + 1));
                let until = Instant::now() + pause.min(MAX_BACKOFF);
                while Instant::now() < until && !log.stopping.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(20));
                }
                backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
            }
        }
    }
}

// Test support, shared with the integration tests.
#[cfg(test)]
#[path = "../../tests/it/redis_server.rs"]
mod redis_server;

#[cfg(test)]
mod tests {
    use super::seconds_of_micros;

    #[test]
    fn seconds_of_micros_writes_what_the_float_printer_wrote() {
        let mut micros: u64 = 0x9e37_79b9_7f4a_7c15;
        let check = |micros: u64| {
            assert_eq!(
                seconds_of_micros(micros),
                format!("{:.6}", micros as f64 / 1e6),
                "{micros}"
            );
        };
        for edge in [0, 1, 999_999, 1_000_000, 1_000_001, 123_456_789] {
            check(edge);
        }
        // Up to 2^33 s, in microseconds.
        let limit = (1 << 33) * 1_000_000;
        check(limit - 1);
        for round in 0..100_000 {
            micros ^= micros << 13;
            micros ^= micros >> 7;
            micros ^= micros << 17;
            check((micros % limit) >> (round % 40));
        }
    }
}
