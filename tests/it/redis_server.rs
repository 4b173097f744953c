//! Test support: a real `redis-server` on a free loopback port, one per test,
//! stopped by its pid. Used by the integration tests (`mod redis_server`) and
//! by the unit tests of `src/redis/` (`#[path]`): std only, nothing else.
//!
//! Without `redis-server` on the `PATH`, [`RedisServer::start`] prints one
//! `skipped: ...` line and returns `None`, unless `TINYSSE_REQUIRE_REDIS=1`
//! (as `.ci/run` sets it), in which case it panics.

#![allow(
    dead_code,
    reason = "the unit tests and the integration tests each use part of it"
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a new server has to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports to try; another process may take a free port first.
const START_ATTEMPTS: usize = 3;

/// A `redis-server` child process, killed by its pid on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    /// A fresh directory for the server's files, removed on drop.
    dir: PathBuf,
    /// The extra arguments it was started with.
    args: Vec<String>,
}

/// Starts `redis-server` on `port` with no persistence.
fn spawn(port: u16, dir: &PathBuf, extra_args: &[String]) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--dir"])
        .arg(dir)
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

impl RedisServer {
    /// Starts `redis-server` with no persistence, plus `extra_args` (such as
    /// `["--requirepass", "secret"]`), and waits until it answers `PING`.
    pub fn start(extra_args: &[&str]) -> Option<RedisServer> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!(
                "tinysse-redis-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("create a temporary directory");
            let args: Vec<String> = extra_args.iter().map(|arg| arg.to_string()).collect();
            let child = match spawn(port, &dir, &args) {
                Ok(child) => child,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    let _ = std::fs::remove_dir_all(&dir);
                    if std::env::var_os("TINYSSE_REQUIRE_REDIS").is_some_and(|value| value == "1") {
                        panic!("TINYSSE_REQUIRE_REDIS=1 but redis-server is not installed");
                    }
                    println!("skipped: redis-server not installed (apt-get install redis-server)");
                    return None;
                }
                Err(error) => panic!("cannot start redis-server: {error}"),
            };
            let mut server = RedisServer {
                child,
                port,
                dir,
                args,
            };
            if server.wait_until_answering() {
                return Some(server);
            }
            // Dropping `server` kills it; the next attempt takes a new port.
        }
        panic!(
            "redis-server did not answer PING within {START_TIMEOUT:?} in {START_ATTEMPTS} attempts"
        );
    }

    /// `redis://127.0.0.1:PORT` followed by `rest` (such as `/2`).
    pub fn url(&self, rest: &str) -> String {
        format!("redis://127.0.0.1:{}{rest}", self.port)
    }

    /// `redis://` URL with user information: `redis://USERINFO@127.0.0.1:PORT`.
    pub fn url_with(&self, userinfo: &str) -> String {
        format!("redis://{userinfo}@127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server now (by its pid) and waits for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port (after `kill`), empty, and waits
    /// until it answers.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.dir, &self.args).expect("restart redis-server");
        assert!(self.wait_until_answering(), "redis-server did not restart");
    }

    /// Polls (every 10 ms, up to `START_TIMEOUT`) until the server answers
    /// `PING` with `+PONG` or, when it wants a password, `-NOAUTH`; false if
    /// it exits or never answers.
    fn wait_until_answering(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut reply = [0u8; 7];
                let answered = stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_ok()
                    && stream.read_exact(&mut reply).is_ok()
                    && (reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH"));
                if answered {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}
