//! The history: the newest events, bounded by count and bytes, each with its
//! id, topic and encoded frame. Subscribers read it; resuming looks ids up
//! in it.
//!
//! Every event in the history has a *position*, one more than the event
//! before it, so a cursor finds its place without searching: the event at
//! position `p` sits at index `p - first`. Ids are looked up by binary
//! search, since ids only grow but may skip (a journal that dropped damaged
//! events, or a Redis stream, whose ids are its own).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::wire::id::Id;

/// How many topics the history remembers evictions for; past it, every
/// subscriber that falls behind is told of a gap.
const MAX_TRACKED_TOPICS: usize = 4096;

/// One event as subscribers get it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: Id,
    pub(crate) topic: Arc<str>,
    /// The encoded event, `id:` line included, shared by every subscriber.
    pub(crate) frame: Arc<[u8]>,
}

impl Entry {
    /// An event with its id: `body` is its frame without the `id:` line.
    pub(crate) fn new(id: Id, topic: Arc<str>, body: &[u8]) -> Entry {
        let id_text = id.to_string();
        let mut frame = Vec::with_capacity(id_text.len() + 5 + body.len());
        frame.extend_from_slice(b"id: ");
        frame.extend_from_slice(id_text.as_bytes());
        frame.push(b'\n');
        frame.extend_from_slice(body);
        Entry {
            id,
            topic,
            frame: Arc::from(frame),
        }
    }
}

#[derive(Debug)]
pub(crate) struct History {
    entries: VecDeque<Entry>,
    /// Sum of the frames' lengths.
    bytes: usize,
    /// Position of the oldest entry; positions start at 1.
    first: u64,
    max_events: usize,
    max_bytes: usize,
    /// Topic → position of the newest event of that topic evicted.
    evicted: HashMap<Arc<str>, u64>,
    /// Every event up to this position counts as evicted for every topic (set
    /// when `evicted` is cleared to bound its size).
    evicted_floor: u64,
    /// The id of the newest event evicted: resuming from it loses nothing.
    last_evicted: Option<Id>,
}

impl History {
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> History {
        History {
            entries: VecDeque::new(),
            bytes: 0,
            first: 1,
            max_events: max_events.max(1),
            max_bytes,
            evicted: HashMap::new(),
            evicted_floor: 0,
            last_evicted: None,
        }
    }

    /// The limits: events and bytes.
    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.max_events, self.max_bytes)
    }

    pub(crate) fn set_limits(&mut self, max_events: usize, max_bytes: usize) {
        self.max_events = max_events.max(1);
        self.max_bytes = max_bytes;
    }

    /// Position of the oldest event held.
    pub(crate) fn first(&self) -> u64 {
        self.first
    }

    /// Position the next event will get.
    pub(crate) fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The newest event's id.
    pub(crate) fn last_id(&self) -> Option<Id> {
        self.entries.back().map(|entry| entry.id)
    }

    /// The oldest event's id.
    pub(crate) fn first_id(&self) -> Option<Id> {
        self.entries.front().map(|entry| entry.id)
    }

    /// The event at `position`, if held.
    pub(crate) fn get(&self, position: u64) -> Option<&Entry> {
        let index = position.checked_sub(self.first)?;
        self.entries.get(usize::try_from(index).ok()?)
    }

    /// The position of the event with this id, if held; for the newest
    /// event evicted, the position before the oldest held (everything after
    /// it is still here, so nothing is lost).
    pub(crate) fn find(&self, id: Id) -> Option<u64> {
        if self.last_evicted == Some(id) {
            return Some(self.first - 1);
        }
        let index = self
            .entries
            .binary_search_by(|entry| entry.id.cmp(&id))
            .ok()?;
        Some(self.first + index as u64)
    }

    /// Appends an event and drops the oldest past the limits (the newest
    /// always stays). Returns whether anything was dropped.
    pub(crate) fn push(&mut self, entry: Entry) -> bool {
        debug_assert!(
            self.last_id().is_none_or(|last| last < entry.id),
            "ids must grow"
        );
        self.bytes += entry.frame.len();
        self.entries.push_back(entry);
        let mut dropped = false;
        while self.entries.len() > 1
            && (self.entries.len() > self.max_events || self.bytes > self.max_bytes)
        {
            let Some(entry) = self.entries.pop_front() else {
                break;
            };
            let position = self.first;
            self.first += 1;
            self.bytes -= entry.frame.len();
            if self.evicted.len() >= MAX_TRACKED_TOPICS && !self.evicted.contains_key(&entry.topic)
            {
                self.evicted.clear();
                self.evicted_floor = position;
            }
            self.evicted.insert(entry.topic, position);
            self.last_evicted = Some(entry.id);
            dropped = true;
        }
        dropped
    }

    /// Events were lost before they reached the history (a stream trimmed
    /// while the log could not read it): drops everything held and counts
    /// it all as evicted, so that every subscription gets a `gap`.
    #[cfg(feature = "redis")]
    pub(crate) fn lose(&mut self) {
        let end = self.end();
        self.entries.clear();
        self.bytes = 0;
        // One position skipped: every cursor is now before the first.
        self.first = end + 1;
        self.evicted.clear();
        self.evicted_floor = end + 1;
        self.last_evicted = None;
    }

    /// Whether an event on one of `topics` (`None`: any) left the history
    /// after position `cursor`.
    pub(crate) fn evicted_after<'a>(
        &self,
        cursor: u64,
        topics: Option<impl Iterator<Item = &'a str>>,
    ) -> bool {
        match topics {
            None => self.first > cursor + 1,
            Some(mut topics) => {
                self.evicted_floor > cursor
                    || topics.any(|topic| self.evicted.get(topic).is_some_and(|&at| at > cursor))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, topic: &str, bytes: usize) -> Entry {
        Entry {
            id: Id { run: 7, seq },
            topic: Arc::from(topic),
            frame: Arc::from(vec![b'x'; bytes]),
        }
    }

    #[test]
    fn bounded_by_count_and_bytes_keeping_the_newest() {
        let mut history = History::new(2, 100);
        for seq in 1..=3 {
            history.push(entry(seq, "a", 10));
        }
        assert_eq!((history.len(), history.first(), history.end()), (2, 2, 4));
        assert!(history.push(entry(4, "a", 500)));
        assert_eq!((history.len(), history.bytes()), (1, 500));
        assert_eq!(history.get(4).map(|entry| entry.id.seq), Some(4));
        assert!(history.get(3).is_none() && history.get(5).is_none());
    }

    #[test]
    fn ids_are_found_even_with_holes() {
        let mut history = History::new(10, 1000);
        for seq in [1, 2, 5, 9] {
            history.push(entry(seq, "a", 1));
        }
        assert_eq!(history.find(Id { run: 7, seq: 5 }), Some(3));
        assert_eq!(history.find(Id { run: 7, seq: 4 }), None);
        assert_eq!(history.find(Id { run: 6, seq: 5 }), None);
    }

    #[test]
    fn evictions_are_tracked_by_topic() {
        let mut history = History::new(1, 1000);
        history.push(entry(1, "a", 1));
        history.push(entry(2, "b", 1));
        assert!(history.evicted_after(0, Some(["a"].into_iter())));
        assert!(!history.evicted_after(0, Some(["b", "c"].into_iter())));
        assert!(history.evicted_after(0, None::<std::iter::Empty<&str>>));
        assert!(!history.evicted_after(1, None::<std::iter::Empty<&str>>));
    }
}
