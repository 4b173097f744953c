//! tinysse: a small Server-Sent Events hub that uses the standard library and
//! nothing else.
//!
//! Publishers `POST /publish` events; subscribers hold `GET /events` open and
//! receive a `text/event-stream`. Subscribers can resume with `Last-Event-ID`,
//! filter by topic, and are told with a `gap` event when they lost events.
//!
//! ```no_run
//! use tinysse::{Config, Event, Server};
//!
//! let server = Server::bind(Config::new("127.0.0.1:0".parse().unwrap()))?.start()?;
//! // Subscribe with: curl -N http://<addr>/events
//! let id = server.hub().publish("default", Event::new("hello").with_event("greeting"))?;
//! println!("published {id} on {}", server.local_addr());
//! server.shutdown()?;
//! # Ok::<(), tinysse::Error>(())
//! ```
//!
//! # In scope
//! - The SSE wire format ([`Event`]) and its parser ([`Parser`]), per the
//!   WHATWG HTML Living Standard.
//! - HTTP/1.1 by hand ([`http`]): request heads with hard limits, bodies with
//!   `Content-Length` or chunked, keep-alive for publishers, HTTP/1.0 clients.
//! - A hub ([`Hub`]) with a bounded history, topics, resuming and gaps; a
//!   [`Subscription`] streams to any writer.
//! - A server ([`Server`]) with tokens, CORS, a demo page, `/healthz`,
//!   `/readyz`, `/metrics`, and a clean shutdown.
//! - Optional, each a Cargo feature on by default: `journal`, every accepted
//!   event kept on disk (`Hub::with_journal`); `redis`, several servers on
//!   one Redis stream (`Hub::with_redis`); `jwt`, each client's rights in a
//!   signed token (`Server::with_jwt_key`).
//!
//! # Out of scope
//! - TLS and HTTP/2: put nginx or Caddy in front (see the README).
//! - Replication by ourselves: with the `journal` feature the history
//!   survives restarts on one box; several boxes share a Redis stream
//!   (the `redis` feature) instead.
//! - Async: one blocking thread per connection, on purpose (see ARCHITECTURE.md).
//! - Printing: the library logs through [`Server::on_log`] only.
//!
//! # Threads
//! [`Server::run`] accepts on the calling thread ([`Server::start`] spawns a
//! `tinysse-accept` thread for it) and spawns one `tinysse-conn` thread per
//! connection, with a 64 KiB stack, plus a few short-lived `tinysse-reject`
//! threads past the connection cap. Shutting down joins all of them.
//!
//! # Limits
//! Request line 8 KiB, header section 16 KiB and 100 headers, head time
//! [`Config::head_timeout`], body [`Config::max_body`], subscribers
//! [`Config::max_subscribers`], connections [`Config::max_connections`],
//! history [`Config::history`] events and [`Config::history_bytes`] bytes.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod wire;
pub mod http;
mod hub;
#[cfg(feature = "journal")]
mod journal;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "jwt")]
mod jwt;
mod server;
#[cfg(test)]
mod testing;

pub use error::Error;
pub use hub::{Batch, Hub, Level, Next, Subscription};
#[cfg(feature = "journal")]
pub use journal::JournalSync;
pub use server::{Access, Config, Handle, Running, Server};
pub use wire::event::Event;
pub use wire::parse::{Message, Parser};
pub use wire::topic::{Topics, check_topic};
