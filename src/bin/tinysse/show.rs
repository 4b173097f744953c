//! What `listen` prints: events as blocks, and with `--raw` every byte as it
//! arrives, line endings made visible.

use std::io::{self, Write};

use tinysse::{Message, Parser};

/// Prints one event as a block: a `== type (id ...)` line, the data as is, a blank line.
pub(crate) fn print_event(
    out: &mut dyn Write,
    log: &mut dyn Write,
    event: &Message,
) -> io::Result<()> {
    if event.event == "gap" {
        let _ = writeln!(
            log,
            "tinysse: gap: the server could not find id {:?}; events may have been missed",
            event.data
        );
    }
    let id = if event.id.is_empty() {
        String::new()
    } else {
        format!(" (id {})", event.id)
    };
    write!(out, "== {}{id}\n{}\n\n", event.event, event.data)?;
    out.flush()
}

/// Writes `bytes` one line per line ending, each line after `prefix` and a
/// space, with line endings and control bytes escaped (`\r`, `\n`, `\xNN`).
pub(crate) fn print_raw(out: &mut dyn Write, bytes: &[u8], prefix: &str) -> io::Result<()> {
    for line in split_keeping_endings(bytes) {
        writeln!(out, "{prefix} {}", escape(line))?;
    }
    out.flush()
}

/// Splits after each LF, and after each CR not followed by LF.
fn split_keeping_endings(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let ends = byte == b'\n' || (byte == b'\r' && bytes.get(index + 1) != Some(&b'\n'));
        if ends {
            lines.push(&bytes[start..=index]);
            start = index + 1;
        }
    }
    if start < bytes.len() {
        lines.push(&bytes[start..]);
    }
    lines
}

/// Makes line endings, control bytes and invalid UTF-8 visible; reversible
/// (a backslash is written `\\`).
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                // Control characters, and the invisible ones a learner would
                // miss: a byte order mark, zero-width spaces and joiners,
                // direction marks and overrides.
                ch if ch.is_control() || is_invisible(ch) => {
                    let mut buf = [0u8; 4];
                    for byte in ch.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{byte:02x}"));
                    }
                }
                ch => out.push(ch),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Characters that print as nothing: U+FEFF (a byte order mark), U+200B to
/// U+200F, U+202A to U+202E, U+2060 to U+2064 and U+2066 to U+2069.
fn is_invisible(ch: char) -> bool {
    matches!(ch, '\u{feff}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}')
}

/// `--raw`: shows stream bytes line by line as they complete, feeds each
/// line to the parser, and marks what it did.
#[derive(Default)]
pub(crate) struct RawView {
    /// Bytes of a line whose ending has not arrived yet.
    pending: Vec<u8>,
}

impl RawView {
    /// Whether the bytes shown so far end in a CR that may be the first half
    /// of a CRLF.
    pub(crate) fn waits_on_cr(&self) -> bool {
        self.pending.ends_with(b"\r")
    }

    pub(crate) fn show(
        &mut self,
        bytes: &[u8],
        parser: &mut Parser,
        out: &mut dyn Write,
        log: &mut dyn Write,
    ) -> io::Result<()> {
        self.pending.extend_from_slice(bytes);
        let mut consumed = 0;
        let lines = split_keeping_endings(&self.pending);
        let count = lines.len();
        for (index, line) in lines.into_iter().enumerate() {
            let complete = line.ends_with(b"\n") || (line.ends_with(b"\r") && index + 1 < count);
            if !complete {
                // A CR at the very end may be the first half of a CRLF: wait.
                break;
            }
            consumed += line.len();
            show_line(line, parser, out, log)?;
        }
        self.pending.drain(..consumed);
        // A line this long without an ending is shown as it is, unfinished.
        if self.pending.len() > 64 * 1024 {
            writeln!(out, "| {}", escape(&self.pending))?;
            let mut events = Vec::new();
            let _ = parser.feed(&self.pending, &mut events);
            self.pending.clear();
        }
        out.flush()
    }

    /// Shows the bytes held back (a line whose ending has not come, or a CR
    /// that may be the first half of a CRLF) as a line, and feeds them to the
    /// parser: the stream ended, or a CR was not followed by more bytes soon.
    pub(crate) fn end_line(
        &mut self,
        parser: &mut Parser,
        out: &mut dyn Write,
        log: &mut dyn Write,
    ) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.pending);
        show_line(&line, parser, out, log)?;
        out.flush()
    }
}

/// `--raw`: shows one line, feeds it to the parser, and marks what it did.
fn show_line(
    line: &[u8],
    parser: &mut Parser,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> io::Result<()> {
    writeln!(out, "| {}", escape(line))?;
    let retry_before = parser.retry();
    let mut events = Vec::new();
    if parser.feed(line, &mut events).is_err() {
        let _ = writeln!(log, "tinysse: an event over the size limit was dropped");
    }
    if parser.retry() != retry_before {
        writeln!(
            out,
            "=> reconnection time is now {} ms",
            parser.retry().unwrap_or(0)
        )?;
    }
    for event in &events {
        writeln!(
            out,
            "=> dispatch: type {:?}, id {:?}, data {:?}",
            event.event, event.id, event.data
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_reversibly() {
        assert_eq!(escape(b"a\\b"), "a\\\\b");
        assert_eq!(escape(b"\xff\x00\xc3\xa9"), "\\xff\\x00é");
        assert_eq!(
            escape("\u{feff}data: x".as_bytes()),
            "\\xef\\xbb\\xbfdata: x"
        );
        assert_eq!(
            split_keeping_endings(b"a\r\nb\rc\nd"),
            vec![&b"a\r\n"[..], b"b\r", b"c\n", b"d"]
        );
    }
}
