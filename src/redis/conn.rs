//! A blocking connection to one Redis server.

use std::io::{self, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::error::{RedisError, server_message};
use super::resp::{self, Value};
use super::url::RedisUrl;

/// Shortest timeout used; a zero timeout is raised to this, because the
/// standard library refuses a zero socket timeout.
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// A blocking connection: one command (or one batch) at a time, each
/// answered within the timeout given to [`Conn::open`].
///
/// After an I/O error, a timeout, or a reply that breaks RESP2 or a limit,
/// every later call returns [`RedisError::Broken`]: open a new connection.
/// An error reply from Redis ([`RedisError::Server`]) leaves it usable.
pub(crate) struct Conn {
    /// The socket; commands are written through `get_mut`.
    reader: BufReader<TcpStream>,
    /// The read and write timeout set at open.
    timeout: Duration,
    /// Set by the first error that leaves the reply stream out of step.
    broken: bool,
}

impl Conn {
    /// Connects, then authenticates and selects the database.
    ///
    /// Each address the host resolves to is tried in turn, each within
    /// `timeout`; name resolution itself has no timeout in the standard
    /// library. `password_override` (a password file's contents, already
    /// trimmed) replaces the URL's password; the user always comes from the
    /// URL and is sent only with a password. A refused password gives
    /// [`RedisError::Auth`] with Redis's message and never the password.
    pub(crate) fn open(
        url: &RedisUrl,
        password_override: Option<&str>,
        timeout: Duration,
    ) -> Result<Conn, RedisError> {
        let timeout = timeout.max(MIN_TIMEOUT);
        let stream = connect(url, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            reader: BufReader::new(stream),
            timeout,
            broken: false,
        };
        if let Some(password) = password_override.or(url.password.as_deref()) {
            // "AUTH [username] password"
            let reply = match &url.user {
                Some(user) => conn.call(&[b"AUTH", user.as_bytes(), password.as_bytes()]),
                None => conn.call(&[b"AUTH", password.as_bytes()]),
            };
            match reply {
                Err(RedisError::Server(message)) => return Err(RedisError::Auth(message)),
                Err(error) => return Err(error),
                Ok(_) => {}
            }
        }
        if url.db != 0 {
            conn.call(&[b"SELECT", url.db.to_string().as_bytes()])?;
        }
        Ok(conn)
    }

    /// Sends one command and reads its reply; an error reply becomes
    /// [`RedisError::Server`].
    pub(crate) fn call(&mut self, args: &[&[u8]]) -> Result<Value, RedisError> {
        self.write(&resp::command(args))?;
        match self.read()? {
            Value::Error(message) => Err(RedisError::Server(server_message(&message))),
            value => Ok(value),
        }
    }

    /// Sends several commands in one write, then reads one reply for each.
    ///
    /// Error replies are returned as [`Value::Error`] in their place, so that a
    /// caller can tell which command failed (a `MULTI` ... `EXEC` batch).
    pub(crate) fn call_many(&mut self, commands: &[Vec<&[u8]>]) -> Result<Vec<Value>, RedisError> {
        let mut bytes = Vec::new();
        for args in commands {
            resp::encode_into(&mut bytes, args);
        }
        self.write(&bytes)?;
        commands.iter().map(|_| self.read()).collect()
    }

    /// The timeout given at open (or [`MIN_TIMEOUT`] if it was shorter).
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes how long a read may wait, for a command that blocks in Redis
    /// (`XREAD BLOCK`) longer than the usual timeout.
    pub(crate) fn set_read_timeout(&mut self, timeout: Duration) -> Result<(), RedisError> {
        let result = self
            .reader
            .get_ref()
            .set_read_timeout(Some(timeout.max(MIN_TIMEOUT)));
        result.map_err(|error| self.fail(error.into()))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), RedisError> {
        if self.broken {
            return Err(RedisError::Broken);
        }
        // "multiple commands can be sent with a single write operation"
        let result = self.reader.get_mut().write_all(bytes);
        result.map_err(|error| self.fail(error.into()))
    }

    fn read(&mut self) -> Result<Value, RedisError> {
        if self.broken {
            return Err(RedisError::Broken);
        }
        resp::read_value(&mut self.reader).map_err(|error| self.fail(error))
    }

    /// Marks the connection unusable and passes the error on.
    fn fail(&mut self, error: RedisError) -> RedisError {
        self.broken = true;
        error
    }
}

/// Connects to the first address that accepts within `timeout`.
fn connect(url: &RedisUrl, timeout: Duration) -> Result<TcpStream, RedisError> {
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address");
    for address in (url.host.as_str(), url.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = error,
        }
    }
    Err(last_error.into())
}

