//! Redis stream commands with typed results: `XADD`, `XREAD`, `XRANGE`,
//! `XREVRANGE`, and a batch of `XADD`s in one `MULTI`/`EXEC`.
//!
//! Every reply of the wrong shape is refused with [`RedisError::Protocol`].

use std::time::Duration;

use super::conn::Conn;
use super::error::{RedisError, server_message};
use super::resp::Value;

/// One stream entry: its id (`<ms>-<seq>`) and its field-value pairs in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// The value of the first field called `name`.
    pub(crate) fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_slice())
    }
}

/// Parses a complete stream id `<ms>-<seq>`: two runs of ASCII digits that
/// fit in a `u64`. Anything else (`*`, `$`, `-`, `+`, a bare `<ms>`) is `None`.
pub(crate) fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((digits(ms)?, digits(seq)?))
}

fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl Conn {
    /// `XADD key MAXLEN ~ maxlen * field value ...`: appends one entry and
    /// returns the id Redis gave it. Redis 5.0 or later.
    pub(crate) fn xadd(
        &mut self,
        key: &[u8],
        maxlen: u64,
        fields: &[(&[u8], &[u8])],
    ) -> Result<String, RedisError> {
        if fields.is_empty() {
            return Err(NO_FIELDS);
        }
        let maxlen = maxlen.to_string();
        entry_id(self.call(&xadd_args(key, &maxlen, fields))?)
    }

    /// Appends several entries as one `MULTI`, `XADD`s, `EXEC`, sent in one
    /// write: all or nothing. Returns their ids in order.
    ///
    /// An entry without fields is refused before anything is sent: Redis
    /// would queue its `XADD` (the arity check passes) and fail it inside
    /// `EXEC` while adding the others, since it never rolls back. If Redis
    /// refuses a command while queueing it (`NOPERM`, `OOM`, `READONLY`), it
    /// discards the transaction (`EXECABORT`) and the first refusal is
    /// returned. What could still fail inside `EXEC` (`WRONGTYPE`, ids
    /// exhausted) fails every `XADD` alike: they share one key and `*`. If an
    /// entry fails inside `EXEC` anyway, the error is returned although the
    /// others were added. An ACL user allowed `XADD` but not `MULTI` would get
    /// the `XADD`s run one by one.
    pub(crate) fn xadd_batch(
        &mut self,
        key: &[u8],
        maxlen: u64,
        batch: &[Vec<(&[u8], &[u8])>],
    ) -> Result<Vec<String>, RedisError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if batch.iter().any(|fields| fields.is_empty()) {
            return Err(NO_FIELDS);
        }
        let maxlen = maxlen.to_string();
        let mut commands = vec![vec![&b"MULTI"[..]]];
        commands.extend(batch.iter().map(|fields| xadd_args(key, &maxlen, fields)));
        commands.push(vec![b"EXEC"]);
        let mut replies = self.call_many(&commands)?.into_iter();
        // MULTI answers +OK, each queued command +QUEUED (or an error), then
        // EXEC answers an array of the commands' replies.
        let exec = replies.next_back();
        for reply in replies {
            match reply {
                Value::Simple(_) => {}
                Value::Error(message) => return Err(RedisError::Server(server_message(&message))),
                _ => {
                    return Err(RedisError::Protocol(
                        "MULTI or XADD did not answer +OK or +QUEUED",
                    ));
                }
            }
        }
        match exec {
            Some(Value::Array(Some(results))) if results.len() == batch.len() => {
                results.into_iter().map(entry_id).collect()
            }
            Some(Value::Error(message)) => Err(RedisError::Server(server_message(&message))),
            // A null array means the transaction was aborted (a WATCHed key
            // changed); no WATCH is used here, so it should not happen.
            Some(Value::Array(None)) => Err(RedisError::Server(
                "EXEC aborted the transaction".to_string(),
            )),
            _ => Err(RedisError::Protocol(
                "EXEC did not answer one reply per XADD",
            )),
        }
    }

    /// `XREAD COUNT count BLOCK block_ms STREAMS key after_id`: waits up to
    /// `block_ms` for entries after `after_id` (`$` for only new ones) and
    /// returns at most `count`; none when the wait ends without one.
    ///
    /// The read timeout is raised by `block_ms` for this call only. A
    /// `block_ms` of 0 (which would block forever in Redis) is sent as 1.
    pub(crate) fn xread_block(
        &mut self,
        key: &[u8],
        after_id: &str,
        count: u64,
        block_ms: u64,
    ) -> Result<Vec<Entry>, RedisError> {
        let block_ms = block_ms.max(1);
        let (count, block) = (count.to_string(), block_ms.to_string());
        let args: [&[u8]; 8] = [
            b"XREAD",
            b"COUNT",
            count.as_bytes(),
            b"BLOCK",
            block.as_bytes(),
            b"STREAMS",
            key,
            after_id.as_bytes(),
        ];
        self.set_read_timeout(Duration::from_millis(block_ms).saturating_add(self.timeout()))?;
        let reply = self.call(&args);
        self.set_read_timeout(self.timeout())?;
        // "Return value: Array reply ... or Nil reply if the operation timed out"
        let streams = match reply? {
            Value::Array(None) => return Ok(Vec::new()),
            Value::Array(Some(streams)) => streams,
            _ => return Err(RedisError::Protocol("XREAD did not answer an array")),
        };
        // One stream was asked for, so one [key, entries] pair comes back.
        let Ok([Value::Array(Some(pair))]) = <[Value; 1]>::try_from(streams) else {
            return Err(RedisError::Protocol("XREAD did not answer one stream"));
        };
        let Ok([Value::Bulk(Some(_key)), entries]) = <[Value; 2]>::try_from(pair) else {
            return Err(RedisError::Protocol(
                "XREAD did not answer a [key, entries] pair",
            ));
        };
        parse_entries(entries)
    }

    /// `XRANGE key start end COUNT count`: oldest first. `start` may be
    /// exclusive, `(id`, with Redis 6.2 or later; `-` and `+` are the ends.
    pub(crate) fn xrange(
        &mut self,
        key: &[u8],
        start: &str,
        end: &str,
        count: u64,
    ) -> Result<Vec<Entry>, RedisError> {
        self.range(b"XRANGE", key, start, end, count)
    }

    /// `XREVRANGE key end start COUNT count`: newest first, so `+ - COUNT n`
    /// gives the newest `n`.
    pub(crate) fn xrevrange(
        &mut self,
        key: &[u8],
        end: &str,
        start: &str,
        count: u64,
    ) -> Result<Vec<Entry>, RedisError> {
        self.range(b"XREVRANGE", key, end, start, count)
    }

    fn range(
        &mut self,
        command: &[u8],
        key: &[u8],
        from: &str,
        to: &str,
        count: u64,
    ) -> Result<Vec<Entry>, RedisError> {
        let count = count.to_string();
        let (from, to) = (from.as_bytes(), to.as_bytes());
        parse_entries(self.call(&[command, key, from, to, b"COUNT", count.as_bytes()])?)
    }
}

