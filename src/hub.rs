//! The hub: one shared event queue (a `Mutex` and a `Condvar`), the history
//! ring, ids, and subscriber cursors.
//!
//! This module never touches a socket. Publishers call [`Hub::publish`];
//! each subscriber thread owns a [`Subscription`] and calls
//! [`Subscription::next`] in a loop, writing the bytes it gets outside the lock.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use tinysse::{Event, Hub, Next};
//!
//! let hub = Arc::new(Hub::new());
//! let mut subscription = hub.subscribe(None, None)?;
//! let ids = hub.publish_batch("t", vec![Event::new("a"), Event::new("b")])?;
//! let mut socket = Vec::new(); // what the subscriber thread would write
//! while let Next::Events(_) = subscription.next(&mut socket, Duration::ZERO) {}
//! let expected = format!("id: {}\ndata: a\n\nid: {}\ndata: b\n\n", ids[0], ids[1]);
//! assert_eq!(socket, expected.into_bytes());
//! # Ok::<(), tinysse::Error>(())
//! ```

// Implementation notes
//
// Every published event gets a sequence number `seq`, one more than the last,
// across all topics. The history holds the newest events in seq order with no
// holes, so the event with seq `s` sits at index `s - first_seq`: a cursor
// finds its place without searching. The public id of an event is
// `<run>-<seq>`, where `run` is the hub's start time in milliseconds (made
// unique within the process), so ids from another run of the server are never
// mistaken for ours.
//
// A subscriber's cursor is the seq of the last event it has looked at
// (delivered or skipped because of its topics). When the history has moved past
// the cursor, the subscriber missed events; it gets a `gap` event only if one of
// the events it missed was for one of its topics, which `evicted` tracks.
//
// Subscriptions wait in groups, each with its own condvar (all under the one
// mutex): one group per topic for the subscriptions to that topic alone, and
// `all` for those to every topic or to several. An event on topic `t` wakes
// the group of `t` and `all`, never the subscribers of other topics.
//
// Waking a group is a relay. `waiting` counts its threads in `wait_timeout`;
// a publish sets `behind = waiting`, since each of them has something new
// now, and a waiter that wakes after a publish counts itself out of `behind`.
// While `behind > 0` a relay is running: each woken thread notifies one more
// before it writes. A publish starts a relay only when none runs; a running
// one reaches the newer waiters too, as they queue after the older ones. A
// notify that reaches a thread with nothing new (the kernel chose another, or
// an earlier relay got there first) is passed on as well.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Error;
use crate::event::Event;

/// Default number of events the history keeps.
///
/// ```
/// use tinysse::{Event, Hub, hub::DEFAULT_HISTORY_EVENTS};
///
/// let hub = Hub::new();
/// for n in 0..=DEFAULT_HISTORY_EVENTS {
///     hub.publish("t", Event::new(n.to_string()))?;
/// }
/// assert_eq!(hub.stats().history_len, DEFAULT_HISTORY_EVENTS);
/// # Ok::<(), tinysse::Error>(())
/// ```
pub const DEFAULT_HISTORY_EVENTS: usize = 1024;
/// Default number of bytes (encoded frames) the history keeps.
///
/// ```
/// use tinysse::{Config, hub::DEFAULT_HISTORY_BYTES};
///
/// assert_eq!(DEFAULT_HISTORY_BYTES, 4 * 1024 * 1024);
/// assert_eq!(Config::default().history_bytes, DEFAULT_HISTORY_BYTES);
/// ```
pub const DEFAULT_HISTORY_BYTES: usize = 4 * 1024 * 1024;
/// Default number of subscribers at once; one more is refused.
///
/// ```
/// use tinysse::{Config, hub::DEFAULT_MAX_SUBSCRIBERS};
///
/// assert_eq!(DEFAULT_MAX_SUBSCRIBERS, 1024);
/// assert_eq!(Config::default().max_subscribers, DEFAULT_MAX_SUBSCRIBERS);
/// ```
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 1024;
/// The most bytes [`Subscription::next`] hands out in one call (it always hands
/// out at least one whole event). Bounds what one subscriber holds in memory.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use tinysse::{Event, Hub, Next, hub::MAX_BATCH_BYTES};
///
/// let hub = Arc::new(Hub::new());
/// let mut subscription = hub.subscribe(None, None)?;
/// let big = Event::new("x".repeat(MAX_BATCH_BYTES));
/// hub.publish_batch("t", vec![big.clone(), big])?;
/// // One big event per call; the caller writes and clears the buffer in between.
/// assert_eq!(subscription.next(&mut Vec::new(), Duration::ZERO), Next::Events(1));
/// assert_eq!(subscription.next(&mut Vec::new(), Duration::ZERO), Next::Events(1));
/// # Ok::<(), tinysse::Error>(())
/// ```
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Longest topic name, in bytes.
///
/// ```
/// use tinysse::hub::{MAX_TOPIC_BYTES, check_topic};
///
/// assert!(check_topic(&"a".repeat(MAX_TOPIC_BYTES)).is_ok());
/// assert!(check_topic(&"a".repeat(MAX_TOPIC_BYTES + 1)).is_err());
/// ```
pub const MAX_TOPIC_BYTES: usize = 128;
/// How many topics the hub remembers evictions for; past it, every subscriber
/// that falls behind is told of a gap (see the implementation notes).
const MAX_TRACKED_TOPICS: usize = 4096;
/// Most relays a publish starts (one per CPU; see `Subscription::next`).
const MAX_RELAYS: usize = 64;

