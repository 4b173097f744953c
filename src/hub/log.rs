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

use std::fmt::Debug;
use std::sync::Arc;

use super::{Hub, Published};
use crate::Error;

/// Where accepted events go, besides the history in memory.
pub(crate) trait Log: Send + Sync + Debug {
    /// Accepts a batch of encoded events (frames without their `id:` line)
    /// on `topic`: stores it, gives it ids, and returns once it is accepted.
    fn append<'h>(
        &self,
        hub: &'h Hub,
        topic: &Arc<str>,
        bodies: Vec<Vec<u8>>,
    ) -> Result<Published<'h>, Error>;

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
        bodies: Vec<Vec<u8>>,
    ) -> Result<Published<'h>, Error> {
        hub.insert_new(topic, bodies)
    }
}
