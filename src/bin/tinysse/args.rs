//! The command line: flags and help for `serve`, `listen` and `publish`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use tinysse::{Config, check_topic};

use crate::Fail;
use crate::client::{DataSource, ListenOptions, PublishOptions, Target};

/// What `tinysse serve` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServeOptions {
    /// Log only errors (`--quiet`).
    pub(crate) quiet: bool,
    /// The server's settings.
    pub(crate) config: Config,
    /// Publish lines from standard input (`--stdin`) on this topic with this event type.
    pub(crate) stdin: Option<(String, String)>,
}

/// The help text of `tinysse serve`.
pub(crate) const SERVE_HELP: &str = "\
Usage: tinysse serve [FLAGS]

Runs the Server-Sent Events hub. Subscribe with GET /events, publish with
POST /publish; open the address in a browser for the demo page.

Flags:
  --listen ADDR            address to listen on: IP:PORT, [IPv6]:PORT, :PORT (all
                           IPv4 addresses) or localhost:PORT (127.0.0.1:8080)
  --token T                token publishers send as Authorization: Bearer T
  --token-file F           read the publish token from file F (trailing newline ignored)
  --subscribe-token T      token subscribers send as ?token=T or Authorization: Bearer T
  --history N              events kept for resuming (1024)
  --history-bytes SIZE     bytes kept for resuming: a count or with KiB/MiB (4MiB)
  --heartbeat SECS         seconds between heartbeat comments; 0 turns them off (15)
  --retry MS               reconnection time sent to clients, in milliseconds (3000)
  --max-subscribers N      subscribers at once (1024)
  --max-body SIZE          largest publish body (64KiB)
  --write-timeout SECS     drop a subscriber whose socket accepts nothing this long (30)
  --cors-origin ORIGIN     allow this origin (or *) by CORS; repeatable
  --max-per-address N      connections from one client address; 0: no limit
                           (64 on a non-loopback address, no limit on loopback)
  --journal DIR            keep every accepted event in a journal in DIR
  --journal-sync MODE      always, everysec or no: when the journal flushes (everysec)
  --redis URL              share events with every server on this Redis:
                           redis://[[USER]:PASSWORD@]HOST[:6379][/DB]
  --redis-stream KEY       the Redis stream's key (tinysse)
  --redis-password-file F  read the Redis password from file F (trailing newline ignored)
  --jwt-key-file F         each client's rights in a signed token (JWT HS256), checked
                           with the key in F (at least 32 bytes; replaces --token)
  --stdin                  publish each line of standard input as an event
                           (lines empty or of only spaces and tabs are skipped)
  --stdin-topic T          topic for --stdin events (default)
  --stdin-event E          event type for --stdin events (none: message)
  --quiet                  log only errors (not even the startup line)
  --help                   show this help

Without --token, publishing is allowed only while listening on a loopback address.
";

