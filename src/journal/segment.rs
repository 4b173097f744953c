//! Segment files: their names, their header, and reading one back record by record.
//
// Implementation notes. A segment is named after the id its first record has
// (or would have): `<run>-<seq>.seg`, both zero-padded to 20 digits, so that
// the lexical order of the names is the order of the journal. It starts with
// an 8-byte header, `tinysse` and a format version byte, followed by records
// (see `record`). Within one segment the ids are consecutive, starting at the
// name's id: the writer starts a new segment whenever a batch does not
// continue the last one. The loader relies on that to bound the ids a
// damaged segment may hold (see `load`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::record::{self, FRAME_BYTES, Id, Record};

/// The first bytes of every segment: a name and the format version (1).
pub(crate) const HEADER: [u8; 8] = *b"tinysse\x01";

/// The length of [`HEADER`].
pub(crate) const HEADER_BYTES: u64 = HEADER.len() as u64;

/// What `load` and the writer know of a segment file in the journal.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Where the file is.
    pub path: PathBuf,
    /// The id of its first record (from its name).
    pub first: Id,
    /// The id of its last record, `None` while it holds none.
    pub last: Option<Id>,
    /// Its length in bytes.
    pub bytes: u64,
}

impl Segment {
    /// The id the next record in this segment must have.
    pub(crate) fn next_id(&self) -> Id {
        self.last.map_or(self.first, record::after)
    }
}

/// The file name of the segment whose first record has id `first`.
pub(crate) fn file_name(first: Id) -> String {
    format!("{:020}-{:020}.seg", first.0, first.1)
}

/// The first id of a segment named `name`, `None` when `name` is not exactly
/// how [`file_name`] writes one (other files in the directory are not ours).
pub(crate) fn parse_name(name: &str) -> Option<Id> {
    let (run, seq) = name.strip_suffix(".seg")?.split_once('-')?;
    let id = (run.parse().ok()?, seq.parse().ok()?);
    (file_name(id) == name).then_some(id)
}

/// What a damaged segment's name gets when it is set aside (then `.N` if taken).
pub(crate) const DAMAGED_SUFFIX: &str = ".damaged";

/// The segments in `dir`, with `last` and `bytes` still unknown: the live ones,
/// oldest first, and those set aside as damaged.
pub(crate) fn list(dir: &Path) -> io::Result<(Vec<Segment>, Vec<Segment>)> {
    let (mut live, mut aside): (Vec<Segment>, Vec<Segment>) = (Vec::new(), Vec::new());
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        // Only regular files: opening a FIFO, say, could block the start.
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let (segments, live_name) = match name.find(DAMAGED_SUFFIX) {
            Some(at) => (&mut aside, name.get(..at)),
            None => (&mut live, Some(name.as_str())),
        };
        if let Some(first) = live_name.and_then(parse_name) {
            // Each in its place by id, so the live ones end up oldest first
            // (a journal has a few segments: no sort code for them).
            let at = segments.partition_point(|segment| segment.first < first);
            let segment = Segment {
                path: entry.path(),
                first,
                last: None,
                bytes: 0,
            };
            segments.insert(at, segment);
        }
    }
    Ok((live, aside))
}

/// Creates the segment for `first` in `dir`, holding just its header, and
/// returns it open for appending. A file half-made by a failed write is removed.
pub(crate) fn create(dir: &Path, first: Id) -> io::Result<(File, Segment)> {
    let path = dir.join(file_name(first));
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)?;
    if let Err(error) = file.write_all(&HEADER) {
        let _ = fs::remove_file(&path);
        return Err(error);
    }
    Ok((
        file,
        Segment {
            path,
            first,
            last: None,
            bytes: HEADER_BYTES,
        },
    ))
}

/// Makes the names in `dir` (created, renamed, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    // Some systems (Windows) cannot open a directory as a file; there a file's
    // name is made durable with the file itself.
    match File::open(dir) {
        Ok(directory) => directory.sync_all(),
        Err(_) => Ok(()),
    }
}

/// What reading a segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The file's length in bytes.
    pub len: u64,
    /// Where the good records end (the header's end if there are none).
    pub good_end: u64,
    /// The id of the last good record.
    pub last: Option<Id>,
    /// The highest id of any record with a valid CRC, good or not.
    pub highest: Option<Id>,
    /// What ended the good records before the end of the file, if anything.
    pub problem: Option<Problem>,
}

