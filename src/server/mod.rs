//! The server: a blocking accept loop, one thread per connection, routing,
//! publishing, the stream loop, connection caps and a clean shutdown.
//!
//! Threads: one accept thread (the caller's, in [`Server::run`]), one
//! `tinysse-conn` thread per open connection (at most
//! [`Config::max_connections`]) and a few short-lived `tinysse-reject` threads
//! that answer 503 past that cap. [`Handle::shutdown`] ends and joins them all.
//!
//! ```
//! use std::io::{Read, Write};
//! use tinysse::{Config, Server};
//!
//! let server = Server::bind(Config::new("127.0.0.1:0".parse().unwrap()))?.start()?;
//! let mut stream = std::net::TcpStream::connect(server.local_addr())?;
//! stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n")?;
//! let mut response = String::new();
//! stream.read_to_string(&mut response)?;
//! assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("\r\n\r\nok\n"));
//! server.shutdown()?;
//! # Ok::<(), tinysse::Error>(())
//! ```

// Implementation notes
//
// Each connection thread owns its `Conn` and loops over requests until the
// client closes, asks to close, or an error closes it (`accept.rs`). `GET
// /events` takes the thread over for the life of the stream (`stream.rs`).
//
// Shutdown: `Handle::shutdown` sets a flag, closes the hub (every subscriber
// wakes up, writes a last jittered `retry:` and leaves) and wakes the accept
// loop with a connection to itself. `run` then gives the connection threads
// `SHUTDOWN_GRACE` to finish on their own, shuts down the sockets of the rest
// (a stalled write or an idle keep-alive read returns at once), and joins
// every thread.

mod accept;
mod access;
mod config;
mod metrics;
mod publish;
mod route;
mod stream;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::Error;
use crate::http::Request;
use crate::hub::{self, Hub, Level, Logger};
use crate::wire::event::Event;

pub use access::Access;
#[cfg(feature = "jwt")]
pub(crate) use access::bearer;
pub use config::Config;
use metrics::Metrics;

/// A bound server, ready to [`run`](Server::run) or [`start`](Server::start).
///
/// ```no_run
/// use tinysse::{Config, Server};
///
/// let server = Server::bind(Config::new("127.0.0.1:8080".parse().unwrap()))?
///     .on_log(|level, line| eprintln!("tinysse: {level}{line}"))
///     .start()?;
/// println!("listening on {}", server.local_addr());
/// server.hub().publish("default", tinysse::Event::new("hello"))?;
/// server.shutdown()?; // stops, and joins every thread
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    /// Set with the builder methods, handed to `Shared::hooks` by `run`.
    hooks: Hooks,
}

/// Called as each subscriber connects, with its request; the events it
/// returns go to that subscriber alone.
type Greeter = dyn Fn(&Request) -> Vec<Event> + Send + Sync;