/// Why an entry without fields is not sent.
const NO_FIELDS: RedisError = RedisError::Invalid("a stream entry needs at least one field");

/// The arguments of `XADD key MAXLEN ~ maxlen * field value ...`.
fn xadd_args<'a>(key: &'a [u8], maxlen: &'a str, fields: &[(&'a [u8], &'a [u8])]) -> Vec<&'a [u8]> {
    let mut args: Vec<&[u8]> = vec![b"XADD", key, b"MAXLEN", b"~", maxlen.as_bytes(), b"*"];
    for (field, value) in fields {
        args.extend([*field, *value]);
    }
    args
}

/// `XADD`'s reply: the new entry's id as a bulk string.
fn entry_id(reply: Value) -> Result<String, RedisError> {
    match reply {
        Value::Bulk(Some(id)) => String::from_utf8(id)
            .ok()
            .filter(|id| parse_id(id).is_some())
            .ok_or(RedisError::Protocol("XADD answered a bad entry id")),
        Value::Error(message) => Err(RedisError::Server(server_message(&message))),
        _ => Err(RedisError::Protocol("XADD did not answer an entry id")),
    }
}

/// An array of entries, each `[id, [field, value, ...]]`.
fn parse_entries(reply: Value) -> Result<Vec<Entry>, RedisError> {
    let Value::Array(Some(entries)) = reply else {
        return Err(RedisError::Protocol("expected an array of stream entries"));
    };
    entries.into_iter().map(parse_entry).collect()
}