/// Parses the flags of `tinysse serve` (without the program and subcommand names).
///
/// Returns `Ok(None)` for `--help`, and `Fail::Usage` with a one-line reason
/// for an unknown flag or a bad value.
pub(crate) fn parse_serve_args<S: AsRef<str>>(args: &[S]) -> Result<Option<ServeOptions>, Fail> {
    let mut config = Config::default();
    let mut stdin = false;
    let mut stdin_topic: Option<String> = None;
    let mut stdin_event: Option<String> = None;
    let mut token_file: Option<String> = None;
    let mut quiet = false;
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    let mut redis_password_file: Option<String> = None;
    #[cfg_attr(not(feature = "jwt"), allow(unused_mut))]
    let mut jwt_key_file: Option<String> = None;
    // Whether --journal-sync was given (it needs --journal).
    #[cfg_attr(not(feature = "journal"), allow(unused_mut))]
    let mut journal_sync = false;
    let mut args = args.iter().map(AsRef::as_ref);
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(arg);
        let mut value = || take_value(flag, inline.clone(), &mut args);
        match flag {
            "--help" | "-h" => return Ok(None),
            "--listen" => config.listen = parse_listen(&value()?)?,
            "--token" => config.token = Some(non_empty(flag, value()?)?),
            "--token-file" => token_file = Some(value()?),
            "--subscribe-token" => config.subscribe_token = Some(non_empty(flag, value()?)?),
            "--history" => config.history = at_least_one(flag, parse_count(flag, &value()?)?)?,
            "--history-bytes" => config.history_bytes = parse_size(flag, &value()?)?,
            "--heartbeat" => config.heartbeat = parse_seconds(flag, &value()?)?,
            "--retry" => config.retry_ms = parse_retry(flag, &value()?)?,
            "--max-subscribers" => {
                config.max_subscribers = at_least_one(flag, parse_count(flag, &value()?)?)?
            }
            "--max-body" => config.max_body = parse_size(flag, &value()?)?,
            "--write-timeout" => {
                config.write_timeout = parse_seconds(flag, &value()?)?;
                if config.write_timeout.is_zero() {
                    return Err(usage(format!("{flag} must be at least 1")));
                }
            }
            "--max-per-address" => {
                config.max_per_address = Some(parse_count(flag, &value()?)?);
            }
            #[cfg(feature = "journal")]
            "--journal" => config.journal = Some(non_empty(flag, value()?)?.into()),
            #[cfg(feature = "redis")]
            "--redis" => config.redis = Some(non_empty(flag, value()?)?),
            #[cfg(feature = "redis")]
            "--redis-stream" => config.redis_stream = non_empty(flag, value()?)?,
            #[cfg(feature = "redis")]
            "--redis-password-file" => redis_password_file = Some(value()?),
            #[cfg(not(feature = "redis"))]
            "--redis" | "--redis-stream" | "--redis-password-file" => {
                return Err(usage(format!(
                    "{flag}: this tinysse was built without the redis feature"
                )));
            }
            #[cfg(feature = "jwt")]
            "--jwt-key-file" => jwt_key_file = Some(value()?),
            #[cfg(not(feature = "jwt"))]
            "--jwt-key-file" => {
                return Err(usage(format!(
                    "{flag}: this tinysse was built without the jwt feature"
                )));
            }
            #[cfg(not(feature = "journal"))]
            "--journal" | "--journal-sync" => {
                return Err(usage(format!(
                    "{flag}: this tinysse was built without the journal feature"
                )));
            }
            #[cfg(feature = "journal")]
            "--journal-sync" => {
                config.journal_sync = value()?
                    .parse()
                    .map_err(|why| usage(format!("{flag}: {why}")))?;
                journal_sync = true;
            }
            "--cors-origin" => config.cors_origins.push(non_empty(flag, value()?)?),
            "--stdin" if inline.is_none() => stdin = true,
            "--stdin-topic" => stdin_topic = Some(value()?),
            "--stdin-event" => stdin_event = Some(value()?),
            "--quiet" if inline.is_none() => quiet = true,
            _ if flag.starts_with('-') => {
                return Err(usage(format!(
                    "unknown flag {flag} (see tinysse serve --help)"
                )));
            }
            _ => {
                return Err(usage(format!(
                    "unexpected argument {arg:?} (see tinysse serve --help)"
                )));
            }
        }
    }
    if let Some(path) = token_file {
        if config.token.is_some() {
            return Err(usage("use --token or --token-file, not both".to_string()));
        }
        let token = read_secret("--token-file", &path)?;
        config.token = Some(non_empty("--token-file", token)?);
    }
    #[cfg(feature = "journal")]
    if journal_sync && config.journal.is_none() {
        return Err(usage("--journal-sync needs --journal".to_string()));
    }
    let _ = journal_sync;
    #[cfg(feature = "redis")]
    {
        if let Some(path) = redis_password_file {
            let password = read_secret("--redis-password-file", &path)?;
            config.redis_password = Some(non_empty("--redis-password-file", password)?);
        }
        if config.redis.is_none()
            && (config.redis_password.is_some() || config.redis_stream != "tinysse")
        {
            return Err(usage(
                "--redis-stream and --redis-password-file need --redis".to_string(),
            ));
        }
    }
    #[cfg(not(feature = "redis"))]
    let _ = redis_password_file;
    #[cfg(feature = "jwt")]
    if let Some(path) = jwt_key_file {
        if config.token.is_some() || config.subscribe_token.is_some() {
            return Err(usage(
                "--jwt-key-file replaces --token and --subscribe-token: give one or the other"
                    .to_string(),
            ));
        }
        let mut key =
            std::fs::read(&path).map_err(|err| usage(format!("--jwt-key-file {path}: {err}")))?;
        if key.ends_with(b"\n") {
            key.pop();
            if key.ends_with(b"\r") {
                key.pop();
            }
        }
        if key.len() < 32 {
            return Err(usage(format!(
                "--jwt-key-file {path}: the key is {} bytes; it must be at least 32",
                key.len()
            )));
        }
        config.jwt_key = Some(key);
    }
    #[cfg(not(feature = "jwt"))]
    let _ = jwt_key_file;
    #[cfg(all(feature = "journal", feature = "redis"))]
    if config.journal.is_some() && config.redis.is_some() {
        return Err(usage(
            "--journal and --redis cannot be combined (Redis keeps the events)".to_string(),
        ));
    }
    if !stdin && (stdin_topic.is_some() || stdin_event.is_some()) {
        return Err(usage(
            "--stdin-topic and --stdin-event need --stdin".to_string(),
        ));
    }
    let stdin = if stdin {
        let topic = stdin_topic.unwrap_or_else(|| "default".to_string());
        check_topic(&topic).map_err(|err| usage(format!("--stdin-topic: {err}")))?;
        let event = stdin_event.unwrap_or_default();
        if event.contains(['\r', '\n']) {
            return Err(usage(
                "--stdin-event: must not contain CR or LF".to_string(),
            ));
        }
        Some((topic, event))
    } else {
        None
    };
    Ok(Some(ServeOptions {
        config,
        stdin,
        quiet,
    }))
}

