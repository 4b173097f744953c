//! Integration tests: real servers on 127.0.0.1:0, raw sockets and ureq.

mod support;

mod bench_example;
mod cli;
mod client;
mod endpoints;
mod examples;
mod fuzz;
mod hooks;
mod lifecycle;
mod limits;
mod protocol_doc;
mod publishing;
mod readme;
mod resume;
mod roundtrip;
mod tidy;
mod topics;
