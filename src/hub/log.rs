//! The seam between the hub and where events are kept: memory only (this
//! file), a journal on disk, or a Redis stream. Each is one [`Log`].
//!
//! What every log promises:
//! - **Order.** A log takes batches one at a time, in publish order, and the
//!   ids it gives only grow.
//! - **Accepted.** [`Log::append`] returns once the batch counts as accepted
//!   (in memory: in the history; on disk: written; in Redis: stored there),
//!   and only then does the publisher get its `200`. A batch that fails is
//!   not published at all.
//! - **One history.** Subscribers read only the hub's history in memory;
//!   events enter it through [`Hub::insert`](super::Hub) alone, in id order.
//! - **No I/O under the hub lock.** A log does its disk or network work
//!   before it takes the hub lock to insert, never while holding it.

use std::fmt::{self, Debug};
use std::sync::Arc;

use super::{Entry, Hub, Published};
use crate::Error;
use crate::wire::event::Event;
use crate::wire::id::Id;

/// How much a log line matters. It displays as the prefix the `tinysse`
/// binary prints (`""` or `"error: "`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something happened: a subscriber arrived or left.
    Info,
    /// Something failed: a subscriber dropped for stalling, an accept error.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "",
            Level::Error => "error: ",
        })
    }
}

/// Where log lines go (`Server::on_log`).
pub(crate) type Logger = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// Where accepted events go, besides the history in memory.
pub(crate) trait Log: Send + Sync + Debug {
    /// Accepts a batch of events on `topic`, given checked and encoded
    /// (frames without their `id:` line): stores it, gives it ids, and
    /// returns once it is accepted.
    fn append<'h>(
        &self,
        hub: &'h Hub,
        topic: &Arc<str>,
        events: &[Event],
        bodies: Vec<Vec<u8>>,
    ) -> Result<Published<'h>, Error>;

    /// Events after `after`, at most `limit`, that are older than the
    /// history: for a client resuming from an id the history no longer
    /// holds. `None` when the log keeps nothing beyond the history. Called
    /// outside the hub lock.
    fn replay(&self, _after: Id, _limit: usize) -> Option<Vec<Entry>> {
        None
    }

    /// Log lines of the log's own (a reader thread's, say) go to `logger`.
    fn set_logger(&self, _logger: Logger) {}

    /// The hub closed: stop and join any thread the log started.
    fn close(&self) {}

    /// Every event before the oldest one in the history has left it (called
    /// outside the hub lock, after an eviction).
    fn forget_before(&self, _oldest_kept: crate::wire::id::Id) {}

    /// What was loaded at start, in one line, if anything.
    fn loaded(&self) -> Option<&str> {
        None
    }

    /// Whether publishes can be accepted now (`/readyz`), or why not.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// The log's own lines of `/metrics` (Prometheus text).
    fn metrics(&self, _out: &mut String) {}
}

/// The default: events live in the history only.
#[derive(Debug)]
pub(crate) struct Memory;

impl Log for Memory {
    fn append<'h>(
        &self,
        hub: &'h Hub,
        topic: &Arc<str>,
        _events: &[Event],
        bodies: Vec<Vec<u8>>,
    ) -> Result<Published<'h>, Error> {
        hub.insert_new(topic, bodies)
    }
}
