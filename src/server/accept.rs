//! Accepting: the accept loop, the caps (connections in all, connections per
//! client address), making room past the cap, the idle thread pool, and
//! each connection thread's request loop.

// Implementation notes
//
// Every open connection is in the `Registry`, with its one socket (shared by
// its thread and the registry: one descriptor per connection) and, while it
// waits for a request head, since when. Past the connection cap, the
// connection that has waited longest for its head makes room: the accept
// loop marks it evicted and shuts down its reading side, which ends the
// owner's blocked read at once; the owner sees the mark, answers 408 and
// closes. Only the owner ever writes to a connection.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::metrics::Refusal;
use super::route::{After, handle_request, respond_error};
use super::{Level, Shared};
use crate::Error;
use crate::http::{Conn, Response, Stream};
use crate::wire::id::jittered;

/// Stack size of a connection thread. A connection thread runs shallow code
/// (head parsing, one hub call, a write) that keeps every buffer on the heap;
/// 64 KiB leaves room for debug builds and formatting, while the default
/// 2 MiB would reserve (not touch) 32 times more address space per subscriber.
pub(crate) const CONNECTION_STACK_BYTES: usize = 64 * 1024;
/// Connections from one client address when listening on a non-loopback
/// address and `max_per_address` is not set; past it: 503.
pub(crate) const DEFAULT_MAX_PER_ADDRESS: usize = 64;
/// How long a connection thread that finished its connection waits for
/// another before it ends.
const POOL_IDLE: Duration = Duration::from_secs(2);
/// Most connection threads waiting for a connection at once; past it a
/// thread that finishes its connection ends.
const MAX_IDLE_THREADS: usize = 64;
/// Time the connection threads get to finish by themselves at shutdown before
/// their sockets are shut down under them.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// Threads answering 503 past the caps at once; past it the connection is
/// closed without an answer.
const MAX_REJECT_THREADS: usize = 8;
/// After an accept error (out of descriptors, say), accepting pauses this
/// long before it tries again: the server keeps serving what it has.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Accept errors are logged at most this often, with a count.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// A connection's socket: one descriptor, shared by the connection's thread
/// and the registry (which shuts it down to make room or at shutdown).
#[derive(Debug, Clone)]
pub(super) struct Socket(Arc<TcpStream>);

impl Deref for Socket {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.0
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self.0).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Socket {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }
}

/// Every open connection, and the counts the caps need.
#[derive(Debug, Default)]
pub(super) struct Registry {
    open: HashMap<u64, Slot>,
    /// Open connections by client address.
    per_address: HashMap<IpAddr, usize>,
    next_id: u64,
}

#[derive(Debug)]
struct Slot {
    socket: Socket,
    address: IpAddr,
    /// Since when it waits for a request head; `None` once it has one.
    waiting_since: Option<Instant>,
    /// Closed to make room: its owner answers 408.
    evicted: bool,
}

/// Accepts connections until shutdown, then closes every connection and
/// joins every thread.
pub(super) fn run(shared: &Arc<Shared>, listener: &TcpListener) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut errors = AcceptErrors::default();
    while !shared.shutting_down.load(Ordering::SeqCst) {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors, say (SPEC §4): keep serving the
                // connections we have, pause, and try again.
                errors.count(shared, &err);
                thread::sleep(ACCEPT_PAUSE);
                continue;
            }
        };
        if shared.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        threads.retain(|thread| !thread.is_finished());
        admit(shared, stream, peer, &mut threads);
    }
    super::Handle {
        shared: Arc::clone(shared),
    }
    .shutdown();
    // Let streams send their last `retry:` and publishers finish.
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while threads.iter().any(|thread| !thread.is_finished()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    // Connections handed over but not taken are closed here.
    shared.pool().handed.clear();
    for slot in shared.registry().open.values() {
        let _ = slot.socket.shutdown(Shutdown::Both);
    }
    for thread in threads {
        let _ = thread.join();
    }
}

/// Accept errors since the last log line about them.
#[derive(Debug, Default)]
struct AcceptErrors {
    count: u64,
    logged: Option<Instant>,
}

