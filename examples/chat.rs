//! Chat rooms: each room is a topic (`room:<name>`), and the server serves
//! its own page at `/` to read and post.
//!
//! ```sh
//! cargo run --example chat               # then open http://127.0.0.1:8080 in two tabs
//! curl -N 'http://127.0.0.1:8080/events?topic=room:lobby'
//! curl -d topic=room:lobby -d data=hi http://127.0.0.1:8080/publish
//! ```
//!
//! The browser posts to `/publish` without a token, which the server allows
//! only while it listens on a loopback address such as 127.0.0.1.

use tinysse::{Config, Server};

/// The page: a room name (topics allow `A-Z a-z 0-9 - _ . ~ : /`, so the
/// input's `pattern` keeps out the rest), the messages, and a form to post.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>tinysse chat</title>
<form id="join">Room <input id="room" value="lobby" pattern="[A-Za-z0-9._~\-]+" maxlength="123" required> <button>Join</button></form>
<ul id="messages"></ul>
<form id="post"><input id="text" autocomplete="off" required> <button>Send</button></form>
<script>
let source, topic;
document.getElementById('join').onsubmit = (e) => {
  e.preventDefault();
  if (source) source.close();
  topic = 'room:' + document.getElementById('room').value;
  document.getElementById('messages').replaceChildren();
  source = new EventSource('/events?topic=' + encodeURIComponent(topic));
  source.onmessage = (message) => {
    const item = document.createElement('li');
    item.textContent = message.data; // text, never HTML
    document.getElementById('messages').append(item);
  };
};
document.getElementById('post').onsubmit = (e) => {
  e.preventDefault();
  const text = document.getElementById('text');
  fetch('/publish', { method: 'POST', body: new URLSearchParams({ topic, data: text.value }) });
  text.value = '';
};
document.getElementById('join').requestSubmit();
</script>
"#;

fn main() -> Result<(), tinysse::Error> {
    let listen = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let config = Config {
        listen: listen.parse().expect("an address like 127.0.0.1:8080"),
        // the one line printed below is all this example writes
        ..Config::default()
    };
    // The page replaces the demo page at `/`; `/events` and `/publish` do the rest.
    let server = Server::bind(config)?.with_page("/", "text/html; charset=utf-8", PAGE);
    eprintln!("listening on http://{}", server.local_addr());
    server.run()
}
