//! Reading a `text/event-stream` the way a browser's `EventSource` does.
//!
//! This module implements two sections of the WHATWG HTML Living Standard,
//! "Server-sent events": 9.2.5 *Parsing an event stream* and 9.2.6 *Interpreting
//! an event stream*
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html>).
//! It has three layers, and each can be used alone:
//!
//! - [`Lines`] turns bytes into lines. It strips one byte order mark at the start
//!   of the stream, splits on CRLF, CR or LF and decodes UTF-8, however the bytes
//!   are split into chunks.
//! - [`classify`] says what one line is: a blank line, a comment or a field.
//! - [`Parser`] applies the interpretation rules to those lines. It returns each
//!   dispatched event as a [`Message`] and keeps the `retry` time and the last
//!   event ID.
//!
//! The module does no I/O. Callers read the bytes themselves and feed them in.
//! tinysse uses it to read `text/event-stream` publish bodies and in the `listen`
//! client.
//!
//! The input is treated as untrusted. No input can make the parser panic, and
//! its memory is bounded by the limit given to [`Parser::with_limit`] (by default
//! [`MAX_EVENT_BYTES`]).
//!
//! ```
//! use tinysse::Parser;
//!
//! let mut parser = Parser::new();
//! let mut events = Vec::new();
//! parser.feed(b"retry: 500\nid: 7\nevent: tick\r\ndata: 1\r\n\r\n", &mut events)?;
//! assert_eq!((events[0].event.as_str(), events[0].data.as_str()), ("tick", "1"));
//! assert_eq!((parser.last_event_id(), parser.retry()), ("7", Some(500)));
//! # Ok::<(), tinysse::Error>(())
//! ```

// Implementation notes
// --------------------
//
// * Decoding. The spec first decodes the whole stream as UTF-8, replacing errors
//   with U+FFFD, and then splits the text into lines. This module splits the bytes
//   into lines first and then decodes each line with `String::from_utf8_lossy`.
//   The result is the same for three reasons. CR (0x0D) and LF (0x0A) never occur
//   inside a multi-byte UTF-8 sequence. A broken sequence just before a line
//   ending becomes one U+FFFD either way. And Rust's lossy decoder replaces the
//   same "maximal subparts" that the WHATWG UTF-8 decoder replaces. Splitting
//   first has a benefit: a character split across two chunks needs no special
//   handling, because its bytes wait in the line buffer until the line is complete.
//   The `reference` model in the tests decodes the whole stream first, as the spec
//   does, and the random test checks that the two agree.
//
// * BOM. The byte order mark is three bytes (EF BB BF), and those bytes can
//   arrive in separate chunks. `Lines` holds back a partial match until it can
//   decide. If the bytes turn out not to be a BOM, the held bytes become ordinary
//   line content. (A partial BOM decodes to one U+FFFD, just as the spec's decoder
//   would produce.) Only the very start of the stream is checked.
//
// * CRLF split across chunks. A line is emitted as soon as its CR arrives, because
//   waiting for the next byte could hold back an event until the next chunk. Then
//   `after_cr` tells the splitter to drop an LF if one starts the next chunk.
//
// * Limits. Two things can overflow: a line longer than `limit` bytes (counting
//   the raw bytes without the line ending), or a data buffer that would grow past
//   `limit` bytes (counting the decoded text, including the LF added after each
//   `data` line). Both checks depend only on the stream's content, never on how
//   it is chunked, so every chunking gives the same events. The tests check this.
//   After an overflow:
//     - `Lines` throws away the rest of the long line, up to its line ending.
//     - `Parser` drops the event that the line belongs to. It empties the data
//       buffer and ignores the event's remaining `data` lines, so at its blank
//       line the event has no data and, under the spec's own rule, is not
//       dispatched. The event's `id` and `retry` fields still take effect,
//       including those that came after the overflow. So the last event ID moves
//       past the dropped event, and a client that reconnects does not ask for that
//       event again (which would fail the same way).
//     - Parsing continues normally after the event's blank line, even within the
//       same `feed` call. `feed` returns `Err(EventTooLarge)` once, at the end of
//       the call, and everything dispatched in the call is in `out` by then.
//
// * Memory. The line buffer holds at most `limit` bytes (the Vec's capacity can
//   grow to about twice that), and the data buffer holds at most `limit` bytes.
//   The event type and last event ID buffers each hold one line's value. Decoding
//   can make a value up to 3 times longer than its bytes, because each invalid byte
//   becomes a 3-byte U+FFFD.
//
// * Choices the spec leaves open:
//     - `retry` with an empty value is ignored. (The spec's "consists of only ASCII
//       digits" would be vacuously true for it. Browsers differ: Chromium's
//       EventSourceParser resets the delay to its default instead.)
//     - A `retry` value too large for a u64 saturates to u64::MAX milliseconds. The
//       field is valid by the spec's rule, and u64::MAX is the closest value we can
//       represent.
//     - `Parser::last_event_id` returns the spec's "last event ID string". That is
//       the buffer as it was at the last blank line, which is what a browser would
//       send as `Last-Event-ID` if it reconnected now. An `id` field in an event
//       that is still arriving does not count until that event's blank line.
//
// * The spec's dispatch steps 4, 5 and 8 create and queue a DOM event, and its
//   origin field has no counterpart here. `Message` keeps the type, the data and
//   lastEventId.

use std::mem;

use super::event::parse_retry;
use crate::Error;

/// Default limit for one line and for one event's data buffer, in bytes: a
/// longer line or event is dropped and `feed` returns [`Error::EventTooLarge`].
pub(crate) const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// U+FEFF BYTE ORDER MARK, encoded as UTF-8.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One line of an event stream, classified per the WHATWG rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// An empty line: dispatch the event.
    Blank,
    /// A line starting with ':' (text after the colon, as is).
    Comment(&'a str),
    /// `name: value` — the value with ONE leading space stripped if present; a
    /// line with no colon is a field whose value is "".
    Field(&'a str, &'a str),
}

/// Classify one line (without its line ending).
pub(crate) fn classify(line: &str) -> Line<'_> {
    // If the line is empty (a blank line)
    //     Dispatch the event, as defined below.
    if line.is_empty() {
        return Line::Blank;
    }
    // If the line starts with a U+003A COLON character (:)
    //     Ignore the line.
    if let Some(comment) = line.strip_prefix(':') {
        return Line::Comment(comment);
    }
    match line.split_once(':') {
        // If the line contains a U+003A COLON character (:)
        //     Collect the characters on the line before the first U+003A COLON
        //     character (:), and let field be that string.
        //     Collect the characters on the line after the first U+003A COLON
        //     character (:), and let value be that string. If value starts with a
        //     U+0020 SPACE character, remove it from value.
        Some((field, value)) => Line::Field(field, value.strip_prefix(' ').unwrap_or(value)),
        // Otherwise, the string is not empty but does not contain a U+003A COLON
        // character (:)
        //     Process the field using the steps described below, using the whole
        //     line as the field name, and the empty string as the field value.
        None => Line::Field(line, ""),
    }
}

