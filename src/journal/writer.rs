//! The journal itself: one owner per directory, batches appended to the
//! newest segment, flushes shared between publishers (group commit), and old
//! segments deleted whole once their events have left the history.
//
// Implementation notes. Two locks, never held together: `writer` guards the
// files (held for one `write` per batch), `commit` guards the flush state. A
// ticket counts batches written. In `always` mode the first publisher to ask
// for a flush while none runs becomes the leader: it notes how many batches
// are written and which files hold them, flushes those files without any
// lock held, records the outcome and wakes everyone; publishers that asked
// meanwhile wait, and on waking either find their ticket covered or elect a
// new leader whose flush covers everything written so far.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use std::{fmt, mem};

use super::load::{self, Loaded};
use super::record::{self, Id, RecordRef};
use super::segment::{self, Segment};
use super::stall::Gate;
use crate::hub::lock;

/// The file in a journal directory whose lock makes a process its one owner.
pub(crate) const LOCK_FILE: &str = "tinysse.lock";

/// The smallest segment a journal starts a new one after.
pub(crate) const MIN_SEGMENT_BYTES: u64 = 64 * 1024;

/// The largest segment a journal starts a new one after.
pub(crate) const MAX_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// With `always`, how long a flush waits at most for more batches to join it
/// (group commit; see `Shared::flush_through`).
const MAX_GATHER: Duration = Duration::from_micros(500);

/// How often the `everysec` mode flushes, at most.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// When appended records reach the disk (`--journal-sync`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// `always`: each batch is flushed (`fdatasync`) before its publisher gets its answer.
    Always,
    /// `everysec`, the default: a background thread flushes at most once a second.
    #[default]
    EverySec,
    /// `no`: flushing is left to the kernel.
    No,
}

impl FromStr for SyncMode {
    type Err = String;

    /// Reads `always`, `everysec` or `no`.
    fn from_str(text: &str) -> Result<SyncMode, String> {
        match text {
            "always" => Ok(SyncMode::Always),
            "everysec" => Ok(SyncMode::EverySec),
            "no" => Ok(SyncMode::No),
            _ => Err(format!(
                "invalid journal sync mode {text:?}: expected always, everysec or no"
            )),
        }
    }
}

/// Why [`Journal::open`] failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Another process (or another `Journal` in this one) owns the directory.
    InUse(PathBuf),
    /// The directory could not be created, locked, read or repaired.
    Io(PathBuf, io::Error),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The directory as `Path::display` writes it, without linking
            // that printer too.
            OpenError::InUse(dir) => write!(
                f,
                "journal {} is in use by another tinysse",
                dir.to_string_lossy()
            ),
            OpenError::Io(dir, error) => write!(f, "journal {}: {error}", dir.to_string_lossy()),
        }
    }
}

impl std::error::Error for OpenError {}

/// Says which batch [`Journal::append`] wrote, for [`Journal::sync_to`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(u64);

/// The journal's numbers, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Bytes of all live segments.
    pub bytes: u64,
    /// Live segments.
    pub segments: usize,
    /// Flushes done (`fdatasync` rounds).
    pub flushes: u64,
    /// Time spent in flushes, in total.
    pub flush_time: Duration,
}

/// An open journal directory, owned by this process until dropped.
///
/// Dropping it stops and joins its background thread and, unless the mode is
/// `no`, flushes once.
#[derive(Debug)]
pub(crate) struct Journal {
    shared: Arc<Shared>,
    /// The `tinysse-journal` thread of the `everysec` mode.
    flusher: Option<JoinHandle<()>>,
    /// Holds the lock on [`LOCK_FILE`] while the journal is open. The system
    /// drops the lock when the process ends, so a `kill -9` leaves none behind.
    _lock: File,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    mode: SyncMode,
    /// A new segment is started once the newest reaches this size.
    segment_bytes: u64,
    /// Guards the segment files and the list of live ones.
    writer: Mutex<Writer>,
    /// Guards the flush state.
    commit: Mutex<Commit>,
    /// Notified (all) by a flushing thread when its flush ends, and by `drop`
    /// to stop the background thread; waited on by publishers in `sync_to`
    /// and by the background thread between flushes.
    commit_changed: Condvar,
    /// Notified (one) after each append with `always`: a flush about to start
    /// may wait on it for more batches to join.
    appended: Condvar,
    /// `Writer::written`, readable without the writer's lock.
    written: AtomicU64,
    /// Makes `append` wait in tests (a stuck disk); always open otherwise.
    gate: Arc<Gate>,
}

