//! Where a request's rights are decided: which topics a client may read and
//! write, once per request (SPEC §10). An embedder's hook
//! ([`Server::with_access`](crate::Server::with_access)) decides when set;
//! otherwise the shared tokens (`--token`, `--subscribe-token`) do. Signed
//! tokens (`--jwt-key-file`) are one such hook.

use std::net::SocketAddr;
use std::time::SystemTime;

use super::Shared;
use crate::Error;
use crate::http::Request;
use crate::wire::topic::Topics;

/// What one client may do: the topics it may read (subscribe) and write
/// (publish), and until when. Decided once per request; a stream ends when
/// its access expires.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tinysse::{Access, Topics};
///
/// let user_42 = Access::new(Topics::patterns(&["user/42", "news"])?, Topics::none())
///     .until(SystemTime::now() + Duration::from_secs(3600));
/// assert!(user_42.may_subscribe("user/42") && !user_42.may_publish("news"));
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    subscribe: Topics,
    publish: Topics,
    until: Option<SystemTime>,
}

impl Access {
    /// Reading the `subscribe` topics and writing the `publish` topics, for
    /// as long as the connection lasts.
    pub fn new(subscribe: Topics, publish: Topics) -> Access {
        Access {
            subscribe,
            publish,
            until: None,
        }
    }

    /// Every topic, both ways.
    pub fn everything() -> Access {
        Access::new(Topics::all(), Topics::all())
    }

    /// The same rights until `when`: an open stream ends then, with a last
    /// comment saying so.
    pub fn until(mut self, when: SystemTime) -> Access {
        self.until = Some(when);
        self
    }

    /// Whether the client may subscribe to `topic`.
    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.subscribe.allows(topic)
    }

    /// Whether the client may publish on `topic`.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.allows(topic)
    }

    pub(super) fn subscribe_topics(&self) -> &Topics {
        &self.subscribe
    }

    pub(super) fn expires(&self) -> Option<SystemTime> {
        self.until
    }
}

/// Decides what a request may do: given the request and the client's
/// address, its [`Access`], or a refusal (its status and reason).
pub(crate) type Decide = dyn Fn(&Request, SocketAddr) -> Result<Access, Error> + Send + Sync;

/// The rights of `request`, by the embedder's hook or by the shared tokens.
pub(super) fn decide(
    shared: &Shared,
    request: &Request,
    peer: SocketAddr,
) -> Result<Access, Error> {
    if let Some(hook) = shared.hooks().and_then(|hooks| hooks.access.as_ref()) {
        return hook(request, peer);
    }
    match request.path.as_str() {
        "/publish" => may_publish(shared, request),
        _ => may_subscribe(shared, request),
    }
    .map(|()| Access::everything())
}

/// With a publish token configured, a publisher must bring it as
/// `Authorization: Bearer` (else 401); without one, publishing is open only
/// while the server listens on loopback (else 403).
fn may_publish(shared: &Shared, request: &Request) -> Result<(), Error> {
    match &shared.config.token {
        Some(token) if !bearer(request).is_some_and(|given| same_token(given, token)) => {
            Err(Error::Unauthorized)
        }
        None if !shared.open_publish => Err(Error::Forbidden),
        _ => Ok(()),
    }
}

/// With a subscribe token configured, a subscriber must bring it (or the
/// publish token) as `?token=` or `Authorization: Bearer` (else 401).
fn may_subscribe(shared: &Shared, request: &Request) -> Result<(), Error> {
    let Some(expected) = &shared.config.subscribe_token else {
        return Ok(());
    };
    let query = request.query_pairs()?;
    let query_token = query.iter().rev().find(|(key, _)| key == "token");
    let given = query_token
        .map(|(_, value)| value.as_str())
        .or_else(|| bearer(request));
    let allowed = given.is_some_and(|given| {
        same_token(given, expected)
            || (shared.config.token.as_deref()).is_some_and(|publish| same_token(given, publish))
    });
    if allowed {
        Ok(())
    } else {
        Err(Error::Unauthorized)
    }
}

/// The token in `Authorization: Bearer <token>`, if any.
pub(crate) fn bearer(request: &Request) -> Option<&str> {
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
}