impl AcceptErrors {
    /// Counts an error; logs it (with the count) at most every 10 s.
    fn count(&mut self, shared: &Shared, err: &io::Error) {
        shared.metrics.accept_failed();
        self.count += 1;
        if self
            .logged
            .is_some_and(|at| at.elapsed() < ACCEPT_LOG_EVERY)
        {
            return;
        }
        let count = std::mem::take(&mut self.count);
        let every = ACCEPT_LOG_EVERY.as_secs();
        shared.log(
            Level::Error,
            format_args!("accept: {err} ({count} times in {every} s; still serving, retrying)"),
        );
        self.logged = Some(Instant::now());
    }
}

/// Registers a new connection and gives it a thread, or refuses it (503)
/// past a cap. Past the cap in all, the connection that has waited longest
/// for its head is closed to make room first.
fn admit(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    threads: &mut Vec<JoinHandle<()>>,
) {
    let address = peer.ip();
    let socket = Socket(Arc::new(stream));
    let mut registry = shared.registry();
    let per_address = registry.per_address.get(&address).copied().unwrap_or(0);
    if shared.max_per_address.is_some_and(|max| per_address >= max) {
        drop(registry);
        return reject(shared, socket, Refusal::PerAddress, threads);
    }
    if registry.open.len() >= shared.config.max_connections() {
        let oldest = registry
            .open
            .values_mut()
            .filter(|slot| !slot.evicted)
            .filter_map(|slot| Some((slot.waiting_since?, slot)))
            .min_by_key(|(since, _)| *since);
        let Some((_, slot)) = oldest else {
            drop(registry);
            return reject(shared, socket, Refusal::Full, threads);
        };
        // Its owner's read ends at once; the owner answers 408.
        slot.evicted = true;
        let _ = slot.socket.shutdown(Shutdown::Read);
        shared.metrics.refused(Refusal::SlowHead);
    }
    registry.next_id += 1;
    let id = registry.next_id;
    registry.open.insert(
        id,
        Slot {
            socket: socket.clone(),
            address,
            waiting_since: Some(Instant::now()),
            evicted: false,
        },
    );
    *registry.per_address.entry(address).or_insert(0) += 1;
    drop(registry);
    shared.metrics.connection_opened();
    let guard = ConnectionGuard {
        shared: Arc::clone(shared),
        id,
    };
    match dispatch(shared, (socket, guard, peer)) {
        Ok(thread) => threads.extend(thread),
        Err(err) => shared.log(
            Level::Error,
            format_args!("cannot start a connection thread: {err}"),
        ),
    }
}

/// Takes a connection out of the registry and the count when it ends.
#[derive(Debug)]
pub(super) struct ConnectionGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl ConnectionGuard {
    /// Marks the connection as waiting for a request head (`true`) or past
    /// it. Returns `false` if it was closed to make room (answer 408).
    fn waiting(&self, waiting: bool) -> bool {
        let mut registry = self.shared.registry();
        let Some(slot) = registry.open.get_mut(&self.id) else {
            return false;
        };
        slot.waiting_since = waiting.then(Instant::now);
        !slot.evicted
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut registry = self.shared.registry();
        if let Some(slot) = registry.open.remove(&self.id)
            && let Some(count) = registry.per_address.get_mut(&slot.address)
        {
            *count -= 1;
            if *count == 0 {
                registry.per_address.remove(&slot.address);
            }
        }
        drop(registry);
        self.shared.metrics.connection_closed();
    }
}

/// A connection for a thread to serve, registered and counted, and its
/// client's address.
type Job = (Socket, ConnectionGuard, SocketAddr);

/// Connection threads that finished a connection and wait for another.
/// The newest idle thread is reused first, so that the others expire after
/// `POOL_IDLE` when load drops (SPEC §4, "Threads come back").
#[derive(Debug, Default)]
pub(super) struct Pool {
    /// Idle threads, oldest first: a ticket and the condvar it waits on.
    idle: Vec<(u64, Arc<Condvar>)>,
    /// Connections handed to an idle thread, by its ticket, not yet taken.
    handed: Vec<(u64, Job)>,
    next_ticket: u64,
}

impl Pool {
    /// Wakes every idle thread (shutdown).
    pub(super) fn wake_all(&self) {
        for (_, wake) in &self.idle {
            wake.notify_one();
        }
    }
}