#[derive(Debug, Default)]
struct Writer {
    /// The live segments, oldest first; the newest one is being written.
    segments: Vec<Segment>,
    /// The newest segment, open for appending (none in an empty journal).
    file: Option<Arc<File>>,
    /// Older segments written since the last flush: a flush covers their tails too.
    unsynced: Vec<Arc<File>>,
    /// Whether a segment was created since the last flush (its name must be made durable).
    new_names: bool,
    /// The lowest id the next record may have: ids only grow in a journal.
    floor: Option<Id>,
    /// Batches written: the newest ticket.
    written: u64,
    /// A failed write could not be cut back, so a torn record sits before
    /// wherever the next one would go: appends fail until a restart cuts it.
    torn: bool,
}

#[derive(Debug, Default)]
struct Commit {
    /// Every ticket up to this one is durable.
    synced: u64,
    /// A thread is flushing now.
    flushing: bool,
    /// The error of a failed flush. After one, no later batch is reported
    /// durable: the kernel may have dropped the pages it failed to write.
    failed: Option<(io::ErrorKind, String)>,
    flushes: u64,
    flush_time: Duration,
    /// Batches the last flush covered, and how long it took.
    covered_last: u64,
    flush_last: Duration,
    /// The journal is being dropped: the background thread ends.
    stopping: bool,
}

