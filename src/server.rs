//! The server: a blocking accept loop, one thread per connection, routing, the
//! subscriber loop, connection caps and a clean shutdown.
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
//! let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
//! let server = Server::bind(config)?.start()?;
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
// client closes, asks to close, or an error closes it. `GET /events` takes the
// thread over for the life of the stream: it waits on the hub's condvar (via
// `Subscription::next`) and writes what it gets, outside the hub lock.
//
// Shutdown: `Handle::shutdown` sets a flag, closes the hub (every subscriber
// wakes up, writes a last jittered `retry:` and leaves) and wakes the accept
// loop with a connection to itself. `run` then gives the connection threads
// `SHUTDOWN_GRACE` to finish on their own, shuts down the sockets of the rest
// (a stalled write or an idle keep-alive read returns at once), and joins
// every thread.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::Error;
use crate::config::Config;
use crate::event::{Event, comment_frame, retry_frame};
use crate::http::{Conn, Framing, Request, Response};
use crate::hub::{Hub, Next, Subscription};
use crate::metrics::{DropReason, Metrics};
use crate::publish::read_publication;

/// Stack size of a connection thread. A connection thread runs shallow code
/// (head parsing, one hub call, a write) that keeps every buffer on the heap;
/// 64 KiB leaves room for debug builds and formatting, while the default
/// 2 MiB would reserve (not touch) 32 times more address space per subscriber.
///
/// ```
/// assert_eq!(tinysse::server::CONNECTION_STACK_BYTES, 64 * 1024);
/// ```
pub const CONNECTION_STACK_BYTES: usize = 64 * 1024;
/// How long a connection thread that finished its connection waits for
/// another before it ends.
///
/// ```
/// assert_eq!(tinysse::server::POOL_IDLE, std::time::Duration::from_secs(2));
/// ```
pub const POOL_IDLE: Duration = Duration::from_secs(2);
/// Most connection threads waiting for a connection at once; past it a
/// thread that finishes its connection ends.
///
/// ```
/// assert_eq!(tinysse::server::MAX_IDLE_THREADS, 64);
/// ```
pub const MAX_IDLE_THREADS: usize = 64;
/// Time the connection threads get to finish by themselves at shutdown before
/// their sockets are shut down under them.
///
/// ```
/// use std::time::Duration;
/// assert!(tinysse::server::SHUTDOWN_GRACE <= Duration::from_secs(1));
/// ```
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// How often an idle stream with heartbeats off checks, at most, that its
/// client is still connected.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// The first check for a departed client, a moment after the stream opened
/// or went idle; each later one waits twice as long.
const FIRST_CLOSE_CHECK: Duration = Duration::from_millis(1);
/// Threads answering 503 past the connection cap at once; past it the
/// connection is closed without an answer.
const MAX_REJECT_THREADS: usize = 8;
/// A subscriber's write buffer larger than this after a burst is freed, so an
/// idle subscriber holds little memory.
const IDLE_BUFFER_BYTES: usize = 16 * 1024;
/// The demo page served at `/`.
const DEMO_PAGE: &str = include_str!("demo.html");

/// A bound server, ready to [`run`](Server::run) or [`start`](Server::start).
///
/// ```no_run
/// use tinysse::{Config, Server};
///
/// let config = Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
/// let server = Server::bind(config)?.start()?;
/// println!("listening on {}", server.local_addr());
/// server.hub().publish("default", tinysse::Event::new("hello"))?;
/// server.shutdown(); // stops, and joins every thread
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
    /// Documents served at `GET`/`HEAD` on their path: (path, content type, body).
    pages: Vec<(String, String, String)>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("greeter", &self.greeter.is_some())
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
    /// Guards a clone of each open connection's socket, by connection number,
    /// so that shutdown can unblock threads stuck in a read or a write.
    sockets: Mutex<HashMap<u64, TcpStream>>,
    /// Set once by `run`, before the first connection.
    hooks: OnceLock<Hooks>,
    /// Guards the idle connection threads' hand-over queue.
    pool: Mutex<Pool>,
    /// Notified (one waiter) by the accept loop when it queues a connection,
    /// and (all waiters) at shutdown. Idle connection threads wait on it.
    pool_ready: Condvar,
}