#[cfg(test)]
mod tests {
    use super::super::redis_server::RedisServer;
    use super::*;
    use std::io::{BufRead, Read};
    use std::net::TcpListener;
    use std::time::Instant;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn open(url: &str, password_override: Option<&str>) -> Result<Conn, RedisError> {
        Conn::open(
            &RedisUrl::parse(url).expect("a good URL"),
            password_override,
            TIMEOUT,
        )
    }

    fn ping(conn: &mut Conn) -> Result<Value, RedisError> {
        conn.call(&[b"PING"])
    }

    fn pong() -> Value {
        Value::Simple("PONG".to_string())
    }

    #[test]
    fn pings() {
        let Some(server) = RedisServer::start(&[]) else {
            return;
        };
        let mut conn = open(&server.url(""), None).expect("open");
        assert_eq!(ping(&mut conn).ok(), Some(pong()));
        let replies = conn
            .call_many(&[vec![b"PING"], vec![b"ECHO", b"hi"], vec![b"NOSUCHCOMMAND"]])
            .expect("call_many");
        assert!(matches!(&replies[..], [_, Value::Bulk(Some(hi)), Value::Error(_)] if hi == b"hi"));
        // An error reply leaves the connection usable.
        assert!(
            matches!(conn.call(&[b"NOSUCHCOMMAND"]), Err(RedisError::Server(message)) if message.starts_with("ERR unknown command"))
        );
        assert_eq!(ping(&mut conn).ok(), Some(pong()));
    }

    #[test]
    fn authenticates_with_the_url_or_the_override() {
        let Some(server) = RedisServer::start(&["--requirepass", "s3cret"]) else {
            return;
        };
        let mut without = open(&server.url(""), None).expect("open");
        assert!(
            matches!(ping(&mut without), Err(RedisError::Server(message)) if message.starts_with("NOAUTH"))
        );
        let mut in_url =
            open(&server.url_with(":s3cret"), None).expect("open with the URL's password");
        assert_eq!(ping(&mut in_url).ok(), Some(pong()));
        let mut overridden =
            open(&server.url_with(":wrong"), Some("s3cret")).expect("open with the override");
        assert_eq!(ping(&mut overridden).ok(), Some(pong()));
        let mut only_override =
            open(&server.url(""), Some("s3cret")).expect("open with only the override");
        assert_eq!(ping(&mut only_override).ok(), Some(pong()));
    }

    #[test]
    fn authenticates_an_acl_user() {
        let Some(server) = RedisServer::start(&["--user", "alice", "on", ">wonder", "~*", "+@all"])
        else {
            return;
        };
        let mut conn = open(&server.url_with("alice:wonder"), None).expect("open as alice");
        let whoami = conn.call(&[b"ACL", b"WHOAMI"]).expect("ACL WHOAMI");
        assert_eq!(whoami, Value::Bulk(Some(b"alice".to_vec())));
        let mut from_file = open(&server.url_with("alice"), Some("wonder"))
            .expect("user from URL, password from file");
        assert_eq!(ping(&mut from_file).ok(), Some(pong()));
        assert!(matches!(
            open(&server.url_with("alice:nope"), None),
            Err(RedisError::Auth(_))
        ));
    }