impl Journal {
    /// Opens (creating it if missing) the journal in `dir` and loads the
    /// newest events that fit `max_events` and `max_bytes` (bodies), as the
    /// history does. A damaged journal still opens; [`Loaded::report`] says
    /// what was dropped.
    pub(crate) fn open(
        dir: &Path,
        mode: SyncMode,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<(Journal, Loaded), OpenError> {
        let failed = |error| OpenError::Io(dir.to_path_buf(), error);
        fs::create_dir_all(dir).map_err(failed)?;
        // SPEC §8: "A second server started on the same DIR exits with status 1
        // and one line saying the journal is in use."
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE));
        let lock = lock.map_err(failed)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(OpenError::InUse(dir.to_path_buf())),
            Err(TryLockError::Error(error)) => return Err(failed(error)),
        }
        Journal::open_locked(dir, lock, mode, max_events, max_bytes).map_err(failed)
    }

    /// The rest of [`Journal::open`], once `lock` holds the directory.
    fn open_locked(
        dir: &Path,
        lock: File,
        mode: SyncMode,
        max_events: usize,
        max_bytes: usize,
    ) -> io::Result<(Journal, Loaded)> {
        let (loaded, mut segments) = load::load(dir, max_events, max_bytes)?;
        // Ids reserved past the newest segment (a torn tail was cut): an
        // empty segment named after them keeps them reserved at the next
        // start, even if nothing is written before it.
        let reserved = loaded.next.filter(|next| {
            segments
                .last()
                .is_some_and(|newest| *next > newest.next_id())
        });
        if let Some(next) = reserved {
            let (_, segment) = segment::create(dir, next)?;
            segments.push(segment);
        }
        let file = match segments.last() {
            Some(newest) => Some(Arc::new(
                OpenOptions::new().append(true).open(&newest.path)?,
            )),
            None => None,
        };
        let writer = Writer {
            segments,
            file,
            floor: loaded.next,
            ..Writer::default()
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            mode,
            segment_bytes: segment_bytes(max_bytes),
            writer: Mutex::new(writer),
            commit: Mutex::new(Commit::default()),
            commit_changed: Condvar::new(),
            appended: Condvar::new(),
            written: AtomicU64::new(0),
            gate: Arc::new(Gate::new()),
        });
        let flusher = match mode {
            SyncMode::EverySec => {
                let shared = Arc::clone(&shared);
                let thread = thread::Builder::new().name("tinysse-journal".into());
                Some(thread.spawn(move || run_flusher(&shared))?)
            }
            SyncMode::Always | SyncMode::No => None,
        };
        Ok((
            Journal {
                shared,
                flusher,
                _lock: lock,
            },
            loaded,
        ))
    }

    /// Writes `records`, one batch in (run, seq) order, with one `write`, and
    /// returns its ticket; it is durable after [`Journal::sync_to`].
    ///
    /// Fails with `InvalidInput`, writing nothing, when an id is not above every
    /// id written before, the batch's ids are not consecutive, or a record is
    /// invalid (see [`record::encode`]). When the write fails (a full disk),
    /// the segment is cut back to where it was, so no torn record stays.
    pub(crate) fn append(&self, records: &[RecordRef<'_>]) -> io::Result<Ticket> {
        self.shared.gate.pass();
        let mut writer = lock(&self.shared.writer);
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(Ticket(writer.written));
        };
        if writer.torn {
            return Err(io::Error::other(
                "journal segment could not be cut back after a failed write",
            ));
        }
        if writer.floor.is_some_and(|floor| first.id() < floor) {
            return Err(invalid_input("journal ids must grow"));
        }
        let mut batch = Vec::new();
        let mut expected = first.id();
        for record in records {
            if record.id() != expected {
                return Err(invalid_input("journal batch ids must be consecutive"));
            }
            record::encode(record, &mut batch)?;
            expected = record::after(expected);
        }
        writer.make_room(&self.shared, first.id())?;
        let ticket = writer.write(&batch, last.id())?;
        drop(writer);
        self.shared.written.store(ticket.0, Ordering::Release);
        if self.shared.mode == SyncMode::Always {
            // Taken and released so that a flush about to wait cannot miss it.
            drop(lock(&self.shared.commit));
            self.shared.appended.notify_one();
        }
        Ok(ticket)
    }

    /// Returns when the batch of `ticket` is as durable as the mode promises.
    ///
    /// `always`: after an `fdatasync` that covers it, shared with every
    /// publisher waiting meanwhile; a failed flush fails every publisher it
    /// covered. `everysec` and `no` return at once. In every mode, after a
    /// flush has failed this returns its error: nothing is durable any more.
    pub(crate) fn sync_to(&self, ticket: Ticket) -> io::Result<()> {
        match self.shared.mode {
            // SPEC §8: "the journal is flushed with fdatasync before the answer;
            // concurrent publishers share one flush".
            SyncMode::Always => self.shared.flush_through(ticket.0),
            SyncMode::EverySec | SyncMode::No => match &lock(&self.shared.commit).failed {
                Some(failure) => Err(failure_error(failure)),
                None => Ok(()),
            },
        }
    }

    /// Deletes, whole, the segments that hold only events before `(run, seq)`:
    /// every event before it has left the history. Never the newest segment.
    pub(crate) fn forget_before(&self, run: u64, seq: u64) {
        // SPEC §8: "a segment whose events have all left the history is deleted whole".
        let mut writer = lock(&self.shared.writer);
        // The newest segment stays: it is the one being written.
        while writer.segments.len() > 1 {
            let Some(oldest) = writer.segments.first() else {
                break;
            };
            if oldest.last.is_some_and(|last| last >= (run, seq)) {
                break;
            }
            match fs::remove_file(&oldest.path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                // Tried again at the next call.
                Err(_) => break,
            }
            // A journal has a few segments: shifting the rest is cheap.
            writer.segments.remove(0);
        }
    }

    /// Bytes and segments on disk, flushes and the time they took.
    pub(crate) fn stats(&self) -> Stats {
        let (bytes, segments) = {
            let writer = lock(&self.shared.writer);
            (
                writer.segments.iter().map(|segment| segment.bytes).sum(),
                writer.segments.len(),
            )
        };
        let commit = lock(&self.shared.commit);
        Stats {
            bytes,
            segments,
            flushes: commit.flushes,
            flush_time: commit.flush_time,
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        lock(&self.shared.commit).stopping = true;
        self.shared.commit_changed.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        if self.shared.mode != SyncMode::No {
            let written = lock(&self.shared.writer).written;
            let _ = self.shared.flush_through(written);
        }
    }
}

impl Writer {
    /// Makes the newest segment the one for a batch that starts at `first`:
    /// a new segment when there is none, when the newest is full, or when
    /// `first` does not follow its last id (ids within a segment are
    /// consecutive, which `load` relies on to bound the ids of a damaged one).
    fn make_room(&mut self, shared: &Shared, first: Id) -> io::Result<()> {
        let newest_fits = self
            .segments
            .last()
            .is_some_and(|newest| newest.next_id() == first && newest.bytes < shared.segment_bytes);
        if newest_fits && self.file.is_some() {
            return Ok(());
        }
        let (file, segment) = segment::create(&shared.dir, first)?;
        if let Some(old) = self.file.replace(Arc::new(file))
            && shared.mode != SyncMode::No
        {
            self.unsynced.push(old);
        }
        self.segments.push(segment);
        self.new_names = true;
        Ok(())
    }