/// `--listen`: `IP:PORT`, `:PORT` (every IPv4 address), or `HOST:PORT`
/// (`localhost:8080`), resolved once, now: the first address it resolves to.
// Not inlined: in `main`, where the parsers are inlined, the resolver costs
// 0.6 KiB more of the binary.
#[inline(never)]
fn parse_listen(text: &str) -> Result<SocketAddr, Fail> {
    let address = match text.strip_prefix(':') {
        Some(port) => port
            .parse()
            .ok()
            .map(|port| SocketAddr::from(([0, 0, 0, 0], port))),
        None => text
            .to_socket_addrs()
            .ok()
            .and_then(|mut found| found.next()),
    };
    address.ok_or_else(|| {
        usage(format!(
            "--listen: {text:?} is not an address: write IP:PORT (127.0.0.1:8080, [::1]:8080), \
             :PORT (every IPv4 address) or localhost:PORT"
        ))
    })
}

/// The help text of `tinysse listen`.
pub(crate) const LISTEN_HELP: &str = "\
Usage: tinysse listen URL [--topic T]... [--last-event-id ID] [--token T] [--raw]

Subscribes to a stream and prints each event as it arrives, like a browser's
EventSource: reconnects after the server's retry time with Last-Event-ID, and
stops (exit 1) when the server answers with a status other than 200 or a
Content-Type other than text/event-stream.

