//! JWS compact verification for `HS256` only (RFC 7515, RFC 7519), and the
//! Mercure-shaped claims tinysse reads from a verified token.

// Implementation notes: `verify` follows RFC 7515 §5.2 ("Message Signature or
// MAC Validation") in order: split, decode and check the header, check the
// signature, and only then decode and read the payload, so no byte of an
// unauthenticated payload reaches the JSON reader.

use super::base64url;
#[cfg(test)]
use super::hmac::hmac_sha256;
use super::hmac::{HmacKey, same_bytes};
use super::json::{self, Value};

/// Longest token accepted, in bytes; longer tokens are refused before any
/// decoding or hashing.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Shortest key tinysse accepts, in bytes; `verify` itself takes any key, so
/// the caller refuses a shorter key file when it loads it. RFC 7518 §3.2: "A
/// key of the same size as the hash output (for instance, 256 bits for
/// "HS256") or larger MUST be used with this algorithm."
pub(crate) const MIN_KEY_BYTES: usize = 32;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub(crate) const LEEWAY: u64 = 30;

/// The rights a verified token grants, as Mercure's claims spell them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    /// Topic patterns the bearer may subscribe to (`mercure.subscribe`).
    pub(crate) subscribe: Vec<String>,
    /// Topic patterns the bearer may publish on (`mercure.publish`).
    pub(crate) publish: Vec<String>,
    /// `exp` in whole seconds since the Unix epoch, rounded down; `None` when
    /// the token does not expire.
    pub(crate) expires: Option<u64>,
}

/// Verifies an `HS256` JWS compact token under `key` at the given time and
/// returns its claims; any other algorithm, a bad signature, a malformed
/// token or a token outside its `nbf`..`exp` window (with `LEEWAY`) is refused.
pub(crate) fn verify(
    token: &str,
    key: &HmacKey,
    now_unix_seconds: u64,
) -> Result<Claims, &'static str> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err("token is too long");
    }
    // RFC 7515 §7.1: "BASE64URL(UTF8(JWS Protected Header)) || '.' ||
    // BASE64URL(JWS Payload) || '.' || BASE64URL(JWS Signature)"
    let mut parts = token.split('.');
    let (Some(header_part), Some(payload_part), Some(signature_part), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("token is not three base64url parts");
    };

    // §5.2 step 2 and 3: decode the header, "following the restriction that
    // no line breaks, whitespace, or other additional characters have been
    // used", and verify that it is "a completely valid JSON object".
    let header_bytes =
        base64url::decode(header_part.as_bytes()).map_err(|_| "token header is not base64url")?;
    let header = json::parse(&header_bytes)?;
    check_header(&header)?;

    // §5.2 step 8: "Validate the JWS Signature against the JWS Signing Input
    // ASCII(BASE64URL(UTF8(JWS Protected Header)) || '.' || BASE64URL(JWS
    // Payload))". RFC 7518 §3.2: "The comparison of the computed HMAC value
    // to the JWS Signature value MUST be done in a constant-time manner to
    // thwart timing attacks."
    let signature = base64url::decode(signature_part.as_bytes())
        .map_err(|_| "token signature is not base64url")?;
    let signing_input_length = header_part.len() + 1 + payload_part.len();
    let signing_input = token
        .as_bytes()
        .get(..signing_input_length)
        .unwrap_or_default();
    if !same_bytes(&key.mac(signing_input), &signature) {
        return Err("token signature does not match");
    }

    let payload_bytes =
        base64url::decode(payload_part.as_bytes()).map_err(|_| "token payload is not base64url")?;
    let claims = json::parse(&payload_bytes)?;
    read_claims(&claims, now_unix_seconds)
}

fn check_header(header: &Value) -> Result<(), &'static str> {
    if !matches!(header, Value::Object(_)) {
        return Err("token header is not a json object");
    }
    // RFC 7515 §4.1.1: "The "alg" value is a case-sensitive ASCII string".
    // Accepting only the one algorithm we implement is what keeps "none" and
    // algorithm-confusion tokens out (RFC 8725 §2.1, §3.1).
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err("token alg is not HS256, the only one accepted");
    }
    // RFC 7519 §5.1: "If present, it is RECOMMENDED that its value be "JWT"
    // to indicate that this object is a JWT." RFC 7515 §4.1.9: "Per RFC 2045,
    // all media type values, subtype values, and parameter names are case
    // insensitive."
    let typ_is_jwt = match header.get("typ") {
        None => true,
        Some(typ) => typ
            .as_str()
            .is_some_and(|text| text.eq_ignore_ascii_case("JWT")),
    };
    if !typ_is_jwt {
        return Err("token typ is not JWT");
    }
    // RFC 7515 §4.1.11: "If any of the listed extension Header Parameters are
    // not understood and supported by the recipient, then the JWS is
    // invalid." We support none, so any `crit` (such as RFC 7797's "b64",
    // which changes the signing input) is refused.
    if header.get("crit").is_some() {
        return Err("token header has crit, which is not supported");
    }
    Ok(())
}