/// Incremental line splitter: bytes in, complete lines out (as &str, decoded with
/// UTF-8 replacement, i.e. `String::from_utf8_lossy` semantics).
///
/// It handles CRLF, lone CR and lone LF, including a CR at the end of one chunk
/// followed by an LF at the start of the next (that is ONE line ending). It strips
/// one UTF-8 BOM (EF BB BF), but only at the very start of the stream, even if
/// the BOM is split across chunks.
///
/// A line is handed out as soon as its line ending arrives. Bytes after the last
/// line ending wait for the next [`feed`](Lines::feed). If the stream ends there,
/// they are never handed out.
#[derive(Debug, Clone)]
pub(crate) struct Lines {
    /// The most bytes one line may have, not counting its line ending.
    limit: usize,
    /// Whether we are still at the start of the stream, looking for a BOM.
    start: Start,
    /// The bytes of the current line so far; never more than `limit`.
    buf: Vec<u8>,
    /// The last byte seen was a CR that ended a line, so an LF right after it
    /// belongs to that same line ending.
    after_cr: bool,
    /// The current line went over `limit`; drop its bytes up to its line ending.
    discarding: bool,
}

/// Where `Lines` is relative to the start of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// At the start: this many bytes (0 to 2) of a possible BOM are held back.
    Bom(usize),
    /// Past the start: a BOM from now on is ordinary content.
    Done,
}

/// What [`Lines::split`] reports to its caller.
enum Piece<'a> {
    /// A complete line, without its line ending.
    Line(&'a str),
    /// A line went over the limit; its bytes up to its line ending are dropped.
    Overflow,
}

impl Lines {
    /// A splitter whose lines may be at most `limit` bytes long (not counting
    /// the line ending).
    pub(crate) fn new(limit: usize) -> Lines {
        Lines {
            limit,
            start: Start::Bom(0),
            buf: Vec::new(),
            after_cr: false,
            discarding: false,
        }
    }

