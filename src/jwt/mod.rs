//! Signed tokens (`--jwt-key-file`, SPEC §10): the `jwt` feature. Each client
//! carries a JSON Web Token (RFC 7519) signed with HMAC-SHA-256 (`HS256`)
//! whose claims, in Mercure's shape, name the topics it may read and write:
//!
//! ```json
//! { "mercure": { "subscribe": ["user/42", "news"], "publish": ["user/42/*"] }, "exp": 1798000000 }
//! ```
//!
//! This file is the token's side of the server's rights seam
//! (`server/access.rs`): [`Server::with_jwt_key`] installs a decision that
//! reads the token (`Authorization: Bearer`, `?token=`, or the cookie
//! `tinysse_token`), verifies it once per request, and turns its claims into
//! an [`Access`]. Nothing is parsed or hashed per event.
//!
//! Underneath, std only, each checked against the published vectors:
//! `sha256.rs` (FIPS 180-4), `hmac.rs` (RFC 2104, and a constant-time
//! comparison), `base64url.rs` (RFC 4648 §5, unpadded), `json.rs` (a small,
//! bounded RFC 8259 reader), `token.rs` (JWS compact verification for HS256
//! only, `exp`/`nbf` with 30 s of leeway, the claims).

mod base64url;
mod hmac;
mod json;
mod number;
mod sha256;
mod token;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::Request;
use crate::{Access, Error, Server, Topics};

/// The cookie a browser's `EventSource` sends the token in.
const COOKIE: &str = "tinysse_token";

impl Server {
    /// Gives each client the rights its signed token carries: a JSON Web
    /// Token signed with HMAC-SHA-256 (`HS256`) with `key`, with Mercure's
    /// claims (`mercure.subscribe`, `mercure.publish`: lists of topic
    /// patterns; `exp`, `nbf`). The token comes as `Authorization: Bearer`,
    /// `?token=`, or the cookie `tinysse_token`. A request without one, or
    /// with one that is expired, not yet valid, not `HS256`, badly signed or
    /// malformed, gets 401 with a one-line reason. A stream ends when its
    /// token expires. This replaces the shared tokens of `Config`.
    ///
    /// Fails with [`Error::BadConfig`] for a key shorter than 32 bytes.
    ///
    /// ```no_run
    /// use tinysse::{Config, Server};
    ///
    /// let key = std::fs::read("/etc/tinysse/jwt.key")?;
    /// let server = Server::bind(Config::default())?.with_jwt_key(key)?.start()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_jwt_key(self, key: impl Into<Vec<u8>>) -> Result<Server, Error> {
        let key = key.into();
        if key.len() < token::MIN_KEY_BYTES {
            return Err(Error::BadConfig(format!(
                "the JWT key must be at least {} bytes, not {}",
                token::MIN_KEY_BYTES,
                key.len()
            )));
        }
        let key = hmac::HmacKey::new(&key);
        Ok(self.with_access(move |request, _peer| access(&key, request)))
    }
}

/// The rights the request's token carries.
fn access(key: &hmac::HmacKey, request: &Request) -> Result<Access, Error> {
    let token = token_of(request).ok_or(Error::Unauthorized)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let claims = token::verify(&token, key, now).map_err(Error::BadToken)?;
    // A pattern that is not a topic, `*` or a `/*` prefix (a Mercure URI
    // template such as `https://example.com/books/{id}`, say) matches no
    // topic this server has: it is left out, and the others still count.
    let topics = |patterns: &[String]| {
        let usable: Vec<&String> = patterns
            .iter()
            .filter(|pattern| Topics::patterns(&[pattern.as_str()]).is_ok())
            .collect();
        Topics::patterns(&usable).unwrap_or_default()
    };
    let mut access = Access::new(topics(&claims.subscribe), topics(&claims.publish));
    // SPEC §10: an open stream "is ended when it is no longer valid (at
    // `exp` plus the leeway)".
    if let Some(expires) = claims.expires {
        let end =
            UNIX_EPOCH.checked_add(Duration::from_secs(expires.saturating_add(token::LEEWAY)));
        if let Some(end) = end {
            access = access.until(end);
        }
    }
    Ok(access)
}

/// The token: `Authorization: Bearer`, else `?token=`, else the cookie.
fn token_of(request: &Request) -> Option<String> {
    if let Some(token) = crate::server::bearer(request) {
        return Some(token.to_string());
    }
    let query = request.query_pairs().ok()?;
    if let Some((_, token)) = query.into_iter().rev().find(|(name, _)| name == "token") {
        return Some(token);
    }
    let cookies = request.header("cookie")?;
    cookies.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then(|| value.to_string())
    })
}