fn read_claims(claims: &Value, now_unix_seconds: u64) -> Result<Claims, &'static str> {
    // RFC 7519 §7.2 step 10: "verify that the resulting octet sequence is a
    // UTF-8-encoded representation of a completely valid JSON object
    // conforming to RFC 7159; let the JWT Claims Set be this JSON object."
    if !matches!(claims, Value::Object(_)) {
        return Err("token claims are not a json object");
    }
    // RFC 7519 §2: NumericDate is "A JSON numeric value representing the
    // number of seconds from 1970-01-01T00:00:00Z UTC until the specified
    // UTC date/time, ignoring leap seconds. [...] non-integer values can be
    // represented." f64 holds every whole second until the year 285 million.
    let expires_at = numeric_date(claims, "exp", "token exp is not a number")?;
    let not_before = numeric_date(claims, "nbf", "token nbf is not a number")?;
    let now = now_unix_seconds as f64;
    let leeway = LEEWAY as f64;
    // §4.1.4: "the current date/time MUST be before the expiration date/time
    // listed in the "exp" claim. Implementers MAY provide for some small
    // leeway, usually no more than a few minutes, to account for clock skew."
    if expires_at.is_some_and(|exp| now > exp + leeway) {
        return Err("token has expired");
    }
    // §4.1.5: "the current date/time MUST be after or equal to the
    // not-before date/time listed in the "nbf" claim", with the same leeway.
    if not_before.is_some_and(|nbf| now + leeway < nbf) {
        return Err("token is not valid yet");
    }

    // Mercure: "mercure": {"subscribe": [...], "publish": [...]}. A missing
    // object or list grants nothing of that kind.
    let mercure = claims.get("mercure");
    if mercure.is_some_and(|value| !matches!(value, Value::Object(_))) {
        return Err("token mercure claim is not a json object");
    }
    let subscribe = mercure.and_then(|value| value.get("subscribe"));
    let publish = mercure.and_then(|value| value.get("publish"));
    Ok(Claims {
        subscribe: string_list(subscribe, "token subscribe claim is not a list of strings")?,
        publish: string_list(publish, "token publish claim is not a list of strings")?,
        // Rounded down: `as` drops the fraction and saturates, so a negative
        // `exp` becomes 0 and a huge one u64::MAX.
        expires: expires_at.map(|exp| exp as u64),
    })
}

fn numeric_date(
    claims: &Value,
    name: &str,
    error: &'static str,
) -> Result<Option<f64>, &'static str> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_number().map(Some).ok_or(error),
    }
}

fn string_list(list: Option<&Value>, error: &'static str) -> Result<Vec<String>, &'static str> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let elements = list.as_array().ok_or(error)?;
    let mut strings = Vec::with_capacity(elements.len());
    for element in elements {
        strings.push(element.as_str().ok_or(error)?.to_owned());
    }
    Ok(strings)
}