    /// Calls `on_line` for every complete line in `bytes`.
    ///
    /// Returns `Err(Error::EventTooLarge)` if a line exceeds the limit. The check
    /// happens as soon as the line's bytes exceed the limit, even before the line
    /// ending arrives, so memory stays bounded. The splitter remains usable after
    /// an error. It discards that line's bytes up to and including its line
    /// ending, without calling `on_line` for it, and then continues normally. The
    /// lines after the long one are still passed to `on_line`, even if they are in
    /// the same call. A call reports `Err` once however many lines overflowed in
    /// it. Later calls that only discard the rest of the long line return `Ok`.
    pub(crate) fn feed(
        &mut self,
        bytes: &[u8],
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(), Error> {
        let mut overflowed = false;
        self.split(bytes, &mut |piece| match piece {
            Piece::Line(line) => on_line(line),
            Piece::Overflow => overflowed = true,
        });
        if overflowed {
            Err(Error::EventTooLarge)
        } else {
            Ok(())
        }
    }

    /// The splitter proper: reports each complete line, and each overflow, in
    /// stream order.
    fn split(&mut self, bytes: &[u8], sink: &mut dyn FnMut(Piece<'_>)) {
        let mut rest = bytes;

        // The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark
        // (BOM), if any.
        while let Start::Bom(matched) = self.start {
            let Some((&byte, tail)) = rest.split_first() else {
                return; // Need more bytes to decide.
            };
            if byte == BOM[matched] {
                rest = tail;
                self.start = if matched + 1 == BOM.len() {
                    Start::Done
                } else {
                    Start::Bom(matched + 1)
                };
            } else {
                // Not a BOM after all: the bytes held back are line content.
                self.start = Start::Done;
                self.append(&BOM[..matched], sink);
            }
        }

        // The stream must then be parsed by reading everything line by line, with
        // a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair, a
        // single U+000A LINE FEED (LF) character not preceded by a U+000D CARRIAGE
        // RETURN (CR) character, and a single U+000D CARRIAGE RETURN (CR)
        // character not followed by a U+000A LINE FEED (LF) character being the
        // ways in which a line can end.
        while let Some((&first, tail)) = rest.split_first() {
            if self.after_cr {
                self.after_cr = false;
                if first == b'\n' {
                    // The LF of a CRLF whose CR already ended the previous line.
                    rest = tail;
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
                Some(end) => {
                    self.after_cr = rest[end] == b'\r';
                    self.end_line(&rest[..end], sink);
                    rest = &rest[end + 1..];
                }
                None => {
                    // No line ending yet: keep the bytes for the next call.
                    self.append(rest, sink);
                    return;
                }
            }
        }
    }

    /// Adds `part` to the current line, or reports an overflow if the line would
    /// get longer than the limit.
    fn append(&mut self, part: &[u8], sink: &mut dyn FnMut(Piece<'_>)) {
        if self.discarding {
            return;
        }
        // `buf.len() <= limit` always holds, so this cannot underflow.
        if part.len() > self.limit - self.buf.len() {
            self.buf = Vec::new(); // Also gives the memory back.
            self.discarding = true;
            sink(Piece::Overflow);
        } else {
            self.buf.extend_from_slice(part);
        }
    }

    /// Ends the current line with `part` as its last bytes and hands it out.
    fn end_line(&mut self, part: &[u8], sink: &mut dyn FnMut(Piece<'_>)) {
        if self.buf.is_empty() && !self.discarding && part.len() <= self.limit {
            // The whole line is in this chunk: decode it where it is.
            sink(Piece::Line(&String::from_utf8_lossy(part)));
            return;
        }
        self.append(part, sink);
        if self.discarding {
            // This was the end of a line over the limit; its bytes are gone.
            self.discarding = false;
        } else {
            sink(Piece::Line(&String::from_utf8_lossy(&self.buf)));
            self.buf.clear();
        }
    }
}

/// One dispatched event, as a browser's EventSource would see it.
///
/// ```
/// use tinysse::{Message, Parser};
///
/// let mut out = Vec::new();
/// Parser::new().feed(b"data: a\ndata: b\n\n", &mut out)?;
/// let expected = Message { event: "message".into(), data: "a\nb".into(), id: String::new() };
/// assert_eq!(out, [expected]);
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The event type; "message" when the stream gave none.
    pub event: String,
    /// The data, lines joined with "\n", last "\n" removed.
    pub data: String,
    /// The last event ID at dispatch time (MessageEvent.lastEventId).
    pub id: String,
}

/// The WHATWG event stream interpreter.
///
/// Feed it the bytes of a `text/event-stream` in chunks of any size. Each time a
/// blank line completes an event that has data, a [`Message`] is appended to
/// `out`. An event still in progress when the input stops is kept until more
/// bytes arrive. If they never do, the event is not dispatched, as the spec
/// requires.
///
/// ```
/// use tinysse::{Message, Parser};
///
/// let mut parser = Parser::new();
/// let mut out = Vec::new();
///
/// parser.feed(b": a comment\r\nevent: greet\r\nid: 7\r\ndata: hello\r\ndata:world\r\n\r\n", &mut out)?;
/// assert_eq!(
///     out,
///     [Message { event: "greet".into(), data: "hello\nworld".into(), id: "7".into() }]
/// );
///
/// // Chunks can split lines anywhere; the event waits for its blank line.
/// parser.feed(b"retry: 3000\ndata: sec", &mut out)?;
/// assert_eq!(out.len(), 1);
/// parser.feed(b"ond\n\n", &mut out)?;
/// assert_eq!(
///     out[1],
///     Message { event: "message".into(), data: "second".into(), id: "7".into() }
/// );
/// assert_eq!(parser.retry(), Some(3000));
/// assert_eq!(parser.last_event_id(), "7");
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Parser {
    lines: Lines,
    interpreter: Interpreter,
}

/// The per-stream state of 9.2.6 and the rules that change it.
#[derive(Debug, Clone)]
struct Interpreter {
    /// The most bytes the data buffer may hold.
    limit: usize,
    // When a stream is parsed, a data buffer, an event type buffer, and a last
    // event ID buffer must be associated with it. They must be initialized to the
    // empty string.
    data: String,
    event_type: String,
    last_event_id_buffer: String,
    /// The event source's "last event ID string": the buffer as of the last
    /// dispatch.
    last_event_id: String,
    /// The event stream's reconnection time in milliseconds, once a valid `retry`
    /// field has set it.
    reconnection_time: Option<u64>,
    /// The current event overflowed: ignore its `data` lines until its blank line.
    dropping: bool,
}

impl Default for Parser {
    fn default() -> Parser {
        Parser::new()
    }
}

impl Parser {
    /// A parser whose limit for one line and for one event is 1 MiB.
    ///
    /// ```
    /// let parser = tinysse::Parser::new();
    /// assert_eq!((parser.retry(), parser.last_event_id()), (None, ""));
    /// ```
    pub fn new() -> Parser {
        Parser::with_limit(MAX_EVENT_BYTES)
    }

    /// A parser with `limit` bytes as the limit for one line (not counting its
    /// line ending) and for one event's data buffer (its data plus one LF per
    /// `data` line).
    ///
    /// Each line below fits in 16 bytes, but the third `data` line would make
    /// the data buffer grow past them:
    ///
    /// ```
    /// use tinysse::Parser;
    ///
    /// let mut parser = Parser::with_limit(16);
    /// let mut out = Vec::new();
    /// parser.feed(b"data: abcdef\ndata: abcdef\n\n", &mut out)?;
    /// assert_eq!(out[0].data, "abcdef\nabcdef");
    /// assert!(parser.feed(b"data: abcdef\ndata: abcdef\ndata: abcdef\n\n", &mut out).is_err());
    /// assert_eq!(out.len(), 1);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_limit(limit: usize) -> Parser {
        Parser {
            lines: Lines::new(limit),
            interpreter: Interpreter {
                limit,
                data: String::new(),
                event_type: String::new(),
                last_event_id_buffer: String::new(),
                last_event_id: String::new(),
                reconnection_time: None,
                dropping: false,
            },
        }
    }

    /// Starts the parser with `id` as its last event ID, for a client that
    /// reconnects: the new stream's events without an `id:` field keep it.
    ///
    /// The spec starts each stream's last event ID buffer empty; browsers
    /// (Chromium's `EventSourceParser`, for one) start it from the event
    /// source's last event ID string instead, so that an event without an id,
    /// such as a `gap`, does not reset it. This does the same.
    ///
    /// ```
    /// use tinysse::Parser;
    ///
    /// let mut parser = Parser::new().with_last_event_id("41");
    /// let mut out = Vec::new();
    /// parser.feed(b"event: gap\ndata: 41\n\n", &mut out)?;
    /// assert_eq!(out[0].id, "41");
    /// assert_eq!(parser.last_event_id(), "41");
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_last_event_id(mut self, id: impl Into<String>) -> Parser {
        let id = id.into();
        self.interpreter.last_event_id_buffer = id.clone();
        self.interpreter.last_event_id = id;
        self
    }

    /// Feed bytes; dispatched events are pushed to `out` in order.
    ///
    /// On `Err(EventTooLarge)` the events dispatched before the overflow are
    /// already in `out`, and the oversize event is dropped. An event overflows
    /// when one of its lines is longer than the limit or its data buffer would
    /// grow past the limit. The parser stays usable. Any bytes after the
    /// oversize event are parsed as usual, including bytes later in the same
    /// call, so `out` may also contain events from after the overflow. The
    /// dropped event's `id` and `retry` fields still take effect.
    ///
    /// ```
    /// use tinysse::{Error, Parser};
    ///
    /// let mut parser = Parser::with_limit(8);
    /// let mut out = Vec::new();
    /// let result = parser.feed(b"id: 1\ndata: far too long\n\ndata: ok\n\n", &mut out);
    /// assert!(matches!(result, Err(Error::EventTooLarge)));
    /// assert_eq!(out.len(), 1);
    /// assert_eq!((out[0].data.as_str(), out[0].id.as_str()), ("ok", "1"));
    /// ```
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Message>) -> Result<(), Error> {
        let Parser { lines, interpreter } = self;
        let mut overflowed = false;
        // Lines must be processed, in the order they are received, as follows:
        lines.split(bytes, &mut |piece| match piece {
            Piece::Line(line) => {
                if interpreter.process_line(line, out).is_err() {
                    overflowed = true;
                }
            }
            Piece::Overflow => {
                interpreter.drop_event();
                overflowed = true;
            }
        });
        // Once the end of the file is reached, any pending data must be discarded.
        // (If the file ends in the middle of an event, before the final empty
        // line, the incomplete event is not dispatched.)
        // That is why nothing is dispatched here: only a blank line dispatches.
        if overflowed {
            Err(Error::EventTooLarge)
        } else {
            Ok(())
        }
    }

    /// The reconnection time set by the last valid `retry` field, if any.
    ///
    /// The value is in milliseconds and saturates at `u64::MAX`. A `retry` field
    /// takes effect as soon as its line is complete, without waiting for a blank
    /// line.
    ///
    /// ```
    /// let mut parser = tinysse::Parser::new();
    /// parser.feed(b"retry: 2500\nretry: soon\n", &mut Vec::new())?;
    /// assert_eq!(parser.retry(), Some(2500));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn retry(&self) -> Option<u64> {
        self.interpreter.reconnection_time
    }

    /// The last event ID, as a browser would send it in `Last-Event-ID` if it
    /// reconnected now.
    ///
    /// This is the spec's "last event ID string": the value of the last event ID
    /// buffer when the most recent blank line was processed. An `id` field of an
    /// event that is still arriving does not count until that event's blank line.
    /// It is the same as the `id` of the latest [`Message`], except that blank
    /// lines that dispatch nothing (such as one ending a block with only `id: 5`)
    /// also update it.
    ///
    /// ```
    /// let mut parser = tinysse::Parser::new();
    /// let mut out = Vec::new();
    /// parser.feed(b"id: 5\n\nid: 6\ndata: still arriving\n", &mut out)?;
    /// assert!(out.is_empty());
    /// assert_eq!(parser.last_event_id(), "5");
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn last_event_id(&self) -> &str {
        &self.interpreter.last_event_id
    }
}

impl Interpreter {
    /// Processes one line. `Err` means the line made the data buffer overflow.
    fn process_line(&mut self, line: &str, out: &mut Vec<Message>) -> Result<(), Error> {
        match classify(line) {
            Line::Blank => {
                // The blank line also ends an event that is being dropped.
                self.dropping = false;
                self.dispatch(out);
                Ok(())
            }
            Line::Comment(_) => Ok(()),
            Line::Field(field, value) => self.process_field(field, value),
        }
    }

