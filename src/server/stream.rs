//! Subscribing: `GET /events`, from the request to a subscription streamed
//! to the client until it leaves, stalls, or the server shuts down.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::accept::Socket;
use super::access::decide;
use super::metrics::DropReason;
use super::route::{After, cors_headers, respond_error};
use super::{Level, Shared};
use crate::Error;
use crate::http::{Conn, Request, stream_head};
use crate::hub::{End, Filter, MAX_TOPICS, Streaming, Subscription};
use crate::wire::event::{comment_frame, retry_frame};
use crate::wire::id::jittered;

pub(super) fn subscribe(
    shared: &Arc<Shared>,
    conn: &mut Conn<Socket>,
    owned: Request,
    peer: SocketAddr,
) -> After {
    let request = &owned;
    let (mut subscription, until) = match subscription_for(shared, request, peer) {
        Ok(subscription) => subscription,
        Err(Error::Full) => {
            // 200, so that browsers come back later instead of giving up; a
            // jittered retry spreads the reconnections out.
            let retry = jittered(shared.config.retry_ms);
            let mut headers = cors_headers(shared, request);
            headers.push(("Retry-After", retry.div_ceil(1000).to_string()));
            let mut bytes = stream_head(&headers);
            bytes.extend_from_slice(&comment_frame("server full, try again later"));
            bytes.extend_from_slice(&retry_frame(retry));
            shared.metrics.request(200);
            shared.metrics.dropped(DropReason::Full);
            let _ = conn.get_mut().write_all(&bytes);
            let _ = conn.get_ref().shutdown(Shutdown::Write);
            return After::Close;
        }
        Err(err) => {
            respond_error(shared, conn, &err, Some(request));
            return After::Close;
        }
    };
    conn.release_buffer();
    let mut bytes = stream_head(&cors_headers(shared, request));
    // "The body starts at once with retry: <ms> and a blank line."
    bytes.extend_from_slice(&retry_frame(shared.config.retry_ms));
    if let Some(greet) = shared.hooks().and_then(|hooks| hooks.greeter.as_ref()) {
        for event in greet(request) {
            if event.validate().is_ok() {
                event.encode_into(&mut bytes);
            }
        }
    }
    shared.metrics.request(200);
    if shared.logs(Level::Info) {
        let topics = describe_topics(request);
        shared.log(
            Level::Info,
            format_args!("subscriber {peer} arrived ({topics})"),
        );
    }
    // The stream may last for days: do not keep the request's strings.
    drop(owned);
    let reason = stream_events(shared, conn.get_ref(), &mut subscription, bytes, until);
    drop(subscription);
    shared.log(
        Level::Info,
        format_args!("subscriber {peer} left ({reason})"),
    );
    After::Close
}

/// The subscription a `GET /events` asks for, and when it ends, or the
/// error to answer.
fn subscription_for(
    shared: &Arc<Shared>,
    request: &Request,
    peer: SocketAddr,
) -> Result<(Subscription, Option<Instant>), Error> {
    let query = request.query_pairs()?;
    let value = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let access = decide(shared, request, peer)?;
    let topics: Vec<&str> = query
        .iter()
        .filter(|(key, _)| key == "topic")
        .map(|(_, value)| value.as_str())
        .collect();
    // SPEC §10: "Every requested topic must match a subscribe pattern (else
    // 401); a subscription with no topic gets every topic the token allows".
    let allowed = access.subscribe_topics();
    let filter = if !topics.is_empty() || allowed.is_all() {
        let filter = Filter::new(&topics)?;
        if !topics.iter().all(|topic| allowed.allows(topic)) {
            return Err(Error::NotAllowed("read this topic"));
        }
        filter
    } else if allowed.is_none() {
        return Err(Error::NotAllowed("read any topic"));
    } else {
        match allowed.exact_list() {
            Some(list) if list.len() <= MAX_TOPICS => Filter::new(&list)?,
            _ => Filter::Allowed(Arc::new(allowed.clone())),
        }
    };
    let until = access.expires().map(|when| {
        let left = when.duration_since(SystemTime::now()).unwrap_or_default();
        Instant::now()
            .checked_add(left)
            .unwrap_or_else(Instant::now)
    });
    // The header wins: it is what a reconnecting browser sends.
    let last_id = request
        .header("last-event-id")
        .filter(|id| !id.is_empty())
        .or_else(|| value("last_event_id"))
        .or_else(|| value("lastEventId"));
    Ok((shared.hub.subscribe_with(filter, last_id)?, until))
}

fn describe_topics(request: &Request) -> String {
    let topics: Vec<String> = request
        .query_pairs()
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| key == "topic")
        .map(|(_, value)| value)
        .collect();
    if topics.is_empty() {
        "all topics".to_string()
    } else {
        format!("topics {}", topics.join(","))
    }
}

/// Writes the stream's first bytes (and frees them: a stream may last for
/// days), then the subscription until it ends. Returns why it ended.
fn stream_events(
    shared: &Shared,
    stream: &TcpStream,
    subscription: &mut Subscription,
    first: Vec<u8>,
    until: Option<Instant>,
) -> &'static str {
    let closed = || peer_closed(stream);
    let sent = |events, bytes| shared.metrics.delivered(events, bytes);
    let how = Streaming {
        heartbeat: shared.config.heartbeat,
        retry_ms: shared.config.retry_ms,
        peer_closed: Some(&closed),
        sent: &sent,
        until,
    };
    let mut out: &TcpStream = stream;
    let result = out.write_all(&first).and_then(|()| {
        shared.metrics.sent(first.len());
        drop(first);
        subscription.stream(&mut out, &how)
    });
    match result {
        Ok(End::Closed) => {
            shared.metrics.dropped(DropReason::Shutdown);
            "shutdown"
        }
        Ok(End::Expired) => "access expired",
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            shared.metrics.dropped(DropReason::WriteTimeout);
            shared.log(
                Level::Error,
                format_args!("dropped a subscriber that accepted nothing for the write timeout"),
            );
            "write timeout"
        }
        Err(err) if err.kind() == io::ErrorKind::ConnectionAborted => {
            say_goodbye(stream);
            "disconnected"
        }
        Err(_) => "disconnected",
    }
}

/// One last comment to a client that has closed its end, written without
/// waiting. A client that only half-closed reads it as a comment. The kernel
/// of one that closed answers it with a reset, which ends the connection on
/// both sides at once: the client is spared 60 s of `TIME_WAIT` on its port,
/// which matters to a proxy on the same box (nginx opens an upstream
/// connection per subscriber) and to anything reconnecting at a high rate.
/// Go's `net/http` does the same with the last chunk it writes.
///
/// Never inlined: its frame must not grow `stream_events`'s, which is on
/// the stack all the while a subscriber idles (ARCHITECTURE.md: two stack
/// pages per idle subscriber; inlined, this made it three).
#[cold]
#[inline(never)]
fn say_goodbye(stream: &TcpStream) {
    if stream.set_nonblocking(true).is_ok() {
        let mut out = stream;
        let _ = out.write(b": bye\n\n");
    }
}

/// Whether the client has closed its end (a read would return end of
/// stream) or the connection failed.
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => !matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    };
    let _ = stream.set_nonblocking(false);
    closed
}