impl Shared {
    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sockets(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.sockets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn log(&self, line: std::fmt::Arguments<'_>) {
        if !self.config.quiet {
            eprintln!("tinysse: {line}");
        }
    }

    fn log_error(&self, line: std::fmt::Arguments<'_>) {
        eprintln!("tinysse: error: {line}");
    }
}

/// Stops a running server from any thread. Cheap to clone.
///
/// ```
/// use tinysse::{Config, Server};
///
/// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
/// let server = Server::bind(config)?.start()?;
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
    /// every thread has been joined.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tinysse::{Config, Event, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?.start()?;
    /// let hub = Arc::clone(server.hub());
    /// let handle = server.handle();
    /// handle.shutdown();
    /// handle.shutdown(); // a second call does nothing
    /// server.wait()?;
    /// assert!(hub.publish("default", Event::new("too late")).is_err());
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn shutdown(&self) {
        if self.shared.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.hub.close();
        self.shared.pool_ready.notify_all();
        // Wake the accept loop, blocked in `accept`, with a connection to itself.
        let _ = TcpStream::connect_timeout(
            &wake_address(self.shared.local_addr),
            Duration::from_secs(1),
        );
    }
}

/// A server running on its own accept thread (from [`Server::start`]).
///
/// ```
/// use tinysse::{Config, Running, Server};
///
/// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
/// let server: Running = Server::bind(config)?.start()?;
/// // The accept thread serves connections; this thread is free.
/// server.shutdown()?;
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug)]
pub struct Running {
    handle: Handle,
    thread: JoinHandle<Result<(), Error>>,
}

