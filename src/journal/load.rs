//! Opening a journal: reading its segments back in order, keeping the newest
//! records that fit the history, cutting a torn tail and setting damaged
//! segments aside.
//
// SPEC §8, Damage: "At start, a torn last record (a crash in the middle of a
// write) is cut off; a damaged record elsewhere ends the usable journal at that
// point, and the damaged segment is renamed aside, not deleted. The server
// always starts, and says in one line on stderr how many events were loaded
// and what was dropped."

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::record::{self, Id, MIN_RECORD_BYTES, Record};
use super::segment::{self, DAMAGED_SUFFIX, Problem, Segment};

/// What a journal held when it was opened.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// Oldest first: the newest good records that fit the history limits
    /// (the newest one is kept even when it alone is over the byte limit).
    pub records: Vec<Record>,
    /// The id the next event must have at least; `None` for an empty or new
    /// journal, where the hub starts a new run.
    pub next: Option<Id>,
    /// One line for stderr: what was loaded and what was dropped.
    pub report: String,
}

/// Reads the journal in `dir` (which exists and whose lock the caller holds),
/// repairs it as SPEC §8 says, and returns what it holds and its live
/// segments, oldest first. Only I/O errors on the directory or while repairing
/// are errors; damage in the files is not.
pub(crate) fn load(
    dir: &Path,
    max_events: usize,
    max_bytes: usize,
) -> io::Result<(Loaded, Vec<Segment>)> {
    let (mut segments, set_aside_before) = segment::list(dir)?;
    let newest = segments.len().saturating_sub(1);
    let mut kept = Kept {
        max_events,
        max_bytes,
        ..Kept::default()
    };
    // SPEC §8: "A client that resumes past what was dropped gets a gap." An id
    // that was written may have been acknowledged and seen by clients, so it
    // must never be given to another event: `next` ends above every id that may
    // have been written, not just above the last good one. It is the highest of:
    // - the id after the last good record;
    // - the id after any record with a valid CRC, in any segment, including
    //   those set aside now or at an earlier start (they are read again at
    //   every start, so a crash in the middle of a repair loses nothing);
    // - for a damaged segment's unread rest: the id after its last good record
    //   (or its name's) plus (unread bytes / the shortest record). Ids are
    //   consecutive within a segment, so those bytes cannot hold a higher one.
    // A torn last record gets the same bound: after a crash of the process
    // its write had not returned (never acknowledged), but a power loss can
    // tear a record that had been written, acknowledged and sent.
    let mut next: Option<Id> = None;
    let mut good_next: Option<Id> = None;
    let mut damage: Option<(usize, &'static str)> = None;
    let mut torn_bytes = None;
    for (index, segment) in segments.iter_mut().enumerate() {
        let in_order = good_next.is_none_or(|expected| segment.first >= expected);
        let healthy = damage.is_none() && in_order;
        let mut keep = |record| {
            if healthy {
                kept.push(index, record);
            }
        };
        let scan = segment::scan(&segment.path, segment.first, &mut keep);
        segment.last = scan.last;
        segment.bytes = scan.good_end;
        next = next
            .max(Some(segment.next_id()))
            .max(scan.highest.map(record::after));
        if healthy {
            good_next = Some(segment.next_id());
        }
        match scan.problem {
            _ if damage.is_some() => {}
            _ if !in_order => damage = Some((index, "segment out of order")),
            None => {}
            Some(Problem::Torn) if index == newest => {
                torn_bytes = Some(scan.len.saturating_sub(scan.good_end));
                next = next.max(Some(upper_bound(segment.first, &scan)));
            }
            Some(Problem::Torn) => damage = Some((index, "record cut short")),
            Some(Problem::Damaged(reason)) => damage = Some((index, reason)),
        }
        if damage.is_some() {
            next = next.max(Some(upper_bound(segment.first, &scan)));
        }
    }
    for segment in &set_aside_before {
        let scan = segment::scan(&segment.path, segment.first, &mut |_| {});
        next = next.max(Some(upper_bound(segment.first, &scan)));
    }

    let mut kept_in = vec![0_usize; segments.len()];
    for (index, _) in &kept.records {
        if let Some(count) = kept_in.get_mut(*index) {
            *count += 1;
        }
    }
    let damaged_first = damage
        .and_then(|(index, _)| segments.get(index))
        .map(|damaged| damaged.first);
    let mut live = Vec::new();
    let mut set_aside_count = 0;
    let mut changed = false;
    for (index, segment) in segments.into_iter().enumerate() {
        let holds_kept = kept_in.get(index).is_some_and(|&count| count > 0);
        if let Some((damaged, _)) = damage.filter(|&(damaged, _)| index >= damaged) {
            let aside = set_aside(&segment.path)?;
            set_aside_count += 1;
            // The good records before the damage stay in the journal: a new file
            // with just them, written whole, takes the damaged segment's name.
            if index == damaged && holds_kept {
                copy_prefix(&aside, &segment.path, segment.bytes)?;
                live.push(segment);
            }
        } else if holds_kept {
            if index == newest && torn_bytes.is_some() {
                cut(&segment.path, segment.bytes)?;
            }
            live.push(segment);
            continue;
        } else {
            fs::remove_file(&segment.path)?;
        }
        changed = true;
    }
    if changed {
        segment::sync_dir(dir)?;
    }

    let records: Vec<Record> = kept.records.into_iter().map(|(_, record)| record).collect();
    // Writing to a String cannot fail. The directory as `Path::display`
    // writes it, without linking that printer too.
    let mut report = String::new();
    let dir_text = dir.to_string_lossy();
    let _ = write!(
        report,
        "journal {dir_text}: loaded {} events",
        records.len()
    );
    if let Some(last) = records.last() {
        let _ = write!(report, " (run {})", last.run);
    }
    if kept.left_out > 0 {
        let _ = write!(
            report,
            "; left out {} older events over the history limits",
            kept.left_out
        );
    }
    if let Some(bytes) = torn_bytes {
        let _ = write!(report, "; dropped a torn last record ({bytes} bytes)");
    }
    if let (Some((_, reason)), Some(first)) = (damage, damaged_first) {
        let name = segment::file_name(first);
        let plural = if set_aside_count == 1 { "" } else { "s" };
        let _ = write!(
            report,
            "; a damaged record ({reason}) in {name} ended the journal: \
             {set_aside_count} segment{plural} renamed to *.damaged"
        );
    }
    Ok((
        Loaded {
            records,
            next,
            report,
        },
        live,
    ))
}

/// The newest records read so far that fit the history limits.
#[derive(Default)]
struct Kept {
    /// Oldest first, each with the index of its segment.
    records: VecDeque<(usize, Record)>,
    /// The bytes of their bodies.
    bytes: usize,
    /// How many older records were left out to fit.
    left_out: usize,
    max_events: usize,
    max_bytes: usize,
}

impl Kept {
    /// Adds the newest record, then leaves out the oldest ones past the limits
    /// (never the newest for bytes, like the in-memory history).
    fn push(&mut self, segment: usize, record: Record) {
        self.bytes = self.bytes.saturating_add(record.body.len());
        self.records.push_back((segment, record));
        while self.records.len() > self.max_events
            || (self.bytes > self.max_bytes && self.records.len() > 1)
        {
            let Some((_, oldest)) = self.records.pop_front() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(oldest.body.len());
            self.left_out += 1;
        }
    }
}

/// The id after every id that a segment may hold, readable or not, given what
/// [`segment::scan`] found in it (see the note on `next` in [`load`]).
fn upper_bound(first: Id, scan: &segment::Scan) -> Id {
    let (run, seq) = scan.last.map_or(first, record::after);
    // Rounded up: a few bytes left are the start of one more record.
    let unread_records = scan
        .len
        .saturating_sub(scan.good_end)
        .div_ceil(MIN_RECORD_BYTES);
    let bound = (run, seq.saturating_add(unread_records));
    bound.max(scan.highest.map_or(bound, record::after))
}

/// Renames a damaged segment to `<name>.damaged` (`.damaged.N` when taken) and
/// returns its new path. Damaged segments are evidence: never deleted.
fn set_aside(path: &Path) -> io::Result<PathBuf> {
    for attempt in 0..100 {
        let mut name = path.as_os_str().to_owned();
        name.push(DAMAGED_SUFFIX);
        if attempt > 0 {
            name.push(format!(".{attempt}"));
        }
        let target = PathBuf::from(name);
        if !target.try_exists()? {
            fs::rename(path, &target)?;
            return Ok(target);
        }
    }
    Err(io::Error::other(
        "too many damaged copies of a journal segment",
    ))
}

/// Writes the first `bytes` of `from` to a new file `to`, durably.
fn copy_prefix(from: &Path, to: &Path, bytes: u64) -> io::Result<()> {
    let mut prefix = File::open(from)?.take(bytes);
    let mut copy = OpenOptions::new().write(true).create_new(true).open(to)?;
    // A plain loop: `io::copy` between two files would bring in std's
    // copy_file_range, sendfile and splice paths (about 2 KB).
    let mut buffer = vec![0; 64 * 1024];
    let mut copied: u64 = 0;
    loop {
        let read = match prefix.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        copy.write_all(&buffer[..read])?;
        copied += read as u64;
    }
    if copied != bytes {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "damaged journal segment shrank while copied",
        ));
    }
    copy.sync_all()
}

