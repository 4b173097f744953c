//! The `tinysse` binary: the command line over the library. `serve` runs a
//! [`tinysse::Server`]; `listen` and `publish` are a small client.

#![forbid(unsafe_code)]

mod args;
mod client;
mod show;
mod stdin;

use std::fmt;
use std::io;
use std::process::ExitCode;

use tinysse::{Config, Level, Server};

use args::{
    LISTEN_HELP, PUBLISH_HELP, SERVE_HELP, parse_listen_args, parse_publish_args, parse_serve_args,
};

const HELP: &str = "\
tinysse: a small Server-Sent Events hub

Usage:
  tinysse [serve] [FLAGS]         run the hub (tinysse serve --help for the flags)
  tinysse listen URL [FLAGS]      print the events of a stream, reconnecting like a browser
  tinysse publish URL [FLAGS] DATA|-   publish an event and print its id
  tinysse --help                  show this help
  tinysse --version               print the version

Subscribe: curl -N http://127.0.0.1:8080/events
Publish:   curl -d data=hello http://127.0.0.1:8080/publish
";

/// Why a command failed: a usage error exits 2, anything else 1, each with
/// one line on stderr.
#[derive(Debug)]
pub(crate) enum Fail {
    /// A flag or value is wrong; the text says which.
    Usage(String),
    /// The command could not do its job; the text says why.
    Runtime(String),
    /// A client connection closed under a request (the client may retry).
    Closed(String),
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Usage(why) | Fail::Runtime(why) | Fail::Closed(why) => f.write_str(why),
        }
    }
}

impl From<tinysse::Error> for Fail {
    fn from(err: tinysse::Error) -> Fail {
        Fail::Runtime(err.to_string())
    }
}

impl From<io::Error> for Fail {
    fn from(err: io::Error) -> Fail {
        Fail::Runtime(tinysse::Error::Io(err).to_string())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            Ok(())
        }
        Some("--version" | "-V") => {
            print!(concat!("tinysse ", env!("CARGO_PKG_VERSION"), "\n"));
            Ok(())
        }
        Some("serve") => serve(&args[1..]),
        Some("listen") => listen(&args[1..]),
        Some("publish") => publish(&args[1..]),
        Some(other) if !other.starts_with('-') => Err(Fail::Usage(format!(
            "unknown command {other:?} (see tinysse --help)"
        ))),
        _ => serve(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err @ Fail::Usage(_)) => {
            eprintln!("tinysse: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("tinysse: {err}");
            ExitCode::from(1)
        }
    }
}

fn listen(args: &[String]) -> Result<(), Fail> {
    let Some(options) = parse_listen_args(args)? else {
        print!("{LISTEN_HELP}");
        return Ok(());
    };
    client::listen(&options, &mut io::stdout(), &mut io::stderr())
}

fn publish(args: &[String]) -> Result<(), Fail> {
    let Some(options) = parse_publish_args(args)? else {
        print!("{PUBLISH_HELP}");
        return Ok(());
    };
    client::publish(&options, &mut io::stdin().lock(), &mut io::stdout())
}

fn serve(args: &[String]) -> Result<(), Fail> {
    let Some(options) = parse_serve_args(args)? else {
        print!("{SERVE_HELP}");
        return Ok(());
    };
    let config = options.config;
    let quiet = options.quiet;
    let server = Server::bind(config.clone())
        .map_err(|err| match err {
            tinysse::Error::Io(_) => {
                Fail::Runtime(format!("cannot listen on {}: {err}", config.listen))
            }
            tinysse::Error::BadConfig(why) => Fail::Usage(why),
            other => Fail::Runtime(other.to_string()),
        })?
        .on_log(move |level, line| {
            if level == Level::Error || !quiet {
                eprintln!("tinysse: {level}{line}");
            }
        });
    let server = if quiet { server.errors_only() } else { server };
    let addr = server.local_addr();
    // --quiet logs errors only: with `logread -f | tinysse serve --stdin`,
    // anything else would go to the system log and back into the stream.
    if !quiet {
        eprintln!(
            "tinysse: listening on http://{addr} — open it in a browser for the demo; subscribe at /events, publish at /publish"
        );
        for warning in [publish_warning(&config, addr), open_files_warning(&config)]
            .into_iter()
            .flatten()
        {
            eprintln!("tinysse: warning: {warning}");
        }
    }
    if let Some((topic, event)) = options.stdin {
        let hub = server.hub().clone();
        let max_line = config.max_body;
        // Reads standard input until EOF, then ends; the server keeps serving.
        std::thread::Builder::new()
            .name("tinysse-stdin".to_string())
            .spawn(move || {
                let stdin = io::stdin().lock();
                match stdin::pump_lines(&hub, stdin, &topic, &event, max_line) {
                    Ok(count) if !quiet => eprintln!(
                        "tinysse: standard input ended after {count} events; still serving"
                    ),
                    Ok(_) => {}
                    Err(err) => eprintln!("tinysse: error: reading standard input: {err}"),
                }
            })?;
    }
    Ok(server.run()?)
}

/// Why publishing is refused without a token, if it is.
fn publish_warning(config: &Config, addr: std::net::SocketAddr) -> Option<String> {
    if config.token.is_some() || addr.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "{} is not a loopback address and no --token is set, so POST /publish answers 403; \
         set --token to publish from the network",
        addr.ip()
    ))
}

/// A warning when the process may open fewer files than the server may
/// need (one per connection, plus a few), read from `/proc/self/limits` on
/// Linux. tinysse cannot raise the limit itself: that takes a libc call, and
/// the crate has no dependencies and no foreign calls.
fn open_files_warning(config: &Config) -> Option<String> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let soft: u64 = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    let needed = config.max_connections() as u64 + 16;
    (soft < needed).then(|| {
        format!(
            "the open-files limit is {soft}, but --max-subscribers {} needs about {needed}; \
             raise it (ulimit -n {needed}) or lower --max-subscribers",
            config.max_subscribers
        )
    })
}
