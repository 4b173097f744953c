//! A subscription: one subscriber's cursor in the history, the frames it
//! hands out ([`Batch`]), gaps, and the loop that streams it to a writer.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::history::History;
use super::{Hub, State, Waiter};
use crate::Error;
use crate::wire::event::{Event, comment_frame, retry_frame};
use crate::wire::id::{Id, jittered};
use crate::wire::topic::{Topics, check_topic};

/// The most topics one subscription may name; more are refused with 400.
pub(crate) const MAX_TOPICS: usize = 64;
/// The most bytes [`Subscription::next`] hands out in one call (it always
/// hands out at least one whole event).
pub(crate) const MAX_BATCH_BYTES: usize = 64 * 1024;
/// The most frames [`Subscription::next`] hands out in one call: one
/// vectored write takes them all.
const MAX_BATCH_FRAMES: usize = 256;
/// A batch that held more frames than this after a burst gives its memory
/// back, so an idle subscriber holds little.
const IDLE_BATCH_FRAMES: usize = 16;
/// How often an idle stream with heartbeats off checks, at most, that its
/// client is still connected.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// The first check for a departed client, a moment after the stream opened;
/// each later one waits twice as long.
const FIRST_CLOSE_CHECK: Duration = Duration::from_millis(1);
/// The first check for a departed client after the stream wrote something:
/// later than at the start, so that a steady stream of events (faster than
/// this) adds no wake-ups, and soon enough that a client that leaves after
/// a burst is found in a moment.
const TRAFFIC_CLOSE_CHECK: Duration = Duration::from_millis(250);

/// Which events a subscription wants.
#[derive(Debug)]
pub(crate) enum Filter {
    All,
    One(Arc<str>),
    /// Sorted, so that a topic is found without scanning the list.
    Many(Box<[Box<str>]>),
    /// Those a client may read (patterns).
    Allowed(Arc<Topics>),
}

impl Filter {
    /// A filter for `topics`, checked; none means all.
    pub(crate) fn new(topics: &[&str]) -> Result<Filter, Error> {
        if topics.len() > MAX_TOPICS {
            return Err(Error::BadRequest("at most 64 topics in one subscription"));
        }
        for topic in topics {
            check_topic(topic)?;
        }
        // Insertion sort, dropping repeats: a few dozen topics at most, and
        // no generic sort in the binary.
        let mut sorted: Vec<Box<str>> = Vec::with_capacity(topics.len());
        for &topic in topics {
            if let Err(at) = sorted.binary_search_by(|probe| (**probe).cmp(topic)) {
                sorted.insert(at, Box::from(topic));
            }
        }
        Ok(match sorted.len() {
            0 => Filter::All,
            1 => Filter::One(Arc::from(&*sorted[0])),
            _ => Filter::Many(sorted.into_boxed_slice()),
        })
    }

    pub(super) fn wants(&self, topic: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::One(wanted) => **wanted == *topic,
            Filter::Many(wanted) => wanted
                .binary_search_by(|probe| (**probe).cmp(topic))
                .is_ok(),
            Filter::Allowed(topics) => topics.allows(topic),
        }
    }

    /// The topic of the wake-up group, for a subscription to one topic.
    pub(super) fn group(&self) -> Option<Arc<str>> {
        match self {
            Filter::One(topic) => Some(Arc::clone(topic)),
            _ => None,
        }
    }

    /// Whether an event for this filter left the history after `cursor`.
    fn missed(&self, history: &History, cursor: u64) -> bool {
        match self {
            Filter::All | Filter::Allowed(_) => {
                history.evicted_after(cursor, None::<std::iter::Empty<&str>>)
            }
            Filter::One(topic) => history.evicted_after(cursor, Some([&**topic].into_iter())),
            Filter::Many(topics) => {
                history.evicted_after(cursor, Some(topics.iter().map(|topic| &**topic)))
            }
        }
    }
}

