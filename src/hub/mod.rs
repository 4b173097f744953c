//! The hub: one shared event queue behind a `Mutex`, the bounded history,
//! ids, subscriptions, and the relay that wakes them.
//!
//! This module never touches a socket. Publishers call [`Hub::publish`];
//! each subscriber thread owns a [`Subscription`] and writes what it gets
//! outside the lock.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use tinysse::{Batch, Event, Hub, Next};
//!
//! let hub = Arc::new(Hub::new());
//! let mut subscription = hub.subscribe(&[], None)?;
//! let ids = hub.publish_batch("t", vec![Event::new("a"), Event::new("b")])?;
//! let mut batch = Batch::new();
//! assert_eq!(subscription.next(&mut batch, Duration::ZERO), Next::Events(2));
//! let mut socket = Vec::new(); // what the subscriber thread would write to
//! batch.write_to(&mut socket)?;
//! let expected = format!("id: {}\ndata: a\n\nid: {}\ndata: b\n\n", ids[0], ids[1]);
//! assert_eq!(socket, expected.into_bytes());
//! # Ok::<(), tinysse::Error>(())
//! ```

// Implementation notes
//
// Every published event gets an id `<run>-<seq>`: `run` names this run of
// the hub, `seq` counts its events across all topics. The history holds the
// newest events in order (`history.rs`); a subscriber's cursor is the
// position of the last event it looked at (sent, or skipped for its
// topics). When the history has moved past the cursor, the subscriber
// missed events, and gets a `gap` event if one of them was for it.
//
// Subscriptions wait in groups, one per topic for the subscriptions to that
// topic alone, and `all` for those to every topic or to several. An event on
// topic `t` wakes the group of `t` and `all`, never the subscribers of other
// topics. Within a group, the relay (`relay.rs`) wakes them one after
// another.

mod history;
mod log;
mod relay;
mod subscription;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::Error;
use crate::wire::event::Event;
use crate::wire::id::{Id, new_run};
use crate::wire::topic::check_topic;

pub(crate) use history::Entry;
use history::History;
pub use log::Level;
use log::Memory;
pub(crate) use log::{Log, Logger};
use relay::Relay;
pub use subscription::{Batch, Next, Subscription};
pub(crate) use subscription::{End, Filter, MAX_TOPICS, Streaming};

/// Default number of events the history keeps.
pub(crate) const DEFAULT_HISTORY_EVENTS: usize = 1024;
/// Default number of bytes (encoded frames) the history keeps.
pub(crate) const DEFAULT_HISTORY_BYTES: usize = 4 * 1024 * 1024;
/// Default number of subscribers at once; one more is refused with
/// [`Error::Full`].
pub(crate) const DEFAULT_MAX_SUBSCRIBERS: usize = 1024;
/// Default reconnection time sent to subscribers, in milliseconds.
pub(crate) const DEFAULT_RETRY_MS: u64 = 3000;
/// Most batons a publish hands out (one per CPU; see `relay.rs`).
const MAX_RELAYS: usize = 64;

/// The event queue shared by publishers and subscribers.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tinysse::{Batch, Event, Hub, Next};
///
/// let hub = Arc::new(Hub::new());
/// let mut subscription = hub.subscribe(&["news"], None)?;
/// let id = hub.publish("news", Event::new("hello"))?;
/// hub.publish("sports", Event::new("not for this subscription"))?;
/// let mut batch = Batch::new();
/// assert_eq!(subscription.next(&mut batch, Duration::from_secs(1)), Next::Events(1));
/// let mut bytes = Vec::new();
/// batch.write_to(&mut bytes)?;
/// assert_eq!(bytes, format!("id: {id}\ndata: hello\n\n").into_bytes());
/// # Ok::<(), tinysse::Error>(())
/// ```
pub struct Hub {
    /// Guards the history, the subscriptions' groups and the counts.
    state: Mutex<State>,
    /// Where accepted events go besides the history (see `log.rs`).
    log: Box<dyn Log>,
    /// Batons a publish hands out: the CPUs this process may run on, so
    /// that about as many subscriber threads are runnable at once as can run.
    relays: usize,
    /// `State::subscribers`, readable without the lock.
    subscriber_count: AtomicUsize,
    max_subscribers: usize,
    /// The reconnection time subscribers are told, in milliseconds.
    retry_ms: u64,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("log", &self.log)
            .field("subscribers", &self.subscriber_count())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    history: History,
    /// This run's id prefix.
    run: u64,
    /// The seq the next event minted here gets. Seqs start at 1.
    next_seq: u64,
    /// Events published since the hub started.
    published: u64,
    /// Subscriptions alive now.
    subscribers: usize,
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
/// several topics.
#[derive(Debug)]
struct Group {
    /// Its subscriptions that wait now, in line.
    relay: Relay<Arc<Waiter>>,
    /// Subscriptions in the group.
    members: usize,
}

/// One subscription's wake-up: a condvar of its own (the relay wakes a
/// waiter it names) and whether the relay handed it the baton.
#[derive(Debug, Default)]
pub(crate) struct Waiter {
    /// Notified by the relay (after the hub lock is released) and at close.
    wake: Condvar,
    /// Set under the hub lock when the relay hands this waiter the baton;
    /// taken by the waiter when it wakes.
    handed: AtomicBool,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Waiter) -> bool {
        std::ptr::eq(self, other)
    }
}