    #[test]
    fn a_wrong_password_gives_one_clear_line_without_the_password() {
        let Some(server) = RedisServer::start(&["--requirepass", "s3cret"]) else {
            return;
        };
        let error = open(&server.url_with(":hunter2"), None)
            .err()
            .expect("a refused password");
        let text = error.to_string();
        assert!(
            text.starts_with(
                "redis refused the password: WRONGPASS invalid username-password pair"
            ),
            "{text}"
        );
        assert!(!text.contains("hunter2") && !format!("{error:?}").contains("hunter2"));
        assert!(!text.ends_with('.') && !text.contains('\n'), "{text}");
        let overridden = open(&server.url_with(":s3cret"), Some("hunter2"))
            .err()
            .expect("the override wins");
        assert!(!overridden.to_string().contains("hunter2"));
    }

    #[test]
    fn selects_the_database() {
        let Some(server) = RedisServer::start(&[]) else {
            return;
        };
        let mut db3 = open(&server.url("/3"), None).expect("open /3");
        db3.call(&[b"SET", b"where", b"three"]).expect("SET");
        let mut db0 = open(&server.url("/0"), None).expect("open /0");
        assert_eq!(db0.call(&[b"GET", b"where"]).ok(), Some(Value::Bulk(None)));
        let mut again = open(&server.url("/3"), None).expect("open /3 again");
        assert_eq!(
            again.call(&[b"GET", b"where"]).ok(),
            Some(Value::Bulk(Some(b"three".to_vec())))
        );
        let out_of_range = open(&server.url("/99"), None)
            .err()
            .expect("no database 99");
        assert_eq!(
            out_of_range.to_string(),
            "redis error: ERR DB index is out of range"
        );
    }

    #[test]
    fn a_killed_server_makes_calls_fail_within_the_timeout() {
        let Some(mut server) = RedisServer::start(&[]) else {
            return;
        };
        let mut conn = open(&server.url(""), None).expect("open");
        assert_eq!(ping(&mut conn).ok(), Some(pong()));
        server.kill();
        let started = Instant::now();
        assert!(ping(&mut conn).is_err());
        assert!(started.elapsed() < TIMEOUT, "took {:?}", started.elapsed());
        assert!(matches!(ping(&mut conn), Err(RedisError::Broken)));
        let refused = open(&server.url(""), None)
            .err()
            .expect("nothing listens any more");
        assert!(matches!(refused, RedisError::Io(_)), "{refused}");
    }

    #[test]
    fn a_silent_server_times_out_and_breaks_the_connection() {
        // The kernel completes the handshake, but nobody ever answers.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = RedisUrl::parse(&format!(
            "redis://{}",
            listener.local_addr().expect("address")
        ))
        .expect("URL");
        let mut conn = Conn::open(&url, None, Duration::from_millis(200)).expect("open");
        let started = Instant::now();
        assert!(matches!(ping(&mut conn), Err(RedisError::Timeout)));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(matches!(ping(&mut conn), Err(RedisError::Broken)));
    }

    #[test]
    fn a_server_that_is_not_redis_breaks_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = RedisUrl::parse(&format!(
            "redis://{}",
            listener.local_addr().expect("address")
        ))
        .expect("URL");
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = std::io::BufReader::new(stream);
            let mut line = Vec::new();
            reader
                .read_until(b'\n', &mut line)
                .expect("read the command");
            reader
                .get_mut()
                .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                .expect("answer");
            // Wait for the client to hang up.
            let _ = reader.read_to_end(&mut line);
        });
        let mut conn = Conn::open(&url, None, TIMEOUT).expect("open");
        assert!(matches!(
            ping(&mut conn),
            Err(RedisError::Protocol("unknown reply type byte"))
        ));
        assert!(matches!(ping(&mut conn), Err(RedisError::Broken)));
        drop(conn);
        server.join().expect("the fake server ends");
    }

    #[test]
    fn a_zero_timeout_is_raised_instead_of_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = RedisUrl::parse(&format!(
            "redis://{}",
            listener.local_addr().expect("address")
        ))
        .expect("URL");
        let mut conn = Conn::open(&url, None, Duration::ZERO).expect("open");
        assert_eq!(conn.timeout(), MIN_TIMEOUT);
        assert!(matches!(ping(&mut conn), Err(RedisError::Timeout)));
    }
}
