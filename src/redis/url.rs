//! `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`, the address of a Redis server.

use std::fmt;
use std::net::Ipv6Addr;

use super::error::RedisError;

/// The port Redis listens on unless the URL names another.
pub(crate) const DEFAULT_PORT: u16 = 6379;

/// A parsed `redis://` URL. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    /// The ACL user, percent-decoded; `None` for Redis's `default` user.
    pub(crate) user: Option<String>,
    /// The password, percent-decoded; `None` when the URL has none.
    pub(crate) password: Option<String>,
    /// A host name or IP address; an IPv6 address without its brackets.
    pub(crate) host: String,
    /// The TCP port, [`DEFAULT_PORT`] unless given.
    pub(crate) port: u16,
    /// The database number for `SELECT`, 0 unless given.
    pub(crate) db: u32,
}

impl RedisUrl {
    /// Parses a URL, or says in one line why it cannot be used.
    pub(crate) fn parse(text: &str) -> Result<RedisUrl, RedisError> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(RedisError::Url(
                "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
            ));
        };
        if scheme.eq_ignore_ascii_case("rediss") {
            return Err(RedisError::Url(
                "rediss:// (TLS) is not built in: reach Redis through a TLS tunnel and use redis://",
            ));
        }
        if !scheme.eq_ignore_ascii_case("redis") {
            return Err(RedisError::Url("the scheme must be redis://"));
        }
        if rest.contains(['?', '#']) {
            return Err(RedisError::Url(
                "? and # are not allowed: percent-encode them in a password",
            ));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        // The last `@` ends the user information, so a password with an `@`
        // left unencoded still works.
        let (userinfo, host_and_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_and_port)) => (userinfo, host_and_port),
            None => ("", authority),
        };
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (host, port) = split_host_and_port(host_and_port)?;
        Ok(RedisUrl {
            user: percent_decode(user)?,
            password: percent_decode(password)?,
            host: host.to_string(),
            port: match port {
                None => DEFAULT_PORT,
                Some(port) => digits(port)
                    .and_then(|port| u16::try_from(port).ok())
                    .filter(|&port| port != 0)
                    .ok_or(RedisError::Url("bad port: expected 1 to 65535"))?,
            },
            db: match path {
                "" | "/" => 0,
                _ => path
                    .strip_prefix('/')
                    .and_then(digits)
                    .and_then(|db| u32::try_from(db).ok())
                    .ok_or(RedisError::Url("bad db: expected digits, as in /0"))?,
            },
        })
    }
}

/// Splits `HOST[:PORT]` or `[IPv6][:PORT]` and checks the host.
fn split_host_and_port(text: &str) -> Result<(&str, Option<&str>), RedisError> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or(RedisError::Url("missing ] after an IPv6 address"))?;
        if address.parse::<Ipv6Addr>().is_err() {
            return Err(RedisError::Url("bad IPv6 address"));
        }
        if after.is_empty() {
            return Ok((address, None));
        }
        let port = after
            .strip_prefix(':')
            .ok_or(RedisError::Url("bad port: expected 1 to 65535"))?;
        return Ok((address, Some(port)));
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    if host.is_empty() {
        return Err(RedisError::Url("empty host"));
    }
    if !host
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"-._".contains(&byte))
    {
        return Err(RedisError::Url(
            "bad host: expected a name, an IPv4 address or [IPv6]",
        ));
    }
    Ok((host, port))
}

/// Parses ASCII digits only (no sign, no spaces) into a `u64`.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Decodes `%XX` escapes; an empty result is `None`.
fn percent_decode(text: &str) -> Result<Option<String>, RedisError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte != b'%' {
            decoded.push(byte);
            index += 1;
            continue;
        }
        let hex = |offset: usize| {
            bytes
                .get(index + offset)
                .and_then(|&digit| char::from(digit).to_digit(16))
        };
        let (Some(high), Some(low)) = (hex(1), hex(2)) else {
            return Err(RedisError::Url(
                "bad percent-encoding in the user or password",
            ));
        };
        // Two hex digits are at most 0xFF, so the cast keeps every bit.
        decoded.push((high * 16 + low) as u8);
        index += 3;
    }
    let decoded = String::from_utf8(decoded)
        .map_err(|_| RedisError::Url("the user or password is not UTF-8"))?;
    Ok(Some(decoded).filter(|decoded| !decoded.is_empty()))
}