/// Frames to write, as [`Subscription::next`] hands them out: shared with the
/// history (and with the other subscribers), never copied.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use tinysse::{Batch, Event, Hub, Next};
///
/// let hub = Arc::new(Hub::new());
/// let mut subscription = hub.subscribe(&[], None)?;
/// let id = hub.publish("t", Event::new("hi"))?;
/// let mut batch = Batch::new();
/// subscription.next(&mut batch, Duration::ZERO);
/// let mut out = Vec::new();
/// batch.write_to(&mut out)?; // one vectored write per call, as the socket takes it
/// assert_eq!(out, format!("id: {id}\ndata: hi\n\n").into_bytes());
/// assert!(batch.is_empty());
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Batch {
    frames: Vec<Arc<[u8]>>,
    bytes: usize,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes to write.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn push(&mut self, frame: Arc<[u8]>) {
        self.bytes += frame.len();
        self.frames.push(frame);
    }

    fn is_full(&self) -> bool {
        self.bytes >= MAX_BATCH_BYTES || self.frames.len() >= MAX_BATCH_FRAMES
    }

    /// Writes every frame to `out` with vectored writes (a short write, normal
    /// on a full socket, is continued where it stopped), then empties the
    /// batch. On an error the batch is emptied too: what was not written is
    /// lost with the connection.
    pub fn write_to(&mut self, out: &mut impl Write) -> io::Result<()> {
        let result = write_all_vectored(out, &self.frames);
        self.bytes = 0;
        self.frames.clear();
        if self.frames.capacity() > IDLE_BATCH_FRAMES {
            self.frames = Vec::new();
        }
        result
    }
}

/// `write_all` for several buffers at once.
fn write_all_vectored(out: &mut impl Write, frames: &[Arc<[u8]>]) -> io::Result<()> {
    // (frame, offset): where the next byte to write is.
    let (mut frame, mut offset) = (0, 0);
    let mut slices = Vec::new();
    while frame < frames.len() {
        slices.clear();
        slices.push(IoSlice::new(&frames[frame][offset..]));
        slices.extend(frames[frame + 1..].iter().map(|bytes| IoSlice::new(bytes)));
        let mut written = match out.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(count) => count,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        while frame < frames.len() && written >= frames[frame].len() - offset {
            written -= frames[frame].len() - offset;
            (frame, offset) = (frame + 1, 0);
        }
        offset += written;
    }
    Ok(())
}

/// What [`Subscription::next`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Frames were added to the batch: this many events (a `gap` event
    /// counts as one).
    Events(usize),
    /// Nothing for this subscription within the timeout: time for a heartbeat.
    Idle,
    /// The hub was closed.
    Closed,
}

/// One subscriber's position in the hub. Dropping it frees its slot.
///
/// Stream it to any writer with [`Subscription::write_http`] (a whole HTTP
/// response) or [`Subscription::write_events`] (the event stream alone), or
/// take its frames batch by batch with [`Subscription::next`].
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    /// This subscription's wake-up.
    waiter: Arc<Waiter>,
    filter: Filter,
    /// The topic of its wake-up group; `None` for the group of all or
    /// several topics.
    group: Option<Arc<str>>,
    /// Position of the last event looked at (sent, or skipped for its topics).
    cursor: u64,
    /// Id of the last event sent (or the id the client resumed from).
    last_sent: Option<Id>,
    /// Frames to send before any from the history: the `gap` for an unknown
    /// id it resumed from, or events the log replayed.
    pending: VecDeque<Arc<[u8]>>,
    /// The relay handed it the baton, to pass on (see `relay.rs`).
    baton: bool,
}

/// How the stream loop writes a subscription.
pub(crate) struct Streaming<'a> {
    /// Time between heartbeat comments; zero turns them off.
    pub(crate) heartbeat: Duration,
    /// The reconnection time, jittered for the last `retry:` at close.
    pub(crate) retry_ms: u64,
    /// Whether the client has gone, looked at while idle: a thread waiting
    /// on the hub cannot see its client's FIN otherwise.
    pub(crate) peer_closed: Option<&'a dyn Fn() -> bool>,
    /// Counts each write: events, bytes.
    pub(crate) sent: &'a dyn Fn(usize, usize),
    /// When the stream ends, if it does (its client's access expires).
    pub(crate) until: Option<Instant>,
}

/// How a stream ended, when not by an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The hub closed; the stream said goodbye with a last `retry:`.
    Closed,
    /// Its access expired; it said so in a last comment.
    Expired,
}

impl Subscription {
    pub(super) fn new(
        hub: Arc<Hub>,
        filter: Filter,
        group: Option<Arc<str>>,
        cursor: u64,
        last_sent: Option<Id>,
        pending: VecDeque<Arc<[u8]>>,
    ) -> Subscription {
        Subscription {
            hub,
            waiter: Arc::default(),
            filter,
            group,
            cursor,
            last_sent,
            pending,
            baton: false,
        }
    }