impl Running {
    /// The address the server listens on.
    ///
    /// ```
    /// use tinysse::{Config, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?.start()?;
    /// let url = format!("http://{}/events", server.local_addr());
    /// assert!(url.starts_with("http://127.0.0.1:"));
    /// server.shutdown()?;
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.shared.local_addr
    }

    /// The server's hub, to publish from the same process.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tinysse::{Config, Event, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?.start()?;
    /// let mut subscription = server.hub().subscribe(None, None)?;
    /// server.hub().publish("news", Event::new("hello"))?;
    /// let mut frames = Vec::new();
    /// subscription.next(&mut frames, Duration::from_secs(5));
    /// assert!(String::from_utf8_lossy(&frames).contains("data: hello\n"));
    /// server.shutdown()?;
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn hub(&self) -> &Arc<Hub> {
        &self.handle.shared.hub
    }

    /// A handle that can stop the server from another thread.
    ///
    /// ```
    /// use tinysse::{Config, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?.start()?;
    /// let handle = server.handle();
    /// server.shutdown()?;
    /// handle.shutdown(); // the server has already stopped: nothing happens
    /// # Ok::<(), tinysse::Error>(())
    /// ```
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
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?.start()?;
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
    ///
    /// ```
    /// use tinysse::{Config, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?;
    /// let handle = server.handle(); // taken before start
    /// let running = server.start()?;
    /// handle.shutdown();
    /// running.wait()?;
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn wait(self) -> Result<(), Error> {
        self.thread
            .join()
            .unwrap_or(Err(Error::Client("the accept thread panicked".to_string())))
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
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let first = Server::bind(config.clone())?;
    /// let taken = Config { listen: first.local_addr(), ..config };
    /// assert!(Server::bind(taken).is_err());
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn bind(config: Config) -> Result<Server, Error> {
        let hub = Hub::new()
            .with_history(config.history, config.history_bytes)
            .with_max_subscribers(config.max_subscribers);
        Server::with_hub(config, Arc::new(hub))
    }

    /// Like [`bind`](Server::bind), with a hub made by the caller (its own
    /// limits apply, not those in `config`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tinysse::{Config, Hub, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let hub = Arc::new(Hub::new().with_history(100, 64 * 1024));
    /// let server = Server::with_hub(config, Arc::clone(&hub))?;
    /// assert!(Arc::ptr_eq(server.hub(), &hub));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_hub(config: Config, hub: Arc<Hub>) -> Result<Server, Error> {
        let listener = TcpListener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        let open_publish = local_addr.ip().is_loopback();
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                config,
                hub,
                metrics: Metrics::default(),
                local_addr,
                open_publish,
                shutting_down: AtomicBool::new(false),
                rejecting: AtomicUsize::new(0),
                sockets: Mutex::new(HashMap::new()),
                hooks: OnceLock::new(),
                pool: Mutex::new(Pool::default()),
                pool_ready: Condvar::new(),
            }),
            hooks: Hooks::default(),
        })
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
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use tinysse::{Config, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?;
    /// assert_eq!(server.local_addr().ip(), Ipv4Addr::LOCALHOST);
    /// assert_ne!(server.local_addr().port(), 0); // the port the system chose
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The server's hub, to publish from the same process.
    ///
    /// Events published before the server runs wait in the history:
    ///
    /// ```
    /// use tinysse::{Config, Event, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?;
    /// server.hub().publish("default", Event::new("first"))?;
    /// assert_eq!(server.hub().stats().history_len, 1);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn hub(&self) -> &Arc<Hub> {
        &self.shared.hub
    }

    /// A handle that can stop the server from another thread.
    ///
    /// ```
    /// use tinysse::{Config, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?;
    /// let handle = server.handle();
    /// let accept = std::thread::spawn(move || server.run());
    /// handle.shutdown();
    /// accept.join().unwrap()?;
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Why publishing is refused without a token, if it is (for the startup message).
    ///
    /// ```
    /// use tinysse::{Config, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?;
    /// assert_eq!(server.publish_warning(), None); // loopback: open to local publishers
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn publish_warning(&self) -> Option<String> {
        if self.shared.config.token.is_some() || self.shared.open_publish {
            return None;
        }
        Some(format!(
            "{} is not a loopback address and no --token is set, so POST /publish answers 403; \
             set --token to publish from the network",
            self.shared.local_addr.ip()
        ))
    }

    /// A warning when the process may open fewer files than the server may
    /// need (one per connection, plus a few), read from `/proc/self/limits`
    /// on Linux. tinysse cannot raise the limit itself: that takes a libc call, and the
    /// crate has no dependencies and no foreign calls.
    ///
    /// ```
    /// use tinysse::{Config, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?;
    /// if let Some(warning) = server.open_files_warning() {
    ///     eprintln!("tinysse: warning: {warning}");
    /// }
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn open_files_warning(&self) -> Option<String> {
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let soft: u64 = limits
            .lines()
            .find(|line| line.starts_with("Max open files"))?
            .split_whitespace()
            .nth(3)?
            .parse()
            .ok()?;
        let needed = self.shared.config.max_connections() as u64 + 16;
        (soft < needed).then(|| {
            format!(
                "the open-files limit is {soft}, but --max-subscribers {} needs about {needed}; \
                 raise it (ulimit -n {needed}) or lower --max-subscribers",
                self.shared.config.max_subscribers
            )
        })
    }

    /// Runs the server on a new `tinysse-accept` thread.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use tinysse::{Config, Server};
    ///
    /// # let config = Config { listen: "127.0.0.1:0".parse().unwrap(), quiet: true, ..Config::default() };
    /// let server = Server::bind(config)?.with_page("/hello", "text/plain", "hi").start()?;
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
        let shared = &self.shared;
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let mut next_id: u64 = 0;
        for stream in self.listener.incoming() {
            if shared.shutting_down.load(Ordering::SeqCst) {
                break;
            }
            let stream = match stream {
                Ok(stream) => stream,
                Err(err) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    shared.log_error(format_args!("accept: {err}"));
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            threads.retain(|thread| !thread.is_finished());
            if shared.metrics.connections() >= shared.config.max_connections() as u64 {
                reject(shared, stream, &mut threads);
                continue;
            }
            next_id += 1;
            match dispatch(shared, stream, next_id) {
                Ok(thread) => threads.extend(thread),
                Err(err) => {
                    shared.log_error(format_args!("cannot start a connection thread: {err}"))
                }
            }
        }
        self.handle().shutdown();
        drop(self.listener);
        // Let streams send their last `retry:` and publishers finish.
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while threads.iter().any(|thread| !thread.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        // Connections handed over but not taken are closed here.
        shared.pool().waiting.clear();
        for socket in shared.sockets().values() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        for thread in threads {
            let _ = thread.join();
        }
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

/// Counts a connection in and out, and keeps its socket reachable for shutdown.
#[derive(Debug)]
struct ConnectionGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.shared.sockets().remove(&self.id);
        self.shared.metrics.connection_closed();
    }
}