impl fmt::Display for RedisUrl {
    /// `redis://user:***@host:port/db`, safe for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis://")?;
        match (&self.user, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (Some(user), None) => write!(f, "{user}@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            (None, None) => {}
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}/{}", self.host, self.port, self.db)
        } else {
            write!(f, "{}:{}/{}", self.host, self.port, self.db)
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks a good URL: (user, password, host, port, db).
    fn check(
        text: &str,
        user: Option<&str>,
        password: Option<&str>,
        host: &str,
        port: u16,
        db: u32,
    ) {
        let url = RedisUrl::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
        let expected = RedisUrl {
            user: user.map(String::from),
            password: password.map(String::from),
            host: host.to_string(),
            port,
            db,
        };
        assert_eq!(url, expected, "{text}");
    }

    /// Checks that a bad URL is refused with `reason`.
    fn check_refused(text: &str, reason: &str) {
        match RedisUrl::parse(text) {
            Err(RedisError::Url(got)) => assert_eq!(got, reason, "{text}"),
            other => panic!("{text}: expected {reason:?}, got {other:?}"),
        }
    }

    #[test]
    fn parses_good_urls() {
        check("redis://h", None, None, "h", 6379, 0);
        check("redis://h/", None, None, "h", 6379, 0);
        check("redis://:p%40ss@h:1/2", None, Some("p@ss"), "h", 1, 2);
        check("redis://user:pw@h", Some("user"), Some("pw"), "h", 6379, 0);
        check("redis://[::1]:7000/3", None, None, "::1", 7000, 3);
        check("redis://[::1]", None, None, "::1", 6379, 0);
        check("redis://127.0.0.1:6380", None, None, "127.0.0.1", 6380, 0);
        check(
            "REDIS://redis.internal-1.example:65535/15",
            None,
            None,
            "redis.internal-1.example",
            65535,
            15,
        );
        check("redis://alice@h", Some("alice"), None, "h", 6379, 0);
        check("redis://:@h", None, None, "h", 6379, 0);
        check("redis://:p@ss@h", None, Some("p@ss"), "h", 6379, 0);
        check(
            "redis://a%3Ab:c%3ad%2F%25@h",
            Some("a:b"),
            Some("c:d/%"),
            "h",
            6379,
            0,
        );
        check("redis://:%C3%A9@h", None, Some("é"), "h", 6379, 0);
        check("redis://h:6379/4294967295", None, None, "h", 6379, u32::MAX);
    }

    #[test]
    fn refuses_bad_urls() {
        let tls =
            "rediss:// (TLS) is not built in: reach Redis through a TLS tunnel and use redis://";
        check_refused("rediss://h", tls);
        check_refused("http://h", "the scheme must be redis://");
        check_refused("unix:///tmp/redis.sock", "the scheme must be redis://");
        check_refused(
            "h:6379",
            "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
        );
        check_refused("", "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]");
        check_refused("redis://", "empty host");
        check_refused("redis://:pw@", "empty host");
        check_refused("redis://:6379", "empty host");
        check_refused("redis://h:", "bad port: expected 1 to 65535");
        check_refused("redis://h:0", "bad port: expected 1 to 65535");
        check_refused("redis://h:65536", "bad port: expected 1 to 65535");
        check_refused("redis://h:+1", "bad port: expected 1 to 65535");
        check_refused("redis://h:x", "bad port: expected 1 to 65535");
        check_refused("redis://h:1:2", "bad port: expected 1 to 65535");
        check_refused("redis://h/x", "bad db: expected digits, as in /0");
        check_refused("redis://h/-1", "bad db: expected digits, as in /0");
        check_refused("redis://h/1/", "bad db: expected digits, as in /0");
        check_refused("redis://h/4294967296", "bad db: expected digits, as in /0");
        check_refused(
            "redis://h/0?timeout=1",
            "? and # are not allowed: percent-encode them in a password",
        );
        check_refused("redis://::1", "empty host");
        check_refused("redis://[::1", "missing ] after an IPv6 address");
        check_refused("redis://[zz]:1", "bad IPv6 address");
        check_refused("redis://[::1]x", "bad port: expected 1 to 65535");
        check_refused(
            "redis://h st",
            "bad host: expected a name, an IPv4 address or [IPv6]",
        );
        check_refused(
            "redis://h%41",
            "bad host: expected a name, an IPv4 address or [IPv6]",
        );
        check_refused(
            "redis://:p%4@h",
            "bad percent-encoding in the user or password",
        );
        check_refused(
            "redis://:p%zz@h",
            "bad percent-encoding in the user or password",
        );
        check_refused(
            "redis://:p%@h",
            "bad percent-encoding in the user or password",
        );
        check_refused("redis://:%FF@h", "the user or password is not UTF-8");
    }

    #[test]
    fn never_shows_the_password() {
        let url = RedisUrl::parse("redis://alice:s3cr%65t@[::1]:7000/2").expect("a good URL");
        assert_eq!(url.password.as_deref(), Some("s3cret"));
        let debug = format!("{url:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        assert_eq!(
            debug,
            r#"RedisUrl { user: Some("alice"), password: Some("***"), host: "::1", port: 7000, db: 2 }"#
        );
        assert_eq!(url.to_string(), "redis://alice:***@[::1]:7000/2");
        assert_eq!(
            RedisUrl::parse("redis://h")
                .map(|url| url.to_string())
                .ok()
                .as_deref(),
            Some("redis://h:6379/0")
        );
    }
}