/// The event queue shared by publishers and subscribers.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tinysse::{Event, Hub, Next};
///
/// let hub = Arc::new(Hub::new());
/// let mut subscription = hub.subscribe(None, None)?;
/// let id = hub.publish("default", Event::new("hello"))?;
/// let mut bytes = Vec::new();
/// assert_eq!(subscription.next(&mut bytes, Duration::from_secs(1)), Next::Events(1));
/// assert_eq!(bytes, format!("id: {id}\ndata: hello\n\n").into_bytes());
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug)]
pub struct Hub {
    /// Guards the history, the cursors' reference points and the subscriber count.
    state: Mutex<State>,
    /// Relays started per publish: the CPUs this process may run on, so that
    /// about as many subscriber threads are runnable at once as can run.
    relays: usize,
    /// This run's id prefix: the start time in milliseconds, unique in the process.
    run: u64,
    /// `State::subscribers`, readable without the lock.
    subscriber_count: AtomicUsize,
    max_events: usize,
    max_bytes: usize,
    max_subscribers: usize,
}

#[derive(Debug)]
struct State {
    /// The newest events, oldest first, with no holes in their seqs.
    history: VecDeque<Entry>,
    /// Sum of `frame.len()` over `history`.
    history_bytes: usize,
    /// The seq the next published event gets. Seqs start at 1.
    next_seq: u64,
    /// Subscriptions alive now.
    subscribers: usize,
    /// Topic → seq of the newest event of that topic evicted from the history.
    evicted: HashMap<Arc<str>, u64>,
    /// Every event up to this seq counts as evicted for every topic (set when
    /// `evicted` is cleared to bound its size).
    evicted_floor: u64,
    /// `gap` events handed out, for the metrics.
    gaps: u64,
    /// Set by `close`: subscriptions end.
    closed: bool,
    /// The subscriptions to all topics, or to several.
    all: Group,
    /// Topic → the subscriptions to that topic alone; a topic is here while
    /// it has one.
    topics: HashMap<Arc<str>, Group>,
}

impl State {
    /// The group of a subscription to `topic` alone, or to all or several
    /// topics (`None`).
    fn group(&mut self, topic: Option<&Arc<str>>) -> &mut Group {
        match topic.and_then(|topic| self.topics.get_mut(topic)) {
            Some(group) => group,
            // A subscription's group lives as long as it does; `all` is the
            // answer for one that is not grouped by topic.
            None => &mut self.all,
        }
    }
}

/// Subscriptions woken together: those of one topic, or those of all or
/// several topics. Events on a topic wake its group and the `all` group only.
#[derive(Debug, Default)]
struct Group {
    /// What its subscriptions wait on. After a publish, `Hub::relays` of
    /// them are notified and each passes the wake-up on to one more (see
    /// `Subscription::next`); `close` notifies all of them.
    wake: Arc<Condvar>,
    /// Subscriptions in the group.
    members: usize,
    /// Events published for the group so far.
    published: u64,
    /// Members waiting on `wake` now.
    waiting: usize,
    /// Of those, how many began waiting before the group's newest event,
    /// and so have something to look at: the relay goes on while this is
    /// above zero.
    behind: usize,
}

impl Group {
    /// Counts a published event; returns the condvar to start a relay on,
    /// if members wait and no relay runs.
    fn publish(&mut self) -> Option<Arc<Condvar>> {
        self.published += 1;
        // A running relay (someone is behind) reaches the members that
        // start waiting now too, as they queue after the ones it has yet to
        // wake.
        let running = self.behind > 0;
        // Every waiting member has something new to look at now.
        self.behind = self.waiting;
        (!running && self.waiting > 0).then(|| Arc::clone(&self.wake))
    }
}

impl State {
    fn first_seq(&self) -> u64 {
        self.next_seq - self.history.len() as u64
    }
}

#[derive(Debug)]
struct Entry {
    topic: Arc<str>,
    /// The encoded event, `id:` line included.
    frame: Box<[u8]>,
}

/// Figures about the hub, read at one instant.
///
/// ```
/// use std::sync::Arc;
/// use tinysse::{Event, Hub, hub::HubStats};
///
/// let hub = Arc::new(Hub::new());
/// let _subscription = hub.subscribe(None, None)?;
/// let id = hub.publish("t", Event::new("a"))?;
/// let frame = format!("id: {id}\ndata: a\n\n");
/// let expected = HubStats { subscribers: 1, published: 1, history_len: 1, history_bytes: frame.len(), gaps: 0 };
/// assert_eq!(hub.stats(), expected);
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubStats {
    /// Subscriptions alive now.
    pub subscribers: usize,
    /// Events published since the hub started.
    pub published: u64,
    /// Events in the history.
    pub history_len: usize,
    /// Bytes of encoded frames in the history.
    pub history_bytes: usize,
    /// `gap` events handed out since the hub started.
    pub gaps: u64,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new()
    }
}