    /// Writes `batch`, whose last record has id `last`, to the newest segment.
    fn write(&mut self, batch: &[u8], last: Id) -> io::Result<Ticket> {
        let (Some(file), Some(newest)) = (&self.file, self.segments.last_mut()) else {
            return Err(io::Error::other("journal has no segment to write"));
        };
        if let Err(error) = (&**file).write_all(batch) {
            // SPEC §8: "Nothing is rewritten in place". Cutting a failed write
            // back is the exception: a torn record must not sit in the middle.
            if file.set_len(newest.bytes).is_err() {
                self.torn = true;
            }
            return Err(error);
        }
        newest.bytes += batch.len() as u64;
        newest.last = Some(last);
        self.floor = Some(record::after(last));
        self.written += 1;
        Ok(Ticket(self.written))
    }
}

impl Shared {
    /// Returns once every batch up to `ticket` is durable: flushes them, or
    /// waits for the flush another thread runs and, if that one did not
    /// cover `ticket`, runs the next one.
    fn flush_through(&self, ticket: u64) -> io::Result<()> {
        let mut commit = lock(&self.commit);
        loop {
            if commit.synced >= ticket {
                return Ok(());
            }
            if let Some(failure) = &commit.failed {
                return Err(failure_error(failure));
            }
            if !commit.flushing {
                break;
            }
            commit = self
                .commit_changed
                .wait_while(commit, |commit| commit.flushing)
                .unwrap_or_else(PoisonError::into_inner);
        }
        commit.flushing = true;
        // Group commit: when the last flush covered several batches, other
        // publishers are writing theirs now; give them up to half a flush's
        // time to join this one, rather than flush one batch and make them
        // wait a whole flush for the next.
        let wanted = commit.covered_last;
        let deadline = Instant::now() + (commit.flush_last / 2).min(MAX_GATHER);
        while wanted > 1 && self.written.load(Ordering::Acquire) - commit.synced < wanted {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            commit = self
                .appended
                .wait_timeout(commit, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(commit);
        let started = Instant::now();
        let outcome = self.sync_files();
        let mut commit = lock(&self.commit);
        commit.flushing = false;
        commit.flushes += 1;
        let took = started.elapsed();
        commit.flush_last = took;
        commit.flush_time += took;
        let result = match outcome {
            Ok(target) => {
                commit.covered_last = target.saturating_sub(commit.synced);
                commit.synced = commit.synced.max(target);
                Ok(())
            }
            Err(error) => {
                let failure = (error.kind(), error.to_string());
                let error = failure_error(&failure);
                commit.failed = Some(failure);
                Err(error)
            }
        };
        drop(commit);
        self.commit_changed.notify_all();
        result
    }

    /// Flushes every file written since the last flush, and the directory when
    /// a segment was created; returns the newest ticket this covers.
    fn sync_files(&self) -> io::Result<u64> {
        let (target, files, new_names) = {
            let mut writer = lock(&self.writer);
            let mut files = mem::take(&mut writer.unsynced);
            files.extend(writer.file.clone());
            (writer.written, files, mem::take(&mut writer.new_names))
        };
        for file in &files {
            file.sync_data()?;
        }
        if new_names {
            segment::sync_dir(&self.dir)?;
        }
        Ok(target)
    }
}

/// The `everysec` background thread: flushes at most once a second, when
/// something was written since the last flush, until the journal is dropped.
fn run_flusher(shared: &Shared) {
    // SPEC §8: "at most the last second of events may be lost with everysec".
    let mut commit = lock(&shared.commit);
    while !commit.stopping {
        commit = shared
            .commit_changed
            .wait_timeout_while(commit, FLUSH_INTERVAL, |commit| !commit.stopping)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        if commit.stopping {
            break;
        }
        drop(commit);
        let written = lock(&shared.writer).written;
        // A failure is kept in `Commit::failed` and returned by `sync_to`.
        let _ = shared.flush_through(written);
        commit = lock(&shared.commit);
    }
}

/// The size after which a new segment starts: a quarter of the history's
/// bytes, within 64 KiB..=16 MiB. SPEC §8: "The journal holds at most what
/// the history holds ... plus one segment".
fn segment_bytes(max_bytes: usize) -> u64 {
    u64::try_from(max_bytes / 4)
        .unwrap_or(u64::MAX)
        .clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES)
}

fn failure_error((kind, message): &(io::ErrorKind, String)) -> io::Error {
    io::Error::new(*kind, format!("journal flush failed: {message}"))
}

fn invalid_input(reason: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, reason)
}