/// A connection for a thread to serve, counted and registered for shutdown.
type Job = (TcpStream, ConnectionGuard);

/// Connection threads that finished a connection and wait for another.
#[derive(Debug, Default)]
struct Pool {
    /// Connections handed to idle threads, not yet taken.
    waiting: VecDeque<Job>,
    /// Threads waiting in `next_job`.
    idle: usize,
}

/// Hands `stream` to an idle connection thread, or starts a new one (whose
/// handle is returned). Either way the connection gets a thread of its own.
fn dispatch(
    shared: &Arc<Shared>,
    stream: TcpStream,
    id: u64,
) -> io::Result<Option<JoinHandle<()>>> {
    shared.sockets().insert(id, stream.try_clone()?);
    shared.metrics.connection_opened();
    let guard = ConnectionGuard {
        shared: Arc::clone(shared),
        id,
    };
    let mut pool = shared.pool();
    if pool.idle > pool.waiting.len() {
        pool.waiting.push_back((stream, guard));
        drop(pool);
        shared.pool_ready.notify_one();
        return Ok(None);
    }
    drop(pool);
    let worker = Arc::clone(shared);
    // On failure the closure (and so the guard) is dropped: the count stays right.
    thread::Builder::new()
        .name("tinysse-conn".to_string())
        .stack_size(CONNECTION_STACK_BYTES)
        .spawn(move || {
            let mut job = Some((stream, guard));
            while let Some((stream, guard)) = job.take() {
                serve_connection(&worker, stream);
                drop(guard);
                job = next_job(&worker);
            }
        })
        .map(Some)
}

/// Waits, as an idle connection thread, for the next connection; `None`
/// (the thread ends) after `POOL_IDLE`, at shutdown, or when enough threads
/// are idle already.
fn next_job(shared: &Shared) -> Option<Job> {
    let mut pool = shared.pool();
    if pool.idle >= MAX_IDLE_THREADS || shared.shutting_down.load(Ordering::SeqCst) {
        return None;
    }
    pool.idle += 1;
    let (mut pool, _) = shared
        .pool_ready
        .wait_timeout_while(pool, POOL_IDLE, |pool| {
            pool.waiting.is_empty() && !shared.shutting_down.load(Ordering::SeqCst)
        })
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    pool.idle -= 1;
    pool.waiting.pop_front()
}