impl Hub {
    /// A hub with the default limits.
    ///
    /// Ids are `<run>-<seq>`: `run` differs between hubs, `seq` counts from 1.
    ///
    /// ```
    /// use tinysse::{Event, Hub};
    ///
    /// let hub = Hub::new();
    /// let first = hub.publish("t", Event::new("a"))?;
    /// let run = first.strip_suffix("-1").unwrap();
    /// assert_eq!(hub.publish("t", Event::new("b"))?, format!("{run}-2"));
    /// assert_ne!(Hub::new().publish("t", Event::new("a"))?, first);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn new() -> Hub {
        Hub {
            state: Mutex::new(State {
                history: VecDeque::new(),
                history_bytes: 0,
                next_seq: 1,
                subscribers: 0,
                evicted: HashMap::new(),
                evicted_floor: 0,
                gaps: 0,
                closed: false,
                all: Group::default(),
                topics: HashMap::new(),
            }),
            relays: cpus().min(MAX_RELAYS),
            run: new_run_id(),
            subscriber_count: AtomicUsize::new(0),
            max_events: DEFAULT_HISTORY_EVENTS,
            max_bytes: DEFAULT_HISTORY_BYTES,
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
        }
    }

    /// Keeps at most `events` events and `bytes` bytes of encoded frames in the
    /// history, dropping the oldest first. The newest event is always kept,
    /// even when it alone is larger than `bytes`. `events` is at least 1.
    ///
    /// ```
    /// use tinysse::{Event, Hub};
    ///
    /// let hub = Hub::new().with_history(2, 64);
    /// for data in ["a", "b", "c"] {
    ///     hub.publish("t", Event::new(data))?;
    /// }
    /// assert_eq!(hub.stats().history_len, 2); // bounded by events
    /// hub.publish("t", Event::new("x".repeat(100)))?;
    /// assert_eq!(hub.stats().history_len, 1); // bounded by bytes, the newest kept
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_history(mut self, events: usize, bytes: usize) -> Hub {
        self.max_events = events.max(1);
        self.max_bytes = bytes;
        self
    }

    /// Allows at most `count` subscriptions at once.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tinysse::{Error, Hub};
    ///
    /// let hub = Arc::new(Hub::new().with_max_subscribers(1));
    /// let _first = hub.subscribe(None, None)?;
    /// assert!(matches!(hub.subscribe(None, None), Err(Error::Full)));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_max_subscribers(mut self, count: usize) -> Hub {
        self.max_subscribers = count;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves consistent state behind (every
        // update is done before anything that can panic), so recover the guard.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes one event on `topic` and returns its id.
    ///
    /// Fails with [`Error::BadTopic`] or [`Error::InvalidEvent`] (including when
    /// the event already has an id: ids are assigned here).
    ///
    /// ```
    /// use tinysse::{Error, Event, Hub};
    ///
    /// let hub = Hub::new();
    /// let id = hub.publish("rooms/lobby", Event::new("hi").with_event("chat"))?;
    /// assert!(id.ends_with("-1"));
    /// let with_id = Event::new("x").with_id("7");
    /// assert!(matches!(hub.publish("t", with_id), Err(Error::InvalidEvent(_))));
    /// assert!(matches!(hub.publish("no spaces", Event::new("x")), Err(Error::BadTopic)));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn publish(&self, topic: &str, event: Event) -> Result<String, Error> {
        let mut ids = self.publish_batch(topic, vec![event])?;
        Ok(ids.pop().unwrap_or_default())
    }

    /// Publishes several events on `topic`, in order, all or nothing: if any is
    /// invalid none is published. Returns their ids, which are consecutive.
    ///
    /// ```
    /// use tinysse::{Event, Hub};
    ///
    /// let hub = Hub::new();
    /// let bad = vec![Event::new("ok"), Event::new("x").with_event("a\nb")];
    /// assert!(hub.publish_batch("t", bad).is_err());
    /// let ids = hub.publish_batch("t", vec![Event::new("1"), Event::new("2")])?;
    /// let run = ids[0].strip_suffix("-1").unwrap(); // seq 1: nothing was published before
    /// assert_eq!(ids, [format!("{run}-1"), format!("{run}-2")]);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn publish_batch(&self, topic: &str, events: Vec<Event>) -> Result<Vec<String>, Error> {
        let mut published = self.publish_batch_deferred(topic, events)?;
        Ok(std::mem::take(&mut published.ids))
    }

    /// Like [`Hub::publish_batch`], but subscribers are woken only when the
    /// returned [`Published`] is dropped: a server can answer its publisher
    /// first, before thousands of subscriber threads compete for the CPU.
    /// The events are in the history already (a subscriber that looks now
    /// sees them).
    ///
    /// ```
    /// use tinysse::{Event, Hub};
    ///
    /// let hub = Hub::new();
    /// let published = hub.publish_batch_deferred("t", vec![Event::new("a")])?;
    /// assert_eq!(published.ids.len(), 1);
    /// drop(published); // wakes the subscribers
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn publish_batch_deferred(
        &self,
        topic: &str,
        events: Vec<Event>,
    ) -> Result<Published<'_>, Error> {
        check_topic(topic)?;
        let mut bodies = Vec::with_capacity(events.len());
        for event in &events {
            if event.id.is_some() {
                return Err(Error::InvalidEvent("ids are assigned by the server"));
            }
            event.validate()?;
            // Encode everything but the id line outside the lock.
            bodies.push(event.encode());
        }
        let topic: Arc<str> = Arc::from(topic);
        let mut ids = Vec::with_capacity(bodies.len());
        let mut state = self.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        for body in bodies {
            let seq = state.next_seq;
            state.next_seq += 1;
            let id = format!("{}-{seq}", self.run);
            let mut frame = Vec::with_capacity(id.len() + 5 + body.len());
            frame.extend_from_slice(b"id: ");
            frame.extend_from_slice(id.as_bytes());
            frame.push(b'\n');
            frame.extend_from_slice(&body);
            state.history_bytes += frame.len();
            state.history.push_back(Entry {
                topic: Arc::clone(&topic),
                frame: frame.into_boxed_slice(),
            });
            self.evict(&mut state);
            ids.push(id);
        }
        let wake = [
            state.all.publish(),
            state.topics.get_mut(&topic).and_then(Group::publish),
        ];
        drop(state);
        Ok(Published {
            hub: self,
            ids,
            wake,
        })
    }

    fn evict(&self, state: &mut State) {
        while state.history.len() > 1
            && (state.history.len() > self.max_events || state.history_bytes > self.max_bytes)
        {
            let seq = state.first_seq();
            let Some(entry) = state.history.pop_front() else {
                break;
            };
            state.history_bytes -= entry.frame.len();
            if state.evicted.len() >= MAX_TRACKED_TOPICS
                && !state.evicted.contains_key(&entry.topic)
            {
                state.evicted.clear();
                state.evicted_floor = seq;
            }
            state.evicted.insert(entry.topic, seq);
        }
    }

    /// Subscribes to `topics` (`None`: all topics), resuming after `last_id`
    /// when given.
    ///
    /// Without `last_id` the subscription gets only events published from now
    /// on. With an id still in the history it gets every matching event after
    /// it. With an unknown id (too old, or from another run) it first gets a
    /// `gap` event whose data is that id, then the whole matching history.
    ///
    /// Fails with [`Error::BadTopic`], with [`Error::Full`] at the subscriber
    /// limit, and with [`Error::Closed`] after [`Hub::close`].
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use tinysse::{Event, Hub};
    ///
    /// let hub = Arc::new(Hub::new());
    /// let first = hub.publish("t", Event::new("1"))?;
    /// let second = hub.publish("t", Event::new("2"))?;
    /// let mut resumed = hub.subscribe(None, Some(&first))?;
    /// let mut bytes = Vec::new();
    /// resumed.next(&mut bytes, Duration::ZERO);
    /// assert_eq!(bytes, format!("id: {second}\ndata: 2\n\n").into_bytes());
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn subscribe(
        self: &Arc<Self>,
        topics: Option<Vec<String>>,
        last_id: Option<&str>,
    ) -> Result<Subscription, Error> {
        if let Some(topics) = &topics {
            for topic in topics {
                check_topic(topic)?;
            }
        }
        let last_id = last_id.filter(|id| !id.is_empty());
        let mut state = self.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        if state.subscribers >= self.max_subscribers {
            return Err(Error::Full);
        }
        state.subscribers += 1;
        self.subscriber_count
            .store(state.subscribers, Ordering::Relaxed);
        let topics: Option<Box<[Arc<str>]>> =
            topics.map(|topics| topics.into_iter().map(Arc::from).collect());
        let group = match topics.as_deref() {
            Some([topic]) => Some(Arc::clone(topic)),
            _ => None,
        };
        let wake = match &group {
            Some(topic) => state.topics.entry(Arc::clone(topic)).or_default(),
            None => &mut state.all,
        };
        wake.members += 1;
        let wake = Arc::clone(&wake.wake);
        let first_seq = state.first_seq();
        let mut pending = Vec::new();
        let (cursor, last_sent) = match last_id {
            None => (state.next_seq - 1, None),
            Some(id) => match self.parse_id(id) {
                // `seq == first_seq - 1` was evicted, but everything after it is
                // still here, so nothing is lost.
                Some(seq) if seq + 1 >= first_seq && seq < state.next_seq => (seq, Some(seq)),
                _ => {
                    Event::new(id).with_event("gap").encode_into(&mut pending);
                    state.gaps += 1;
                    (first_seq - 1, None)
                }
            },
        };
        drop(state);
        Ok(Subscription {
            hub: Arc::clone(self),
            wake,
            reader: Reader {
                topics,
                group,
                passed_on: 0,
                cursor,
                last_sent,
                pending,
            },
        })
    }

    /// Ends every subscription: each [`Subscription::next`] returns
    /// [`Next::Closed`], and publishing and subscribing fail with
    /// [`Error::Closed`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tinysse::{Error, Event, Hub};
    ///
    /// let hub = Arc::new(Hub::new());
    /// hub.close();
    /// assert!(matches!(hub.publish("t", Event::new("x")), Err(Error::Closed)));
    /// assert!(matches!(hub.subscribe(None, None), Err(Error::Closed)));
    /// ```
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.all.wake.notify_all();
        for group in state.topics.values() {
            group.wake.notify_all();
        }
    }

    /// Subscriptions alive now, read without taking the lock.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tinysse::Hub;
    ///
    /// let hub = Arc::new(Hub::new());
    /// let subscription = hub.subscribe(None, None)?;
    /// assert_eq!(hub.subscriber_count(), 1);
    /// drop(subscription); // frees its slot
    /// assert_eq!(hub.subscriber_count(), 0);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn subscriber_count(&self) -> usize {
        self.subscriber_count.load(Ordering::Relaxed)
    }

    /// Figures about the hub now.
    ///
    /// ```
    /// use tinysse::{Event, Hub};
    ///
    /// let hub = Hub::new().with_history(1, usize::MAX);
    /// hub.publish_batch("t", vec![Event::new("a"), Event::new("b")])?;
    /// let stats = hub.stats();
    /// assert_eq!((stats.published, stats.history_len, stats.gaps), (2, 1, 0));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn stats(&self) -> HubStats {
        let state = self.lock();
        HubStats {
            subscribers: state.subscribers,
            published: state.next_seq - 1,
            history_len: state.history.len(),
            history_bytes: state.history_bytes,
            gaps: state.gaps,
        }
    }

    fn parse_id(&self, id: &str) -> Option<u64> {
        let (run, seq) = id.split_once('-')?;
        let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        if !digits(run) || !digits(seq) || run.parse::<u64>().ok()? != self.run {
            return None;
        }
        seq.parse().ok()
    }

    fn format_id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.run)
    }
}

