//! Accepting: the accept loop, the connection cap, the idle thread pool, and
//! each connection thread's request loop.

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::route::{After, handle_request, respond_error};
use super::{Level, Shared};
use crate::Error;
use crate::http::{Conn, Response};
use crate::wire::id::jittered;

/// Stack size of a connection thread. A connection thread runs shallow code
/// (head parsing, one hub call, a write) that keeps every buffer on the heap;
/// 64 KiB leaves room for debug builds and formatting, while the default
/// 2 MiB would reserve (not touch) 32 times more address space per subscriber.
pub(crate) const CONNECTION_STACK_BYTES: usize = 64 * 1024;
/// How long a connection thread that finished its connection waits for
/// another before it ends.
const POOL_IDLE: Duration = Duration::from_secs(2);
/// Most connection threads waiting for a connection at once; past it a
/// thread that finishes its connection ends.
const MAX_IDLE_THREADS: usize = 64;
/// Time the connection threads get to finish by themselves at shutdown before
/// their sockets are shut down under them.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// Threads answering 503 past the connection cap at once; past it the
/// connection is closed without an answer.
const MAX_REJECT_THREADS: usize = 8;

/// Accepts connections until shutdown, then closes every connection and
/// joins every thread.
pub(super) fn run(shared: &Arc<Shared>, listener: &TcpListener) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id: u64 = 0;
    for stream in listener.incoming() {
        if shared.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                // Out of file descriptors, say: back off instead of spinning.
                shared.log(Level::Error, format_args!("accept: {err}"));
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
            Err(err) => shared.log(
                Level::Error,
                format_args!("cannot start a connection thread: {err}"),
            ),
        }
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
    shared.pool().waiting.clear();
    for socket in shared.sockets().values() {
        let _ = socket.shutdown(Shutdown::Both);
    }
    for thread in threads {
        let _ = thread.join();
    }
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
pub(super) struct Pool {
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
fn serve_connection(shared: &Arc<Shared>, stream: TcpStream) {
    // Only the log lines name the client; without a log, no system call.
    let peer = match shared.logs() {
        false => String::new(),
        true => stream
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