/// Why the good records of a segment end before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The file ends in the middle of the header or of a record.
    Torn,
    /// The bytes at `good_end` are not the record that must come next.
    Damaged(&'static str),
}

/// Reads the segment at `path`, whose name says its first id is `first`, and
/// gives each good record to `good`, in order.
///
/// A record is good when its length is possible, its CRC matches, it decodes,
/// and its id is the one that must come next. After the first record that is
/// not, the rest is only walked for valid-CRC records, to learn their ids
/// ([`Scan::highest`]). Read errors count as damage: a journal is input.
pub(crate) fn scan(path: &Path, first: Id, good: &mut dyn FnMut(Record)) -> Scan {
    let mut scan = Scan::default();
    let Ok(file) = File::open(path) else {
        scan.problem = Some(Problem::Damaged("unreadable segment"));
        return scan;
    };
    scan.len = file.metadata().map_or(0, |metadata| metadata.len());
    let mut reader = Reader {
        inner: BufReader::with_capacity(64 * 1024, file),
        offset: 0,
        len: scan.len,
    };
    let mut header = [0; HEADER.len()];
    if let Err(problem) = reader.read(&mut header) {
        scan.problem = Some(problem);
        return scan;
    }
    if header != HEADER {
        scan.problem = Some(Problem::Damaged("unknown segment header"));
        return scan;
    }
    scan.good_end = HEADER_BYTES;
    let mut checked = Vec::new();
    let mut expected = first;
    let mut first_problem = None;
    let framing_problem = loop {
        match reader.next_record(&mut checked) {
            Ok(false) => break None,
            Ok(true) => {}
            Err(problem) => break Some(problem),
        }
        let problem = match record::decode(&checked) {
            Err(reason) => Problem::Damaged(reason),
            Ok(record) => {
                let id = record.id();
                scan.highest = scan.highest.max(Some(id));
                if first_problem.is_none() && id == expected {
                    expected = record::after(id);
                    scan.last = Some(id);
                    scan.good_end = reader.offset;
                    good(record);
                    continue;
                }
                Problem::Damaged("record out of order")
            }
        };
        first_problem = first_problem.or(Some(problem));
    };
    scan.problem = first_problem.or(framing_problem);
    scan
}

/// A segment being read, with its position and length, so that every length
/// read from it is checked against what is left before anything is allocated.
struct Reader {
    inner: BufReader<File>,
    offset: u64,
    len: u64,
}

impl Reader {
    /// Fills `out`, or says the file ends first (torn) or cannot be read (damaged).
    fn read(&mut self, out: &mut [u8]) -> Result<(), Problem> {
        if self.len.saturating_sub(self.offset) < out.len() as u64 {
            return Err(Problem::Torn);
        }
        self.inner
            .read_exact(out)
            .map_err(|_| Problem::Damaged("unreadable segment"))?;
        self.offset += out.len() as u64;
        Ok(())
    }

