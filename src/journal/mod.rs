//! The on-disk journal of tinysse (`--journal DIR`): every accepted event is
//! appended to it before the publisher gets its `200`, and the history is
//! loaded from it at start (SPEC §8, "Durable history").
//!
//! This file is the journal's side of the hub's `Log` seam (`hub/log.rs`):
//! [`Hub::with_journal`] opens a `Journal` with the history's limits and
//! loads the newest events and the id the next event must have. For each
//! publish, `JournalLog::append`, holding its ordering lock, takes the ids,
//! calls `Journal::append` with the batch's records and puts the events in
//! the history; with `always`, it puts them there only after
//! `Journal::sync_to` (group commit), in order. Then the publisher gets its
//! `200`. When events leave the history, `Journal::forget_before` deletes
//! whole segments. The hub lock is never held across a disk write or a flush:
//! the journal's own locks order the disk work, and a subscriber reading the
//! history never waits for the disk.
//!
//! # In scope
//! - A directory of append-only segment files of checksummed records;
//!   nothing is rewritten in place (flash storage wears by writes).
//! - Sync modes `always` (group commit: publishers share one `fdatasync`),
//!   `everysec` (the default) and `no`.
//! - Recovery at start: a torn last record is cut off; a damaged record ends
//!   the journal, and its segment and all later ones are renamed aside (the
//!   good records before it stay); ids are never reused (see `load`).
//! - One owner per directory, by an exclusive lock on `DIR/tinysse.lock`.
//!
//! # Out of scope
//! - Replication and sharing a directory between servers (`--redis` does that).
//! - Compaction: a segment is deleted whole once all its events left the history.
//! - Repairing damage: damaged segments are kept aside for a human to look at.
//!
//! # Threads
//! In `everysec` mode the journal spawns one thread, `tinysse-journal`, which
//! flushes at most once a second; dropping the journal stops and joins it.
//!
//! # Limits
//! A record is at most `record::MAX_RECORD_BYTES` (longer ones are refused
//! when appended and are damage when read). A new segment starts once the
//! newest reaches a quarter of the history's bytes, within
//! `writer::MIN_SEGMENT_BYTES` and `writer::MAX_SEGMENT_BYTES`. At start,
//! memory holds at most the history's limits and one record.
//!
//! # On disk
//! | file | content |
//! |---|---|
//! | `tinysse.lock` | empty; its lock marks the owner |
//! | `<run>-<seq>.seg` | 20-digit zero-padded first id; header `tinysse\x01`, then records |
//! | `*.seg.damaged` | segments set aside at start, never deleted |
//!
//! A record is `length u32 LE | CRC-32 u32 LE | run u64 LE | seq u64 LE |
//! topic length u8 | topic | body`, the CRC covering everything after itself.

mod crc32;
mod load;
mod record;
mod seconds;
mod segment;
mod stall;
mod writer;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::Error;
use crate::hub::{Hub, Log, Published, lock};
use crate::wire::id::Id;

use record::RecordRef;
pub use writer::SyncMode as JournalSync;
use writer::{Journal, SyncMode, Ticket};

/// Events written, waiting for a flush before they enter the history.
type Pending = Vec<(Ticket, Arc<str>, Vec<(Id, Vec<u8>)>)>;

/// The hub's log when it keeps a journal.
struct JournalLog {
    journal: Journal,
    mode: SyncMode,
    /// Guards publish order: a batch's ids are taken, written and (unless
    /// `always`) put in the history under it, so all three happen in order.
    order: Mutex<()>,
    /// Guards the batches written with `always` that wait for a flush,
    /// oldest first.
    pending: Mutex<Pending>,
    /// What was loaded at start, one line.
    report: String,
}

// Written by hand: derived, it would print the journal's locks, files and
// condvars, and their Debug code (about 14 KB) would be in every binary,
// since the hub's `dyn Log` needs it.
impl std::fmt::Debug for JournalLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalLog")
            .field("mode", &self.mode)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Keeps every accepted event in a journal in `dir` (created if missing),
    /// and starts with the history loaded from it: after a restart, ids
    /// continue and clients resume without a gap (SPEC §8). Set the history's
    /// limits first: the journal holds what the history holds, plus one
    /// segment.
    ///
    /// Fails when another process owns `dir` or it cannot be written.
    /// [`Hub::loaded`] says in one line what was loaded and what was dropped.
    ///
    /// ```no_run
    /// use tinysse::{Event, Hub, JournalSync};
    ///
    /// let hub = Hub::new().with_history(1000, 1 << 20).with_journal("/var/lib/tinysse", JournalSync::EverySec)?;
    /// eprintln!("{}", hub.loaded().unwrap_or_default());
    /// hub.publish("news", Event::new("kept on disk"))?; // returns once written
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn with_journal(self, dir: impl AsRef<Path>, sync: JournalSync) -> Result<Hub, Error> {
        let (max_events, max_bytes) = self.history_limits();
        let (journal, loaded) = Journal::open(dir.as_ref(), sync, max_events, max_bytes)
            .map_err(|err| Error::Unavailable(err.to_string()))?;
        let records = loaded.records.into_iter().map(|record| {
            let id = Id {
                run: record.run,
                seq: record.seq,
            };
            (id, Arc::from(record.topic), record.body)
        });
        let next = loaded.next.map(|(run, seq)| Id { run, seq });
        let log = JournalLog {
            journal,
            mode: sync,
            order: Mutex::new(()),
            pending: Mutex::new(Vec::new()),
            report: loaded.report,
        };
        Ok(self.with_log(Box::new(log), records, next))
    }
}

