//! Routing: which endpoint a request goes to, the small documents (the demo
//! page, `/healthz`, `/metrics`, embedders' pages), CORS, and error answers.

use std::net::SocketAddr;
use std::sync::Arc;

use super::Shared;
use super::accept::Socket;
use crate::Error;
use crate::http::{Conn, Framing, Request, Response};

/// The demo page served at `/`.
const DEMO_PAGE: &str = include_str!("demo.html");

/// What a handled request leaves the connection as.
pub(super) enum After {
    KeepAlive,
    Close,
}

pub(super) fn handle_request(
    shared: &Arc<Shared>,
    conn: &mut Conn<Socket>,
    request: Request,
    peer: SocketAddr,
) -> After {
    let framing = match request.body_framing() {
        Ok(framing) => framing,
        Err(err) => {
            respond_error(shared, conn, &err, Some(&request));
            return After::Close;
        }
    };
    let method = request.method.as_str();
    let page = shared
        .hooks()
        .and_then(|hooks| hooks.pages.iter().find(|page| page.0 == request.path));
    let allow = match request.path.as_str() {
        "/events" => "GET, OPTIONS",
        "/publish" => "POST, OPTIONS",
        _ if page.is_some() => "GET, HEAD, OPTIONS",
        "/" | "/healthz" | "/readyz" | "/metrics" => "GET, HEAD, OPTIONS",
        "*" if method == "OPTIONS" => "GET, HEAD, POST, OPTIONS",
        _ => "",
    };
    // Only publish reads a body; after any other request with a body the
    // connection closes rather than guess where the next request starts.
    let keep_alive =
        request.keep_alive() && (framing == Framing::None || framing == Framing::Length(0));
    let response = match (request.path.as_str(), method) {
        (_, _) if allow.is_empty() => Response::text(404, "not found\n"),
        (_, "OPTIONS") => preflight(shared, &request, allow),
        ("/events", "GET") => return super::stream::subscribe(shared, conn, request, peer),
        ("/publish", "POST") => {
            return super::publish::publish(shared, conn, &request, framing, peer);
        }
        (_, "GET" | "HEAD") if page.is_some() => {
            let (_, content_type, body) = page.expect("checked just above");
            Response::typed(200, content_type, body.clone())
        }
        ("/", "GET" | "HEAD") => Response::typed(200, "text/html; charset=utf-8", DEMO_PAGE),
        ("/healthz", "GET" | "HEAD") => Response::text(200, "ok\n"),
        ("/readyz", "GET" | "HEAD") => match shared.hub.ready() {
            Ok(()) => Response::text(200, "ok\n"),
            Err(why) => Response::text(503, format!("{why}\n")),
        },
        ("/metrics", "GET" | "HEAD") => {
            let mut text = shared.metrics.render(&shared.hub.stats());
            shared.hub.log_metrics(&mut text);
            Response::typed(200, "text/plain; version=0.0.4; charset=utf-8", text)
        }
        _ => Response::text(
            405,
            format!("method {method} not allowed; allowed: {allow}\n"),
        )
        .with_header("Allow", allow),
    };
    let response = response.with_headers(cors_headers(shared, &request));
    if send(shared, conn, &response, method == "HEAD", keep_alive) && keep_alive {
        After::KeepAlive
    } else {
        After::Close
    }
}

/// CORS headers for a request whose `Origin` is allowed by `--cors-origin`.
pub(super) fn cors_headers(shared: &Shared, request: &Request) -> Vec<(&'static str, String)> {
    let origins = &shared.config.cors_origins;
    let Some(origin) = request.header("origin") else {
        return Vec::new();
    };
    if origins.iter().any(|allowed| allowed == "*") {
        vec![("Access-Control-Allow-Origin", "*".to_string())]
    } else if origins.iter().any(|allowed| allowed == origin) {
        vec![
            ("Access-Control-Allow-Origin", origin.to_string()),
            ("Access-Control-Allow-Credentials", "true".to_string()),
            ("Vary", "Origin".to_string()),
        ]
    } else {
        Vec::new()
    }
}

/// `OPTIONS`: a CORS preflight answer when the origin is allowed, else 204
/// with `Allow`. The origin headers themselves are added by `handle_request`,
/// as for every response (twice would make browsers refuse the preflight).
fn preflight(shared: &Shared, request: &Request, allow: &str) -> Response {
    let mut response = Response::empty(204).with_header("Allow", allow);
    if !cors_headers(shared, request).is_empty() {
        response = response
            .with_header("Access-Control-Allow-Methods", "GET, POST")
            .with_header(
                "Access-Control-Allow-Headers",
                "Authorization, Content-Type, Last-Event-ID",
            )
            .with_header("Access-Control-Max-Age", "86400");
    }
    response
}

/// Answers `err` with its status and one-line reason, and closes.
pub(super) fn respond_error(
    shared: &Shared,
    conn: &mut Conn<Socket>,
    err: &Error,
    request: Option<&Request>,
) {
    let mut response = Response::error(err);
    if let Some(request) = request {
        response = response.with_headers(cors_headers(shared, request));
    }
    send(shared, conn, &response, false, false);
}

/// Writes a response and counts it; whether it was written.
fn send(
    shared: &Shared,
    conn: &mut Conn<Socket>,
    response: &Response,
    head_only: bool,
    keep_alive: bool,
) -> bool {
    shared.metrics.request(response.status);
    shared.metrics.sent(response.body.len());
    response
        .write_to(conn.get_mut(), head_only, keep_alive)
        .is_ok()
}