/// What embedding code added to the server.
#[derive(Default)]
struct Hooks {
    greeter: Option<Box<Greeter>>,
    logger: Option<Logger>,
    /// Only errors reach the logger; other lines are not even made.
    errors_only: bool,
    access: Option<Box<access::Decide>>,
    /// Documents served at `GET`/`HEAD` on their path: (path, content type, body).
    pages: Vec<(String, String, String)>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("greeter", &self.greeter.is_some())
            .field("logger", &self.logger.is_some())
            .field("access", &self.access.is_some())
            .field(
                "pages",
                &self.pages.iter().map(|page| &page.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// State shared by the accept loop, the connection threads and handles.
#[derive(Debug)]
struct Shared {
    config: Config,
    hub: Arc<Hub>,
    metrics: Metrics,
    local_addr: SocketAddr,
    /// Publishing without a token is allowed (the listen address is loopback).
    open_publish: bool,
    shutting_down: AtomicBool,
    /// Threads answering 503 now.
    rejecting: AtomicUsize,
    /// Connections from one client address at most (resolved from
    /// `Config::max_per_address` and the listen address).
    max_per_address: Option<usize>,
    /// Guards every open connection: its socket (to make room past the cap
    /// and to unblock its thread at shutdown) and whether it waits for a head.
    registry: Mutex<accept::Registry>,
    /// Set once by `run`, before the first connection.
    hooks: OnceLock<Hooks>,
    /// Guards the idle connection threads and the connections handed to
    /// them. Each idle thread waits on a condvar of its own, notified by the
    /// accept loop when it hands the thread a connection, and at shutdown.
    pool: Mutex<accept::Pool>,
}

impl Shared {
    fn pool(&self) -> MutexGuard<'_, accept::Pool> {
        hub::lock(&self.pool)
    }

    fn registry(&self) -> MutexGuard<'_, accept::Registry> {
        hub::lock(&self.registry)
    }

    fn hooks(&self) -> Option<&Hooks> {
        self.hooks.get()
    }

    /// Whether anyone reads lines of `level` (so that a line is made only
    /// then).
    fn logs(&self, level: Level) -> bool {
        self.hooks().is_some_and(|hooks| {
            hooks.logger.is_some() && (level == Level::Error || !hooks.errors_only)
        })
    }

    fn log(&self, level: Level, line: fmt::Arguments<'_>) {
        if !self.logs(level) {
            return;
        }
        if let Some(logger) = self.hooks().and_then(|hooks| hooks.logger.as_ref()) {
            logger(level, &line.to_string());
        }
    }
}

/// Stops a running server from any thread. Cheap to clone.
///
/// ```
/// use tinysse::{Config, Server};
///
/// let server = Server::bind(Config::new("127.0.0.1:0".parse().unwrap()))?.start()?;
/// let handle = server.handle();
/// let stopper = std::thread::spawn(move || handle.shutdown());
/// server.wait()?; // returns once the other thread has stopped the server
/// stopper.join().unwrap();
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Starts a shutdown: stops accepting, sends every stream a last jittered
    /// `retry:` and closes it. Returns at once; [`Server::run`] returns when
    /// every thread has been joined. A second call does nothing.
    pub fn shutdown(&self) {
        if self.shared.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.hub.close();
        self.shared.pool().wake_all();
        // Wake the accept loop, blocked in `accept`, with a connection to itself.
        let _ = TcpStream::connect_timeout(
            &wake_address(self.shared.local_addr),
            Duration::from_secs(1),
        );
    }
}

/// A server running on its own accept thread (from [`Server::start`]).
#[derive(Debug)]
pub struct Running {
    handle: Handle,
    thread: JoinHandle<Result<(), Error>>,
}

impl Running {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.shared.local_addr
    }

    /// The server's hub, to publish from the same process.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.handle.shared.hub
    }

    /// A handle that can stop the server from another thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Shuts the server down and waits until every thread it started has ended.
    ///
    /// Open streams get a last `retry:` and are closed:
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use tinysse::{Config, Server};
    ///
    /// let server = Server::bind(Config::new("127.0.0.1:0".parse().unwrap()))?.start()?;
    /// let mut stream = std::net::TcpStream::connect(server.local_addr())?;
    /// stream.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")?;
    /// let mut status = [0u8; 12];
    /// stream.read_exact(&mut status)?; // the stream is open
    /// assert_eq!(&status, b"HTTP/1.1 200");
    /// server.shutdown()?;
    /// let mut rest = String::new();
    /// stream.read_to_string(&mut rest)?;
    /// assert!(rest.ends_with("\n\n") && rest.contains("retry: "));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn shutdown(self) -> Result<(), Error> {
        self.handle.shutdown();
        self.wait()
    }

    /// Waits until the server stops (after a [`Handle::shutdown`] from
    /// elsewhere) and every thread it started has ended.
    pub fn wait(self) -> Result<(), Error> {
        self.thread.join().unwrap_or(Err(Error::Panicked))
    }
}

impl Server {
    /// Binds `config.listen` and makes the hub. Nothing runs until
    /// [`run`](Server::run) or [`start`](Server::start).
    ///
    /// Fails when the address cannot be bound, for example when it is taken:
    ///
    /// ```
    /// use tinysse::{Config, Server};
    ///
    /// let first = Server::bind(Config::new("127.0.0.1:0".parse().unwrap()))?;
    /// assert!(Server::bind(Config::new(first.local_addr())).is_err());
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn bind(config: Config) -> Result<Server, Error> {
        let hub = Hub::new()
            .with_history(config.history, config.history_bytes)
            .with_max_subscribers(config.max_subscribers)
            .with_retry(config.retry_ms);
        #[cfg(all(feature = "journal", feature = "redis"))]
        if config.journal.is_some() && config.redis.is_some() {
            return Err(Error::BadConfig(
                "--journal and --redis cannot be combined: Redis keeps the events".to_string(),
            ));
        }
        #[cfg(feature = "journal")]
        let hub = match &config.journal {
            Some(dir) => hub.with_journal(dir, config.journal_sync)?,
            None => hub,
        };
        #[cfg(feature = "redis")]
        if let Some(url) = &config.redis {
            let password = config.redis_password.as_deref();
            let hub = hub.with_redis(url, &config.redis_stream, password)?;
            return Server::with_hub(config, hub);
        }
        Server::with_hub(config, Arc::new(hub))
    }