/// Events just published; dropping this wakes the subscribers (see
/// [`Hub::publish_batch_deferred`]).
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use tinysse::{Event, Hub, Next};
///
/// let hub = Arc::new(Hub::new());
/// let mut subscription = hub.subscribe(None, None)?;
/// let published = hub.publish_batch_deferred("t", vec![Event::new("a")])?;
/// let mut bytes = Vec::new();
/// // In the history already, though nobody was woken yet.
/// assert_eq!(subscription.next(&mut bytes, Duration::ZERO), Next::Events(1));
/// assert_eq!(bytes, format!("id: {}\ndata: a\n\n", published.ids[0]).into_bytes());
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "dropping it at once wakes the subscribers; keep it until the publisher is answered"]
pub struct Published<'hub> {
    hub: &'hub Hub,
    /// The ids given to the events, in order.
    pub ids: Vec<String>,
    /// The groups to start relays in when dropped: `all`, and the topic's.
    wake: [Option<Arc<Condvar>>; 2],
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        // Start the relays; each woken subscriber wakes the next one.
        for wake in self.wake.iter().flatten() {
            for _ in 0..self.hub.relays {
                wake.notify_one();
            }
        }
    }
}

/// What [`Subscription::next`] produced.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use tinysse::{Event, Hub, Next};
///
/// let hub = Arc::new(Hub::new());
/// let mut subscription = hub.subscribe(None, Some("12-1"))?; // an id from another run
/// hub.publish("t", Event::new("a"))?;
/// let mut bytes = Vec::new();
/// assert_eq!(subscription.next(&mut bytes, Duration::ZERO), Next::Events(2)); // gap and "a"
/// assert_eq!(subscription.next(&mut bytes, Duration::ZERO), Next::Idle);
/// hub.close();
/// assert_eq!(subscription.next(&mut bytes, Duration::ZERO), Next::Closed);
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Frames were appended: this many events (a `gap` event counts as one).
    Events(usize),
    /// Nothing for this subscription within the timeout: time for a heartbeat.
    Idle,
    /// The hub was closed.
    Closed,
}