/// Cuts a torn tail off the file at `path`, durably: the one change in place
/// SPEC §8 allows at start ("a torn last record ... is cut off").
fn cut(path: &Path, bytes: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::record::{FRAME_BYTES, after};
    use super::super::segment::HEADER_BYTES;
    use super::super::testing::{RUN, TestDir, append_each, copy_files, event, files, ids, open};
    use super::super::writer::{Journal, SyncMode};
    use super::*;

    /// Writes `count` events (seq 1..) with bodies of `body_bytes`, in 64 KiB segments.
    fn write_journal(dir: &Path, count: u64, body_bytes: usize) -> Vec<Record> {
        let events: Vec<Record> = (1..=count).map(|seq| event(seq, body_bytes)).collect();
        let (journal, _) = Journal::open(dir, SyncMode::No, usize::MAX, 0).expect("open");
        append_each(&journal, &events);
        events
    }

    #[test]
    fn records_and_ids_survive_a_restart() {
        let dir = TestDir::new("round-trip");
        let (journal, loaded) = open(dir.path());
        assert_eq!((loaded.records.len(), loaded.next), (0, None));
        assert_eq!(
            loaded.report,
            format!("journal {}: loaded 0 events", dir.path().display())
        );
        let events: Vec<Record> = (1..=6).map(|seq| event(seq, seq as usize * 10)).collect();
        for batch in [&events[..1], &events[1..4], &events[4..]] {
            let batch: Vec<_> = batch.iter().map(Record::as_ref).collect();
            journal.append(&batch).expect("append");
        }
        drop(journal);

        let (journal, loaded) = open(dir.path());
        assert_eq!(loaded.records, events);
        assert_eq!(loaded.next, Some((RUN, 7)));
        assert_eq!(
            loaded.report,
            format!(
                "journal {}: loaded 6 events (run {RUN})",
                dir.path().display()
            )
        );
        append_each(&journal, &[event(7, 3)]);
        drop(journal);

        let (_journal, loaded) = open(dir.path());
        assert_eq!(
            ids(&loaded.records),
            (1..=7).map(|seq| (RUN, seq)).collect::<Vec<_>>()
        );
        assert_eq!(loaded.next, Some((RUN, 8)));
        assert_eq!(
            files(dir.path(), ".seg").len(),
            1,
            "a restart continues the newest segment"
        );
    }

    #[test]
    fn only_the_newest_records_that_fit_are_loaded() {
        let base = TestDir::new("limits-base");
        let events = write_journal(base.path(), 20, 10_000);
        assert_eq!(files(base.path(), ".seg").len(), 3);
        // (max_events, max_bytes) → the first seq kept (to 20), and the segments left.
        let cases = [
            (100, usize::MAX, 1, 3),
            (3, usize::MAX, 18, 1),
            (9, usize::MAX, 12, 2),
            (100, 45_000, 17, 1),
            (100, 5_000, 20, 1), // the newest stays even alone over the limit
            (0, usize::MAX, 21, 0),
        ];
        for (max_events, max_bytes, first_kept, segments) in cases {
            let dir = TestDir::new("limits");
            copy_files(base.path(), dir.path());
            let (_journal, loaded) =
                Journal::open(dir.path(), SyncMode::No, max_events, max_bytes).expect("open");
            let expected = events.get(first_kept - 1..).unwrap_or_default().to_vec();
            assert_eq!(
                ids(&loaded.records),
                ids(&expected),
                "limits {max_events}, {max_bytes}"
            );
            assert_eq!(loaded.records, expected);
            assert_eq!(loaded.next, Some((RUN, 21)));
            assert_eq!(
                files(dir.path(), ".seg").len(),
                segments,
                "limits {max_events}, {max_bytes}"
            );
            let left_out = 20 - expected.len();
            assert_eq!(
                loaded
                    .report
                    .contains(&format!("left out {left_out} older events")),
                left_out > 0
            );
        }
    }

    #[test]
    fn a_torn_last_record_is_cut_off() {
        let base = TestDir::new("torn-base");
        let events = write_journal(base.path(), 5, 20);
        let name = files(base.path(), ".seg").remove(0);
        let full_bytes = fs::metadata(base.path().join(&name))
            .expect("metadata")
            .len();
        let last_record_bytes = (FRAME_BYTES + 8 + 8 + 1 + events[4].topic.len() + 20) as u64;
        for cut_bytes in 1..last_record_bytes {
            let dir = TestDir::new("torn");
            copy_files(base.path(), dir.path());
            let path = dir.path().join(&name);
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|file| file.set_len(full_bytes - cut_bytes))
                .expect("cut");

            let (journal, loaded) = open(dir.path());
            assert_eq!(loaded.records, events[..4], "cut {cut_bytes}");
            // The torn record's id is never given to another event.
            let next = loaded.next.expect("a next id");
            assert!(next > (RUN, 5), "cut {cut_bytes}: {next:?}");
            let torn_bytes = last_record_bytes - cut_bytes;
            assert!(
                loaded.report.ends_with(&format!(
                    "; dropped a torn last record ({torn_bytes} bytes)"
                )),
                "{}",
                loaded.report
            );
            assert_eq!(
                fs::metadata(&path).expect("metadata").len(),
                full_bytes - last_record_bytes
            );
            let after = Record {
                run: next.0,
                seq: next.1,
                ..events[4].clone()
            };
            append_each(&journal, std::slice::from_ref(&after));
            drop(journal);

            let (_journal, loaded) = open(dir.path());
            assert_eq!(loaded.records[..4], events[..4]);
            assert_eq!(loaded.records[4..], [after]);
            assert!(!loaded.report.contains(';'), "{}", loaded.report);
        }
    }

    #[test]
    fn a_damaged_record_ends_the_journal_and_ids_stay_unique() {
        let dir = TestDir::new("damaged");
        let events = write_journal(dir.path(), 30, 5_000);
        let names = files(dir.path(), ".seg");
        assert_eq!(names.len(), 3);
        let record_bytes = (FRAME_BYTES + 8 + 8 + 1 + events[0].topic.len() + 5_000) as u64;
        let second = dir.path().join(&names[1]);
        let mut bytes = fs::read(&second).expect("read");
        let first_seq_of_second = segment::parse_name(&names[1]).expect("a name").1;
        // A byte in the body of the third record of the second segment.
        bytes[(HEADER_BYTES + 2 * record_bytes + 100) as usize] ^= 0x20;
        fs::write(&second, &bytes).expect("write");

        let (journal, loaded) = open(dir.path());
        let good = (first_seq_of_second + 1) as usize;
        assert_eq!(loaded.records, events[..good]);
        let next = loaded.next.expect("a next id");
        assert!(next > (RUN, 30), "{next:?} is past every id written");
        assert_eq!(
            files(dir.path(), ".damaged"),
            [
                format!("{}.damaged", names[1]),
                format!("{}.damaged", names[2])
            ]
        );
        assert!(loaded.report.ends_with(&format!(
            "; a damaged record (bad checksum) in {} ended the journal: 2 segments renamed to *.damaged",
            names[1]
        )));
        drop(journal);

        let (journal, again) = open(dir.path());
        assert_eq!(
            (again.records, again.next),
            (loaded.records, loaded.next),
            "{}",
            again.report
        );
        assert!(!again.report.contains(';'), "{}", again.report);
        let newer = Record {
            run: next.0,
            seq: next.1,
            ..event(31, 10)
        };
        append_each(&journal, std::slice::from_ref(&newer));
        drop(journal);

        let (_journal, last) = open(dir.path());
        assert_eq!(last.records.last(), Some(&newer));
        assert_eq!(last.records.len(), good + 1);
        assert_eq!(last.next, Some(after(newer.id())));
        assert!(!last.report.contains(';'), "{}", last.report);
    }

    // Seeded: the same damage on every run.
    use crate::testing::Rng;

    #[test]
    fn random_damage_never_yields_a_wrong_record() {
        let base = TestDir::new("random-base");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let events: Vec<Record> = (1..=150).map(|seq| event(seq, rng.below(3_000))).collect();
        {
            let (journal, _) =
                Journal::open(base.path(), SyncMode::No, usize::MAX, 0).expect("open");
            let mut rest = &events[..];
            while !rest.is_empty() {
                let (batch, later) = rest.split_at((1 + rng.below(4)).min(rest.len()));
                journal
                    .append(&batch.iter().map(Record::as_ref).collect::<Vec<_>>())
                    .expect("append");
                rest = later;
            }
        }
        let names = files(base.path(), ".seg");
        assert!(names.len() >= 3, "several segments: {names:?}");
        let by_seq: HashMap<u64, &Record> =
            events.iter().map(|record| (record.seq, record)).collect();

        for case in 0..400 {
            let dir = TestDir::new("random");
            copy_files(base.path(), dir.path());
            // Only a cut at the very end loses ids for good, like a crash mid-write.
            let mut newest_cut = false;
            for _ in 0..1 + rng.below(3) {
                let which = rng.below(names.len());
                let path = dir.path().join(&names[which]);
                let mut bytes = fs::read(&path).expect("read");
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] ^= 1 + rng.below(255) as u8,
                    1 => {
                        bytes.truncate(at);
                        newest_cut |= which == names.len() - 1;
                    }
                    2 => {
                        let end = (at + 1 + rng.below(300)).min(bytes.len());
                        let copy = bytes[at..end].to_vec();
                        bytes.splice(end..end, copy);
                    }
                    _ => {
                        let page = at / 4096 * 4096;
                        let end = (page + 4096).min(bytes.len());
                        bytes[page..end].fill(0);
                    }
                }
                fs::write(&path, &bytes).expect("write");
            }

            let (journal, loaded) = open(dir.path());
            for record in &loaded.records {
                assert_eq!(
                    Some(&record),
                    by_seq.get(&record.seq),
                    "case {case}: a loaded record is as appended"
                );
            }
            assert!(
                loaded
                    .records
                    .windows(2)
                    .all(|pair| pair[0].id() < pair[1].id()),
                "case {case}: ids grow"
            );
            if let Some(last) = loaded.records.last() {
                assert!(
                    loaded.next > Some(last.id()),
                    "case {case}: next is past the loaded ids"
                );
            }
            if !newest_cut {
                assert!(
                    loaded.next > Some((RUN, 150)),
                    "case {case}: next is past every id written"
                );
            }
            drop(journal);
            let (_journal, again) = open(dir.path());
            assert_eq!(
                (&again.records, again.next),
                (&loaded.records, loaded.next),
                "case {case}"
            );
            assert!(!again.report.contains(';'), "case {case}: {}", again.report);
        }
    }
}