fn parse_entry(entry: Value) -> Result<Entry, RedisError> {
    let bad = RedisError::Protocol("a stream entry is not [id, [field, value, ...]]");
    let Value::Array(Some(parts)) = entry else {
        return Err(bad);
    };
    let Ok([Value::Bulk(Some(id)), Value::Array(Some(flat))]) = <[Value; 2]>::try_from(parts)
    else {
        return Err(bad);
    };
    let id = String::from_utf8(id)
        .ok()
        .filter(|id| parse_id(id).is_some())
        .ok_or(bad)?;
    if flat.len() % 2 != 0 {
        return Err(RedisError::Protocol(
            "a stream entry has a field without a value",
        ));
    }
    let mut fields = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(field), Some(value)) = (flat.next(), flat.next()) {
        let (Value::Bulk(Some(field)), Value::Bulk(Some(value))) = (field, value) else {
            return Err(RedisError::Protocol(
                "a stream field or value is not a bulk string",
            ));
        };
        fields.push((field, value));
    }
    Ok(Entry { id, fields })
}

#[cfg(test)]
mod tests {
    use super::super::redis_server::RedisServer;
    use super::super::url::RedisUrl;
    use super::*;
    use std::time::Instant;

    const TIMEOUT: Duration = Duration::from_secs(5);
    const KEY: &[u8] = b"tinysse";

    fn open(server: &RedisServer) -> Conn {
        let url = RedisUrl::parse(&server.url("")).expect("a good URL");
        Conn::open(&url, None, TIMEOUT).expect("open")
    }

    fn bulk(bytes: &[u8]) -> Value {
        Value::Bulk(Some(bytes.to_vec()))
    }

    fn array(items: Vec<Value>) -> Value {
        Value::Array(Some(items))
    }

    fn xlen(conn: &mut Conn, key: &[u8]) -> i64 {
        match conn.call(&[b"XLEN", key]) {
            Ok(Value::Integer(len)) => len,
            other => panic!("XLEN answered {other:?}"),
        }
    }

    #[test]
    fn parses_ids() {
        let cases: &[(&str, Option<(u64, u64)>)] = &[
            ("0-0", Some((0, 0))),
            ("1700000000000-12", Some((1_700_000_000_000, 12))),
            (
                "18446744073709551615-18446744073709551615",
                Some((u64::MAX, u64::MAX)),
            ),
            ("18446744073709551616-0", None),
            ("1700000000000", None),
            ("1-", None),
            ("-1", None),
            ("1-2-3", None),
            ("+1-2", None),
            ("1-+2", None),
            (" 1-2", None),
            ("*", None),
            ("$", None),
            ("", None),
        ];
        for &(id, expected) in cases {
            assert_eq!(parse_id(id), expected, "{id}");
        }
    }

    #[test]
    fn finds_fields() {
        let entry = Entry {
            id: "1-0".to_string(),
            fields: vec![
                (b"data".to_vec(), b"a".to_vec()),
                (b"data".to_vec(), b"b".to_vec()),
            ],
        };
        assert_eq!(entry.field(b"data"), Some(&b"a"[..]));
        assert_eq!(entry.field(b"topic"), None);
    }

    #[test]
    fn refuses_entries_of_the_wrong_shape() {
        let good = || array(vec![bulk(b"1-0"), array(vec![bulk(b"data"), bulk(b"x")])]);
        assert_eq!(
            parse_entries(array(vec![good()]))
                .map(|entries| entries.len())
                .ok(),
            Some(1)
        );
        let bad = [
            Value::Bulk(None),
            Value::Array(None),
            array(vec![Value::Array(None)]),
            array(vec![array(vec![bulk(b"1-0")])]),
            array(vec![array(vec![
                bulk(b"1-0"),
                array(vec![]),
                bulk(b"extra"),
            ])]),
            array(vec![array(vec![bulk(b"not-an-id"), array(vec![])])]),
            array(vec![array(vec![Value::Integer(1), array(vec![])])]),
            array(vec![array(vec![bulk(b"1-0"), Value::Array(None)])]),
            array(vec![array(vec![bulk(b"1-0"), array(vec![bulk(b"data")])])]),
            array(vec![array(vec![
                bulk(b"1-0"),
                array(vec![bulk(b"data"), Value::Bulk(None)]),
            ])]),
            array(vec![array(vec![
                bulk(b"1-0"),
                array(vec![Value::Integer(1), bulk(b"x")]),
            ])]),
        ];
        for reply in bad {
            assert!(
                matches!(parse_entries(reply.clone()), Err(RedisError::Protocol(_))),
                "{reply:?}"
            );
        }
        assert!(matches!(entry_id(bulk(b"*")), Err(RedisError::Protocol(_))));
        assert!(matches!(
            entry_id(Value::Integer(1)),
            Err(RedisError::Protocol(_))
        ));
        assert!(matches!(
            entry_id(Value::Error("ERR no".into())),
            Err(RedisError::Server(_))
        ));
    }