/// Signs `claims_json` as an `HS256` token with the header
/// `{"alg":"HS256","typ":"JWT"}`; for tests and for minting test tokens.
#[cfg(test)]
pub(crate) fn sign_hs256(claims_json: &str, key: &[u8]) -> String {
    let header = base64url::encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = base64url::encode(claims_json.as_bytes());
    let signing_input = format!("{header}.{payload}");
    let signature = base64url::encode(&hmac_sha256(key, signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::super::{base64url, json};
    use super::{Claims, HmacKey, LEEWAY, MAX_TOKEN_BYTES, MIN_KEY_BYTES, hmac_sha256, sign_hs256};

    /// `verify` with the key as bytes.
    fn verify(token: &str, key: &[u8], now: u64) -> Result<Claims, &'static str> {
        super::verify(token, &HmacKey::new(key), now)
    }

    const KEY: &[u8] = b"tinysse-test-key-0123456789abcdef";

    // Minted with PyJWT 2.15.1 (python3 -m venv /tmp/jwtvenv &&
    // /tmp/jwtvenv/bin/pip install pyjwt), each printed by
    // /tmp/jwtvenv/bin/python -c 'import jwt; print(...)' where ... is:
    //
    // VALID:       jwt.encode({"mercure":{"subscribe":["user/42","news"],"publish":["user/42/*"]},"exp":4102444800}, "tinysse-test-key-0123456789abcdef", algorithm="HS256")
    // EXPIRED:     jwt.encode({"mercure":{"subscribe":["*"]},"exp":1700000000}, "tinysse-test-key-0123456789abcdef", algorithm="HS256")
    // NOT_YET:     jwt.encode({"mercure":{"publish":["news"]},"nbf":1800000000,"exp":4102444800}, "tinysse-test-key-0123456789abcdef", algorithm="HS256")
    // FRACTIONAL:  jwt.encode({"mercure":{"subscribe":["news"]},"nbf":1699999999.5,"exp":1700000100.75}, "tinysse-test-key-0123456789abcdef", algorithm="HS256", headers={"typ":None})
    // NO_MERCURE:  jwt.encode({"sub":"42","exp":4102444800}, "tinysse-test-key-0123456789abcdef", algorithm="HS256")
    // ALG_NONE:    jwt.encode({"mercure":{"subscribe":["*"]}}, None, algorithm="none")
    // HS512:       jwt.encode({"mercure":{"subscribe":["*"]}}, "tinysse-test-key-0123456789abcdef", algorithm="HS512")
    // OTHER_KEY:   jwt.encode({"mercure":{"subscribe":["*"]}}, "another-key-of-32-bytes-or-more!", algorithm="HS256")
    // CRIT:        jwt.encode({"mercure":{"subscribe":["*"]}}, "tinysse-test-key-0123456789abcdef", algorithm="HS256", headers={"crit":["exp"]})
    // BAD_SIGNATURE, one signature character flipped:
    //   import jwt; t=jwt.encode({"mercure":{"subscribe":["*"]}}, "tinysse-test-key-0123456789abcdef", algorithm="HS256"); i=len(t)-10; print(t[:i]+("B" if t[i]=="A" else "A")+t[i+1:])
    const VALID: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJtZXJjdXJlIjp7InN1YnNjcmliZSI6WyJ1c2VyLzQyIiwibmV3cyJdLCJwdWJsaXNoIjpbInVzZXIvNDIvKiJdfSwiZXhwIjo0MTAyNDQ0ODAwfQ.mBJlk3j_CZTQ7rfP21wzM8YhS5DRV-KRxDcpF44e3so";
    const EXPIRED: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJtZXJjdXJlIjp7InN1YnNjcmliZSI6WyIqIl19LCJleHAiOjE3MDAwMDAwMDB9.LgLsntGOoobEpgSfp5dPfMAKIusaD-P6BQOPxdRRcMw";
    const NOT_YET: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsibmV3cyJdfSwibmJmIjoxODAwMDAwMDAwLCJleHAiOjQxMDI0NDQ4MDB9.lgBOkqA77RKm4oEIyj8q95rr1xtaHbqTBgYZ5zQtszI";
    const FRACTIONAL: &str = "eyJhbGciOiJIUzI1NiJ9.eyJtZXJjdXJlIjp7InN1YnNjcmliZSI6WyJuZXdzIl19LCJuYmYiOjE2OTk5OTk5OTkuNSwiZXhwIjoxNzAwMDAwMTAwLjc1fQ.zyNmntV0g84uTfTq_qS8E7cZC6iIBbANKfLWWkiQz5E";
    const NO_MERCURE: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsImV4cCI6NDEwMjQ0NDgwMH0.3EQzkWldy2yzJGaqOjLCipJX36soS8CVHTZ8j941JcQ";
    const ALG_NONE: &str =
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJtZXJjdXJlIjp7InN1YnNjcmliZSI6WyIqIl19fQ.";
    const HS512: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJtZXJjdXJlIjp7InN1YnNjcmliZSI6WyIqIl19fQ.qvGWevL3v9h0EywPdgWa5WT8Dlhn7Z-hK5Wy--75CG698AcFn4OTqLttC4c8Jh9Dx8fTHtQqAkglHAj54MBCRw";
    const OTHER_KEY: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJtZXJjdXJlIjp7InN1YnNjcmliZSI6WyIqIl19fQ.uED1msb11UtK0XOBuQ5sf-H0m63IJHx4Ov_miUA1NLs";
    const CRIT: &str = "eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiZXhwIl0sInR5cCI6IkpXVCJ9.eyJtZXJjdXJlIjp7InN1YnNjcmliZSI6WyIqIl19fQ.W-SsLZzroTYdrnKQuKUMSCkfN8xH75qvxNqcIckZ7W0";
    const BAD_SIGNATURE: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJtZXJjdXJlIjp7InN1YnNjcmliZSI6WyIqIl19fQ.BC2OpXUElgxZ7CQAr8_AHjScph1O2KVscAgk9RAxaYM";

    /// 2023-11-14, when the fixtures were minted; any time before 2100 works
    /// for the tokens that expire in 2100.
    const NOW: u64 = 1_700_000_000;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|text| text.to_string()).collect()
    }

    #[test]
    fn valid_pyjwt_token() {
        let expected = Claims {
            subscribe: strings(&["user/42", "news"]),
            publish: strings(&["user/42/*"]),
            expires: Some(4102444800),
        };
        assert!(KEY.len() >= MIN_KEY_BYTES);
        assert_eq!(verify(VALID, KEY, NOW), Ok(expected));
    }

    #[test]
    fn sign_hs256_matches_pyjwt_byte_for_byte() {
        let claims = r#"{"mercure":{"subscribe":["user/42","news"],"publish":["user/42/*"]},"exp":4102444800}"#;
        assert_eq!(sign_hs256(claims, KEY), VALID);
    }

    #[test]
    fn expiry_with_leeway() {
        let expired_at: u64 = 1_700_000_000;
        assert!(verify(EXPIRED, KEY, expired_at + LEEWAY).is_ok());
        assert_eq!(
            verify(EXPIRED, KEY, expired_at + LEEWAY + 1),
            Err("token has expired")
        );
    }

    #[test]
    fn not_before_with_leeway() {
        let valid_from: u64 = 1_800_000_000;
        assert_eq!(
            verify(NOT_YET, KEY, valid_from - LEEWAY - 1),
            Err("token is not valid yet")
        );
        let claims = verify(NOT_YET, KEY, valid_from - LEEWAY);
        assert_eq!(claims.map(|claims| claims.publish), Ok(strings(&["news"])));
    }

    #[test]
    fn fractional_dates_and_no_typ() {
        // nbf 1699999999.5, exp 1700000100.75.
        assert_eq!(
            verify(FRACTIONAL, KEY, 1_699_999_969),
            Err("token is not valid yet")
        );
        let claims = verify(FRACTIONAL, KEY, 1_699_999_970).unwrap();
        assert_eq!(claims.expires, Some(1_700_000_100));
        assert!(verify(FRACTIONAL, KEY, 1_700_000_130).is_ok());
        assert_eq!(
            verify(FRACTIONAL, KEY, 1_700_000_131),
            Err("token has expired")
        );
    }

    #[test]
    fn no_mercure_claim_grants_nothing() {
        let expected = Claims {
            subscribe: vec![],
            publish: vec![],
            expires: Some(4102444800),
        };
        assert_eq!(verify(NO_MERCURE, KEY, NOW), Ok(expected));
    }

    #[test]
    fn refused_pyjwt_tokens() {
        let refused = [
            (ALG_NONE, "token alg is not HS256, the only one accepted"),
            (HS512, "token alg is not HS256, the only one accepted"),
            (OTHER_KEY, "token signature does not match"),
            (BAD_SIGNATURE, "token signature does not match"),
            (CRIT, "token header has crit, which is not supported"),
        ];
        for (token, reason) in refused {
            assert_eq!(verify(token, KEY, NOW), Err(reason), "{token}");
        }
        // The right token under the wrong key.
        assert_eq!(
            verify(VALID, b"tinysse-test-key-0123456789abcdeF", NOW),
            Err("token signature does not match")
        );
    }

    fn token_with_header(header: &str, claims: &str) -> String {
        let header = base64url::encode(header.as_bytes());
        let payload = base64url::encode(claims.as_bytes());
        let input = format!("{header}.{payload}");
        let mac = hmac_sha256(KEY, input.as_bytes());
        format!("{input}.{}", base64url::encode(&mac))
    }

    #[test]
    fn refused_headers() {
        let claims = r#"{"exp":4102444800}"#;
        let refused = [
            (
                r#"{"alg":"hs256"}"#,
                "token alg is not HS256, the only one accepted",
            ),
            (
                r#"{"alg":"HS256 "}"#,
                "token alg is not HS256, the only one accepted",
            ),
            (
                r#"{"typ":"JWT"}"#,
                "token alg is not HS256, the only one accepted",
            ),
            (
                r#"{"alg":["HS256"]}"#,
                "token alg is not HS256, the only one accepted",
            ),
            (r#"{"alg":"HS256","typ":"JOSE"}"#, "token typ is not JWT"),
            (r#"{"alg":"HS256","typ":1}"#, "token typ is not JWT"),
            (
                r#"{"alg":"HS256","crit":[]}"#,
                "token header has crit, which is not supported",
            ),
            (
                r#"{"alg":"HS256","alg":"HS256"}"#,
                "json object has a duplicate key",
            ),
            (r#"["HS256"]"#, "token header is not a json object"),
            (
                r#"{"alg":"HS256""#,
                "json object member is not followed by a comma or a brace",
            ),
        ];
        for (header, reason) in refused {
            assert_eq!(
                verify(&token_with_header(header, claims), KEY, NOW),
                Err(reason),
                "{header}"
            );
        }
        // Lowercase "jwt" is the same media type (RFC 7515 §4.1.9).
        assert!(
            verify(
                &token_with_header(r#"{"alg":"HS256","typ":"jwt"}"#, claims),
                KEY,
                NOW
            )
            .is_ok()
        );
    }

    #[test]
    fn refused_claims() {
        let refused = [
            (r#"[]"#, "token claims are not a json object"),
            (r#"{"exp":"4102444800"}"#, "token exp is not a number"),
            (r#"{"nbf":null}"#, "token nbf is not a number"),
            (
                r#"{"mercure":[]}"#,
                "token mercure claim is not a json object",
            ),
            (
                r#"{"mercure":{"subscribe":"news"}}"#,
                "token subscribe claim is not a list of strings",
            ),
            (
                r#"{"mercure":{"subscribe":["news",1]}}"#,
                "token subscribe claim is not a list of strings",
            ),
            (
                r#"{"mercure":{"publish":{"a":"b"}}}"#,
                "token publish claim is not a list of strings",
            ),
            (
                r#"{"mercure":{"publish":[null]}}"#,
                "token publish claim is not a list of strings",
            ),
            (
                r#"{"exp":1,"exp":4102444800}"#,
                "json object has a duplicate key",
            ),
            (r#"{"exp":1e999}"#, "json number is out of range"),
            (
                r#"{"exp":4102444800}x"#,
                "json text has trailing characters",
            ),
        ];
        for (claims, reason) in refused {
            assert_eq!(
                verify(&sign_hs256(claims, KEY), KEY, NOW),
                Err(reason),
                "{claims}"
            );
        }
    }

    #[test]
    fn claim_edge_cases() {
        let check = |claims: &str, expected: Claims| {
            assert_eq!(
                verify(&sign_hs256(claims, KEY), KEY, NOW),
                Ok(expected),
                "{claims}"
            );
        };
        let none = Claims {
            subscribe: vec![],
            publish: vec![],
            expires: None,
        };
        check("{}", none.clone());
        check(r#"{"mercure":{}}"#, none.clone());
        check(
            r#"{"mercure":{"subscribe":[],"payload":{"x":1}},"aud":"x"}"#,
            none.clone(),
        );
        check(
            r#"{"mercure":{"subscribe":["a\/b","\u00e9"]},"exp":1700000000.999}"#,
            Claims {
                subscribe: strings(&["a/b", "é"]),
                publish: vec![],
                expires: Some(1_700_000_000),
            },
        );
        // A far-past `exp` is refused; a far-future one saturates.
        assert_eq!(
            verify(&sign_hs256(r#"{"exp":-1e300}"#, KEY), KEY, NOW),
            Err("token has expired")
        );
        check(
            r#"{"exp":1e300}"#,
            Claims {
                expires: Some(u64::MAX),
                ..none
            },
        );
    }

    #[test]
    fn malformed_tokens() {
        let refused = [
            ("", "token is not three base64url parts"),
            ("abc", "token is not three base64url parts"),
            ("a.b", "token is not three base64url parts"),
            ("a.b.c.d", "token is not three base64url parts"),
            ("..", "json text ends early"),
            ("eyJ=.e30.", "token header is not base64url"),
            (
                " eyJhbGciOiJIUzI1NiJ9.e30.",
                "token header is not base64url",
            ),
        ];
        for (token, reason) in refused {
            assert_eq!(verify(token, KEY, NOW), Err(reason), "{token:?}");
        }
        // The header decides the algorithm before the signature is read.
        let (input, _) = VALID.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&format!("{input}.+/+/"), KEY, NOW),
            Err("token signature is not base64url")
        );
        assert_eq!(
            verify(&format!("{input}."), KEY, NOW),
            Err("token signature does not match")
        );
        // A changed payload fails the signature before it is decoded.
        let padded = VALID.replacen(".eyJtZX", ".eyJtZX==", 1);
        assert_eq!(
            verify(&padded, KEY, NOW),
            Err("token signature does not match")
        );
        // A signed payload that is not base64url is refused once decoded.
        let input = format!("{}.Zh", base64url::encode(br#"{"alg":"HS256"}"#));
        let mac = base64url::encode(&hmac_sha256(KEY, input.as_bytes()));
        assert_eq!(
            verify(&format!("{input}.{mac}"), KEY, NOW),
            Err("token payload is not base64url")
        );
    }

    #[test]
    fn length_limit() {
        // Grow the payload until the token is exactly at the limit, then one past.
        let claims_of = |filler: usize| format!(r#"{{"x":"{}"}}"#, "a".repeat(filler));
        let mut filler = 0;
        while sign_hs256(&claims_of(filler + 1), KEY).len() <= MAX_TOKEN_BYTES {
            filler += 1;
        }
        let at_limit = sign_hs256(&claims_of(filler), KEY);
        assert!(at_limit.len() <= MAX_TOKEN_BYTES);
        assert!(verify(&at_limit, KEY, NOW).is_ok());
        let over = sign_hs256(&claims_of(filler + 1), KEY);
        assert_eq!(verify(&over, KEY, NOW), Err("token is too long"));
    }

    use crate::testing::Rng;

    impl Rng {
        fn byte(&mut self) -> u8 {
            // Mostly bytes that matter to the formats, sometimes any byte.
            const INTERESTING: &[u8] = b"\".=-_+/\\{}[],:0123456789eE AZaz\0\x7f\xc3\xa9\xff";
            if self.below(4) == 0 {
                self.next() as u8
            } else {
                INTERESTING[self.below(INTERESTING.len())]
            }
        }

        fn mutate(&mut self, original: &[u8]) -> Vec<u8> {
            let mut bytes = original.to_vec();
            for _ in 0..=self.below(3) {
                let position = self.below(bytes.len() + 1);
                match self.below(5) {
                    0 => bytes.truncate(position),
                    1 => bytes.insert(position, self.byte()),
                    2 if position < bytes.len() => {
                        bytes.remove(position);
                    }
                    _ if position < bytes.len() => bytes[position] = self.byte(),
                    _ => bytes.push(self.byte()),
                }
            }
            bytes
        }
    }

    #[test]
    fn random_mutations_never_panic_or_verify() {
        let mut rng = Rng(0x7465_7374_7365_6564);
        let tokens = [
            VALID, EXPIRED, NOT_YET, FRACTIONAL, NO_MERCURE, ALG_NONE, HS512, CRIT,
        ];
        let documents = [
            r#"{"mercure":{"subscribe":["user/42","news"],"publish":["user/42/*"]},"exp":4102444800}"#,
            r#"{"a":[1,-2.5e+3,true,false,null,"\ud83d\ude00\n\u00e9"],"b":{"c":{}}}"#,
            r#"[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]"#,
        ];
        for round in 0..20_000 {
            // Tokens: mutated, they may be refused for any reason but must never verify.
            let original = tokens[round % tokens.len()];
            let mutated = rng.mutate(original.as_bytes());
            let mutated = String::from_utf8_lossy(&mutated);
            if verify(&mutated, KEY, NOW).is_ok() {
                assert_eq!(mutated, original, "round {round}");
            }
            // Documents: read directly, and signed so that the claims reader sees them too.
            let document = rng.mutate(documents[round % documents.len()].as_bytes());
            let _ = json::parse(&document);
            let _ = verify(
                &sign_hs256(&String::from_utf8_lossy(&document), KEY),
                KEY,
                NOW,
            );
        }
    }
}