/// One subscriber's position in the hub. Dropping it frees its slot.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use tinysse::{Event, Hub};
///
/// let hub = Arc::new(Hub::new());
/// let mut subscription = hub.subscribe(Some(vec!["a".into(), "b".into()]), None)?;
/// let a = hub.publish("a", Event::new("1"))?;
/// hub.publish("c", Event::new("2"))?; // another topic: skipped
/// let b = hub.publish("b", Event::new("3"))?;
/// let mut bytes = Vec::new();
/// subscription.next(&mut bytes, Duration::ZERO);
/// assert_eq!(bytes, format!("id: {a}\ndata: 1\n\nid: {b}\ndata: 3\n\n").into_bytes());
/// # Ok::<(), tinysse::Error>(())
/// ```
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    /// Its group's condvar.
    wake: Arc<Condvar>,
    reader: Reader,
}

/// A subscription's own state: what it reads and how far it got. Apart from
/// the hub and the condvar, so that `next` can lend those out while it
/// changes this.
#[derive(Debug)]
struct Reader {
    /// `None`: all topics.
    topics: Option<Box<[Arc<str>]>>,
    /// Seq of the last event looked at (sent or skipped).
    cursor: u64,
    /// Seq of the last event sent (or the id the client resumed from).
    last_sent: Option<u64>,
    /// Frames to send before anything else (the `gap` for an unknown last id).
    pending: Vec<u8>,
    /// The topic of its `Group`; `None` for the group of all or several topics.
    group: Option<Arc<str>>,
    /// `Group::published` when it last passed on a wake-up that had
    /// nothing for it.
    passed_on: u64,
}

impl Subscription {
    /// Waits up to `timeout` for events for this subscription and appends their
    /// frames to `out`, at most about [`MAX_BATCH_BYTES`] per call.
    ///
    /// A subscription that fell so far behind that events for it left the
    /// history first gets a `gap` event (data: the id of the last event it was
    /// sent, empty if none), then continues from the oldest event held.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use tinysse::{Event, Hub, Next};
    ///
    /// let hub = Arc::new(Hub::new().with_history(1, usize::MAX));
    /// let mut subscription = hub.subscribe(None, None)?;
    /// hub.publish("t", Event::new("lost"))?;
    /// let id = hub.publish("t", Event::new("kept"))?;
    /// let mut bytes = Vec::new();
    /// assert_eq!(subscription.next(&mut bytes, Duration::ZERO), Next::Events(2));
    /// assert_eq!(bytes, format!("event: gap\ndata: \n\nid: {id}\ndata: kept\n\n").into_bytes());
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn next(&mut self, out: &mut Vec<u8>, timeout: Duration) -> Next {
        let mut relay = false;
        let next = self
            .reader
            .next_locked(&self.hub, &self.wake, out, timeout, &mut relay);
        // Passed on after the lock is released, so that the woken thread
        // does not find it taken, and before this thread writes, so that a
        // stalled client cannot hold up the relay.
        if relay {
            self.wake.notify_one();
        }
        next
    }
}