    #[test]
    fn xadd_then_xrange_reads_the_entry_back() {
        let Some(server) = RedisServer::start(&[]) else {
            return;
        };
        let mut conn = open(&server);
        let fields: [(&[u8], &[u8]); 3] = [
            (b"topic", b"news"),
            (b"data", b"line 1\r\nline 2\0\xff"),
            (b"event", b""),
        ];
        let id = conn.xadd(KEY, 1000, &fields).expect("XADD");
        assert!(parse_id(&id).is_some(), "{id}");
        let entries = conn.xrange(KEY, "-", "+", 10).expect("XRANGE");
        let expected_fields = fields
            .iter()
            .map(|(name, value)| (name.to_vec(), value.to_vec()))
            .collect();
        assert_eq!(
            entries,
            vec![Entry {
                id: id.clone(),
                fields: expected_fields
            }]
        );
        // An exclusive start (Redis 6.2 or later) leaves the entry out.
        assert_eq!(
            conn.xrange(KEY, &format!("({id}"), "+", 10)
                .expect("XRANGE (id")
                .len(),
            0
        );
        assert_eq!(
            conn.xrange(b"no such key", "-", "+", 10)
                .expect("XRANGE of nothing"),
            vec![]
        );
    }

    #[test]
    fn a_batch_gets_consecutive_ids() {
        let Some(server) = RedisServer::start(&[]) else {
            return;
        };
        let mut conn = open(&server);
        let before = conn.xadd(KEY, 1000, &[(b"data", b"before")]).expect("XADD");
        let batch: Vec<Vec<(&[u8], &[u8])>> = vec![
            vec![(b"data", b"one")],
            vec![(b"data", b"two"), (b"topic", b"t")],
            vec![(b"data", b"three")],
        ];
        let ids = conn.xadd_batch(KEY, 1000, &batch).expect("MULTI/EXEC");
        assert_eq!(ids.len(), 3);
        let entries = conn
            .xrange(KEY, &format!("({before}"), "+", 10)
            .expect("XRANGE");
        assert_eq!(
            entries
                .iter()
                .map(|entry| entry.id.clone())
                .collect::<Vec<_>>(),
            ids
        );
        let data: Vec<_> = entries
            .iter()
            .map(|entry| entry.field(b"data").unwrap_or_default())
            .collect();
        assert_eq!(data, [&b"one"[..], b"two", b"three"]);
        let parsed: Vec<_> = ids.iter().map(|id| parse_id(id).expect("an id")).collect();
        assert!(parsed.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        assert_eq!(conn.xadd_batch(KEY, 1000, &[]).ok(), Some(vec![]));
    }

    #[test]
    fn a_refused_batch_publishes_nothing() {
        let Some(server) = RedisServer::start(&[]) else {
            return;
        };
        let mut conn = open(&server);
        // Redis would queue an XADD without fields and fail only it inside
        // EXEC, so the batch is refused before it is sent.
        let batch: Vec<Vec<(&[u8], &[u8])>> =
            vec![vec![(b"data", b"one")], vec![], vec![(b"data", b"three")]];
        let error = conn.xadd_batch(KEY, 1000, &batch).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "redis command not sent: a stream entry needs at least one field"
        );
        assert!(matches!(
            conn.xadd(KEY, 1000, &[]),
            Err(RedisError::Invalid(_))
        ));
        assert_eq!(xlen(&mut conn, KEY), 0);
        // A key of the wrong type fails every XADD inside EXEC.
        conn.call(&[b"SET", b"text", b"not a stream"]).expect("SET");
        let good: Vec<Vec<(&[u8], &[u8])>> = vec![vec![(b"data", b"one")], vec![(b"data", b"two")]];
        let error = conn
            .xadd_batch(b"text", 1000, &good)
            .expect_err("WRONGTYPE");
        assert!(
            error.to_string().starts_with("redis error: WRONGTYPE"),
            "{error}"
        );
        assert_eq!(
            conn.call(&[b"TYPE", b"text"]).ok(),
            Some(Value::Simple("string".to_string()))
        );
        // The connection is still usable and not left inside MULTI.
        assert_eq!(
            conn.xadd_batch(KEY, 1000, &good).map(|ids| ids.len()).ok(),
            Some(2)
        );
        assert_eq!(xlen(&mut conn, KEY), 2);
    }

