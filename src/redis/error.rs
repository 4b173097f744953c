//! The one error type of the Redis client.

use std::fmt;
use std::io;

/// Longest server error message kept, in bytes; the rest is cut off.
pub(crate) const MAX_SERVER_MESSAGE_BYTES: usize = 256;

/// What can go wrong talking to Redis.
///
/// After `Io`, `Timeout`, `Closed` or `Protocol` from a connection, the
/// connection is in an unknown place in the reply stream and refuses every
/// later command with `Broken`: open a new one. `Server` leaves it usable.
#[derive(Debug)]
pub(crate) enum RedisError {
    /// The URL cannot be used; the reason is one line.
    Url(&'static str),
    /// Resolving, connecting, reading or writing failed.
    Io(io::Error),
    /// Connecting, or a read or write, took longer than the timeout.
    Timeout,
    /// Redis closed the connection before it began a reply.
    Closed,
    /// Redis sent bytes that are not RESP2, a reply past one of the limits in
    /// `resp`, or a reply of the wrong shape for the command.
    Protocol(&'static str),
    /// Redis answered with an error reply (`-ERR ...`): its first line, capped
    /// at [`MAX_SERVER_MESSAGE_BYTES`], without a trailing period.
    Server(String),
    /// Redis refused `AUTH`: its message as in `Server`, never the password.
    Auth(String),
    /// The command was not sent because Redis would refuse it, or would
    /// accept it only in part (a stream entry without fields).
    Invalid(&'static str),
    /// An earlier `Io`, `Timeout`, `Closed` or `Protocol` error left this
    /// connection unusable.
    Broken,
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Url(reason) => write!(f, "bad redis url: {reason}"),
            RedisError::Io(error) => write!(f, "redis i/o error: {error}"),
            RedisError::Timeout => write!(f, "redis did not answer within the timeout"),
            RedisError::Closed => write!(f, "redis closed the connection"),
            RedisError::Protocol(reason) => write!(f, "redis protocol error: {reason}"),
            RedisError::Server(message) => write!(f, "redis error: {message}"),
            RedisError::Auth(message) => write!(f, "redis refused the password: {message}"),
            RedisError::Invalid(reason) => write!(f, "redis command not sent: {reason}"),
            RedisError::Broken => {
                write!(f, "redis connection is unusable after an earlier error")
            }
        }
    }
}

impl std::error::Error for RedisError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedisError::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for RedisError {
    fn from(error: io::Error) -> RedisError {
        // A socket timeout shows up as `WouldBlock` on Unix and `TimedOut` on
        // Windows (and from `connect_timeout`).
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => RedisError::Timeout,
            _ => RedisError::Io(error),
        }
    }
}

/// Shortens an error reply for `Server` and `Auth`: the first line, capped at
/// [`MAX_SERVER_MESSAGE_BYTES`] on a character boundary, without a trailing
/// period.
pub(crate) fn server_message(reply: &str) -> String {
    let first_line = reply.lines().next().unwrap_or("");
    let mut end = first_line.len().min(MAX_SERVER_MESSAGE_BYTES);
    // Index 0 is always a boundary, so this stops before `end` could wrap.
    while !first_line.is_char_boundary(end) {
        end -= 1;
    }
    let capped = first_line.get(..end).unwrap_or("");
    capped.trim_end().trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_message_is_one_capped_line_without_period() {
        assert_eq!(server_message("ERR x.\nmore"), "ERR x");
        assert_eq!(
            server_message("EXECABORT Transaction discarded."),
            "EXECABORT Transaction discarded"
        );
        let long = "é".repeat(200);
        let capped = server_message(&long);
        assert!(capped.len() <= MAX_SERVER_MESSAGE_BYTES);
        assert_eq!(capped, "é".repeat(MAX_SERVER_MESSAGE_BYTES / 2));
    }

    #[test]
    fn display_is_one_lowercase_line() {
        let cases = [
            (RedisError::Url("empty host"), "bad redis url: empty host"),
            (
                RedisError::Timeout,
                "redis did not answer within the timeout",
            ),
            (RedisError::Closed, "redis closed the connection"),
            (
                RedisError::Protocol("reply truncated"),
                "redis protocol error: reply truncated",
            ),
            (RedisError::Server("ERR x".into()), "redis error: ERR x"),
            (
                RedisError::Auth("WRONGPASS no".into()),
                "redis refused the password: WRONGPASS no",
            ),
            (
                RedisError::Invalid("an entry needs a field"),
                "redis command not sent: an entry needs a field",
            ),
            (
                RedisError::Broken,
                "redis connection is unusable after an earlier error",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
        let timed_out = RedisError::from(std::io::Error::from(std::io::ErrorKind::WouldBlock));
        assert!(matches!(timed_out, RedisError::Timeout));
    }
}
