//! Library hooks for embedding code: greeting each subscriber, extra pages.

use tinysse::{Event, Server};

use crate::support::{TestServer, config, raw, subscribe};

fn start_with(build: impl FnOnce(Server) -> Server) -> TestServer {
    let running = build(Server::bind(config()).unwrap()).start().unwrap();
    TestServer::from_running(running)
}

#[test]
fn subscriber_connects_then_gets_its_greeting_before_live_events() {
    let server = start_with(|server| {
        server.on_subscribe(|request| {
            let topics = request.query.clone();
            vec![Event::new(format!("hello, {topics}")).with_event("connecttime")]
        })
    });
    let mut first = subscribe(server.addr, "/events?topic=a", "");
    let greeting = first.next_event();
    assert_eq!(
        (greeting.event.as_str(), greeting.data.as_str()),
        ("connecttime", "hello, topic=a")
    );
    assert_eq!(
        greeting.id, "",
        "a greeting is not in the history and has no id"
    );
    assert!(
        first
            .raw
            .starts_with(b"retry: 3000\n\nevent: connecttime\ndata: hello, topic=a\n\n")
    );

    let id = server.hub().publish("a", Event::new("live")).unwrap();
    let live = first.next_event();
    assert_eq!(
        (live.data.as_str(), live.id.as_str()),
        ("live", id.as_str())
    );

    // Greetings go to each subscriber alone and never into the history: a
    // resuming subscriber gets its own greeting, then only the replay.
    let mut second = subscribe(server.addr, "/events?topic=a&last_event_id=x", "");
    assert_eq!(second.next_event().data, "hello, topic=a&last_event_id=x");
    assert_eq!(second.next_event().event, "gap");
    assert_eq!(second.next_event().data, "live");
}

#[test]
fn embedding_code_adds_pages() {
    let server = start_with(|server| {
        server
            .with_page("/", "text/html; charset=utf-8", "<h1>chat</h1>")
            .with_page("/app.js", "text/javascript", "let x = 1;")
            .with_page("/events", "text/plain", "not a stream")
    });
    let page = raw(server.addr, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((page.status, page.text().as_str()), (200, "<h1>chat</h1>"));
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let script = raw(server.addr, b"GET /app.js HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        script.header("content-type").as_deref(),
        Some("text/javascript")
    );
    let wrong = raw(
        server.addr,
        b"POST /app.js HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        (wrong.status, wrong.header("allow").as_deref()),
        (405, Some("GET, HEAD, OPTIONS"))
    );
    // `/events` stays the stream.
    subscribe(server.addr, "/events", "");
}

#[test]
fn handle_shuts_down_then_wait_returns() {
    let running = Server::bind(config()).unwrap().start().unwrap();
    let handle = running.handle();
    let waiter = std::thread::spawn(move || running.wait());
    handle.shutdown();
    waiter.join().unwrap().unwrap();
}