    /// "Process the field".
    fn process_field(&mut self, field: &str, value: &str) -> Result<(), Error> {
        // The steps to process the field given a field name and a field value
        // depend on the field name, as given in the following list. Field names
        // must be compared literally, with no case folding performed.
        match field {
            // If the field name is "event"
            //     Set the event type buffer to the field value.
            "event" => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            // If the field name is "data"
            //     Append the field value to the data buffer, then append a single
            //     U+000A LINE FEED (LF) character to the data buffer.
            "data" => {
                if self.dropping {
                    return Ok(()); // The rest of an oversize event.
                }
                // The buffer would hold `value` plus one LF. `data.len() <= limit`
                // always holds, so this cannot underflow.
                if value.len() >= self.limit - self.data.len() {
                    self.drop_event();
                    return Err(Error::EventTooLarge);
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            // If the field name is "id"
            //     If the field value does not contain U+0000 NULL, then set the last
            //     event ID buffer to the field value. Otherwise, ignore the field.
            "id" if !value.contains('\0') => {
                self.last_event_id_buffer.clear();
                self.last_event_id_buffer.push_str(value);
            }
            // If the field name is "retry"
            //     If the field value consists of only ASCII digits, then interpret
            //     the field value as an integer in base ten, and set the event
            //     stream's reconnection time to that integer. Otherwise, ignore the
            //     field.
            "retry" => {
                if let Some(milliseconds) = parse_retry(value) {
                    self.reconnection_time = Some(milliseconds);
                }
            }
            // Otherwise
            //     The field is ignored.
            // (An "id" whose value contains U+0000 also ends up here.)
            _ => {}
        }
        Ok(())
    }

    /// Drops the current event after an overflow: its data so far is discarded,
    /// and its remaining `data` lines are ignored until its blank line.
    fn drop_event(&mut self) {
        self.data = String::new(); // Also gives the memory back.
        self.dropping = true;
    }

    /// "Dispatch the event", the web browser steps.
    fn dispatch(&mut self, out: &mut Vec<Message>) {
        // 1. Set the last event ID string of the event source to the value of the
        //    last event ID buffer. The buffer does not get reset, so the last
        //    event ID string of the event source remains set to this value until
        //    the next time it is set by the server.
        self.last_event_id.clone_from(&self.last_event_id_buffer);

        // 2. If the data buffer is an empty string, set the data buffer and the
        //    event type buffer to the empty string and return.
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }

        // 3. If the data buffer's last character is a U+000A LINE FEED (LF)
        //    character, then remove the last character from the data buffer.
        let mut data = mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }

        // 5. Initialize event's type attribute to "message", its data attribute
        //    to data, [...] and its lastEventId attribute to the last event ID
        //    string of the event source.
        // 6. If the event type buffer has a value other than the empty string,
        //    change the type of the newly created event to equal the value of the
        //    event type buffer.
        let event = if self.event_type.is_empty() {
            String::from("message")
        } else {
            mem::take(&mut self.event_type)
        };

        // 7. Set the data buffer and the event type buffer to the empty string.
        //    (Both were emptied by `mem::take` above.)
        debug_assert!(self.data.is_empty() && self.event_type.is_empty());

        out.push(Message {
            event,
            data,
            id: self.last_event_id.clone(),
        });
    }
}

/// Reads a `retry` value: "If the field value consists of only ASCII digits, then
/// interpret the field value as an integer in base ten".
///
/// Returns `None` for an empty value or for any character that is not `0`–`9`
/// (this also rejects signs, spaces and non-ASCII digits). A value too large for
/// a `u64` saturates to `u64::MAX` instead of overflowing.
#[cfg(test)]
mod tests {
    use super::*;

    /// The lower layers on their own (these were their doc examples).
    #[test]
    fn lines_and_classify_alone() {
        let mut fields = Vec::new();
        Lines::new(1024)
            .feed(b"event: tick\r\ndata: 1\r\n\r\n", &mut |line| {
                if let Line::Field(name, value) = classify(line) {
                    fields.push(format!("{name}={value}"));
                }
            })
            .unwrap();
        assert_eq!(fields, ["event=tick", "data=1"]);
        assert_eq!(classify(""), Line::Blank);
        assert_eq!(classify(": keep-alive"), Line::Comment(" keep-alive"));
        assert_eq!(
            classify("data:  two spaces"),
            Line::Field("data", " two spaces")
        );
        assert_eq!(classify("data"), Line::Field("data", ""));
        assert_eq!(classify("retry: 3000"), Line::Field("retry", "3000"));

        let mut lines = Lines::new(1024);
        let mut seen = Vec::new();
        for chunk in [&b"\xEF\xBB"[..], b"\xBFone\r", b"\ntwo\rthr", b"ee\n"] {
            lines
                .feed(chunk, &mut |line| seen.push(line.to_owned()))
                .unwrap();
        }
        assert_eq!(seen, ["one", "two", "three"]);

        let mut lines = Lines::new(2);
        assert!(lines.feed(b"ab\r\n", &mut |_| {}).is_ok());
        assert!(lines.feed(b"abc\n", &mut |_| {}).is_err());

        let mut lines = Lines::new(4);
        let mut seen = Vec::new();
        let result = lines.feed(b"far too long\nok\n", &mut |line| {
            seen.push(line.to_owned())
        });
        assert!(matches!(result, Err(Error::EventTooLarge)));
        assert_eq!(seen, ["ok"]);
    }

