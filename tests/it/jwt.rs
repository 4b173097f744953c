//! SPEC §10, per-client rights in signed tokens (`--jwt-key-file`): tokens
//! minted by Python's standard library (hmac, hashlib, base64, json), not by
//! this crate, carry Mercure's claims; the server lets each client read and
//! write exactly the topics its token allows.

use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tinysse::Config;

use crate::support::{
    BIN, PATIENCE, TestServer, config, open_stream, publish, raw, run_to_end, start, subscribe,
};

const KEY: &str = "tinysse-jwt-test-key-0123456789abcdef";

/// An HS256 token for `claims` (JSON), minted by Python; `None` (the test
/// skips) when there is no Python, unless `TINYSSE_REQUIRE_PYTHON=1`.
fn mint(claims: &str, key: &str, alg: &str) -> Option<String> {
    let script = r#"
import base64, hashlib, hmac, json, sys
claims, key, alg = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
payload = b64(json.dumps(json.loads(claims)).encode())
digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}.get(alg)
signature = b64(hmac.new(key, f"{header}.{payload}".encode(), digest).digest()) if digest else ""
print(f"{header}.{payload}.{signature}")
"#;
    let output = Command::new("python3")
        .args(["-c", script, claims, key, alg])
        .output();
    match output {
        Ok(output) if output.status.success() => {
            Some(String::from_utf8(output.stdout).unwrap().trim().to_string())
        }
        _ => {
            let required = std::env::var("TINYSSE_REQUIRE_PYTHON").is_ok_and(|value| value == "1");
            assert!(!required, "python3 is required to mint tokens");
            println!("skipped: python3 not installed (apt-get install python3)");
            None
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token that may subscribe to `subscribe` and publish on `publish`.
fn token(subscribe: &[&str], publish: &[&str]) -> Option<String> {
    let claims = format!(
        r#"{{"mercure": {{"subscribe": {subscribe:?}, "publish": {publish:?}}}, "exp": {}}}"#,
        now() + 3600
    );
    mint(&claims, KEY, "HS256")
}

fn server() -> TestServer {
    start(Config {
        jwt_key: Some(KEY.as_bytes().to_vec()),
        ..config()
    })
}

/// The status of `GET /events{query}` with `headers`.
fn subscribe_status(server: &TestServer, query: &str, headers: &str) -> u16 {
    let stream = open_stream(server.addr, &format!("/events{query}"), headers);
    stream.head[9..12].parse().unwrap()
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

#[test]
fn subscribing_is_allowed_exactly_by_the_token_patterns() {
    let Some(token) = token(&["news", "user/42/*"], &[]) else {
        return;
    };
    let server = server();
    let auth = bearer(&token);
    for (query, status) in [
        ("?topic=news", 200),
        ("?topic=user/42/inbox", 200),
        ("?topic=user/42/a/b", 200),
        ("?topic=news&topic=user/42/inbox", 200),
        ("", 200),
        ("?topic=user/42", 401),
        ("?topic=user/420/x", 401),
        ("?topic=sports", 401),
        ("?topic=news&topic=sports", 401),
    ] {
        assert_eq!(subscribe_status(&server, query, &auth), status, "{query}");
    }
    let refused = raw(
        server.addr,
        format!("GET /events?topic=sports HTTP/1.1\r\nHost: t\r\n{auth}\r\n").as_bytes(),
    );
    assert_eq!(refused.text(), "not allowed to read this topic\n");
    let Some(everything) = self::token(&["*"], &[]) else {
        return;
    };
    assert_eq!(
        subscribe_status(&server, "?topic=sports", &bearer(&everything)),
        200
    );
}

#[test]
fn a_subscription_without_topics_gets_only_the_allowed_ones_in_replay_and_live() {
    let (Some(reader), Some(writer)) = (token(&["user/42/*", "news"], &[]), token(&[], &["*"]))
    else {
        return;
    };
    let server = server();
    let post = |topic: &str, data: &str| {
        let request = format!(
            "POST /publish?topic={topic} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{}Content-Length: {}\r\n\r\n{data}",
            bearer(&writer),
            data.len()
        );
        let response = raw(server.addr, request.as_bytes());
        assert_eq!(response.status, 200, "{}", response.text());
        response.text().trim_end().to_string()
    };
    let first = post("news", "replayed");
    post("user/43/inbox", "not yours");
    post("user/42/inbox", "yours, replayed");
    let mut subscriber = subscribe(
        server.addr,
        "/events?last_event_id=unknown",
        &bearer(&reader),
    );
    post("sports", "not yours either");
    post("user/42", "not under user/42/");
    post("user/42/x", "yours, live");
    let got: Vec<String> = (0..4).map(|_| subscriber.next_event().data).collect();
    assert_eq!(
        got,
        ["unknown", "replayed", "yours, replayed", "yours, live"]
    );
    assert!(!first.is_empty());
}

/// Mercure tokens may carry URI templates; such a pattern matches nothing
/// here, and the token's other patterns still count.
#[test]
fn a_pattern_that_is_no_topic_matches_nothing_and_the_others_count() {
    let Some(token) = token(
        &["https://example.com/books/{id}", "https://example.com/news"],
        &[],
    ) else {
        return;
    };
    let server = server();
    let auth = bearer(&token);
    assert_eq!(
        subscribe_status(&server, "?topic=https://example.com/news", &auth),
        200
    );
    assert_eq!(
        subscribe_status(&server, "?topic=https://example.com/books/1", &auth),
        401
    );
}

#[test]
fn publishing_needs_a_matching_publish_pattern() {
    let Some(token) = token(&[], &["user/42/*"]) else {
        return;
    };
    let server = server();
    let post = |topic: &str, auth: &str| {
        let request = format!(
            "POST /publish?topic={topic} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{auth}Content-Length: 1\r\n\r\nx"
        );
        raw(server.addr, request.as_bytes())
    };
    assert_eq!(post("user/42/inbox", &bearer(&token)).status, 200);
    for topic in ["user/42", "news", "user/420/x"] {
        let refused = post(topic, &bearer(&token));
        assert_eq!(refused.status, 401, "{topic}");
        assert_eq!(refused.text(), "not allowed to publish on this topic\n");
        assert!(refused.header("www-authenticate").is_some());
    }
    let (status, reason) = publish(server.addr, "?topic=user/42/inbox", None, b"x");
    assert_eq!(status, 401, "no token at all, on loopback too: {reason}");
}

#[test]
fn the_token_comes_by_header_query_or_cookie() {
    let Some(token) = token(&["news"], &[]) else {
        return;
    };
    let server = server();
    assert_eq!(
        subscribe_status(&server, "?topic=news", &bearer(&token)),
        200
    );
    assert_eq!(
        subscribe_status(&server, &format!("?topic=news&token={token}"), ""),
        200
    );
    let cookie = format!("Cookie: theme=dark; tinysse_token={token}\r\n");
    assert_eq!(subscribe_status(&server, "?topic=news", &cookie), 200);
    assert_eq!(subscribe_status(&server, "?topic=news", ""), 401);
}

#[test]
fn bad_tokens_get_401_with_a_one_line_reason() {
    let server = server();
    let claims = |extra: &str| format!(r#"{{"mercure": {{"subscribe": ["*"]}}{extra}}}"#);
    let far = now() + 3600;
    let cases = [
        (
            "expired",
            mint(
                &claims(&format!(r#", "exp": {}"#, now() - 120)),
                KEY,
                "HS256",
            ),
        ),
        (
            "not yet valid",
            mint(&claims(&format!(r#", "nbf": {far}"#)), KEY, "HS256"),
        ),
        ("alg none", mint(&claims(""), KEY, "none")),
        ("HS512", mint(&claims(""), KEY, "HS512")),
        (
            "another key",
            mint(&claims(""), "another-key-of-at-least-32-bytes!!", "HS256"),
        ),
        ("malformed", Some("not.a.token".to_string())),
    ];
    for (what, token) in cases {
        let Some(token) = token else {
            return;
        };
        let request = format!(
            "GET /events HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{}\r\n",
            bearer(&token)
        );
        let response = raw(server.addr, request.as_bytes());
        assert_eq!(response.status, 401, "{what}");
        let reason = response.text();
        assert_eq!(reason.trim_end().lines().count(), 1, "{what}: {reason}");
        assert!(!reason.contains(KEY), "{what}: the key leaked");
    }
    // A token whose exp is within the 30 s leeway is still good.
    let Some(just) = mint(&claims(&format!(r#", "exp": {}"#, now() - 5)), KEY, "HS256") else {
        return;
    };
    assert_eq!(subscribe_status(&server, "", &bearer(&just)), 200);
}

#[test]
fn a_stream_ends_when_its_token_expires() {
    // exp 29 s ago: valid for one more second, thanks to the 30 s leeway.
    let claims = format!(
        r#"{{"mercure": {{"subscribe": ["*"]}}, "exp": {}}}"#,
        now() - 29
    );
    let Some(token) = mint(&claims, KEY, "HS256") else {
        return;
    };
    let server = server();
    let mut subscriber = subscribe(server.addr, "/events", &bearer(&token));
    let started = Instant::now();
    let rest = String::from_utf8_lossy(&subscriber.read_to_end()).into_owned();
    assert!(started.elapsed() < PATIENCE);
    assert!(rest.contains(": access expired"), "{rest}");
    assert_eq!(server.hub().subscriber_count(), 0);
}

#[test]
fn documents_and_health_need_no_token() {
    let server = server();
    for path in ["/", "/healthz", "/readyz", "/metrics"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(raw(server.addr, request.as_bytes()).status, 200, "{path}");
    }
}

#[test]
fn a_short_key_or_a_key_with_shared_tokens_exits_2() {
    let file = std::env::temp_dir().join(format!("tinysse-jwt-key-{}", std::process::id()));
    std::fs::write(&file, "too short\n").unwrap();
    let path = file.to_str().unwrap();
    for args in [
        &["serve", "--jwt-key-file", path][..],
        &["serve", "--jwt-key-file", path, "--token", "t"],
    ] {
        let mut command = Command::new(BIN);
        command.args(args);
        let finished = run_to_end(command, PATIENCE);
        assert_eq!(
            finished.status.code(),
            Some(2),
            "{args:?}: {}",
            finished.stderr
        );
        assert_eq!(finished.stderr.lines().count(), 1, "{}", finished.stderr);
    }
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    let mut command = Command::new(BIN);
    command.args(["serve", "--jwt-key-file", path, "--subscribe-token", "s"]);
    let finished = run_to_end(command, PATIENCE);
    assert_eq!(finished.status.code(), Some(2), "{}", finished.stderr);
    std::fs::remove_file(&file).unwrap();
}