URL is the server's address (http://127.0.0.1:8080, /events is added) or a
full stream URL (http://127.0.0.1:8080/events?token=T also sends a token).

Flags:
  --topic T             receive only topic T; repeatable (default: all topics)
  --last-event-id ID    resume after event ID
  --token T             subscriber token, sent as Authorization: Bearer T
  --raw                 print the bytes as they arrive, line endings shown as
                        \\r and \\n, with a => line where each event is dispatched
  --help                show this help
";

/// The help text of `tinysse publish`.
pub(crate) const PUBLISH_HELP: &str = "\
Usage: tinysse publish URL [--topic T] [--event E] [--retry MS] [--token T]
                           [--each-line] [--] [DATA | -]

Publishes DATA as one event and prints its id. With -, reads the data from
standard input (one trailing newline removed); with --each-line, publishes
each line of standard input as its own event, over one connection (lines
empty or of only spaces and tabs are skipped).

URL is the server's address (http://127.0.0.1:8080, /publish is added) or a
full publish URL. Exit 1 with the server's reason when it refuses.

Flags:
  --topic T        topic (default: default)
  --event E        event type (default: message)
  --retry MS       reconnection time to send to subscribers, in milliseconds
  --token T        publish token, sent as Authorization: Bearer T
  --each-line      one event per line of standard input (needs -)
  --               what follows is DATA, even if it starts with -
  --help           show this help
";

/// Parses the arguments of `tinysse listen`; `Ok(None)` for `--help`.
pub(crate) fn parse_listen_args<S: AsRef<str>>(args: &[S]) -> Result<Option<ListenOptions>, Fail> {
    let mut url = None;
    let mut options = ListenOptions {
        url: String::new(),
        topics: Vec::new(),
        last_event_id: None,
        raw: false,
        token: None,
    };
    let mut args = args.iter().map(AsRef::as_ref);
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(arg);
        let mut value = || take_value(flag, inline.clone(), &mut args);
        match flag {
            "--help" | "-h" => return Ok(None),
            "--topic" => options.topics.push(topic_flag(value()?)?),
            "--last-event-id" => options.last_event_id = Some(value()?),
            "--raw" if inline.is_none() => options.raw = true,
            "--token" => options.token = Some(non_empty(flag, value()?)?),
            _ if flag.starts_with('-') => {
                return Err(usage(format!(
                    "unknown flag {flag} (see tinysse listen --help)"
                )));
            }
            _ if url.is_none() => url = Some(arg.to_string()),
            _ => {
                return Err(usage(format!(
                    "unexpected argument {arg:?} (see tinysse listen --help)"
                )));
            }
        }
    }
    options.url =
        url.ok_or_else(|| usage("listen needs a URL, like http://127.0.0.1:8080".to_string()))?;
    Target::parse(&options.url, "/events")?;
    if options
        .last_event_id
        .as_deref()
        .is_some_and(|id| id.contains(['\r', '\n', '\0']))
    {
        return Err(usage(
            "--last-event-id must not contain CR, LF or NUL".to_string(),
        ));
    }
    Ok(Some(options))
}

/// Parses the arguments of `tinysse publish`; `Ok(None)` for `--help`.
pub(crate) fn parse_publish_args<S: AsRef<str>>(
    args: &[S],
) -> Result<Option<PublishOptions>, Fail> {
    let mut positional = Vec::new();
    let mut options = PublishOptions {
        url: String::new(),
        topic: None,
        event: None,
        retry: None,
        token: None,
        data: DataSource::Stdin,
        each_line: false,
    };
    let mut args = args.iter().map(AsRef::as_ref);
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(arg);
        let mut value = || take_value(flag, inline.clone(), &mut args);
        match flag {
            "--help" | "-h" => return Ok(None),
            // Everything after `--` is positional: data may start with `-`.
            "--" => positional.extend(args.by_ref().map(str::to_string)),
            "--topic" => options.topic = Some(topic_flag(value()?)?),
            "--event" => {
                let event = value()?;
                if event.contains(['\r', '\n']) {
                    return Err(usage("--event must not contain CR or LF".to_string()));
                }
                options.event = Some(event);
            }
            "--retry" => options.retry = Some(parse_retry(flag, &value()?)?),
            "--token" => options.token = Some(non_empty(flag, value()?)?),
            "--each-line" if inline.is_none() => options.each_line = true,
            "-" => positional.push(arg.to_string()),
            _ if flag.starts_with('-') => {
                return Err(usage(format!(
                    "unknown flag {flag} (see tinysse publish --help)"
                )));
            }
            _ => positional.push(arg.to_string()),
        }
    }
    let mut positional = positional.into_iter();
    options.url = positional
        .next()
        .ok_or_else(|| usage("publish needs a URL, like http://127.0.0.1:8080".to_string()))?;
    Target::parse(&options.url, "/publish")?;
    options.data = match positional.next().as_deref() {
        Some("-") => DataSource::Stdin,
        Some(data) => DataSource::Argument(data.to_string()),
        None => {
            return Err(usage(
                "publish needs DATA, or - to read standard input".to_string(),
            ));
        }
    };
    if let Some(extra) = positional.next() {
        return Err(usage(format!(
            "unexpected argument {extra:?} (see tinysse publish --help)"
        )));
    }
    if options.each_line && options.data != DataSource::Stdin {
        return Err(usage(
            "--each-line reads standard input: give - as the data".to_string(),
        ));
    }
    Ok(Some(options))
}