    /// The expected events: `(event type, data, last event ID)`.
    type Expected<'a> = &'a [(&'a str, &'a str, &'a str)];

    /// Everything one run of a parser produced.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        events: Vec<(String, String, String)>,
        last_event_id: String,
        retry: Option<u64>,
        /// Whether any `feed` returned `Err(EventTooLarge)`.
        overflowed: bool,
    }

    /// Feeds `chunks` in order to a new parser with `limit`, checking after every
    /// chunk that memory stays within the limit.
    fn run(chunks: &[&[u8]], limit: usize) -> Outcome {
        let mut parser = Parser::with_limit(limit);
        let mut out = Vec::new();
        let mut overflowed = false;
        for chunk in chunks {
            match parser.feed(chunk, &mut out) {
                Ok(()) => {}
                Err(Error::EventTooLarge) => overflowed = true,
                Err(other) => panic!("unexpected error {other:?}"),
            }
            assert_bounded(&parser, limit);
        }
        Outcome {
            events: out.into_iter().map(|m| (m.event, m.data, m.id)).collect(),
            last_event_id: parser.last_event_id().to_owned(),
            retry: parser.retry(),
            overflowed,
        }
    }

    fn assert_bounded(parser: &Parser, limit: usize) {
        let state = &parser.interpreter;
        assert!(
            parser.lines.buf.len() <= limit,
            "line buffer over the limit"
        );
        assert!(state.data.len() <= limit, "data buffer over the limit");
        // These hold one line's value, which decoding can make 3 times longer.
        let value_limit = limit.saturating_mul(3);
        assert!(state.event_type.len() <= value_limit);
        assert!(state.last_event_id_buffer.len() <= value_limit);
        assert!(state.last_event_id.len() <= value_limit);
    }

    /// Runs `input` whole, split in two at every position, and one byte at a time,
    /// asserts that all runs agree, and returns the outcome.
    fn run_every_split(input: &[u8], limit: usize) -> Outcome {
        let whole = run(&[input], limit);
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(
                run(&[a, b], limit),
                whole,
                "split at {at} of \"{}\"",
                input.escape_ascii()
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            run(&bytes, limit),
            whole,
            "one byte at a time: \"{}\"",
            input.escape_ascii()
        );
        whole
    }

    /// Checks that `input` yields exactly the `expected` events (however it is
    /// chunked), and that the spec-literal reference model agrees.
    fn check(input: impl AsRef<[u8]>, expected: Expected<'_>) {
        let input = input.as_ref();
        let got = run_every_split(input, MAX_EVENT_BYTES);
        let want: Vec<(String, String, String)> = expected
            .iter()
            .map(|&(e, d, i)| (e.to_owned(), d.to_owned(), i.to_owned()))
            .collect();
        assert_eq!(got.events, want, "input \"{}\"", input.escape_ascii());
        assert!(!got.overflowed);
        assert_eq!(
            reference(input),
            (got.events, got.last_event_id, got.retry),
            "reference model disagrees on \"{}\"",
            input.escape_ascii()
        );
    }

    /// A deliberately naive model written straight from the spec text: decode
    /// the whole stream, strip one BOM, split into lines, interpret. It has no
    /// limits, so use it only where the parser's limit is not reached.
    fn reference(bytes: &[u8]) -> (Vec<(String, String, String)>, String, Option<u64>) {
        let decoded = String::from_utf8_lossy(bytes);
        let text = decoded.strip_prefix('\u{FEFF}').unwrap_or(&decoded);

        let mut lines = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    lines.push(mem::take(&mut current));
                }
                '\n' => lines.push(mem::take(&mut current)),
                c => current.push(c),
            }
        }
        // `current` is an unterminated line: pending data, discarded.