    /// Like [`bind`](Server::bind), with a hub made by the caller (its own
    /// limits apply, not those in `config`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tinysse::{Config, Hub, Server};
    ///
    /// let hub = Arc::new(Hub::new().with_history(100, 64 * 1024));
    /// let server = Server::with_hub(Config::new("127.0.0.1:0".parse().unwrap()), Arc::clone(&hub))?;
    /// assert!(Arc::ptr_eq(server.hub(), &hub));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_hub(config: Config, hub: Arc<Hub>) -> Result<Server, Error> {
        let listener = TcpListener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        let open_publish = local_addr.ip().is_loopback();
        // SPEC §4: 64 on a non-loopback address; off on loopback, where a
        // local proxy brings every client.
        let max_per_address = match config.max_per_address {
            Some(0) => None,
            Some(max) => Some(max),
            None if open_publish => None,
            None => Some(accept::DEFAULT_MAX_PER_ADDRESS),
        };
        #[cfg(feature = "jwt")]
        let jwt_key = config.jwt_key.clone();
        #[cfg(feature = "jwt")]
        if jwt_key.is_some() && (config.token.is_some() || config.subscribe_token.is_some()) {
            return Err(Error::BadConfig(
                "--jwt-key-file replaces --token and --subscribe-token: give one or the other"
                    .to_string(),
            ));
        }
        let server = Server {
            listener,
            shared: Arc::new(Shared {
                config,
                hub,
                metrics: Metrics::default(),
                local_addr,
                open_publish,
                shutting_down: AtomicBool::new(false),
                rejecting: AtomicUsize::new(0),
                max_per_address,
                registry: Mutex::new(accept::Registry::default()),
                hooks: OnceLock::new(),
                pool: Mutex::new(accept::Pool::default()),
            }),
            hooks: Hooks::default(),
        };
        #[cfg(feature = "jwt")]
        if let Some(key) = jwt_key {
            return server.with_jwt_key(key);
        }
        Ok(server)
    }

    /// Greets each new subscriber: `greet` gets its request and returns
    /// events sent to that subscriber alone, after the opening `retry:` and
    /// before any replayed or live event. They are not stored in the history;
    /// an `id` they carry is sent as is.
    ///
    /// ```no_run
    /// use tinysse::{Config, Event, Server};
    ///
    /// let server = Server::bind(Config::default())?
    ///     .on_subscribe(|_request| vec![Event::new("welcome").with_event("hello")]);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn on_subscribe(
        mut self,
        greet: impl Fn(&Request) -> Vec<Event> + Send + Sync + 'static,
    ) -> Server {
        self.hooks.greeter = Some(Box::new(greet));
        self
    }

    /// Gets the server's log lines: one per subscriber arriving and leaving
    /// ([`Level::Info`]) and one per error ([`Level::Error`]). The library
    /// prints nothing by itself.
    ///
    /// ```no_run
    /// use tinysse::{Config, Level, Server};
    ///
    /// let server = Server::bind(Config::default())?.on_log(|level, line| {
    ///     if level == Level::Error {
    ///         eprintln!("tinysse: {line}");
    ///     }
    /// });
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn on_log(mut self, log: impl Fn(Level, &str) + Send + Sync + 'static) -> Server {
        self.hooks.logger = Some(Arc::new(log));
        self
    }

    /// Sends only [`Level::Error`] lines to [`Server::on_log`]'s hook; the
    /// lines about subscribers arriving and leaving are not even made
    /// (`tinysse serve --quiet`).
    pub fn errors_only(mut self) -> Server {
        self.hooks.errors_only = true;
        self
    }

    /// Decides, once per request to `/events` or `/publish`, which topics the
    /// client may read and write: `decide` gets the request (path, query,
    /// headers) and the client's address, and returns its [`Access`], or a
    /// refusal (an [`Error`] with its status, such as
    /// [`Error::Unauthorized`]). It replaces the shared tokens of
    /// [`Config::token`] and [`Config::subscribe_token`].
    ///
    /// A subscriber that names topics must be allowed each (else 401); one
    /// that names none gets every topic it may read, in replay and live. A
    /// publish must be allowed its topic (else 401). A stream ends when its
    /// access expires ([`Access::until`]).
    ///
    /// Accepting a session cookie from the application's own login:
    ///
    /// ```no_run
    /// use tinysse::{Access, Config, Error, Server, Topics};
    ///
    /// fn user_of_session(cookie: &str) -> Option<u64> {
    ///     # let _ = cookie; None
    ///     // ... look the session up in the application's store
    /// }
    ///
    /// let server = Server::bind(Config::default())?.with_access(|request, _peer| {
    ///     let session = (request.header("cookie").unwrap_or_default().split(';'))
    ///         .find_map(|pair| pair.trim().strip_prefix("session="));
    ///     let user = session.and_then(user_of_session).ok_or(Error::Unauthorized)?;
    ///     let own = Topics::patterns(&[format!("user/{user}/*"), "news".to_string()])?;
    ///     Ok(Access::new(own, Topics::none()))
    /// });
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_access(
        mut self,
        decide: impl Fn(&Request, SocketAddr) -> Result<Access, Error> + Send + Sync + 'static,
    ) -> Server {
        self.hooks.access = Some(Box::new(decide));
        self
    }

    /// Serves `body` with `content_type` at `GET` and `HEAD` on `path`
    /// (an exact path, without query). A page at `/` replaces the demo page;
    /// `/events` and `/publish` cannot be replaced.
    ///
    /// ```no_run
    /// use tinysse::{Config, Server};
    ///
    /// let server = Server::bind(Config::default())?
    ///     .with_page("/", "text/html; charset=utf-8", "<h1>my app</h1>");
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_page(mut self, path: &str, content_type: &str, body: impl Into<String>) -> Server {
        self.hooks.pages.retain(|page| page.0 != path);
        self.hooks
            .pages
            .push((path.to_string(), content_type.to_string(), body.into()));
        self
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The server's hub, to publish from the same process. Events published
    /// before the server runs wait in the history.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.shared.hub
    }

    /// A handle that can stop the server from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Runs the server on a new `tinysse-accept` thread.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use tinysse::{Config, Server};
    ///
    /// let server = Server::bind(Config::new("127.0.0.1:0".parse().unwrap()))?
    ///     .with_page("/hello", "text/plain", "hi")
    ///     .start()?;
    /// let mut stream = std::net::TcpStream::connect(server.local_addr())?;
    /// stream.write_all(b"GET /hello HTTP/1.0\r\n\r\n")?;
    /// let mut response = String::new();
    /// stream.read_to_string(&mut response)?;
    /// assert!(response.ends_with("\r\n\r\nhi"));
    /// server.shutdown()?;
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn start(self) -> Result<Running, Error> {
        let handle = self.handle();
        let thread = thread::Builder::new()
            .name("tinysse-accept".to_string())
            .spawn(move || self.run())?;
        Ok(Running { handle, thread })
    }

    /// Accepts connections on this thread until [`Handle::shutdown`]; then
    /// closes every connection and joins every thread before returning.
    ///
    /// ```no_run
    /// use tinysse::{Config, Server};
    ///
    /// let server = Server::bind(Config::default())?;
    /// println!("listening on http://{}", server.local_addr());
    /// server.run()?; // blocks until a Handle::shutdown from another thread
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn run(mut self) -> Result<(), Error> {
        let _ = self.shared.hooks.set(std::mem::take(&mut self.hooks));
        if let Some(logger) = self.shared.hooks().and_then(|hooks| hooks.logger.clone()) {
            self.shared.hub.set_logger(logger);
        }
        if let Some(loaded) = self.shared.hub.loaded() {
            self.shared.log(Level::Info, format_args!("{loaded}"));
        }
        accept::run(&self.shared, &self.listener);
        Ok(())
    }
}

/// Where to connect to wake an accept loop listening on `addr`.
fn wake_address(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_address_is_reachable() {
        assert_eq!(
            wake_address("0.0.0.0:80".parse().unwrap()),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            wake_address("[::]:80".parse().unwrap()),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(
            wake_address("10.0.0.1:80".parse().unwrap()),
            "10.0.0.1:80".parse().unwrap()
        );
    }
}
