//! [`Config`]: every setting of a server, with its default.

use std::net::SocketAddr;
use std::time::Duration;

use crate::http::HEAD_TIMEOUT;
use crate::hub::{
    DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_EVENTS, DEFAULT_MAX_SUBSCRIBERS, DEFAULT_RETRY_MS,
};

/// Connections allowed beyond `max_subscribers` (publishers, pages, metrics);
/// past them a new connection gets 503.
pub(crate) const EXTRA_CONNECTIONS: usize = 64;

/// Everything a [`Server`](crate::Server) needs to know. `Config::default()`
/// is what `tinysse serve` runs with when given no flags.
///
/// ```
/// use tinysse::Config;
///
/// let config = Config::default();
/// assert_eq!(config.listen.to_string(), "127.0.0.1:8080"); // loopback: not reachable from the network
/// assert_eq!((config.history, config.max_subscribers, config.max_body), (1024, 1024, 64 * 1024));
/// assert_eq!((config.heartbeat.as_secs(), config.retry_ms), (15, 3000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on (`--listen`).
    pub listen: SocketAddr,
    /// Token required to publish, as `Authorization: Bearer` (`--token`, `--token-file`).
    pub token: Option<String>,
    /// Token required to subscribe, as `?token=` or `Authorization: Bearer`
    /// (`--subscribe-token`). The publish token is accepted too.
    pub subscribe_token: Option<String>,
    /// Events kept for resuming (`--history`).
    pub history: usize,
    /// Bytes of encoded events kept for resuming (`--history-bytes`).
    pub history_bytes: usize,
    /// Time between heartbeat comments on an idle stream; zero: none (`--heartbeat`).
    pub heartbeat: Duration,
    /// Reconnection time sent to clients in milliseconds (`--retry`).
    pub retry_ms: u64,
    /// Subscribers at once (`--max-subscribers`); connections in all are this
    /// plus 64.
    pub max_subscribers: usize,
    /// Largest publish body in bytes (`--max-body`).
    pub max_body: usize,
    /// A subscriber whose socket accepts nothing for this long is dropped (`--write-timeout`).
    pub write_timeout: Duration,
    /// Time allowed to receive a request head (no flag; tests shorten it).
    pub head_timeout: Duration,
    /// Origins allowed by CORS; `*` allows any (`--cors-origin`, repeatable).
    pub cors_origins: Vec<String>,
    /// Connections from one client address at most (`--max-per-address`);
    /// `None`: 64 on a non-loopback address, no limit on loopback; `Some(0)`:
    /// no limit.
    pub max_per_address: Option<usize>,
    /// Keep every accepted event in a journal in this directory (`--journal`).
    #[cfg(feature = "journal")]
    pub journal: Option<std::path::PathBuf>,
    /// When the journal flushes to disk (`--journal-sync`).
    #[cfg(feature = "journal")]
    pub journal_sync: crate::JournalSync,
    /// Share events with every server on this Redis (`--redis URL`).
    #[cfg(feature = "redis")]
    pub redis: Option<String>,
    /// The key of the Redis stream (`--redis-stream`, `tinysse`).
    #[cfg(feature = "redis")]
    pub redis_stream: String,
    /// The Redis password, replacing the URL's (`--redis-password-file`).
    #[cfg(feature = "redis")]
    pub redis_password: Option<String>,
    /// Give each client the rights of its signed token, checked with this
    /// key (`--jwt-key-file`); replaces `token` and `subscribe_token`.
    #[cfg(feature = "jwt")]
    pub jwt_key: Option<Vec<u8>>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            subscribe_token: None,
            history: DEFAULT_HISTORY_EVENTS,
            history_bytes: DEFAULT_HISTORY_BYTES,
            heartbeat: Duration::from_secs(15),
            retry_ms: DEFAULT_RETRY_MS,
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
            max_body: 64 * 1024,
            write_timeout: Duration::from_secs(30),
            head_timeout: HEAD_TIMEOUT,
            cors_origins: Vec::new(),
            max_per_address: None,
            #[cfg(feature = "journal")]
            journal: None,
            #[cfg(feature = "journal")]
            journal_sync: crate::JournalSync::EverySec,
            #[cfg(feature = "redis")]
            redis: None,
            #[cfg(feature = "redis")]
            redis_stream: "tinysse".to_string(),
            #[cfg(feature = "redis")]
            redis_password: None,
            #[cfg(feature = "jwt")]
            jwt_key: None,
        }
    }
}

impl Config {
    /// A default config listening on `listen`.
    ///
    /// ```
    /// let config = tinysse::Config::new("127.0.0.1:0".parse().unwrap());
    /// assert_eq!(config.listen.port(), 0); // the system picks a free port
    /// ```
    pub fn new(listen: SocketAddr) -> Config {
        Config {
            listen,
            ..Config::default()
        }
    }

    /// Connections allowed at once: subscribers plus 64.
    pub fn max_connections(&self) -> usize {
        self.max_subscribers.saturating_add(EXTRA_CONNECTIONS)
    }
}
