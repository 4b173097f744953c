//! The `tinysse` binary: command-line dispatch over the library, nothing else.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use tinysse::config::{
    LISTEN_HELP, PUBLISH_HELP, SERVE_HELP, parse_listen_args, parse_publish_args, parse_serve_args,
};
use tinysse::{Error, Server};

const HELP: &str = "\
tinysse: a small Server-Sent Events hub

Usage:
  tinysse [serve] [FLAGS]         run the hub (tinysse serve --help for the flags)
  tinysse listen URL [FLAGS]      print the events of a stream, reconnecting like a browser
  tinysse publish URL [FLAGS] DATA|-   publish an event and print its id
  tinysse --help                  show this help

Subscribe: curl -N http://127.0.0.1:8080/events
Publish:   curl -d data=hello http://127.0.0.1:8080/publish
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            Ok(())
        }
        Some("serve") => serve(&args[1..]),
        Some("listen") => listen(&args[1..]),
        Some("publish") => publish(&args[1..]),
        Some(other) if !other.starts_with('-') => Err(Error::Usage(format!(
            "unknown command {other:?} (see tinysse --help)"
        ))),
        _ => serve(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err @ Error::Usage(_)) => {
            eprintln!("tinysse: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("tinysse: {err}");
            ExitCode::from(1)
        }
    }
}

fn listen(args: &[String]) -> Result<(), Error> {
    let Some(options) = parse_listen_args(args)? else {
        print!("{LISTEN_HELP}");
        return Ok(());
    };
    tinysse::client::listen(&options, &mut std::io::stdout(), &mut std::io::stderr())
}

fn publish(args: &[String]) -> Result<(), Error> {
    let Some(options) = parse_publish_args(args)? else {
        print!("{PUBLISH_HELP}");
        return Ok(());
    };
    tinysse::client::publish(
        &options,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout(),
    )
}

fn serve(args: &[String]) -> Result<(), Error> {
    let Some(options) = parse_serve_args(args)? else {
        print!("{SERVE_HELP}");
        return Ok(());
    };
    let config = options.config;
    let server = Server::bind(config.clone())
        .map_err(|err| Error::Client(format!("cannot listen on {}: {err}", config.listen)))?;
    let addr = server.local_addr();
    eprintln!(
        "tinysse: listening on http://{addr} — open it in a browser for the demo; subscribe at /events, publish at /publish"
    );
    for warning in [server.publish_warning(), server.open_files_warning()]
        .into_iter()
        .flatten()
    {
        eprintln!("tinysse: warning: {warning}");
    }
    if let Some((topic, event)) = options.stdin {
        let hub = server.hub().clone();
        let max_line = config.max_body;
        // Reads standard input until EOF, then ends; the server keeps serving.
        std::thread::Builder::new()
            .name("tinysse-stdin".to_string())
            .spawn(move || {
                let stdin = std::io::stdin().lock();
                match tinysse::publish::pump_lines(&hub, stdin, &topic, &event, max_line) {
                    Ok(count) => eprintln!(
                        "tinysse: standard input ended after {count} events; still serving"
                    ),
                    Err(err) => eprintln!("tinysse: error: reading standard input: {err}"),
                }
            })?;
    }
    server.run()
}