/// Figures about the hub, read at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HubStats {
    pub(crate) subscribers: usize,
    pub(crate) published: u64,
    pub(crate) history_len: usize,
    pub(crate) history_bytes: usize,
    pub(crate) gaps: u64,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new()
    }
}

impl Hub {
    /// A hub with the default limits: 1024 events and 4 MiB in the history,
    /// 1024 subscribers.
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
                history: History::new(DEFAULT_HISTORY_EVENTS, DEFAULT_HISTORY_BYTES),
                run: new_run(),
                next_seq: 1,
                published: 0,
                subscribers: 0,
                gaps: 0,
                closed: false,
                all: Group::new(1),
                topics: HashMap::new(),
            }),
            log: Box::new(Memory),
            relays: 1,
            subscriber_count: AtomicUsize::new(0),
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
            retry_ms: DEFAULT_RETRY_MS,
        }
        .with_relays(cpus().min(MAX_RELAYS))
    }

    fn with_relays(mut self, relays: usize) -> Hub {
        self.relays = relays.max(1);
        self.lock().all = Group::new(self.relays);
        self
    }

    /// Keeps at most `events` events and `bytes` bytes of encoded frames in the
    /// history, dropping the oldest first. The newest event is always kept,
    /// even when it alone is larger than `bytes`. `events` is at least 1.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use tinysse::{Batch, Event, Hub, Next};
    ///
    /// let hub = Arc::new(Hub::new().with_history(2, 1024));
    /// let old = hub.publish("t", Event::new("a"))?;
    /// hub.publish_batch("t", vec![Event::new("b"), Event::new("c"), Event::new("d")])?;
    /// // "b" after `old` left the history too: resuming from `old` starts
    /// // with a gap, then the two events held.
    /// let mut resumed = hub.subscribe(&[], Some(&old))?;
    /// assert_eq!(resumed.next(&mut Batch::new(), Duration::ZERO), Next::Events(3));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_history(self, events: usize, bytes: usize) -> Hub {
        self.lock().history.set_limits(events, bytes);
        self
    }

    /// Allows at most `count` subscriptions at once.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tinysse::{Error, Hub};
    ///
    /// let hub = Arc::new(Hub::new().with_max_subscribers(1));
    /// let _first = hub.subscribe(&[], None)?;
    /// assert!(matches!(hub.subscribe(&[], None), Err(Error::Full)));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_max_subscribers(mut self, count: usize) -> Hub {
        self.max_subscribers = count;
        self
    }

    /// Tells subscribers to wait `millis` milliseconds before reconnecting
    /// (the `retry:` a stream opens with; 3000 by default).
    pub fn with_retry(mut self, millis: u64) -> Hub {
        self.retry_ms = millis;
        self
    }

    /// The reconnection time subscribers are told, in milliseconds.
    pub(crate) fn retry_ms(&self) -> u64 {
        self.retry_ms
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
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
        let mut published = self.publish_deferred(topic, events)?;
        Ok(std::mem::take(&mut published.ids))
    }

    /// Like [`Hub::publish_batch`], but subscribers are woken only when the
    /// returned [`Published`] is dropped: a server can answer its publisher
    /// first, before thousands of subscriber threads compete for the CPU.
    pub(crate) fn publish_deferred(
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
        if self.lock().closed {
            return Err(Error::Closed);
        }
        self.log.append(self, &Arc::from(topic), &events, bodies)
    }

    /// Gives a batch ids of this run and puts it in the history (the memory
    /// log's append).
    fn insert_new(&self, topic: &Arc<str>, bodies: Vec<Vec<u8>>) -> Result<Published<'_>, Error> {
        let mut state = self.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        let ids = Self::take_ids_locked(&mut state, bodies.len());
        Ok(self.insert_locked(state, topic, ids.into_iter().zip(bodies)))
    }

    fn take_ids_locked(state: &mut State, count: usize) -> Vec<Id> {
        let (run, first) = (state.run, state.next_seq);
        state.next_seq += count as u64;
        (first..state.next_seq).map(|seq| Id { run, seq }).collect()
    }

    #[cfg(feature = "journal")]
    /// For a log: the ids of the next `count` events of this run. The log
    /// takes them in publish order (under a lock of its own) and inserts
    /// them in that order.
    pub(crate) fn take_ids(&self, count: usize) -> Result<Vec<Id>, Error> {
        let mut state = self.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        Ok(Self::take_ids_locked(&mut state, count))
    }

    #[cfg(feature = "journal")]
    /// For a log whose append failed: the last `count` ids taken are unused
    /// (nobody took any since: the log's lock is still held).
    pub(crate) fn give_back_ids(&self, count: usize) {
        let mut state = self.lock();
        state.next_seq = state.next_seq.saturating_sub(count as u64);
    }

    #[cfg(any(feature = "journal", feature = "redis"))]
    /// For a log: puts accepted events, with their ids, into the history.
    /// Ids must be greater than every id in the history.
    pub(crate) fn insert(
        &self,
        topic: &Arc<str>,
        events: impl Iterator<Item = (Id, Vec<u8>)>,
    ) -> Published<'_> {
        self.insert_locked(self.lock(), topic, events)
    }

    #[cfg(any(feature = "journal", feature = "redis"))]
    /// Replaces the memory log with `log`, and the history with the events
    /// it loaded (oldest first); ids continue from `next`, or a new run
    /// starts when it is `None`.
    pub(crate) fn with_log(
        mut self,
        log: Box<dyn Log>,
        loaded: impl Iterator<Item = (Id, Arc<str>, Vec<u8>)>,
        next: Option<Id>,
    ) -> Hub {
        self.log = log;
        for (id, topic, body) in loaded {
            drop(self.insert(&topic, std::iter::once((id, body))));
        }
        let mut state = self.lock();
        state.published = 0;
        if let Some(next) = next {
            (state.run, state.next_seq) = (next.run, next.seq);
        }
        drop(state);
        self
    }

    /// What the hub's log loaded at start, in one line: with a journal, how
    /// many events and what was dropped. `None` for a hub in memory only.
    pub fn loaded(&self) -> Option<&str> {
        self.log.loaded()
    }

    #[cfg(any(feature = "journal", feature = "redis"))]
    /// The history's limits: events and bytes.
    pub(crate) fn history_limits(&self) -> (usize, usize) {
        self.lock().history.limits()
    }

    /// Whether publishes can be accepted now, or why not (`/readyz`).
    pub(crate) fn ready(&self) -> Result<(), String> {
        self.log.ready()
    }

    /// The log's lines of `/metrics`.
    pub(crate) fn log_metrics(&self, out: &mut String) {
        self.log.metrics(out);
    }

    /// Puts events with their ids into the history, wakes nobody yet, and
    /// tells the log when older events left.
    fn insert_locked(
        &self,
        mut state: MutexGuard<'_, State>,
        topic: &Arc<str>,
        events: impl Iterator<Item = (Id, Vec<u8>)>,
    ) -> Published<'_> {
        let mut ids = Vec::new();
        let mut dropped = false;
        for (id, body) in events {
            dropped |= state.history.push(Entry::new(id, Arc::clone(topic), &body));
            state.published += 1;
            ids.push(id.to_string());
        }
        let mut wake = state.all.relay.publish();
        if let Some(group) = state.topics.get_mut(topic) {
            wake.extend(group.relay.publish());
        }
        for waiter in &wake {
            waiter.handed.store(true, Ordering::Relaxed);
        }
        let oldest = state.history.first_id().filter(|_| dropped);
        drop(state);
        if let Some(oldest) = oldest {
            self.log.forget_before(oldest);
        }
        Published {
            ids,
            wake,
            _hub: self,
        }
    }

    /// Subscribes to `topics` (none: all topics), resuming after `last_id`
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
    /// use tinysse::{Batch, Event, Hub};
    ///
    /// let hub = Arc::new(Hub::new());
    /// let first = hub.publish("t", Event::new("1"))?;
    /// let second = hub.publish("t", Event::new("2"))?;
    /// let mut resumed = hub.subscribe(&["t"], Some(&first))?;
    /// let (mut batch, mut bytes) = (Batch::new(), Vec::new());
    /// resumed.next(&mut batch, Duration::ZERO);
    /// batch.write_to(&mut bytes)?;
    /// assert_eq!(bytes, format!("id: {second}\ndata: 2\n\n").into_bytes());
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn subscribe(
        self: &Arc<Self>,
        topics: &[&str],
        last_id: Option<&str>,
    ) -> Result<Subscription, Error> {
        self.subscribe_with(Filter::new(topics)?, last_id)
    }

    /// [`Hub::subscribe`] with a filter made by the server.
    pub(crate) fn subscribe_with(
        self: &Arc<Self>,
        filter: Filter,
        last_id: Option<&str>,
    ) -> Result<Subscription, Error> {
        let last_id = last_id.filter(|id| !id.is_empty());
        // An id older than the history may still be in the log (a Redis
        // stream): fetched first, outside the lock.
        let older = last_id.and_then(Id::parse).filter(|id| {
            let state = self.lock();
            state.history.find(*id).is_none()
                && state.history.first_id().is_none_or(|first| *id < first)
        });
        let limit = self.lock().history.limits().0;
        let mut replayed = older.and_then(|id| self.log.replay(id, limit));
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
        let group = filter.group();
        let relays = self.relays;
        let members = match &group {
            Some(topic) => state
                .topics
                .entry(Arc::clone(topic))
                .or_insert_with(|| Group::new(relays)),
            None => &mut state.all,
        };
        members.members += 1;
        let history = &state.history;
        let found = |text: &str| {
            let id = Id::parse(text)?;
            Some((history.find(id)?, id))
        };
        let mut pending = std::collections::VecDeque::new();
        let (cursor, last_sent) = match last_id.map(|text| (text, found(text))) {
            None => (history.end() - 1, None),
            Some((_, Some((position, id)))) => (position, Some(id)),
            // Older than the history, but still in the log: the log's
            // events before the history's, then the history.
            Some((text, None)) if replayed.is_some() => {
                let first = history.first_id();
                let mut last_sent = Id::parse(text);
                for entry in replayed.take().into_iter().flatten() {
                    if first.is_none_or(|first| entry.id < first) && filter.wants(&entry.topic) {
                        last_sent = Some(entry.id);
                        pending.push_back(entry.frame);
                    }
                }
                (history.first() - 1, last_sent)
            }
            // An unknown id: a gap, then the whole history.
            Some((text, None)) => {
                pending.push_back(subscription::gap_frame(text));
                state.gaps += 1;
                (state.history.first() - 1, None)
            }
        };
        drop(state);
        Ok(Subscription::new(
            Arc::clone(self),
            filter,
            group,
            cursor,
            last_sent,
            pending,
        ))
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
    /// assert!(matches!(hub.subscribe(&[], None), Err(Error::Closed)));
    /// ```
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let groups = state.topics.values().chain([&state.all]);
        for waiter in groups.flat_map(|group| group.relay.waiters()) {
            waiter.wake.notify_one();
        }
        drop(state);
        self.log.close();
    }

    /// For a log: events were lost before they reached the history; every
    /// subscription gets a `gap`.
    #[cfg(feature = "redis")]
    pub(crate) fn lose(&self) {
        let mut state = self.lock();
        state.history.lose();
        let mut wake = state.all.relay.publish();
        for group in state.topics.values_mut() {
            wake.extend(group.relay.publish());
        }
        for waiter in &wake {
            waiter.handed.store(true, Ordering::Relaxed);
        }
        drop(state);
        drop(Published {
            ids: Vec::new(),
            wake,
            _hub: self,
        });
    }

    /// The log's own lines (a reader thread's) go to `logger`.
    pub(crate) fn set_logger(&self, logger: Logger) {
        self.log.set_logger(logger);
    }

    /// Subscriptions alive now, read without taking the lock.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tinysse::Hub;
    ///
    /// let hub = Arc::new(Hub::new());
    /// let subscription = hub.subscribe(&[], None)?;
    /// assert_eq!(hub.subscriber_count(), 1);
    /// drop(subscription); // frees its slot
    /// assert_eq!(hub.subscriber_count(), 0);
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn subscriber_count(&self) -> usize {
        self.subscriber_count.load(Ordering::Relaxed)
    }

    /// Figures about the hub now.
    pub(crate) fn stats(&self) -> HubStats {
        let state = self.lock();
        HubStats {
            subscribers: state.subscribers,
            published: state.published,
            history_len: state.history.len(),
            history_bytes: state.history.bytes(),
            gaps: state.gaps,
        }
    }
}