impl Reader {
    /// [`Subscription::next`] under the lock. Sets `relay` when this thread
    /// owes the relay a wake-up.
    fn next_locked(
        &mut self,
        hub: &Hub,
        wake: &Condvar,
        out: &mut Vec<u8>,
        timeout: Duration,
        relay: &mut bool,
    ) -> Next {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = hub.lock();
        let mut events = 0;
        if !self.pending.is_empty() {
            out.append(&mut self.pending);
            events += 1;
        }
        loop {
            if state.closed {
                return Next::Closed;
            }
            // Events may have left the history since the cursor last moved
            // (while this thread was writing, or between `subscribe` and now).
            if self.cursor + 1 < state.first_seq() {
                if self.missed_events(&state) {
                    let last = self.last_sent.map(|seq| hub.format_id(seq));
                    Event::new(last.unwrap_or_default())
                        .with_event("gap")
                        .encode_into(out);
                    state.gaps += 1;
                    events += 1;
                }
                self.cursor = state.first_seq() - 1;
            }
            events += self.collect(out, &state);
            if events > 0 {
                return Next::Events(events);
            }
            // Nothing yet, or only events for other topics: wait for more
            // until the deadline.
            let remaining = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if remaining.is_zero() {
                return Next::Idle;
            }
            if std::mem::take(relay) {
                wake.notify_one();
            }
            // A hand-rolled wait rather than `wait_timeout_while`: the relay
            // must count and pass on every wake-up, spurious ones included.
            // The deadline is fixed before the loop, so a wake-up never
            // restarts the whole timeout.
            let group = state.group(self.group.as_ref());
            let waited_at = group.published;
            group.waiting += 1;
            let (guard, woken) = wake
                .wait_timeout(state, remaining)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state = guard;
            let group = state.group(self.group.as_ref());
            group.waiting = group.waiting.saturating_sub(1);
            let published = group.published > waited_at;
            if published {
                group.behind = group.behind.saturating_sub(1);
            }
            // The relay: a publish wakes one waiting subscriber (one per
            // CPU), and each woken one wakes the next while some are still
            // behind. The waiters run one after another instead of all at
            // once, so the CPU stays free for publishers, no thread queues on
            // the lock, and events that arrive during a round are picked up
            // together by the subscribers not yet visited.
            //
            // A wake-up that reached a subscriber with nothing new (an extra
            // one, or the kernel chose another waiter) is passed on too, so
            // that none is lost, but by each subscriber once per event at
            // most: while a woken subscriber has not run yet, the others
            // would otherwise hand the wake-up around until it does.
            let stray = !published && !woken.timed_out() && self.passed_on != group.published;
            *relay = group.behind > 0 && (published || stray);
            if *relay && stray {
                self.passed_on = group.published;
            }
        }
    }

    /// Appends matching frames after the cursor (at most about a batch), moving
    /// the cursor past every event looked at. Returns the number appended.
    fn collect(&mut self, out: &mut Vec<u8>, state: &State) -> usize {
        let first_seq = state.first_seq();
        let start = (self.cursor + 1).max(first_seq);
        let mut events = 0;
        for seq in start..state.next_seq {
            if out.len() >= MAX_BATCH_BYTES {
                break;
            }
            let entry = &state.history[(seq - first_seq) as usize];
            self.cursor = seq;
            if self.wants(&entry.topic) {
                out.extend_from_slice(&entry.frame);
                self.last_sent = Some(seq);
                events += 1;
            }
        }
        events
    }

    fn wants(&self, topic: &str) -> bool {
        match &self.topics {
            None => true,
            Some(topics) => topics.iter().any(|wanted| &**wanted == topic),
        }
    }

    /// Whether an event for this subscription left the history unsent.
    fn missed_events(&self, state: &State) -> bool {
        match &self.topics {
            None => true,
            Some(topics) => {
                state.evicted_floor > self.cursor
                    || topics.iter().any(|topic| {
                        state
                            .evicted
                            .get(topic)
                            .is_some_and(|&seq| seq > self.cursor)
                    })
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        state.subscribers = state.subscribers.saturating_sub(1);
        self.hub
            .subscriber_count
            .store(state.subscribers, Ordering::Relaxed);
        let topic = self.reader.group.as_ref();
        let group = state.group(topic);
        group.members = group.members.saturating_sub(1);
        if group.members == 0 {
            if let Some(topic) = topic {
                state.topics.remove(topic);
            }
        }
    }
}

/// Checks a topic name: 1 to [`MAX_TOPIC_BYTES`] characters of
/// `A-Z a-z 0-9 - _ . ~ : /`.
///
/// ```
/// assert!(tinysse::hub::check_topic("rooms/lobby").is_ok());
/// assert!(tinysse::hub::check_topic("").is_err());
/// assert!(tinysse::hub::check_topic("a b").is_err());
/// ```
pub fn check_topic(topic: &str) -> Result<(), Error> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.~:/".contains(&b);
    if topic.is_empty() || topic.len() > MAX_TOPIC_BYTES || !topic.bytes().all(allowed) {
        return Err(Error::BadTopic);
    }
    Ok(())
}

/// The start time in milliseconds, made strictly greater than any earlier run id
/// in this process, so that two hubs never share ids. Across processes the
/// clock does it: a restart takes longer than a millisecond.
/// The CPUs this process may run on: its affinity list in
/// `/proc/self/status`, 1 where there is none. (`std::thread::available_parallelism`
/// also reads cgroup quotas, which adds 13 KB to the binary.)
fn cpus() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let list = status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?;
            Some(count_cpus(list.trim()))
        })
        .filter(|&count| count > 0)
        .unwrap_or(1)
}

/// The number of CPUs in a Linux CPU list such as `0-3,8,10-11`; 0 if it
/// does not parse.
fn count_cpus(list: &str) -> usize {
    let mut count = 0usize;
    for range in list.split(',') {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        match (first.parse::<usize>(), last.parse::<usize>()) {
            (Ok(first), Ok(last)) if first <= last => {
                count = count.saturating_add((last - first).saturating_add(1))
            }
            _ => return 0,
        }
    }
    count
}