/// The value of a `--topic` flag, checked.
fn topic_flag(topic: String) -> Result<String, Fail> {
    check_topic(&topic).map_err(|err| usage(format!("--topic: {err}")))?;
    Ok(topic)
}

/// Splits `--flag=value` into the flag and its inline value.
fn split_flag(arg: &str) -> (&str, Option<String>) {
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
        _ => (arg, None),
    }
}

/// The value of `flag`: inline (`--flag=value`) or the next argument.
fn take_value<'a>(
    flag: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = &'a str>,
) -> Result<String, Fail> {
    match inline {
        Some(value) => Ok(value),
        None => rest
            .next()
            .map(str::to_string)
            .ok_or_else(|| usage(format!("{flag} needs a value"))),
    }
}

fn usage(message: String) -> Fail {
    Fail::Usage(message)
}

fn non_empty(flag: &str, value: String) -> Result<String, Fail> {
    if value.is_empty() {
        return Err(usage(format!("{flag} must not be empty")));
    }
    Ok(value)
}

fn at_least_one(flag: &str, value: usize) -> Result<usize, Fail> {
    if value == 0 {
        return Err(usage(format!("{flag} must be at least 1")));
    }
    Ok(value)
}

fn parse_count(flag: &str, text: &str) -> Result<usize, Fail> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(usage(format!("{flag}: {text:?} is not a whole number")));
    }
    text.parse()
        .map_err(|_| usage(format!("{flag}: {text} is too large")))
}

/// A byte count, plain or with a `KiB`/`MiB` suffix.
/// A secret read from a file, without one trailing newline (`--token-file`).
fn read_secret(flag: &str, path: &str) -> Result<String, Fail> {
    let text =
        std::fs::read_to_string(path).map_err(|err| usage(format!("{flag} {path}: {err}")))?;
    let secret = text
        .strip_suffix('\n')
        .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
        .unwrap_or(&text);
    Ok(secret.to_string())
}

/// The longest duration a flag takes: a day. Past it, arithmetic on times
/// could overflow, and no sensible setting is that long.
const MAX_SECONDS: usize = 24 * 3600;

/// Seconds, at most a day.
fn parse_seconds(flag: &str, text: &str) -> Result<Duration, Fail> {
    let seconds = parse_count(flag, text)?;
    if seconds > MAX_SECONDS {
        return Err(usage(format!(
            "{flag}: at most {MAX_SECONDS} seconds (a day)"
        )));
    }
    Ok(Duration::from_secs(seconds as u64))
}

/// A reconnection time in milliseconds, at most a day.
fn parse_retry(flag: &str, text: &str) -> Result<u64, Fail> {
    let millis = parse_count(flag, text)?;
    if millis > MAX_SECONDS * 1000 {
        return Err(usage(format!(
            "{flag}: at most {} milliseconds (a day)",
            MAX_SECONDS * 1000
        )));
    }
    Ok(millis as u64)
}

