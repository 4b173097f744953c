//! `serve --stdin`: each line of standard input becomes one event.

use std::io::{self, BufRead, Read};

use tinysse::{Error, Event, Hub, check_topic};

/// Publishes each line of `reader` that is not blank (see [`is_blank`]) as
/// one event on `topic` (with type `event` when not empty) until end of input. Lines end with LF or
/// CRLF; invalid UTF-8 is replaced with U+FFFD. A line longer than
/// `max_line` bytes is published in pieces of `max_line` bytes.
/// Returns how many events were published.
pub(crate) fn pump_lines(
    hub: &Hub,
    reader: impl BufRead,
    topic: &str,
    event: &str,
    max_line: usize,
) -> Result<u64, Error> {
    check_topic(topic)?;
    Event::new("").with_event(event).validate()?;
    let max_line = max_line.max(1);
    let mut reader = reader;
    let mut line = Vec::new();
    let mut published = 0;
    loop {
        line.clear();
        let read = reader
            .by_ref()
            .take(max_line as u64)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) => return Ok(published),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::Io(err)),
        }
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
        }
        if is_blank(&line) {
            continue;
        }
        let data = String::from_utf8_lossy(&line).into_owned();
        hub.publish(topic, Event::new(data).with_event(event))?;
        published += 1;
    }
}

/// Whether a line is blank: empty, or only spaces and tabs. `--stdin` and
/// `publish --each-line` skip blank lines.
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|&byte| byte == b' ' || byte == b'\t')
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tinysse::{Batch, Next};

    use super::*;

    #[test]
    fn pumps_lines() {
        let hub = Arc::new(Hub::new());
        let mut subscription = hub.subscribe(&[], None).unwrap();
        let input: &[u8] = b"one\r\n\n \t \r\ntwo\n\t\nthree-is-long\n \xff";
        assert_eq!(pump_lines(&hub, input, "logs", "line", 8).unwrap(), 5);
        assert_eq!(
            subscription.next(&mut Batch::new(), Duration::ZERO),
            Next::Events(5)
        );
        assert!(pump_lines(&hub, &b"x"[..], "bad topic", "", 8).is_err());
        assert!(is_blank(b"") && is_blank(b" \t ") && !is_blank(b" x") && !is_blank(b"\x0b"));
    }
}