/// Past the connection cap: answer 503 on a short-lived thread, or close at once.
fn reject(shared: &Arc<Shared>, stream: TcpStream, threads: &mut Vec<JoinHandle<()>>) {
    if shared.rejecting.fetch_add(1, Ordering::SeqCst) >= MAX_REJECT_THREADS {
        shared.rejecting.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let worker = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("tinysse-reject".to_string())
        .stack_size(CONNECTION_STACK_BYTES)
        .spawn(move || {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let mut conn = Conn::new(stream);
            // Read the request first so that closing does not reset the
            // connection under the answer.
            let _ = conn.read_head(Duration::from_secs(1));
            let seconds = jittered(worker.config.retry_ms).div_ceil(1000);
            let response = Response::text(503, "too many connections, try again later\n")
                .with_header("Retry-After", seconds.to_string());
            worker.metrics.request(503);
            let _ = response.write_to(&mut conn.stream, false, false);
            let _ = conn.stream.shutdown(Shutdown::Write);
            worker.rejecting.fetch_sub(1, Ordering::SeqCst);
        });
    match spawned {
        Ok(thread) => threads.push(thread),
        Err(_) => {
            shared.rejecting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// What a handled request leaves the connection as.
enum After {
    KeepAlive,
    Close,
}

fn serve_connection(shared: &Arc<Shared>, stream: TcpStream) {
    // Only the log lines name the client; `--quiet` saves the system call.
    let peer = match shared.config.quiet {
        true => String::new(),
        false => stream
            .peer_addr()
            .map(|addr| addr.to_string())
            .unwrap_or_default(),
    };
    // Events go out as soon as they are written; no Nagle delay.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(shared.config.write_timeout));
    let mut conn = Conn::new(stream);
    let mut first = true;
    while !shared.shutting_down.load(Ordering::SeqCst) {
        let head = if first {
            conn.read_head(shared.config.head_timeout)
        } else {
            conn.read_next_head(shared.config.head_timeout)
        };
        let request = match head {
            Ok(Some(request)) => request,
            // Closed, or a keep-alive connection idle for the whole timeout.
            Ok(None) | Err(Error::Io(_)) => return,
            Err(err) => {
                respond_error(shared, &mut conn, &err, None);
                return;
            }
        };
        first = false;
        match handle_request(shared, &mut conn, request, &peer) {
            After::KeepAlive => {}
            After::Close => return,
        }
    }
}

fn respond_error(
    shared: &Shared,
    conn: &mut Conn<TcpStream>,
    err: &Error,
    request: Option<&Request>,
) {
    let mut response = Response::error(err);
    if let Some(request) = request {
        response = response.with_headers(cors_headers(shared, request));
    }
    if matches!(err, Error::Unauthorized) {
        response = response.with_header("WWW-Authenticate", "Bearer");
    }
    send(shared, conn, &response, false, false);
}

fn send(
    shared: &Shared,
    conn: &mut Conn<TcpStream>,
    response: &Response,
    head_only: bool,
    keep_alive: bool,
) -> bool {
    shared.metrics.request(response.status);
    shared.metrics.sent(response.body.len());
    response
        .write_to(&mut conn.stream, head_only, keep_alive)
        .is_ok()
}

fn handle_request(
    shared: &Arc<Shared>,
    conn: &mut Conn<TcpStream>,
    request: Request,
    peer: &str,
) -> After {
    let framing = match request.body_framing() {
        Ok(framing) => framing,
        Err(err) => {
            respond_error(shared, conn, &err, Some(&request));
            return After::Close;
        }
    };
    let method = request.method.as_str();
    let page = shared
        .hooks
        .get()
        .and_then(|hooks| hooks.pages.iter().find(|page| page.0 == request.path));
    let allow = match request.path.as_str() {
        "/events" => "GET, OPTIONS",
        "/publish" => "POST, OPTIONS",
        _ if page.is_some() => "GET, HEAD, OPTIONS",
        "/" | "/healthz" | "/metrics" => "GET, HEAD, OPTIONS",
        "*" if method == "OPTIONS" => "GET, HEAD, POST, OPTIONS",
        _ => "",
    };
    // Only publish reads a body; after any other request with a body the
    // connection closes rather than guess where the next request starts.
    let keep_alive =
        request.keep_alive() && (framing == Framing::None || framing == Framing::Length(0));
    let response = match (request.path.as_str(), method) {
        (_, _) if allow.is_empty() => Response::text(404, "not found\n"),
        (_, "OPTIONS") => preflight(shared, &request, allow),
        ("/events", "GET") => return subscribe(shared, conn, request, peer),
        ("/publish", "POST") => return publish(shared, conn, &request, framing),
        (_, "GET" | "HEAD") if page.is_some() => {
            let (_, content_type, body) = page.expect("checked just above");
            Response::typed(200, content_type, body.clone())
        }
        ("/", "GET" | "HEAD") => Response::typed(200, "text/html; charset=utf-8", DEMO_PAGE),
        ("/healthz", "GET" | "HEAD") => Response::text(200, "ok\n"),
        ("/metrics", "GET" | "HEAD") => {
            let text = shared.metrics.render(&shared.hub.stats());
            Response::typed(200, "text/plain; version=0.0.4; charset=utf-8", text)
        }
        _ => Response::text(
            405,
            format!("method {method} not allowed; allowed: {allow}\n"),
        )
        .with_header("Allow", allow),
    };
    let response = response.with_headers(cors_headers(shared, &request));
    if send(shared, conn, &response, method == "HEAD", keep_alive) && keep_alive {
        After::KeepAlive
    } else {
        After::Close
    }
}

/// CORS headers for a request whose `Origin` is allowed by `--cors-origin`.
fn cors_headers(shared: &Shared, request: &Request) -> Vec<(&'static str, String)> {
    let origins = &shared.config.cors_origins;
    let Some(origin) = request.header("origin") else {
        return Vec::new();
    };
    if origins.iter().any(|allowed| allowed == "*") {
        vec![("Access-Control-Allow-Origin", "*".to_string())]
    } else if origins.iter().any(|allowed| allowed == origin) {
        vec![
            ("Access-Control-Allow-Origin", origin.to_string()),
            ("Access-Control-Allow-Credentials", "true".to_string()),
            ("Vary", "Origin".to_string()),
        ]
    } else {
        Vec::new()
    }
}

/// `OPTIONS`: a CORS preflight answer when the origin is allowed, else 204
/// with `Allow`. The origin headers themselves are added by `handle_request`,
/// as for every response (twice would make browsers refuse the preflight).
fn preflight(shared: &Shared, request: &Request, allow: &str) -> Response {
    let mut response = Response::empty(204).with_header("Allow", allow);
    if !cors_headers(shared, request).is_empty() {
        response = response
            .with_header("Access-Control-Allow-Methods", "GET, POST")
            .with_header(
                "Access-Control-Allow-Headers",
                "Authorization, Content-Type, Last-Event-ID",
            )
            .with_header("Access-Control-Max-Age", "86400");
    }
    response
}

/// The token in `Authorization: Bearer <token>`, if any.
fn bearer(request: &Request) -> Option<&str> {
    let value = request.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares without stopping at the first difference, so the time taken does
/// not tell an attacker how much of a guess was right.
fn same_token(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    let mut difference = given.len() ^ expected.len();
    for (index, &byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ given.get(index).copied().unwrap_or(!byte));
    }
    difference == 0
}

fn publish(
    shared: &Arc<Shared>,
    conn: &mut Conn<TcpStream>,
    request: &Request,
    framing: Framing,
) -> After {
    let refuse = |conn: &mut Conn<TcpStream>, err: Error| {
        respond_error(shared, conn, &err, Some(request));
        After::Close
    };
    match &shared.config.token {
        Some(token) if !bearer(request).is_some_and(|given| same_token(given, token)) => {
            return refuse(conn, Error::Unauthorized);
        }
        None if !shared.open_publish => return refuse(conn, Error::Forbidden),
        _ => {}
    }
    match framing {
        Framing::None => return refuse(conn, Error::LengthRequired),
        Framing::Length(length) if length > shared.config.max_body as u64 => {
            return refuse(conn, Error::BodyTooLarge);
        }
        _ => {}
    }
    if request.expects_continue()
        && conn
            .stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .is_err()
    {
        return After::Close;
    }
    let body = match conn.read_body(framing, shared.config.max_body) {
        Ok(body) => body,
        Err(Error::Io(_)) => return After::Close,
        Err(err) => return refuse(conn, err),
    };
    // The body has been read: the connection stays usable after a 400.
    let result = request
        .query_pairs()
        .and_then(|query| read_publication(request.header("content-type"), &query, &body))
        .and_then(|publication| {
            shared
                .hub
                .publish_batch_deferred(&publication.topic, publication.events)
        });
    let keep_alive = request.keep_alive() && !shared.shutting_down.load(Ordering::SeqCst);
    let (response, published) = match result {
        Ok(published) => (
            Response::text(200, published.ids.join("\n") + "\n"),
            Some(published),
        ),
        Err(err) => (Response::error(&err), None),
    };
    let response = response.with_headers(cors_headers(shared, request));
    shared.metrics.request(response.status);
    shared.metrics.sent(response.body.len());
    let bytes = response.to_bytes(false, keep_alive);
    // Answer the publisher before waking the subscribers: once thousands of
    // subscriber threads are runnable, this thread would wait its turn among
    // them, and a publisher that waits for each answer would be throttled.
    // The answer goes out without blocking; if it cannot (a publisher that
    // does not read), the subscribers are woken first, so that no publisher
    // can delay them.
    let sent = write_now(&conn.stream, &bytes);
    drop(published);
    let written = match sent {
        Ok(count) => conn.stream.write_all(&bytes[count..]).is_ok(),
        Err(_) => false,
    };
    if written && keep_alive {
        After::KeepAlive
    } else {
        After::Close
    }
}

/// Writes what the socket takes without blocking; returns how many bytes.
fn write_now(mut stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    stream.set_nonblocking(true)?;
    let mut written = 0;
    let result = loop {
        match stream.write(&bytes[written..]) {
            Ok(0) => break Ok(written),
            Ok(count) => {
                written += count;
                if written == bytes.len() {
                    break Ok(written);
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break Ok(written),
            Err(err) => break Err(err),
        }
    };
    stream.set_nonblocking(false)?;
    result
}

/// The subscription a `GET /events` asks for, or the error to answer.
fn subscription_for(shared: &Arc<Shared>, request: &Request) -> Result<Subscription, Error> {
    let query = request.query_pairs()?;
    let value = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    if let Some(expected) = &shared.config.subscribe_token {
        let given = value("token").or_else(|| bearer(request));
        let allowed = given.is_some_and(|given| {
            same_token(given, expected)
                || shared
                    .config
                    .token
                    .as_deref()
                    .is_some_and(|publish| same_token(given, publish))
        });
        if !allowed {
            return Err(Error::Unauthorized);
        }
    }
    let topics: Vec<String> = query
        .iter()
        .filter(|(key, _)| key == "topic")
        .map(|(_, value)| value.clone())
        .collect();
    let topics = if topics.is_empty() {
        None
    } else {
        Some(topics)
    };
    // The header wins: it is what a reconnecting browser sends.
    let last_id = request
        .header("last-event-id")
        .filter(|id| !id.is_empty())
        .or_else(|| value("last_event_id"))
        .or_else(|| value("lastEventId"));
    shared.hub.subscribe(topics, last_id)
}

fn stream_head(shared: &Shared, request: &Request) -> Vec<u8> {
    let mut head = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n",
    );
    for (name, value) in cors_headers(shared, request) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.into_bytes()
}

fn subscribe(
    shared: &Arc<Shared>,
    conn: &mut Conn<TcpStream>,
    owned: Request,
    peer: &str,
) -> After {
    let request = &owned;
    let mut subscription = match subscription_for(shared, request) {
        Ok(subscription) => subscription,
        Err(Error::Full) => {
            // 200, so that browsers come back later instead of giving up; a
            // jittered retry spreads the reconnections out.
            let retry = jittered(shared.config.retry_ms);
            let mut bytes = stream_head(shared, request);
            bytes.extend_from_slice(
                format!("Retry-After: {}\r\n\r\n", retry.div_ceil(1000)).as_bytes(),
            );
            bytes.extend_from_slice(&comment_frame("server full, try again later"));
            bytes.extend_from_slice(&retry_frame(retry));
            shared.metrics.request(200);
            shared.metrics.dropped(DropReason::Full);
            let _ = conn.stream.write_all(&bytes);
            let _ = conn.stream.shutdown(Shutdown::Write);
            return After::Close;
        }
        Err(err) => {
            respond_error(shared, conn, &err, Some(request));
            return After::Close;
        }
    };
    conn.release_buffer();
    let mut bytes = stream_head(shared, request);
    bytes.extend_from_slice(b"\r\n");
    // "The body starts at once with retry: <ms> and a blank line."
    bytes.extend_from_slice(&retry_frame(shared.config.retry_ms));
    if let Some(greet) = shared.hooks.get().and_then(|hooks| hooks.greeter.as_ref()) {
        for event in greet(request) {
            if event.validate().is_ok() {
                event.encode_into(&mut bytes);
            }
        }
    }
    shared.metrics.request(200);
    shared.log(format_args!(
        "subscriber {peer} arrived ({})",
        describe_topics(request)
    ));
    // The stream may last for days: do not keep the request's strings.
    drop(owned);
    let reason = stream_events(shared, &mut conn.stream, &mut subscription, bytes);
    drop(subscription);
    shared.log(format_args!("subscriber {peer} left ({reason})"));
    After::Close
}

fn describe_topics(request: &Request) -> String {
    let topics: Vec<String> = request
        .query_pairs()
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| key == "topic")
        .map(|(_, value)| value)
        .collect();
    if topics.is_empty() {
        "all topics".to_string()
    } else {
        format!("topics {}", topics.join(","))
    }
}

/// The subscriber loop: write what the hub hands out, a heartbeat when idle.
/// Returns why it ended.
fn stream_events(
    shared: &Shared,
    stream: &mut TcpStream,
    subscription: &mut Subscription,
    first: Vec<u8>,
) -> &'static str {
    let mut buffer = first;
    let mut events = 0;
    let heartbeat = shared.config.heartbeat;
    // Without heartbeats, an idle stream still checks its client this often.
    let longest_check = if heartbeat.is_zero() {
        IDLE_CHECK
    } else {
        heartbeat
    };
    // A thread blocked on the hub's condvar cannot see its client's FIN, so an
    // idle stream looks for it at growing intervals: a client that leaves at
    // once (a reconnect storm, a page closed) frees its thread within
    // milliseconds, and a long-lived idle one costs a dozen extra wake-ups.
    let mut check_every = FIRST_CLOSE_CHECK;
    let mut last_write = Instant::now();
    loop {
        if !buffer.is_empty() {
            if let Err(err) = stream.write_all(&buffer) {
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    shared.metrics.dropped(DropReason::WriteTimeout);
                    shared.log_error(format_args!(
                        "dropped a subscriber that accepted nothing for the write timeout"
                    ));
                    return "write timeout";
                }
                return "disconnected";
            }
            shared.metrics.delivered(events, buffer.len());
            last_write = Instant::now();
            if buffer.capacity() > IDLE_BUFFER_BYTES {
                buffer = Vec::new();
            }
            buffer.clear();
        }
        let wait = if heartbeat.is_zero() {
            check_every
        } else {
            check_every.min(heartbeat.saturating_sub(last_write.elapsed()))
        };
        match subscription.next(&mut buffer, wait) {
            Next::Events(count) => {
                events = count;
            }
            Next::Idle => {
                events = 0;
                // Also before a heartbeat: the first write after a client left
                // still succeeds (the client answers it with a reset).
                if peer_closed(stream) {
                    return "disconnected";
                }
                check_every = (check_every * 2).min(longest_check);
                if !heartbeat.is_zero() && last_write.elapsed() >= heartbeat {
                    buffer.extend_from_slice(&comment_frame("heartbeat"));
                }
            }
            Next::Closed => {
                // A last jittered retry, so that clients do not all come back
                // in the same second.
                let _ = stream.write_all(&retry_frame(jittered(shared.config.retry_ms)));
                shared.metrics.dropped(DropReason::Shutdown);
                return "shutdown";
            }
        }
    }
}

/// Whether the client has closed its end (a read would return end of
/// stream) or the connection failed.
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => err.kind() != io::ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    closed
}

/// `millis` plus a random part of up to `millis` again (at least 1 s of spread).
fn jittered(millis: u64) -> u64 {
    millis + random_u64() % millis.max(1000)
}

/// A random number, for jitter (not for secrets).
pub(crate) fn random_u64() -> u64 {
    // Each `RandomState` gets new random keys, so any hash it makes is random.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u8(0);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("secret", "secret"));
        assert!(!same_token("secreT", "secret"));
        assert!(!same_token("secret2", "secret"));
        assert!(!same_token("", "secret"));
        assert!(!same_token("secret", ""));
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let value = jittered(3000);
            assert!((3000..6000).contains(&value), "{value}");
        }
    }

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