fn new_run_id() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let run = now.max(last + 1);
        match LAST.compare_exchange(last, run, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return run,
            Err(current) => last = current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::ZERO;

    fn hub(events: usize, bytes: usize) -> Arc<Hub> {
        Arc::new(Hub::new().with_history(events, bytes))
    }

    fn topics(names: &[&str]) -> Option<Vec<String>> {
        Some(names.iter().map(|name| name.to_string()).collect())
    }

    /// Everything the subscription has now, as text.
    fn drain(subscription: &mut Subscription) -> String {
        let mut out = Vec::new();
        while let Next::Events(_) = subscription.next(&mut out, NOW) {}
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ids_grow_and_differ_between_hubs() {
        let first = hub(10, 1 << 20);
        let a = first.publish("t", Event::new("a")).unwrap();
        let b = first.publish("u", Event::new("b")).unwrap();
        assert_eq!(first.parse_id(&a).unwrap() + 1, first.parse_id(&b).unwrap());
        let second = hub(10, 1 << 20);
        let c = second.publish("t", Event::new("a")).unwrap();
        assert_ne!(a, c);
        assert_eq!(second.parse_id(&a), None);
        assert_eq!(first.parse_id(&format!("+{a}")), None);
        assert_eq!(first.parse_id(&a.replace('-', "-+")), None);
    }

    #[test]
    fn live_subscriber_gets_only_new_matching_events() {
        let hub = hub(10, 1 << 20);
        hub.publish("a", Event::new("before")).unwrap();
        let mut sub = hub.subscribe(topics(&["a"]), None).unwrap();
        let id = hub.publish("a", Event::new("one")).unwrap();
        hub.publish("b", Event::new("other")).unwrap();
        assert_eq!(drain(&mut sub), format!("id: {id}\ndata: one\n\n"));
        assert_eq!(sub.next(&mut Vec::new(), NOW), Next::Idle);
    }

    #[test]
    fn resume_replays_after_the_id() {
        let hub = hub(10, 1 << 20);
        let first = hub.publish("a", Event::new("1")).unwrap();
        let second = hub.publish("a", Event::new("2")).unwrap();
        let mut sub = hub.subscribe(None, Some(&first)).unwrap();
        assert_eq!(drain(&mut sub), format!("id: {second}\ndata: 2\n\n"));
    }

    #[test]
    fn unknown_id_gets_gap_then_history() {
        let hub = hub(2, 1 << 20);
        let old = hub.publish("a", Event::new("1")).unwrap();
        hub.publish("a", Event::new("2")).unwrap();
        let third = hub.publish("a", Event::new("3")).unwrap();
        let fourth = hub.publish("a", Event::new("4")).unwrap();
        let expected =
            format!("event: gap\ndata: {old}\n\nid: {third}\ndata: 3\n\nid: {fourth}\ndata: 4\n\n");
        assert_eq!(
            drain(&mut hub.subscribe(None, Some(&old)).unwrap()),
            expected
        );
        let foreign = drain(&mut hub.subscribe(None, Some("12-1")).unwrap());
        assert!(
            foreign.starts_with("event: gap\ndata: 12-1\n\n"),
            "{foreign}"
        );
    }

    #[test]
    fn history_is_bounded_by_bytes_but_keeps_the_newest() {
        let hub = hub(100, 10);
        hub.publish("a", Event::new("a long event")).unwrap();
        hub.publish("a", Event::new("another long event")).unwrap();
        let stats = hub.stats();
        assert_eq!(stats.history_len, 1);
        assert!(stats.history_bytes > 10);
    }

    #[test]
    fn slow_subscriber_gets_gap_only_for_its_topics() {
        let hub = hub(2, 1 << 20);
        let mut quiet = hub.subscribe(topics(&["quiet"]), None).unwrap();
        let mut busy = hub.subscribe(topics(&["busy"]), None).unwrap();
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(hub.publish("busy", Event::new(n.to_string())).unwrap());
        }
        assert_eq!(drain(&mut quiet), "");
        let expected = format!(
            "event: gap\ndata: \n\nid: {}\ndata: 3\n\nid: {}\ndata: 4\n\n",
            ids[3], ids[4]
        );
        assert_eq!(drain(&mut busy), expected);
    }

    #[test]
    fn events_evicted_before_the_first_read_give_a_gap() {
        let hub = hub(2, 1 << 20);
        let first = hub.publish("a", Event::new("1")).unwrap();
        let mut sub = hub.subscribe(None, Some(&first)).unwrap();
        let ids: Vec<String> = (2..=5)
            .map(|n| hub.publish("a", Event::new(n.to_string())).unwrap())
            .collect();
        let expected = format!(
            "event: gap\ndata: {first}\n\nid: {}\ndata: 4\n\nid: {}\ndata: 5\n\n",
            ids[2], ids[3]
        );
        assert_eq!(drain(&mut sub), expected);
        assert_eq!(hub.stats().gaps, 1);

        // Resuming from an unknown id: the gap for the id, then another for
        // the events that left while the replay had not been read yet.
        let mut sub = hub.subscribe(None, Some("unknown")).unwrap();
        let more: Vec<String> = (6..=9)
            .map(|n| hub.publish("a", Event::new(n.to_string())).unwrap())
            .collect();
        let expected = format!(
            "event: gap\ndata: unknown\n\nevent: gap\ndata: \n\nid: {}\ndata: 8\n\nid: {}\ndata: 9\n\n",
            more[2], more[3]
        );
        assert_eq!(drain(&mut sub), expected);
    }

    #[test]
    fn batches_are_all_or_nothing_and_consecutive() {
        let hub = hub(10, 1 << 20);
        let bad = vec![Event::new("ok"), Event::new("x").with_event("a\nb")];
        assert!(hub.publish_batch("t", bad).is_err());
        assert_eq!(hub.stats().published, 0);
        let ids = hub
            .publish_batch("t", vec![Event::new("1"), Event::new("2")])
            .unwrap();
        assert_eq!(
            hub.parse_id(&ids[0]).unwrap() + 1,
            hub.parse_id(&ids[1]).unwrap()
        );
    }

    #[test]
    fn subscriber_limit_and_slot_release() {
        let hub = Arc::new(Hub::new().with_max_subscribers(1));
        let first = hub.subscribe(None, None).unwrap();
        assert!(matches!(hub.subscribe(None, None), Err(Error::Full)));
        drop(first);
        assert!(hub.subscribe(None, None).is_ok());
    }

    #[test]
    fn close_wakes_waiting_subscribers() {
        let hub = hub(10, 1 << 20);
        let mut sub = hub.subscribe(None, None).unwrap();
        let waiter = std::thread::spawn(move || sub.next(&mut Vec::new(), Duration::from_secs(30)));
        hub.close();
        assert_eq!(waiter.join().unwrap(), Next::Closed);
    }

    /// Subscriptions waiting far longer than the test lasts, on topic `a`,
    /// on `b`, on both, and on all topics, fed by `rounds`; returns what
    /// each thread got, by its topics (`""` for all).
    fn relay_check(relays: usize, rounds: impl Fn(&Hub, usize)) -> Vec<(String, usize)> {
        const WAITERS: usize = 24;
        let mut hub = Hub::new();
        hub.relays = relays;
        let hub = Arc::new(hub);
        let threads: Vec<_> = (0..WAITERS)
            .map(|i| {
                let wanted = ["a", "b", "a,b", ""][i % 4];
                let list =
                    (!wanted.is_empty()).then(|| topics(&wanted.split(',').collect::<Vec<_>>()));
                let mut sub = hub.subscribe(list.flatten(), None).unwrap();
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    // Only the relay can wake it before the test gives up.
                    while let Next::Events(_) = sub.next(&mut out, Duration::from_secs(60)) {}
                    (
                        wanted.to_string(),
                        String::from_utf8(out).unwrap().matches("data").count(),
                    )
                })
            })
            .collect();
        rounds(&hub, WAITERS);
        hub.close();
        threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect()
    }

    /// Subscriptions waiting, and those of them behind, over every group.
    fn waiting_and_behind(state: &State) -> (usize, usize) {
        let groups = state.topics.values().chain([&state.all]);
        groups.fold((0, 0), |(waiting, behind), group| {
            (waiting + group.waiting, behind + group.behind)
        })
    }

    #[test]
    fn a_publish_wakes_only_its_topic_and_the_all_group() {
        let hub = hub(10, 1 << 20);
        let subscriptions: Vec<_> = [topics(&["a"]), topics(&["b"]), None, topics(&["a", "b"])]
            .into_iter()
            .map(|topics| hub.subscribe(topics, None).unwrap())
            .collect();
        let groups = |state: &State| {
            let mut groups: Vec<_> = (state.topics.iter())
                .map(|(topic, group)| (topic.to_string(), group.members, group.published))
                .collect();
            groups.sort();
            (groups, state.all.members, state.all.published)
        };
        hub.publish("a", Event::new("x")).unwrap();
        hub.publish("c", Event::new("x")).unwrap();
        let expected = (vec![("a".into(), 1, 1), ("b".into(), 1, 0)], 2, 2);
        assert_eq!(groups(&hub.lock()), expected);
        // A topic's group goes with its last subscription.
        drop(subscriptions);
        assert_eq!(groups(&hub.lock()), (vec![], 0, 2));
    }

    /// Waits until `count` subscriptions wait on the condvar (10 s at most).
    fn until_waiting(hub: &Hub, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while waiting_and_behind(&hub.lock()).0 != count {
            assert!(
                Instant::now() < deadline,
                "subscribers did not start waiting"
            );
            std::thread::yield_now();
        }
    }

    /// Waits until every subscription to `a` got `events` events: sent
    /// means read, since each thread reads before it waits again.
    fn until_delivered(hub: &Hub, waiters: usize, events: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = hub.lock();
            if waiting_and_behind(&state) == (waiters, 0) && state.next_seq > events {
                return;
            }
            drop(state);
            assert!(Instant::now() < deadline, "the relay stopped short");
            std::thread::yield_now();
        }
    }

    #[test]
    fn each_publish_reaches_every_waiter_through_the_relay() {
        for relays in [1, 3] {
            let got = relay_check(relays, |hub, waiters| {
                for round in 0..6 {
                    until_waiting(hub, waiters);
                    hub.publish(["a", "b"][round % 2], Event::new("x")).unwrap();
                    until_delivered(hub, waiters, round as u64 + 1);
                }
            });
            for (topics, count) in got {
                let expected = if topics.len() == 1 { 3 } else { 6 };
                assert_eq!(count, expected, "relays {relays}, topics {topics:?}");
            }
        }
    }

    #[test]
    fn a_burst_reaches_every_waiter_through_the_relay() {
        for relays in [1, 3] {
            let got = relay_check(relays, |hub, waiters| {
                until_waiting(hub, waiters);
                for i in 0..50 {
                    hub.publish(["a", "b"][i % 5 / 4], Event::new("x")).unwrap();
                }
                until_delivered(hub, waiters, 50);
            });
            for (topics, count) in got {
                let expected = match topics.as_str() {
                    "a" => 40,
                    "b" => 10,
                    _ => 50,
                };
                assert_eq!(count, expected, "relays {relays}, topics {topics:?}");
            }
        }
    }

    #[test]
    fn cpu_lists_are_counted() {
        for (list, count) in [
            ("0", 1),
            ("0-1", 2),
            ("0-3,8,10-11", 7),
            ("", 0),
            ("3-1", 0),
            ("0,x", 0),
            ("0-18446744073709551615", usize::MAX),
        ] {
            assert_eq!(count_cpus(list), count, "{list:?}");
        }
        assert!(cpus() >= 1);
    }

    #[test]
    fn topics_are_checked() {
        for good in ["a", "A-z_0.9~:/", &"x".repeat(MAX_TOPIC_BYTES)] {
            assert!(check_topic(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "é", "a?b", &"x".repeat(MAX_TOPIC_BYTES + 1)] {
            assert!(check_topic(bad).is_err(), "{bad}");
        }
    }
}