/// Hands a connection to the newest idle thread, or starts a new one (whose
/// handle is returned). Either way the connection gets a thread of its own.
fn dispatch(shared: &Arc<Shared>, job: Job) -> io::Result<Option<JoinHandle<()>>> {
    let mut pool = shared.pool();
    if let Some((ticket, wake)) = pool.idle.pop() {
        pool.handed.push((ticket, job));
        drop(pool);
        wake.notify_one();
        return Ok(None);
    }
    drop(pool);
    let worker = Arc::clone(shared);
    // On failure the closure (and so the guard) is dropped: the count stays right.
    thread::Builder::new()
        .name("tinysse-conn".to_string())
        .stack_size(CONNECTION_STACK_BYTES)
        .spawn(move || {
            let wake = Arc::new(Condvar::new());
            let mut job = Some(job);
            while let Some((socket, guard, peer)) = job.take() {
                serve_connection(&worker, socket, &guard, peer);
                drop(guard);
                job = next_job(&worker, &wake);
            }
        })
        .map(Some)
}

/// Waits, as an idle connection thread, for the next connection; `None`
/// (the thread ends) after `POOL_IDLE`, at shutdown, or when enough threads
/// are idle already.
fn next_job(shared: &Shared, wake: &Arc<Condvar>) -> Option<Job> {
    let mut pool = shared.pool();
    if pool.idle.len() >= MAX_IDLE_THREADS || shared.shutting_down.load(Ordering::SeqCst) {
        return None;
    }
    pool.next_ticket += 1;
    let ticket = pool.next_ticket;
    pool.idle.push((ticket, Arc::clone(wake)));
    let deadline = Instant::now() + POOL_IDLE;
    loop {
        if let Some(at) = pool.handed.iter().position(|(handed, _)| *handed == ticket) {
            return Some(pool.handed.swap_remove(at).1);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() || shared.shutting_down.load(Ordering::SeqCst) {
            // Still idle: leave. Otherwise a job was handed over just now.
            if let Some(at) = pool.idle.iter().position(|(idle, _)| *idle == ticket) {
                pool.idle.remove(at);
                return None;
            }
            continue;
        }
        pool = wake
            .wait_timeout(pool, remaining)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
    }
}

/// Past a cap: answer 503 on a short-lived thread, or close at once.
fn reject(shared: &Arc<Shared>, socket: Socket, why: Refusal, threads: &mut Vec<JoinHandle<()>>) {
    shared.metrics.refused(why);
    if shared.rejecting.fetch_add(1, Ordering::SeqCst) >= MAX_REJECT_THREADS {
        shared.rejecting.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let worker = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("tinysse-reject".to_string())
        .stack_size(CONNECTION_STACK_BYTES)
        .spawn(move || {
            let _ = socket.set_write_timeout(Some(Duration::from_secs(1)));
            let mut conn = Conn::new(socket);
            // Read the request first so that closing does not reset the
            // connection under the answer.
            let _ = conn.read_head(Duration::from_secs(1));
            let seconds = jittered(worker.config.retry_ms).div_ceil(1000);
            let reason = match why {
                Refusal::PerAddress => "too many connections from your address, try again later\n",
                _ => "too many connections, try again later\n",
            };
            let response =
                Response::text(503, reason).with_header("Retry-After", seconds.to_string());
            worker.metrics.request(503);
            let _ = response.write_to(conn.get_mut(), false, false);
            let _ = conn.get_ref().shutdown(Shutdown::Write);
            worker.rejecting.fetch_sub(1, Ordering::SeqCst);
        });
    match spawned {
        Ok(thread) => threads.push(thread),
        Err(_) => {
            shared.rejecting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A connection thread's request loop: requests until the client closes,
/// asks to close, or an error closes the connection.
fn serve_connection(
    shared: &Arc<Shared>,
    socket: Socket,
    guard: &ConnectionGuard,
    peer: SocketAddr,
) {
    // Events go out as soon as they are written; no Nagle delay.
    let _ = socket.set_nodelay(true);
    let _ = socket.set_write_timeout(Some(shared.config.write_timeout));
    let mut conn = Conn::new(socket);
    let mut first = true;
    while !shared.shutting_down.load(Ordering::SeqCst) {
        let head = if first {
            conn.read_head(shared.config.head_timeout)
        } else {
            guard.waiting(true);
            conn.read_next_head(shared.config.head_timeout)
        };
        // Past its head (or closed): no longer one to close to make room.
        if !guard.waiting(false) {
            respond_error(shared, &mut conn, &Error::HeadTimeout, None);
            return;
        }
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
        match handle_request(shared, &mut conn, request, peer) {
            After::KeepAlive => {}
            After::Close => return,
        }
    }
}