impl Group {
    fn new(relays: usize) -> Group {
        Group {
            relay: Relay::new(relays),
            members: 0,
        }
    }
}

#[cfg(any(feature = "journal", feature = "redis"))]
impl<'hub> Published<'hub> {
    /// Events accepted elsewhere (a log that inserts them later): their ids
    /// only, nobody to wake.
    pub(crate) fn ids_only(hub: &'hub Hub, ids: Vec<String>) -> Published<'hub> {
        Published {
            ids,
            wake: Vec::new(),
            _hub: hub,
        }
    }

    /// Adds the wake-ups of `other` to these.
    #[cfg(feature = "journal")]
    pub(crate) fn merge(&mut self, mut other: Published<'hub>) {
        self.wake.append(&mut other.wake);
    }
}

/// Events just published; dropping this wakes the subscribers (see
/// [`Hub::publish_deferred`]).
#[must_use = "dropping it at once wakes the subscribers; keep it until the publisher is answered"]
pub(crate) struct Published<'hub> {
    /// The ids given to the events, in order.
    pub(crate) ids: Vec<String>,
    /// The waiters handed a baton, to wake.
    wake: Vec<Arc<Waiter>>,
    _hub: &'hub Hub,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for waiter in &self.wake {
            waiter.wake.notify_one();
        }
    }
}

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
/// Locks `mutex`, recovering the guard if a thread panicked while holding
/// it: every update under this crate's locks is done before anything that
/// can panic, so the state left behind is consistent, and a panic in one
/// connection's thread must not take the others down.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const NOW: Duration = Duration::ZERO;

    fn hub(events: usize, bytes: usize) -> Arc<Hub> {
        Arc::new(Hub::new().with_history(events, bytes))
    }

    /// Everything the subscription has now, as text.
    fn drain(subscription: &mut Subscription) -> String {
        let (mut batch, mut out) = (Batch::new(), Vec::new());
        while let Next::Events(_) = subscription.next(&mut batch, NOW) {
            batch.write_to(&mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    fn seq(id: &str) -> u64 {
        Id::parse(id).unwrap().seq
    }

    #[test]
    fn ids_grow_and_differ_between_hubs() {
        let first = hub(10, 1 << 20);
        let a = first.publish("t", Event::new("a")).unwrap();
        let b = first.publish("u", Event::new("b")).unwrap();
        assert_eq!(seq(&a) + 1, seq(&b));
        let second = hub(10, 1 << 20);
        let c = second.publish("t", Event::new("a")).unwrap();
        assert_ne!(a, c);
        // An id of another hub, or a malformed one, is unknown: a gap.
        for unknown in [a.clone(), format!("+{c}"), c.replace('-', "-+")] {
            let got = drain(&mut second.subscribe(&[], Some(&unknown)).unwrap());
            assert!(
                got.starts_with(&format!("event: gap\ndata: {unknown}\n\n")),
                "{got}"
            );
        }
    }

    #[test]
    fn live_subscriber_gets_only_new_matching_events() {
        let hub = hub(10, 1 << 20);
        hub.publish("a", Event::new("before")).unwrap();
        let mut sub = hub.subscribe(&["a"], None).unwrap();
        let id = hub.publish("a", Event::new("one")).unwrap();
        hub.publish("b", Event::new("other")).unwrap();
        assert_eq!(drain(&mut sub), format!("id: {id}\ndata: one\n\n"));
        assert_eq!(sub.next(&mut Batch::new(), NOW), Next::Idle);
    }

    #[test]
    fn resume_replays_after_the_id() {
        let hub = hub(10, 1 << 20);
        let first = hub.publish("a", Event::new("1")).unwrap();
        let second = hub.publish("a", Event::new("2")).unwrap();
        let mut sub = hub.subscribe(&[], Some(&first)).unwrap();
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
            drain(&mut hub.subscribe(&[], Some(&old)).unwrap()),
            expected
        );
        let foreign = drain(&mut hub.subscribe(&[], Some("12-1")).unwrap());
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
        let mut quiet = hub.subscribe(&["quiet"], None).unwrap();
        let mut busy = hub.subscribe(&["busy"], None).unwrap();
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
        let mut sub = hub.subscribe(&[], Some(&first)).unwrap();
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
        let mut sub = hub.subscribe(&[], Some("unknown")).unwrap();
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
        assert_eq!(seq(&ids[0]) + 1, seq(&ids[1]));
    }

    #[test]
    fn subscriber_limit_and_slot_release() {
        let hub = Arc::new(Hub::new().with_max_subscribers(1));
        let first = hub.subscribe(&[], None).unwrap();
        assert!(matches!(hub.subscribe(&[], None), Err(Error::Full)));
        drop(first);
        assert!(hub.subscribe(&[], None).is_ok());
    }

    #[test]
    fn close_wakes_waiting_subscribers() {
        let hub = hub(10, 1 << 20);
        let mut sub = hub.subscribe(&[], None).unwrap();
        let waiter =
            std::thread::spawn(move || sub.next(&mut Batch::new(), Duration::from_secs(30)));
        hub.close();
        assert_eq!(waiter.join().unwrap(), Next::Closed);
    }

    /// Subscriptions waiting far longer than the test lasts, on topic `a`,
    /// on `b`, on both, and on all topics, fed by `rounds`; returns what
    /// each thread got, by its topics (`""` for all).
    fn relay_check(relays: usize, rounds: impl Fn(&Hub, usize)) -> Vec<(String, usize)> {
        const WAITERS: usize = 24;
        let hub = Arc::new(Hub::new().with_relays(relays));
        let threads: Vec<_> = (0..WAITERS)
            .map(|i| {
                let wanted = ["a", "b", "a,b", ""][i % 4];
                let list: Vec<&str> = wanted.split(',').filter(|t| !t.is_empty()).collect();
                let mut sub = hub.subscribe(&list, None).unwrap();
                std::thread::spawn(move || {
                    let (mut batch, mut events) = (Batch::new(), 0);
                    // Only the relay can wake it before the test gives up.
                    while let Next::Events(count) = sub.next(&mut batch, Duration::from_secs(60)) {
                        events += count;
                        batch.write_to(&mut std::io::sink()).unwrap();
                    }
                    (wanted.to_string(), events)
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

    /// Subscriptions waiting, and those of them due (behind), over every group.
    fn waiting_and_behind(state: &State) -> (usize, usize) {
        let groups = state.topics.values().chain([&state.all]);
        groups.fold((0, 0), |(waiting, due), group| {
            let (line, due_here) = group.relay.counts();
            (waiting + line, due + due_here)
        })
    }

    #[test]
    fn a_topic_group_lives_as_long_as_its_subscriptions() {
        let hub = hub(10, 1 << 20);
        let subscriptions: Vec<_> = [&["a"][..], &["b"], &[], &["a", "b"]]
            .into_iter()
            .map(|topics| hub.subscribe(topics, None).unwrap())
            .collect();
        let groups = |state: &State| {
            let mut groups: Vec<_> = (state.topics.iter())
                .map(|(topic, group)| (topic.to_string(), group.members))
                .collect();
            groups.sort();
            (groups, state.all.members)
        };
        let expected = (vec![("a".into(), 1), ("b".into(), 1)], 2);
        assert_eq!(groups(&hub.lock()), expected);
        // A topic's group goes with its last subscription.
        drop(subscriptions);
        assert_eq!(groups(&hub.lock()), (vec![], 0));
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
            if waiting_and_behind(&state) == (waiters, 0) && state.published >= events {
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
}