    /// Waits up to `timeout` for events for this subscription and adds their
    /// frames to `batch`, at most 64 KiB (and at least one event) per call.
    ///
    /// A subscription that fell so far behind that events for it left the
    /// history first gets a `gap` event (data: the id of the last event it was
    /// sent, empty if none), then continues from the oldest event held.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use tinysse::{Batch, Event, Hub, Next};
    ///
    /// let hub = Arc::new(Hub::new().with_history(1, usize::MAX));
    /// let mut subscription = hub.subscribe(&[], None)?;
    /// hub.publish("t", Event::new("lost"))?;
    /// let id = hub.publish("t", Event::new("kept"))?;
    /// let mut batch = Batch::new();
    /// assert_eq!(subscription.next(&mut batch, Duration::ZERO), Next::Events(2));
    /// let mut bytes = Vec::new();
    /// batch.write_to(&mut bytes)?;
    /// assert_eq!(bytes, format!("event: gap\ndata: \n\nid: {id}\ndata: kept\n\n").into_bytes());
    /// assert_eq!(subscription.next(&mut batch, Duration::ZERO), Next::Idle);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn next(&mut self, batch: &mut Batch, timeout: Duration) -> Next {
        let deadline = Instant::now().checked_add(timeout);
        let hub = Arc::clone(&self.hub);
        let mut state = hub.lock();
        let mut events = 0;
        while !batch.is_full() {
            let Some(frame) = self.pending.pop_front() else {
                break;
            };
            batch.push(frame);
            events += 1;
        }
        let next = loop {
            if state.closed {
                break Next::Closed;
            }
            // Replayed frames first: they are older than the history.
            if self.pending.is_empty() {
                events += self.collect(&mut state, batch);
            }
            let remaining = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if events > 0 || remaining.is_zero() {
                break if events > 0 {
                    Next::Events(events)
                } else {
                    Next::Idle
                };
            }
            // Nothing yet, or only events for other topics: pass the baton
            // on, if held, and wait.
            if let Some(next) = self.pass_baton(&mut state) {
                next.wake.notify_one();
            }
            let waiter = Arc::clone(&self.waiter);
            state
                .group(self.group.as_ref())
                .relay
                .wait(Arc::clone(&waiter));
            state = waiter
                .wake
                .wait_timeout(state, remaining)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            if waiter.handed.swap(false, Ordering::Relaxed) {
                self.baton = true;
            } else {
                state.group(self.group.as_ref()).relay.leave(&waiter);
            }
        };
        // Passed on after the lock is released, so that the woken thread
        // does not find it taken, and before this thread writes, so that a
        // stalled client cannot hold up the relay.
        let next_waiter = self.pass_baton(&mut state);
        drop(state);
        if let Some(waiter) = next_waiter {
            waiter.wake.notify_one();
        }
        next
    }

    /// Gives up the baton, if held: returns the waiter it goes to, to wake.
    fn pass_baton(&mut self, state: &mut MutexGuard<'_, State>) -> Option<Arc<Waiter>> {
        if !std::mem::take(&mut self.baton) {
            return None;
        }
        let next = state.group(self.group.as_ref()).relay.pass()?;
        next.handed.store(true, Ordering::Relaxed);
        Some(next)
    }

    /// Adds matching frames after the cursor (at most a batch), with a `gap`
    /// first if events for it left the history unsent. Returns the number of
    /// events added.
    fn collect(&mut self, state: &mut State, batch: &mut Batch) -> usize {
        let mut events = 0;
        let history = &state.history;
        // Events may have left the history since the cursor last moved
        // (while this thread was writing, or between `subscribe` and now).
        if self.cursor + 1 < history.first() {
            if self.filter.missed(history, self.cursor) {
                let last = self.last_sent.map(|id| id.to_string()).unwrap_or_default();
                batch.push(gap_frame(&last));
                state.gaps += 1;
                events += 1;
            }
            self.cursor = history.first() - 1;
        }
        let history = &state.history;
        while !batch.is_full() {
            let Some(entry) = history.get(self.cursor + 1) else {
                break;
            };
            self.cursor += 1;
            if self.filter.wants(&entry.topic) {
                batch.push(Arc::clone(&entry.frame));
                self.last_sent = Some(entry.id);
                events += 1;
            }
        }
        events
    }

    /// Writes the whole HTTP response of an event stream to `out`: the
    /// response head (`200`, `Content-Type: text/event-stream`, no caching,
    /// no proxy buffering), then the stream as [`Subscription::write_events`]
    /// does.
    ///
    /// ```no_run
    /// use std::{net::TcpListener, sync::Arc, time::Duration};
    /// use tinysse::Hub;
    ///
    /// let hub = Arc::new(Hub::new());
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// for socket in listener.incoming() {
    ///     let (mut socket, hub) = (socket?, Arc::clone(&hub));
    ///     std::thread::spawn(move || {
    ///         // (a real server reads the request head first)
    ///         let subscription = hub.subscribe(&["news"], None)?;
    ///         subscription.write_http(&mut socket, Duration::from_secs(15))
    ///     });
    /// }
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn write_http(self, out: &mut impl Write, heartbeat: Duration) -> Result<(), Error> {
        out.write_all(&crate::http::stream_head(&[]))?;
        self.write_events(out, heartbeat)
    }

    /// Streams events to `out` until the hub closes or a write fails: first
    /// `retry:` (the hub's reconnection time), then each event as it is
    /// published, and a heartbeat comment after `heartbeat` without one
    /// (zero: never). When the hub closes, it writes a last `retry:` with
    /// random jitter, so that clients do not all come back at once.
    pub fn write_events(mut self, out: &mut impl Write, heartbeat: Duration) -> Result<(), Error> {
        out.write_all(&retry_frame(self.hub.retry_ms()))?;
        let how = Streaming {
            heartbeat,
            retry_ms: self.hub.retry_ms(),
            peer_closed: None,
            sent: &|_, _| {},
            until: None,
        };
        self.stream(out, &how)?;
        Ok(())
    }

    /// The stream loop: writes what the hub hands out, a heartbeat when idle.
    /// Returns how it ended (the hub closed, after a last jittered `retry:`;
    /// or the access expired, after a last comment), or an error when a
    /// write failed or the client left.
    pub(crate) fn stream(&mut self, out: &mut impl Write, how: &Streaming<'_>) -> io::Result<End> {
        let mut batch = Batch::new();
        let heartbeat = how.heartbeat;
        // Without heartbeats, an idle stream still checks its client this often.
        let longest_check = if heartbeat.is_zero() {
            IDLE_CHECK
        } else {
            heartbeat
        };
        // An idle stream looks for its client's FIN at growing intervals: a
        // client that leaves at once (a reconnect storm, a page closed) frees
        // its thread within milliseconds, and a long-lived idle one costs a
        // dozen extra wake-ups.
        let mut check_every = FIRST_CLOSE_CHECK;
        let mut last_write = Instant::now();
        loop {
            let until_heartbeat = match heartbeat.is_zero() {
                true => Duration::MAX,
                false => heartbeat.saturating_sub(last_write.elapsed()),
            };
            let wait = match how.peer_closed {
                Some(_) => check_every.min(until_heartbeat),
                None => until_heartbeat,
            };
            // SPEC §10: "an open stream whose token expires is ended when it
            // is no longer valid ... with a last comment saying so".
            let wait = match how.until {
                Some(until) if until <= Instant::now() => {
                    out.write_all(&comment_frame("access expired, closing the stream"))?;
                    return Ok(End::Expired);
                }
                Some(until) => wait.min(until.saturating_duration_since(Instant::now())),
                None => wait,
            };
            let events = match self.next(&mut batch, wait) {
                Next::Events(count) => count,
                Next::Idle => {
                    // Also before a heartbeat: the first write after a client
                    // left still succeeds (the client answers it with a reset).
                    if how.peer_closed.is_some_and(|closed| closed()) {
                        return Err(io::ErrorKind::ConnectionAborted.into());
                    }
                    check_every = check_every.saturating_mul(2).min(longest_check);
                    if heartbeat.is_zero() || last_write.elapsed() < heartbeat {
                        continue;
                    }
                    batch.push(Arc::from(comment_frame("heartbeat")));
                    0
                }
                Next::Closed => {
                    out.write_all(&retry_frame(jittered(how.retry_ms)))?;
                    return Ok(End::Closed);
                }
            };
            let bytes = batch.bytes();
            batch.write_to(out)?;
            (how.sent)(events, bytes);
            last_write = Instant::now();
            if events > 0 {
                check_every = TRAFFIC_CLOSE_CHECK.min(longest_check);
            }
        }
    }
}

/// The `gap` event: data is the id that could not be found.
pub(super) fn gap_frame(id: &str) -> Arc<[u8]> {
    Arc::from(Event::new(id).with_event("gap").encode())
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let hub = Arc::clone(&self.hub);
        let mut state = hub.lock();
        // A baton held is passed on, so that no waiter is left behind.
        if let Some(next) = self.pass_baton(&mut state) {
            next.wake.notify_one();
        }
        state.subscribers = state.subscribers.saturating_sub(1);
        hub.subscriber_count
            .store(state.subscribers, Ordering::Relaxed);
        // Not in line: a subscription waits only inside `next`.
        let group = state.group(self.group.as_ref());
        group.members = group.members.saturating_sub(1);
        if group.members == 0
            && let Some(topic) = &self.group
        {
            state.topics.remove(topic);
        }
    }
}