        let (mut data, mut event_type, mut id_buffer) =
            (String::new(), String::new(), String::new());
        let (mut last_id, mut retry, mut events) = (String::new(), None, Vec::new());
        for line in lines {
            if line.is_empty() {
                last_id = id_buffer.clone();
                if !data.is_empty() {
                    if data.ends_with('\n') {
                        data.pop();
                    }
                    let event = if event_type.is_empty() {
                        "message".to_owned()
                    } else {
                        event_type.clone()
                    };
                    events.push((event, data.clone(), last_id.clone()));
                }
                data.clear();
                event_type.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.find(':') {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (&line[..], ""),
            };
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event_type = value.to_owned(),
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "id" if !value.contains('\0') => id_buffer = value.to_owned(),
                "retry" if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) => {
                    // All digits, so parsing fails only when the number is too big.
                    retry = Some(value.parse::<u64>().unwrap_or(u64::MAX));
                }
                _ => {}
            }
        }
        (events, last_id, retry)
    }

    #[test]
    fn classify_lines() {
        let cases: &[(&str, Line<'_>)] = &[
            ("", Line::Blank),
            (":", Line::Comment("")),
            (": hi", Line::Comment(" hi")),
            ("::", Line::Comment(":")),
            ("data", Line::Field("data", "")),
            ("data:", Line::Field("data", "")),
            ("data: ", Line::Field("data", "")),
            ("data:x", Line::Field("data", "x")),
            ("data: x", Line::Field("data", "x")),
            ("data:  x", Line::Field("data", " x")),
            ("data: x ", Line::Field("data", "x ")),
            ("data:\tx", Line::Field("data", "\tx")),
            ("a:b: c", Line::Field("a", "b: c")),
            (" :x", Line::Field(" ", "x")),
            ("data :x", Line::Field("data ", "x")),
        ];
        for (line, want) in cases {
            assert_eq!(&classify(line), want, "{line:?}");
        }
    }

    #[test]
    fn spec_examples() {
        let cases: &[(&str, Expected<'_>)] = &[
            (
                "data: YHOO\ndata: +2\ndata: 10\n\n",
                &[("message", "YHOO\n+2\n10", "")],
            ),
            (
                ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
                &[
                    ("message", "first event", "1"),
                    ("message", "second event", ""),
                    ("message", " third event", ""),
                ],
            ),
            (
                "data\n\ndata\ndata\n\ndata:",
                &[("message", "", ""), ("message", "\n", "")],
            ),
            (
                "data:test\n\ndata: test\n\n",
                &[("message", "test", ""), ("message", "test", "")],
            ),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }

    #[test]
    fn bom_only_at_start() {
        let cases: &[(&[u8], Expected<'_>)] = &[
            (b"\xEF\xBB\xBFdata: a\n\n", &[("message", "a", "")]),
            (b"\xEF\xBB\xBF\n", &[]),
            // A second BOM is content: the first line's field name is
            // "\u{FEFF}data", which is ignored.
            (
                b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n",
                &[("message", "b", "")],
            ),
            (
                b"data: a\n\n\xEF\xBB\xBFdata: b\n\n",
                &[("message", "a", "")],
            ),
            (b"data: \xEF\xBB\xBFa\n\n", &[("message", "\u{FEFF}a", "")]),
            // A partial BOM is not stripped: it decodes to U+FFFD.
            (b"\xEF\xBBdata: a\n\ndata: b\n\n", &[("message", "b", "")]),
            (b"\xEF\xBB\n\xEF\ndata: b\n\n", &[("message", "b", "")]),
            (b"\xEF", &[]),
            // A UTF-16 BOM is not a BOM for UTF-8.
            (b"\xFF\xFEdata: a\n\ndata: b\n\n", &[("message", "b", "")]),
        ];
        for (input, want) in cases {
            check(input, want);
        }
        let mut lines = Lines::new(64);
        let mut seen = Vec::new();
        lines
            .feed(b"\xEF\xBB", &mut |l| seen.push(l.to_owned()))
            .unwrap();
        lines
            .feed(b"x\n", &mut |l| seen.push(l.to_owned()))
            .unwrap();
        assert_eq!(seen, ["\u{FFFD}x"]);
    }

    #[test]
    fn line_endings() {
        let cases: &[(&str, Expected<'_>)] = &[
            (
                "data: a\n\ndata: b\n\n",
                &[("message", "a", ""), ("message", "b", "")],
            ),
            (
                "data: a\r\n\r\ndata: b\r\n\r\n",
                &[("message", "a", ""), ("message", "b", "")],
            ),
            (
                "data: a\r\rdata: b\r\r",
                &[("message", "a", ""), ("message", "b", "")],
            ),
            (
                "data: a\r\ndata: b\rdata: c\ndata: d\r\n\n",
                &[("message", "a\nb\nc\nd", "")],
            ),
            // "\r\r\n\n" is three line endings, CR, CRLF, LF, so two blank lines.
            (
                "data: a\r\r\n\ndata: b\r\n\r",
                &[("message", "a", ""), ("message", "b", "")],
            ),
            // "\n\r" is two line endings, not one.
            (
                "data: a\n\rdata: b\n\n",
                &[("message", "a", ""), ("message", "b", "")],
            ),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }

    #[test]
    fn cr_at_end_of_chunk_then_lf_is_one_line_ending() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(b"data: a\r", &mut out).unwrap();
        // If this LF were a second line ending it would be a blank line and
        // dispatch "a" now.
        parser.feed(b"\ndata: b\r", &mut out).unwrap();
        assert!(out.is_empty());
        parser.feed(b"\n\r", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, "a\nb");

        let mut lines = Lines::new(64);
        let mut seen = Vec::new();
        for chunk in [&b"a\r"[..], b"\nb\r", b"\r\n", b"c\n", b"\r"] {
            lines.feed(chunk, &mut |l| seen.push(l.to_owned())).unwrap();
        }
        assert_eq!(seen, ["a", "b", "", "c", ""]);
    }

    #[test]
    fn space_after_colon() {
        let cases: &[(&str, Expected<'_>)] = &[
            ("data:a\n\n", &[("message", "a", "")]),
            ("data: a\n\n", &[("message", "a", "")]),
            ("data:  a\n\n", &[("message", " a", "")]),
            ("data: a  \n\n", &[("message", "a  ", "")]),
            ("data:\ta\n\n", &[("message", "\ta", "")]),
            (
                "data: a:b\n\ndata::\n\n",
                &[("message", "a:b", ""), ("message", ":", "")],
            ),
            ("event:  x\ndata: a\n\n", &[(" x", "a", "")]),
            ("id:  7\ndata: a\n\n", &[("message", "a", " 7")]),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let cases: &[(&str, Expected<'_>)] = &[
            ("foo: bar\ndata: a\nfoo\n\n", &[("message", "a", "")]),
            // Names are compared literally: no case folding, no trimming.
            ("DATA: a\nData: b\n data: c\ndata : d\ndata\t: e\n\n", &[]),
            (
                "data: a\nEVENT: x\nID: 1\nRetry: 5\n\n",
                &[("message", "a", "")],
            ),
            ("dat: a\ndataa: b\n\n", &[]),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }

    #[test]
    fn id_rules() {
        let cases: &[(&str, Expected<'_>)] = &[
            // The last event ID persists across events.
            (
                "id: 1\ndata: a\n\ndata: b\n\n",
                &[("message", "a", "1"), ("message", "b", "1")],
            ),
            // An id containing U+0000 is ignored.
            (
                "id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n",
                &[("message", "a", "1"), ("message", "b", "1")],
            ),
            ("id: \0\ndata: a\n\n", &[("message", "a", "")]),
            ("data: \0\n\n", &[("message", "\0", "")]),
            // An empty id resets it, with or without a colon and space.
            (
                "id: 1\ndata: a\n\nid\ndata: b\n\nid: 2\ndata: c\n\nid:\ndata: d\n\nid: 3\ndata: e\n\nid: \ndata: f\n\n",
                &[
                    ("message", "a", "1"),
                    ("message", "b", ""),
                    ("message", "c", "2"),
                    ("message", "d", ""),
                    ("message", "e", "3"),
                    ("message", "f", ""),
                ],
            ),
            // The last id field before the blank line wins, wherever it is.
            ("id: 1\ndata: a\nid: 2\n\n", &[("message", "a", "2")]),
            // A block with only an id dispatches nothing but still sets the ID.
            ("id: 3\n\ndata: a\n\n", &[("message", "a", "3")]),
        ];
        for (input, want) in cases {
            check(input, want);
        }

        // last_event_id() is the ID as of the last blank line.
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.feed(b"id: 1\ndata: a\n\nid: 2\n", &mut out).unwrap();
        assert_eq!(parser.last_event_id(), "1");
        parser.feed(b"\n", &mut out).unwrap();
        assert_eq!(parser.last_event_id(), "2");
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn retry_rules() {
        let cases: &[(&str, Option<u64>)] = &[
            ("retry: 3000\n", Some(3000)),
            ("retry:3000\n", Some(3000)),
            ("retry: 03000\n", Some(3000)),
            ("retry: 0\n", Some(0)),
            ("retry: 1000x\n", None),
            ("retry: x\n", None),
            ("retry: -1\n", None),
            ("retry: +5\n", None),
            ("retry: 1.5\n", None),
            ("retry: 1e3\n", None),
            ("retry: 5 \n", None),
            ("retry:  5\n", None),
            ("retry: \u{0663}\n", None),
            ("retry: \n", None),
            ("retry:\n", None),
            ("retry\n", None),
            ("Retry: 5\n", None),
            ("retry: 5", None), // No line ending: the line is not complete.
            ("retry: 18446744073709551615\n", Some(u64::MAX)),
            ("retry: 18446744073709551616\n", Some(u64::MAX)),
            (
                "retry: 99999999999999999999999999999999999999999999\n",
                Some(u64::MAX),
            ),
            // An invalid value leaves the previous one in place.
            ("retry: 10\nretry: x\nretry:\n", Some(10)),
            ("retry: 10\nretry: 20\n", Some(20)),
        ];
        for (input, want) in cases {
            let got = run_every_split(input.as_bytes(), MAX_EVENT_BYTES);
            assert_eq!(got.retry, *want, "{input:?}");
            assert_eq!(reference(input.as_bytes()).2, *want, "{input:?}");
        }
        assert_eq!(parse_retry(&"9".repeat(10_000)), Some(u64::MAX));
    }

    #[test]
    fn event_type() {
        let cases: &[(&str, Expected<'_>)] = &[
            // Reset after dispatch.
            (
                "event: add\ndata: 1\n\ndata: 2\n\n",
                &[("add", "1", ""), ("message", "2", "")],
            ),
            // Also reset by a blank line that dispatches nothing.
            ("event: add\n\ndata: 1\n\n", &[("message", "1", "")]),
            // An empty event type means "message".
            (
                "event\ndata: 1\n\nevent:\ndata: 2\n\n",
                &[("message", "1", ""), ("message", "2", "")],
            ),
            // The last one wins; it may come after the data.
            (
                "event: a\nevent: b\ndata: 1\n\ndata: 2\nevent: c\n\n",
                &[("b", "1", ""), ("c", "2", "")],
            ),
            ("event: message\ndata: 1\n\n", &[("message", "1", "")]),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }

    #[test]
    fn incomplete_last_event_is_not_dispatched() {
        let cases: &[(&str, Expected<'_>)] = &[
            ("data: a", &[]),
            ("data: a\n", &[]),
            ("data: a\r", &[]),
            ("data: a\r\n", &[]),
            ("data: a\n\ndata: b\n", &[("message", "a", "")]),
            ("data: a\n\ndata: b", &[("message", "a", "")]),
            ("data: a\n\nid: 9\ndata: b\n", &[("message", "a", "")]),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }

    #[test]
    fn comments() {
        let cases: &[(&str, Expected<'_>)] = &[
            (
                ":comment\ndata: a\n: another\n:\n\n",
                &[("message", "a", "")],
            ),
            (":\n\n: keep-alive\n\n", &[]),
            (":data: a\n\n", &[]),
            ("data: a\n:\n\n", &[("message", "a", "")]),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }

    #[test]
    fn empty_data_buffer_is_not_dispatched() {
        let cases: &[(&str, Expected<'_>)] = &[
            ("\n\n\n", &[]),
            ("event: foo\n\n", &[]),
            ("id: 1\n\n", &[]),
            ("retry: 5\n\n", &[]),
            ("foo: bar\n\n", &[]),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }

    #[test]
    fn data_without_colon_is_an_empty_line() {
        let cases: &[(&str, Expected<'_>)] = &[
            ("data\n\n", &[("message", "", "")]),
            ("data\ndata\n\n", &[("message", "\n", "")]),
            ("data: a\ndata\ndata: b\n\n", &[("message", "a\n\nb", "")]),
            ("data:\n\n", &[("message", "", "")]),
            ("data: \n\n", &[("message", "", "")]),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }

    #[test]
    fn utf8() {
        let cases: &[(&[u8], Expected<'_>)] = &[
            (
                "event: café\nid: ñ\ndata: héllo wörld 日本 🦀\n\n".as_bytes(),
                &[("café", "héllo wörld 日本 🦀", "ñ")],
            ),
            // Invalid bytes become U+FFFD, one per maximal invalid subpart.
            (b"data: a\xFFb\n\n", &[("message", "a\u{FFFD}b", "")]),
            (b"data: \xE2\x82\n\n", &[("message", "\u{FFFD}", "")]),
            (b"data: \xE2\x82\xACx\n\n", &[("message", "\u{20AC}x", "")]),
            (
                b"data: \xC0\xAF\n\n",
                &[("message", "\u{FFFD}\u{FFFD}", "")],
            ),
            (
                b"data: \xED\xA0\x80\n\n",
                &[("message", "\u{FFFD}\u{FFFD}\u{FFFD}", "")],
            ),
            // A truncated sequence right before a line ending.
            (b"data: \xF0\x9F\xA6\r\n\n", &[("message", "\u{FFFD}", "")]),
            // An invalid byte in a field name makes it an unknown field.
            (b"dat\xFF: x\n\n", &[]),
            (b"id: \xFF\ndata: x\n\n", &[("message", "x", "\u{FFFD}")]),
        ];
        for (input, want) in cases {
            check(input, want);
        }
    }

    #[test]
    fn line_over_limit_drops_its_event_and_parsing_continues() {
        let mut parser = Parser::with_limit(16);
        let mut out = Vec::new();
        // "data: 0123456789abcdef" is 22 bytes.
        let result = parser.feed(
            b"data: a\n\ndata: b\ndata: 0123456789abcdef\ndata: c\nid: 5\n\ndata: d\n\n",
            &mut out,
        );
        assert!(matches!(result, Err(Error::EventTooLarge)));
        let data: Vec<&str> = out.iter().map(|m| m.data.as_str()).collect();
        assert_eq!(data, ["a", "d"]);
        assert_eq!(out[1].id, "5", "the dropped event's id still counts");

        out.clear();
        parser.feed(b"data: e\n\n", &mut out).unwrap();
        assert_eq!(out[0].data, "e");

        // An overlong line of any kind drops the event it is in.
        out.clear();
        let result = parser.feed(b"data: f\n: 0123456789abcdefgh\n\ndata: g\n\n", &mut out);
        assert!(matches!(result, Err(Error::EventTooLarge)));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, "g");
    }

    #[test]
    fn line_over_limit_across_chunks() {
        let mut parser = Parser::with_limit(16);
        let mut out = Vec::new();
        parser.feed(b"data: a\n\ndata: 0123", &mut out).unwrap();
        assert_eq!(out.len(), 1);
        // Now the unterminated line goes over the limit.
        let result = parser.feed(b"456789abcdef", &mut out);
        assert!(matches!(result, Err(Error::EventTooLarge)));
        assert!(
            parser.lines.buf.is_empty(),
            "overflowing bytes are not kept"
        );
        // The rest of the long line is discarded quietly.
        parser.feed(b"more and more bytes", &mut out).unwrap();
        parser.feed(b"...\r", &mut out).unwrap();
        parser.feed(b"\ndata: x\n\ndata: b\n\n", &mut out).unwrap();
        let data: Vec<&str> = out.iter().map(|m| m.data.as_str()).collect();
        assert_eq!(
            data,
            ["a", "b"],
            "the rest of the oversize event is dropped"
        );
    }

    #[test]
    fn data_buffer_over_limit() {
        let mut parser = Parser::with_limit(16);
        let mut out = Vec::new();
        // Each line fits, but the data buffer would be 9 + 9 = 18 bytes.
        let result = parser.feed(
            b"id: 7\ndata: 12345678\ndata: 12345678\ndata: x\nevent: e\nid: 8\nretry: 9\n\ndata: ok\n\n",
            &mut out,
        );
        assert!(matches!(result, Err(Error::EventTooLarge)));
        assert_eq!(
            out,
            [Message {
                event: "message".into(),
                data: "ok".into(),
                id: "8".into()
            }]
        );
        assert_eq!(parser.retry(), Some(9));
        assert_eq!(parser.last_event_id(), "8");
    }

    #[test]
    fn exactly_at_the_limit_is_allowed() {
        // A 16-byte line, and a data buffer of exactly 16 bytes (8 + 8).
        let got = run_every_split(b"data: 0123456789\n\ndata: 1234567\ndata: 1234567\n\n", 16);
        assert!(!got.overflowed);
        assert_eq!(got.events[0].1, "0123456789");
        assert_eq!(got.events[1].1, "1234567\n1234567");
        // One byte more overflows.
        assert!(run_every_split(b"data: 0123456789a\n\n", 16).overflowed);
        assert!(run_every_split(b"data: 12345678\ndata: 1234567\n\n", 16).overflowed);
    }

    #[test]
    fn tiny_limits_do_not_panic() {
        for limit in 0..8 {
            let input = b"\xEF\xBB\n\n\ndata\n\ndata: abcdefgh\n\n:\n\xEF\xBB\xBF\r\n\r\n";
            let got = run_every_split(input, limit);
            assert!(got.overflowed, "limit {limit}");
        }
        let got = run_every_split(b"\n\n\r\n", 0);
        assert!(!got.overflowed);
        assert!(got.events.is_empty());
    }

    #[test]
    fn lines_over_limit() {
        let mut lines = Lines::new(4);
        let mut seen = Vec::new();
        let result = lines.feed(b"abcd\nabcde\nxy\n123456", &mut |l| seen.push(l.to_owned()));
        assert!(matches!(result, Err(Error::EventTooLarge)));
        lines
            .feed(b"78\r\nz\n", &mut |l| seen.push(l.to_owned()))
            .unwrap();
        assert_eq!(seen, ["abcd", "xy", "z"]);
    }

    #[test]
    fn every_split_gives_the_same_events() {
        let input: &[u8] =
            b"\xEF\xBB\xBF: hello\r\nevent: a\r\nid: 1\r\ndata: x\xE2\x82\xAC\r\ndata\r\n\r\n\
            retry: 250\rdata: y\r\rid\ndata: \xF0\x9F\xA6\x80z\n\ndata: incomplete";
        let got = run_every_split(input, MAX_EVENT_BYTES);
        assert_eq!(
            got,
            Outcome {
                events: vec![
                    ("a".into(), "x\u{20AC}\n".into(), "1".into()),
                    ("message".into(), "y".into(), "1".into()),
                    ("message".into(), "\u{1F980}z".into(), "".into()),
                ],
                last_event_id: String::new(),
                retry: Some(250),
                overflowed: false,
            }
        );
    }

    /// xorshift64: a tiny, dependency-free PRNG, good enough for fuzzing.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// A number in `0..n` (`n > 0`).
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random bytes built mostly from pieces that matter to the parser.
    fn soup(rng: &mut XorShift) -> Vec<u8> {
        const PIECES: &[&[u8]] = &[
            b"data",
            b"data:",
            b"data: ",
            b"event:",
            b"event: x",
            b"id:",
            b"id: 1",
            b"id\n",
            b"retry:",
            b"retry: 12",
            b"retry: 99999999999999999999",
            b"7",
            b":",
            b" ",
            b"\r",
            b"\n",
            b"\r\n",
            b"\n\n",
            b"\r\r",
            b"\xEF\xBB\xBF",
            b"\xEF",
            b"\xBB\xBF",
            b"\xFF",
            b"\xE2\x82",
            b"\0",
            b"x",
            b"hello",
            b"\xC3\xA9",
            b"\xF0\x9F\xA6\x80",
        ];
        let mut out = Vec::new();
        for _ in 0..rng.below(60) {
            if rng.below(6) == 0 {
                out.push(rng.next() as u8);
            } else {
                out.extend_from_slice(PIECES[rng.below(PIECES.len())]);
            }
        }
        out
    }

    /// A well-formed stream with a few random bytes inserted, changed or deleted.
    fn mutated(rng: &mut XorShift) -> Vec<u8> {
        const STREAMS: &[&[u8]] = &[
            b"\xEF\xBB\xBFevent: a\r\nid: 1\r\ndata: one\r\ndata: two\r\n\r\n",
            b": c\ndata: x\n\nid: 2\nretry: 300\ndata:y\n\n",
            b"data\rdata: \xC3\xA9\r\revent: e\nid\ndata: z\n\n",
        ];
        let mut out = STREAMS[rng.below(STREAMS.len())].to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(out.len() + 1);
            match rng.below(3) {
                0 => out.insert(at, rng.next() as u8),
                1 if at < out.len() => out[at] = rng.next() as u8,
                _ if at < out.len() => {
                    out.remove(at);
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn random_soup_in_random_chunks() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for round in 0..4000 {
            let input = if round % 2 == 0 {
                soup(&mut rng)
            } else {
                mutated(&mut rng)
            };
            // A third of the rounds use a tiny limit, to exercise overflows.
            let limit = if rng.below(3) == 0 {
                rng.below(24)
            } else {
                MAX_EVENT_BYTES
            };

            let whole = run(&[&input], limit);

            let mut chunks = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let max = if rng.below(4) == 0 { 64 } else { 6 };
                let size = 1 + rng.below(max);
                let (chunk, tail) = rest.split_at(size.min(rest.len()));
                chunks.push(chunk);
                rest = tail;
            }
            assert_eq!(run(&chunks, limit), whole, "chunks {chunks:?}");
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(run(&bytes, limit), whole, "one byte at a time: {input:?}");

            if limit == MAX_EVENT_BYTES {
                assert!(!whole.overflowed);
                assert_eq!(
                    (whole.events, whole.last_event_id, whole.retry),
                    reference(&input),
                    "reference model disagrees on \"{}\"",
                    input.escape_ascii()
                );
            }
        }
    }
}
