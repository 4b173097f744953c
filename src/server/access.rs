//! Where a request's rights are decided: who may publish and who may
//! subscribe. Every check of a token happens here, once per request.

use super::Shared;
use crate::Error;
use crate::http::Request;

/// Whether `request` may publish: with a publish token configured, it must
/// bring it as `Authorization: Bearer` (else 401); without one, publishing
/// is open only while the server listens on loopback (else 403).
pub(super) fn may_publish(shared: &Shared, request: &Request) -> Result<(), Error> {
    match &shared.config.token {
        Some(token) if !bearer(request).is_some_and(|given| same_token(given, token)) => {
            Err(Error::Unauthorized)
        }
        None if !shared.open_publish => Err(Error::Forbidden),
        _ => Ok(()),
    }
}

/// Whether `request` may subscribe: with a subscribe token configured, it
/// must bring it (or the publish token) as `?token=` or `Authorization:
/// Bearer` (else 401).
pub(super) fn may_subscribe(
    shared: &Shared,
    request: &Request,
    query_token: Option<&str>,
) -> Result<(), Error> {
    let Some(expected) = &shared.config.subscribe_token else {
        return Ok(());
    };
    let given = query_token.or_else(|| bearer(request));
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