    /// Reads the next record with a valid frame and CRC into `checked` (the
    /// part after the frame); `false` at the end of the file.
    fn next_record(&mut self, checked: &mut Vec<u8>) -> Result<bool, Problem> {
        if self.offset == self.len {
            return Ok(false);
        }
        let mut frame = [0; FRAME_BYTES];
        self.read(&mut frame)?;
        let (length, crc) = record::decode_frame(frame);
        // Checked before anything is allocated: at most 16 MiB.
        if !record::is_possible_length(length) {
            return Err(Problem::Damaged("impossible record length"));
        }
        // Checked before allocating too: the file holds that many bytes more.
        if self.len.saturating_sub(self.offset) < u64::from(length) {
            return Err(Problem::Torn);
        }
        checked.clear();
        checked.resize(length as usize, 0);
        self.read(checked)?;
        if super::crc32::crc32(checked) != crc {
            return Err(Problem::Damaged("bad checksum"));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::{RecordRef, encode};
    use super::super::testing::TestDir;
    use super::*;

    #[test]
    fn names_sort_like_ids() {
        let cases = [
            (0, 0),
            (0, 1),
            (0, 10),
            (1, 0),
            (1_795_282_987_199, 42),
            (u64::MAX, u64::MAX),
        ];
        for pair in cases.windows(2) {
            let [a, b] = pair else { continue };
            assert!(file_name(*a) < file_name(*b), "{a:?} < {b:?}");
        }
        for id in cases {
            assert_eq!(parse_name(&file_name(id)), Some(id));
        }
        assert_eq!(
            file_name((1, 42)),
            "00000000000000000001-00000000000000000042.seg"
        );
    }

    #[test]
    fn other_names_are_not_segments() {
        let cases = [
            "tinysse.lock",
            "00000000000000000001-00000000000000000042.seg.damaged",
            "1-42.seg",
            "00000000000000000001-0000000000000000042.seg",
            "00000000000000000001_00000000000000000042.seg",
            "99999999999999999999-00000000000000000042.seg",
            "+0000000000000000001-00000000000000000042.seg",
        ];
        for name in cases {
            assert_eq!(parse_name(name), None, "{name}");
        }
    }

    fn write_segment(path: &Path, ids: &[Id]) -> Vec<u64> {
        let mut bytes = HEADER.to_vec();
        let mut ends = Vec::new();
        for &(run, seq) in ids {
            let body = vec![b'x'; seq as usize % 5];
            encode(
                &RecordRef {
                    run,
                    seq,
                    topic: "t",
                    body: &body,
                },
                &mut bytes,
            )
            .expect("valid");
            ends.push(bytes.len() as u64);
        }
        fs::write(path, &bytes).expect("write a segment");
        ends
    }

    fn scan_ids(path: &Path, first: Id) -> (Vec<Id>, Scan) {
        let mut ids = Vec::new();
        let scan = scan(path, first, &mut |record| ids.push(record.id()));
        (ids, scan)
    }

    #[test]
    fn scan_finds_where_good_records_end() {
        let dir = TestDir::new("scan");
        let path = dir.path().join("s.seg");
        let ends = write_segment(&path, &[(1, 5), (1, 6), (1, 7)]);
        let (ids, found) = scan_ids(&path, (1, 5));
        assert_eq!(ids, [(1, 5), (1, 6), (1, 7)]);
        assert_eq!(
            found,
            Scan {
                len: ends[2],
                good_end: ends[2],
                last: Some((1, 7)),
                highest: Some((1, 7)),
                problem: None
            }
        );

        // The name promises another first id: nothing is good, the ids are still learnt.
        let (ids, found) = scan_ids(&path, (1, 4));
        assert_eq!(
            (ids.len(), found.good_end, found.highest),
            (0, HEADER_BYTES, Some((1, 7)))
        );
        assert_eq!(found.problem, Some(Problem::Damaged("record out of order")));

        // A gap inside a segment is damage; the records after it are still read for their ids.
        write_segment(&path, &[(1, 5), (1, 7), (1, 8)]);
        let (ids, found) = scan_ids(&path, (1, 5));
        assert_eq!((ids, found.highest), (vec![(1, 5)], Some((1, 8))));
        assert_eq!(found.problem, Some(Problem::Damaged("record out of order")));
    }

    #[test]
    fn scan_tells_torn_from_damaged() {
        let dir = TestDir::new("scan-torn");
        let path = dir.path().join("s.seg");
        let ends = write_segment(&path, &[(1, 1), (1, 2)]);
        let full = fs::read(&path).expect("read");
        let flipped = |at: u64| {
            let mut bytes = full.clone();
            if let Some(byte) = bytes.get_mut(at as usize) {
                *byte ^= 0x40;
            }
            bytes
        };
        let impossible = {
            let mut bytes = full.clone();
            bytes.splice(ends[0] as usize..ends[0] as usize + 4, [0xFF; 4]);
            bytes
        };
        let cases: [(Vec<u8>, u64, Option<Problem>); 7] = [
            (Vec::new(), 0, Some(Problem::Torn)),
            (full[..5].to_vec(), 0, Some(Problem::Torn)),
            (
                flipped(2),
                0,
                Some(Problem::Damaged("unknown segment header")),
            ),
            (
                full[..full.len() - 1].to_vec(),
                ends[0],
                Some(Problem::Torn),
            ),
            (
                full[..ends[0] as usize + 3].to_vec(),
                ends[0],
                Some(Problem::Torn),
            ),
            (
                flipped(ends[0] + 20),
                ends[0],
                Some(Problem::Damaged("bad checksum")),
            ),
            (
                impossible,
                ends[0],
                Some(Problem::Damaged("impossible record length")),
            ),
        ];
        for (bytes, good_end, problem) in cases {
            fs::write(&path, &bytes).expect("write");
            let (_, found) = scan_ids(&path, (1, 1));
            assert_eq!((found.good_end, found.problem), (good_end, problem));
        }
    }
}
