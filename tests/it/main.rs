//! Integration tests: real servers on 127.0.0.1:0, raw sockets and ureq.

mod support;

mod attack;

mod bench_example;
mod cli;
mod client;
mod endpoints;
mod examples;
mod fuzz;
mod hooks;
#[cfg(feature = "journal")]
mod journal;
#[cfg(feature = "jwt")]
mod jwt;
mod lifecycle;
mod limits;
mod protocol_doc;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_server;
mod publishing;
mod readme;
mod resume;
mod roundtrip;
mod tidy;
mod topics;