fn parse_size(flag: &str, text: &str) -> Result<usize, Fail> {
    let (digits, unit) = if let Some(digits) = text.strip_suffix("KiB") {
        (digits, 1024)
    } else if let Some(digits) = text.strip_suffix("MiB") {
        (digits, 1024 * 1024)
    } else {
        (text, 1)
    };
    let bad = || {
        usage(format!(
            "{flag}: {text:?} is not a size like 65536, 64KiB or 4MiB"
        ))
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits
        .parse::<usize>()
        .ok()
        .and_then(|count| count.checked_mul(unit))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        parse_serve_args(args).unwrap().unwrap().config
    }

    fn error(args: &[&str]) -> String {
        parse_serve_args(args).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_flag() {
        let got = config(&[
            "--listen",
            "[::1]:9000",
            "--token",
            "p",
            "--subscribe-token=s",
            "--history",
            "5",
            "--history-bytes",
            "2MiB",
            "--heartbeat",
            "0",
            "--retry",
            "100",
            "--max-subscribers",
            "7",
            "--max-body",
            "1KiB",
            "--write-timeout",
            "3",
            "--cors-origin",
            "*",
            "--cors-origin",
            "http://a",
            "--quiet",
        ]);
        assert_eq!(got.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(
            (got.token.as_deref(), got.subscribe_token.as_deref()),
            (Some("p"), Some("s"))
        );
        assert_eq!((got.history, got.history_bytes), (5, 2 * 1024 * 1024));
        assert_eq!((got.heartbeat, got.retry_ms), (Duration::ZERO, 100));
        assert_eq!(
            (got.max_subscribers, got.max_connections(), got.max_body),
            (7, 71, 1024)
        );
        assert_eq!(got.write_timeout, Duration::from_secs(3));
        assert_eq!(got.cors_origins, vec!["*", "http://a"]);
        assert!(parse_serve_args(&["--quiet"]).unwrap().unwrap().quiet);
        assert_eq!(config(&[]), Config::default());
    }

    #[test]
    fn listen_takes_a_port_alone_or_a_host_name() {
        let listen = |text: &str| config(&["--listen", text]).listen;
        assert_eq!(listen(":8080"), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(listen("[::1]:8080"), "[::1]:8080".parse().unwrap());
        let local = listen("localhost:8080");
        assert!(local.ip().is_loopback(), "{local}");
        assert_eq!(local.port(), 8080);
    }

    #[test]
    fn stdin_options() {
        let options =
            parse_serve_args(&["--stdin", "--stdin-topic", "logs", "--stdin-event", "line"])
                .unwrap()
                .unwrap();
        assert_eq!(
            options.stdin,
            Some(("logs".to_string(), "line".to_string()))
        );
        let options = parse_serve_args(&["--stdin"]).unwrap().unwrap();
        assert_eq!(options.stdin, Some(("default".to_string(), String::new())));
        assert!(error(&["--stdin-topic", "x"]).contains("need --stdin"));
        assert!(error(&["--stdin", "--stdin-topic", "a b"]).contains("--stdin-topic"));
    }

    #[test]
    fn refuses_bad_flags_in_one_line() {
        for (args, needle) in [
            (&["--nope"][..], "unknown flag --nope"),
            (&["extra"], "unexpected argument"),
            (&["--history"], "--history needs a value"),
            (&["--history", "0"], "at least 1"),
            (&["--history", "-1"], "not a whole number"),
            (&["--history-bytes", "4MB"], "not a size"),
            (&["--max-body", "99999999999999999999KiB"], "not a size"),
            (&["--listen", "localhost"], "localhost:PORT"),
            (&["--listen", ":http"], ":PORT"),
            (&["--listen", ":65536"], "IP:PORT"),
            (&["--listen", "127.0.0.1"], "--listen"),
            (&["--token", ""], "must not be empty"),
            (&["--token-file", "/nonexistent/tinysse"], "--token-file"),
            (&["--quiet=yes"], "unknown flag"),
            (&["--retry", "18446744073709551615"], "--retry"),
            (&["--retry", "86400001"], "at most"),
            (&["--heartbeat", "86401"], "a day"),
            (&["--write-timeout", "99999999"], "a day"),
            (&["--max-per-address", "-1"], "not a whole number"),
            #[cfg(feature = "journal")]
            (&["--journal-sync", "sometimes"], "--journal-sync"),
            #[cfg(feature = "journal")]
            (&["--journal-sync", "always"], "needs --journal"),
            #[cfg(not(feature = "journal"))]
            (&["--journal", "/tmp"], "without the journal feature"),
        ] {
            let message = error(args);
            assert!(message.contains(needle), "{args:?}: {message}");
            assert!(!message.contains('\n'), "{message}");
        }
        assert!(parse_serve_args(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn publish_data_may_start_with_a_dash_after_double_dash() {
        let options = parse_publish_args(&["http://h:1", "--topic", "t", "--", "-x"])
            .unwrap()
            .unwrap();
        assert_eq!(options.data, DataSource::Argument("-x".to_string()));
        assert!(parse_publish_args(&["http://h:1", "-x"]).is_err());
    }

    #[test]
    fn token_file_drops_one_trailing_newline() {
        let path = std::env::temp_dir().join(format!("tinysse-token-{}", std::process::id()));
        std::fs::write(&path, "secret\n").unwrap();
        let got = config(&["--token-file", path.to_str().unwrap()]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got.token.as_deref(), Some("secret"));
    }
}