#[cfg(test)]
impl Journal {
    /// The gate that makes `append` wait, standing in for a stuck disk.
    pub(crate) fn gate(&self) -> Arc<Gate> {
        Arc::clone(&self.shared.gate)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Weak;

    use super::super::record::Record;
    use super::super::segment::HEADER_BYTES;
    use super::super::testing::{RUN, TestDir, append_each, event, files, ids, open};
    use super::*;

    #[test]
    fn sync_modes_parse() {
        let cases = [
            ("always", Ok(SyncMode::Always)),
            ("everysec", Ok(SyncMode::EverySec)),
            ("no", Ok(SyncMode::No)),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<SyncMode>(), expected);
        }
        for text in ["", "Always", "every-sec", "yes"] {
            assert_eq!(
                text.parse::<SyncMode>(),
                Err(format!(
                    "invalid journal sync mode {text:?}: expected always, everysec or no"
                ))
            );
        }
        assert_eq!(SyncMode::default(), SyncMode::EverySec);
    }

    #[test]
    fn a_second_owner_is_refused_until_the_first_is_dropped() {
        let dir = TestDir::new("owner");
        let (first, _) = open(dir.path());
        // flock(2) locks belong to an open file description, so a second handle
        // in the same process conflicts like another process would.
        match Journal::open(dir.path(), SyncMode::No, 10, 10) {
            Err(error @ OpenError::InUse(_)) => assert_eq!(
                error.to_string(),
                format!(
                    "journal {} is in use by another tinysse",
                    dir.path().display()
                )
            ),
            other => panic!("expected the in-use error, got {other:?}"),
        }
        drop(first);
        let (_again, _) = open(dir.path());
    }