    #[test]
    fn a_batch_refused_while_queued_publishes_nothing() {
        let user = ["--user", "alice", "on", ">pw", "~allowed*", "+@all"];
        let Some(server) = RedisServer::start(&user) else {
            return;
        };
        let url = RedisUrl::parse(&server.url_with("alice:pw")).expect("URL");
        let mut alice = Conn::open(&url, None, TIMEOUT).expect("open as alice");
        let batch: Vec<Vec<(&[u8], &[u8])>> =
            vec![vec![(b"data", b"one")], vec![(b"data", b"two")]];
        let error = alice.xadd_batch(KEY, 1000, &batch).expect_err("NOPERM");
        assert!(
            error.to_string().starts_with("redis error: NOPERM"),
            "{error}"
        );
        assert_eq!(xlen(&mut open(&server), KEY), 0);
        assert_eq!(
            alice
                .xadd_batch(b"allowed", 1000, &batch)
                .map(|ids| ids.len())
                .ok(),
            Some(2)
        );
    }

    /// Opens a connection to a fake server that answers `replies` to whatever
    /// it is sent, then closes its side.
    fn canned(replies: &'static [u8]) -> (Conn, std::thread::JoinHandle<()>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = RedisUrl::parse(&format!(
            "redis://{}",
            listener.local_addr().expect("address")
        ))
        .expect("URL");
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            stream.write_all(replies).expect("answer");
            stream
                .shutdown(std::net::Shutdown::Write)
                .expect("end the replies");
            // Read until the client hangs up, so that it never sees a reset.
            let _ = stream.read_to_end(&mut Vec::new());
        });
        (Conn::open(&url, None, TIMEOUT).expect("open"), server)
    }

    #[test]
    fn refuses_exec_replies_that_are_not_all_ids() {
        let batch: Vec<Vec<(&[u8], &[u8])>> =
            vec![vec![(b"data", b"one")], vec![(b"data", b"two")]];
        let cases: &[(&[u8], &str)] = &[
            (
                b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$3\r\n1-0\r\n$3\r\n1-1\r\n",
                "",
            ),
            (
                b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$3\r\n1-0\r\n-ERR no\r\n",
                "redis error: ERR no",
            ),
            (
                b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*-1\r\n",
                "redis error: EXEC aborted the transaction",
            ),
            (
                b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*1\r\n$3\r\n1-0\r\n",
                "redis protocol error: EXEC did not answer one reply per XADD",
            ),
            (
                b"+OK\r\n+QUEUED\r\n+QUEUED\r\n:2\r\n",
                "redis protocol error: EXEC did not answer one reply per XADD",
            ),
            (
                b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$3\r\n1-0\r\n$1\r\n*\r\n",
                "redis protocol error: XADD answered a bad entry id",
            ),
            (
                b"+OK\r\n-NOPERM no\r\n+QUEUED\r\n-EXECABORT Transaction discarded.\r\n",
                "redis error: NOPERM no",
            ),
            (b"+OK\r\n+QUEUED\r\n", "redis closed the connection"),
            (
                b"+OK\r\n$3\r\n1-0\r\n$3\r\n1-1\r\n-ERR EXEC without MULTI\r\n",
                "redis protocol error: MULTI or XADD did not answer +OK or +QUEUED",
            ),
        ];
        for &(replies, expected) in cases {
            let (mut conn, server) = canned(replies);
            match conn.xadd_batch(KEY, 10, &batch) {
                Ok(ids) => assert_eq!(
                    (ids, ""),
                    (vec!["1-0".to_string(), "1-1".to_string()], expected)
                ),
                Err(error) => assert_eq!(error.to_string(), expected),
            }
            drop(conn);
            server.join().expect("the fake server ends");
        }
    }

    #[test]
    fn xread_block_returns_an_entry_added_while_blocked() {
        let Some(server) = RedisServer::start(&[]) else {
            return;
        };
        let mut reader = open(&server);
        let blocked = std::thread::spawn(move || reader.xread_block(KEY, "$", 10, 20_000));
        // Wait (bounded) until Redis reports the reader as blocked, then add.
        let mut writer = open(&server);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let info = writer.call(&[b"INFO", b"clients"]).expect("INFO");
            let Value::Bulk(Some(info)) = info else {
                panic!("INFO answered {info:?}")
            };
            if String::from_utf8_lossy(&info).contains("blocked_clients:1") {
                break;
            }
            assert!(Instant::now() < deadline, "the reader never blocked");
            std::thread::sleep(Duration::from_millis(5));
        }
        let id = writer
            .xadd(KEY, 1000, &[(b"data", b"hello")])
            .expect("XADD");
        let entries = blocked.join().expect("the reader ends").expect("XREAD");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id, id);
        assert_eq!(entries[0].field(b"data"), Some(&b"hello"[..]));
    }

    #[test]
    fn xread_block_returns_nothing_on_timeout_and_entries_already_there() {
        let Some(server) = RedisServer::start(&[]) else {
            return;
        };
        let mut conn = open(&server);
        let started = Instant::now();
        assert_eq!(conn.xread_block(KEY, "$", 10, 100).expect("XREAD"), vec![]);
        assert!(started.elapsed() >= Duration::from_millis(100));
        let first = conn.xadd(KEY, 1000, &[(b"data", b"1")]).expect("XADD");
        let second = conn.xadd(KEY, 1000, &[(b"data", b"2")]).expect("XADD");
        let entries = conn.xread_block(KEY, "0-0", 1, 100).expect("XREAD COUNT 1");
        assert_eq!(
            entries.iter().map(|entry| &entry.id).collect::<Vec<_>>(),
            [&first]
        );
        let entries = conn
            .xread_block(KEY, &first, 10, 100)
            .expect("XREAD after the first");
        assert_eq!(
            entries.iter().map(|entry| &entry.id).collect::<Vec<_>>(),
            [&second]
        );
        // A block longer than the connection's timeout does not time out the read.
        let mut short = Conn::open(
            &RedisUrl::parse(&server.url("")).expect("URL"),
            None,
            Duration::from_millis(100),
        )
        .expect("open");
        assert_eq!(
            short
                .xread_block(KEY, "$", 10, 300)
                .expect("XREAD BLOCK 300"),
            vec![]
        );
        assert_eq!(
            short.call(&[b"PING"]).ok(),
            Some(Value::Simple("PONG".to_string()))
        );
    }

    #[test]
    fn xrevrange_gives_the_newest_first() {
        let Some(server) = RedisServer::start(&[]) else {
            return;
        };
        let mut conn = open(&server);
        let ids: Vec<String> = (0..5)
            .map(|n| conn.xadd(KEY, 1000, &[(b"n", &[b'0' + n])]).expect("XADD"))
            .collect();
        let newest = conn.xrevrange(KEY, "+", "-", 2).expect("XREVRANGE");
        assert_eq!(
            newest.iter().map(|entry| &entry.id).collect::<Vec<_>>(),
            [&ids[4], &ids[3]]
        );
        assert_eq!(newest[0].field(b"n"), Some(&b"4"[..]));
    }

    #[test]
    fn maxlen_trims_the_stream() {
        let Some(server) = RedisServer::start(&["--stream-node-max-entries", "10"]) else {
            return;
        };
        let mut conn = open(&server);
        let batch: Vec<Vec<(&[u8], &[u8])>> =
            (0..100).map(|_| vec![(&b"data"[..], &b"x"[..])]).collect();
        for _ in 0..10 {
            conn.xadd_batch(KEY, 20, &batch).expect("MULTI/EXEC");
        }
        // "~" trims whole macro nodes only, so up to one node more may stay.
        let len = xlen(&mut conn, KEY);
        assert!((20..=30).contains(&len), "XLEN {len}");
    }
}