impl Log for JournalLog {
    fn append<'h>(
        &self,
        hub: &'h Hub,
        topic: &Arc<str>,
        _events: &[crate::Event],
        bodies: Vec<Vec<u8>>,
    ) -> Result<Published<'h>, Error> {
        let order = lock(&self.order);
        let ids = hub.take_ids(bodies.len())?;
        let records: Vec<RecordRef<'_>> = (ids.iter().zip(&bodies))
            .map(|(id, body)| RecordRef {
                run: id.run,
                seq: id.seq,
                topic,
                body,
            })
            .collect();
        // SPEC §8: "every accepted event is appended to a journal in DIR
        // before the publisher gets its 200".
        let ticket = match self.journal.append(&records) {
            Ok(ticket) => ticket,
            Err(err) => {
                hub.give_back_ids(bodies.len());
                return Err(Error::Unavailable(format!(
                    "the journal cannot take the event: {err}"
                )));
            }
        };
        let events: Vec<(Id, Vec<u8>)> = ids.into_iter().zip(bodies).collect();
        if self.mode != SyncMode::Always {
            return Ok(hub.insert(topic, events.into_iter()));
        }
        // `always`: the events reach subscribers only once on disk, and in
        // order. Whoever's flush covers them inserts every batch it covered.
        let ids = events.iter().map(|(id, _)| id.to_string()).collect();
        lock(&self.pending).push((ticket, Arc::clone(topic), events));
        drop(order);
        let synced = self.journal.sync_to(ticket);
        let mut pending = lock(&self.pending);
        let mut published = Published::ids_only(hub, ids);
        if let Err(err) = synced {
            pending.retain(|(waiting, ..)| *waiting != ticket);
            return Err(Error::Unavailable(format!(
                "the journal cannot flush the event: {err}"
            )));
        }
        // Tickets only grow down the list: the covered batches come first.
        let covered = pending
            .iter()
            .take_while(|(waiting, ..)| *waiting <= ticket)
            .count();
        for (_, topic, events) in pending.drain(..covered) {
            published.merge(hub.insert(&topic, events.into_iter()));
        }
        Ok(published)
    }

    fn forget_before(&self, oldest_kept: Id) {
        self.journal.forget_before(oldest_kept.run, oldest_kept.seq);
    }

    fn loaded(&self) -> Option<&str> {
        Some(&self.report)
    }

    fn metrics(&self, out: &mut String) {
        let stats = self.journal.stats();
        let mut metric = |name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display| {
            let _ = writeln!(
                out,
                "# HELP tinysse_journal_{name} {help}\n# TYPE tinysse_journal_{name} {kind}\ntinysse_journal_{name} {value}"
            );
        };
        metric(
            "bytes",
            "gauge",
            "Bytes of the journal on disk.",
            &stats.bytes,
        );
        metric(
            "segments",
            "gauge",
            "Segment files of the journal.",
            &stats.segments,
        );
        metric(
            "flushes_total",
            "counter",
            "Flushes to disk (fdatasync).",
            &stats.flushes,
        );
        metric(
            "flush_seconds_total",
            "counter",
            "Seconds spent flushing.",
            &seconds::seconds(stats.flush_time),
        );
    }
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::testing::TestDir;
    use super::*;
    use crate::{Batch, Event, Next};

    /// SPEC §8 and ARCHITECTURE: the hub lock is never held across a disk
    /// write. With the journal's writes stuck, subscribers still get what
    /// was accepted before, and new ones can subscribe.
    #[test]
    fn a_stuck_disk_does_not_stop_subscribers() {
        let dir = TestDir::new("stuck");
        let (journal, loaded) =
            Journal::open(dir.path(), SyncMode::EverySec, 100, 1 << 20).unwrap();
        let gate = journal.gate();
        let log = JournalLog {
            journal,
            mode: SyncMode::EverySec,
            order: Mutex::new(()),
            pending: Mutex::new(Vec::new()),
            report: loaded.report,
        };
        let hub = Arc::new(Hub::new().with_log(Box::new(log), std::iter::empty(), None));
        let mut early = hub.subscribe(&[], None).unwrap();
        let accepted = hub.publish("t", Event::new("accepted")).unwrap();
        gate.close();
        let stuck = {
            let hub = Arc::clone(&hub);
            std::thread::spawn(move || hub.publish("t", Event::new("stuck")))
        };
        assert!(gate.wait_for_waiting(1, Duration::from_secs(10)));
        let mut batch = Batch::new();
        assert_eq!(
            early.next(&mut batch, Duration::from_secs(5)),
            Next::Events(1)
        );
        let mut bytes = Vec::new();
        batch.write_to(&mut bytes).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("data: accepted"));
        let _late = hub.subscribe(&[], Some(&accepted)).unwrap();
        assert_eq!(hub.subscriber_count(), 2);
        assert!(!stuck.is_finished(), "the publish waits for the disk");
        gate.open();
        assert!(stuck.join().unwrap().is_ok());
        assert_eq!(
            early.next(&mut batch, Duration::from_secs(5)),
            Next::Events(1)
        );
    }
}