    #[test]
    fn an_unusable_directory_is_a_clean_error() {
        let dir = TestDir::new("unusable");
        let file = dir.path().join("file");
        fs::write(&file, b"not a directory").expect("write");
        let journal_dir = file.join("journal");
        match Journal::open(&journal_dir, SyncMode::No, 10, 10) {
            Err(error @ OpenError::Io(..)) => {
                let message = error.to_string();
                assert!(
                    message.starts_with(&format!("journal {}: ", journal_dir.display())),
                    "{message}"
                );
                assert!(!message.contains('\n'), "{message}");
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }

    #[test]
    fn appends_that_would_break_the_order_write_nothing() {
        let dir = TestDir::new("order");
        let (journal, _) = open(dir.path());
        assert_eq!(journal.append(&[]).expect("an empty batch"), Ticket(0));
        append_each(&journal, &[event(5, 10)]);
        let bytes = journal.stats().bytes;
        let bad_topic = Record {
            topic: "no spaces".into(),
            ..event(6, 1)
        };
        let cases: [(&[Record], &str); 4] = [
            (&[event(5, 1)], "journal ids must grow"),
            (&[event(4, 1)], "journal ids must grow"),
            (
                &[event(6, 1), event(8, 1)],
                "journal batch ids must be consecutive",
            ),
            (
                std::slice::from_ref(&bad_topic),
                "journal record has an invalid topic",
            ),
        ];
        for (batch, reason) in cases {
            let batch: Vec<_> = batch.iter().map(Record::as_ref).collect();
            let error = journal.append(&batch).expect_err(reason);
            assert_eq!(
                (error.kind(), error.to_string()),
                (io::ErrorKind::InvalidInput, reason.to_string())
            );
        }
        assert_eq!(journal.stats().bytes, bytes);
        // A jump is fine; it starts a new segment, since ids within one are consecutive.
        append_each(&journal, &[event(9, 1), event(10, 1)]);
        assert_eq!(journal.stats().segments, 2);
        drop(journal);
        let (_journal, loaded) = open(dir.path());
        assert_eq!(ids(&loaded.records), [(RUN, 5), (RUN, 9), (RUN, 10)]);
    }

    #[test]
    fn concurrent_publishers_share_flushes() {
        let dir = TestDir::new("group-commit");
        let (journal, _) =
            Journal::open(dir.path(), SyncMode::Always, usize::MAX, usize::MAX).expect("open");
        // The hub appends in publish order under its own lock; this stands in for it.
        let publish_order = Mutex::new(1_u64);
        thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        let ticket = {
                            let mut seq = lock(&publish_order);
                            let ticket =
                                journal.append(&[event(*seq, 50).as_ref()]).expect("append");
                            *seq += 1;
                            ticket
                        };
                        journal.sync_to(ticket).expect("sync");
                    }
                });
            }
        });
        let stats = journal.stats();
        println!(
            "group commit: 1600 synced publishes took {} flushes",
            stats.flushes
        );
        assert!(stats.flushes > 0 && stats.flushes < 1600, "{stats:?}");
        drop(journal);
        let (_journal, loaded) = open(dir.path());
        assert_eq!(
            ids(&loaded.records),
            (1..=1600).map(|seq| (RUN, seq)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn everysec_flushes_in_the_background_and_drop_joins_it() {
        let dir = TestDir::new("everysec");
        let (journal, _) =
            Journal::open(dir.path(), SyncMode::EverySec, 100, 100_000).expect("open");
        let name = journal
            .flusher
            .as_ref()
            .and_then(|flusher| flusher.thread().name().map(str::to_string));
        assert_eq!(name.as_deref(), Some("tinysse-journal"));
        let ticket = journal.append(&[event(1, 10).as_ref()]).expect("append");
        journal.sync_to(ticket).expect("returns at once");
        let shared = &journal.shared;
        let (commit, _) = shared
            .commit_changed
            .wait_timeout_while(
                lock(&shared.commit),
                Duration::from_millis(2_500),
                |commit| commit.synced < ticket.0,
            )
            .unwrap_or_else(PoisonError::into_inner);
        assert_eq!(
            (commit.synced, commit.flushes),
            (1, 1),
            "one flush within 2.5 s"
        );
        drop(commit);
        let shared: Weak<Shared> = Arc::downgrade(&journal.shared);
        drop(journal);
        assert!(
            shared.upgrade().is_none(),
            "the background thread has ended"
        );
    }

    #[test]
    fn old_segments_are_deleted_whole_and_the_disk_stays_bounded() {
        let dir = TestDir::new("forget");
        let (max_events, body_bytes) = (100, 100);
        let history_bytes = max_events * body_bytes;
        let (journal, _) =
            Journal::open(dir.path(), SyncMode::No, max_events, history_bytes).expect("open");
        let record_bytes = (8 + 17 + event(1, 0).topic.len() + body_bytes) as u64;
        let bound = history_bytes as u64
            + max_events as u64 * (record_bytes - body_bytes as u64)
            + MIN_SEGMENT_BYTES
            + record_bytes
            + 2 * HEADER_BYTES;
        let mut most_segments = 0;
        for seq in 1..=5_000 {
            append_each(&journal, &[event(seq, body_bytes)]);
            journal.forget_before(RUN, seq.saturating_sub(max_events as u64 - 1));
            let stats = journal.stats();
            assert!(
                stats.bytes <= bound,
                "{} > {bound} after {seq}",
                stats.bytes
            );
            most_segments = most_segments.max(stats.segments);
        }
        assert!(most_segments >= 2, "segments were started");
        assert_eq!(files(dir.path(), ".seg").len(), journal.stats().segments);
        journal.forget_before(RUN, u64::MAX);
        assert_eq!(journal.stats().segments, 1, "the newest segment stays");
        append_each(&journal, &[event(5_001, body_bytes)]);
        drop(journal);
        let (_journal, loaded) =
            Journal::open(dir.path(), SyncMode::No, max_events, history_bytes).expect("open");
        assert_eq!(
            ids(&loaded.records),
            (4_902..=5_001).map(|seq| (RUN, seq)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_stalled_append_blocks_only_appends() {
        let dir = TestDir::new("stall");
        let (journal, _) = open(dir.path());
        journal.gate().close();
        thread::scope(|scope| {
            let publisher = scope.spawn(|| journal.append(&[event(1, 10).as_ref()]));
            assert!(
                journal.gate().wait_for_waiting(1, Duration::from_secs(10)),
                "the append waits at the gate"
            );
            // Everything but appending goes on.
            assert_eq!((journal.stats().bytes, journal.stats().segments), (0, 0));
            journal.forget_before(RUN, 1);
            journal.sync_to(Ticket(0)).expect("sync");
            journal.gate().open();
            assert_eq!(
                publisher
                    .join()
                    .expect("the publisher ends")
                    .expect("append"),
                Ticket(1)
            );
        });
        assert!(journal.stats().bytes > 0);
    }
}
