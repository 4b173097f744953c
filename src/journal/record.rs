//! One journal record: an event's id, topic and body, framed with its length
//! and a CRC-32 so that a torn or damaged record is recognised when read back.
//
// Implementation notes. A record, all integers little-endian:
//
// | bytes | field                                               |
// |-------|-----------------------------------------------------|
// | 4     | length of the rest, after this field and the CRC    |
// | 4     | CRC-32 (IEEE) of the rest                           |
// | 8     | run (the id's run part)                             |
// | 8     | seq (the id's sequence number)                      |
// | 1     | topic length, 1..=128                               |
// | n     | topic, bytes of `A-Za-z0-9-_.~:/`                   |
// | rest  | body: the event's wire frame without its `id:` line |

use std::io;

use super::crc32::Crc32;

/// An event id as `(run, seq)`; ids compare by run, then by seq.
pub(crate) type Id = (u64, u64);

/// The most bytes a record may have after its length and CRC. A longer record
/// is refused by [`encode`], and a length over it read from disk is damage
/// (nothing that long is ever allocated).
pub(crate) const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// The longest topic, in bytes.
pub(crate) const MAX_TOPIC_BYTES: usize = 128;

/// Bytes before the checked part of a record: its length and its CRC.
pub(crate) const FRAME_BYTES: usize = 4 + 4;

/// Bytes of the checked part before the topic: run, seq, topic length.
const FIXED_BYTES: usize = 8 + 8 + 1;

/// The shortest possible record: a one-byte topic and an empty body.
pub(crate) const MIN_RECORD_BYTES: u64 = (FRAME_BYTES + FIXED_BYTES + 1) as u64;

/// An event as the journal stores it and gives it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// The id's run part.
    pub run: u64,
    /// The id's sequence number.
    pub seq: u64,
    /// The event's topic.
    pub topic: String,
    /// The event's encoded wire frame, without its `id:` line.
    pub body: Vec<u8>,
}

/// A borrowed [`Record`], for appending without copying.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordRef<'a> {
    /// The id's run part.
    pub run: u64,
    /// The id's sequence number.
    pub seq: u64,
    /// The event's topic: 1 to [`MAX_TOPIC_BYTES`] bytes of `A-Za-z0-9-_.~:/`.
    pub topic: &'a str,
    /// The event's encoded wire frame, without its `id:` line.
    pub body: &'a [u8],
}

impl Record {
    /// This record, borrowed.
    #[cfg(test)]
    pub(crate) fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            run: self.run,
            seq: self.seq,
            topic: &self.topic,
            body: &self.body,
        }
    }

    /// The record's `(run, seq)`.
    pub(crate) fn id(&self) -> Id {
        (self.run, self.seq)
    }
}

impl RecordRef<'_> {
    /// The record's `(run, seq)`.
    pub(crate) fn id(&self) -> Id {
        (self.run, self.seq)
    }
}

/// The id that directly follows `id` (the next seq of the same run).
pub(crate) fn after(id: Id) -> Id {
    match id.1.checked_add(1) {
        Some(seq) => (id.0, seq),
        // No event ever gets seq u64::MAX; this only keeps the order total.
        None => (id.0.saturating_add(1), 0),
    }
}

/// Whether `topic` is 1 to [`MAX_TOPIC_BYTES`] bytes of `A-Za-z0-9-_.~:/`.
pub(crate) fn is_valid_topic(topic: &[u8]) -> bool {
    (1..=MAX_TOPIC_BYTES).contains(&topic.len())
        && topic
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || b"-_.~:/".contains(&byte))
}

/// Appends `record`, framed, to `out`.
///
/// Fails with `InvalidInput`, leaving `out` as it was, when the topic is not
/// valid or the record is over [`MAX_RECORD_BYTES`]: such a record would read
/// back as damage.
pub(crate) fn encode(record: &RecordRef<'_>, out: &mut Vec<u8>) -> io::Result<()> {
    if !is_valid_topic(record.topic.as_bytes()) {
        return Err(invalid_input("journal record has an invalid topic"));
    }
    let checked_bytes = FIXED_BYTES + record.topic.len() + record.body.len();
    if checked_bytes > MAX_RECORD_BYTES {
        return Err(invalid_input("journal record is over 16 MiB"));
    }
    // At most 16 MiB, checked above, so it fits.
    let length = checked_bytes as u32;
    let run = record.run.to_le_bytes();
    let seq = record.seq.to_le_bytes();
    // The topic is at most 128 bytes, checked above.
    let topic_length = [record.topic.len() as u8];
    let crc = Crc32::new()
        .update(&run)
        .update(&seq)
        .update(&topic_length)
        .update(record.topic.as_bytes())
        .update(record.body)
        .finish();
    out.reserve(FRAME_BYTES + checked_bytes);
    for part in [
        &length.to_le_bytes()[..],
        &crc.to_le_bytes(),
        &run,
        &seq,
        &topic_length,
    ] {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(record.topic.as_bytes());
    out.extend_from_slice(record.body);
    Ok(())
}

/// Reads a record's length and CRC from its first [`FRAME_BYTES`] bytes.
pub(crate) fn decode_frame(frame: [u8; FRAME_BYTES]) -> (u32, u32) {
    let [l0, l1, l2, l3, c0, c1, c2, c3] = frame;
    (
        u32::from_le_bytes([l0, l1, l2, l3]),
        u32::from_le_bytes([c0, c1, c2, c3]),
    )
}

/// Whether a length read from a frame can be a record's: long enough for the
/// fixed fields and a topic, and not over [`MAX_RECORD_BYTES`].
pub(crate) fn is_possible_length(length: u32) -> bool {
    let length = u64::from(length);
    length >= MIN_RECORD_BYTES - FRAME_BYTES as u64 && length <= MAX_RECORD_BYTES as u64
}

/// Reads the checked part of a record (after the frame, CRC already verified),
/// or says in a few words why it is not one.
pub(crate) fn decode(checked: &[u8]) -> Result<Record, &'static str> {
    let (run, rest) = checked.split_first_chunk::<8>().ok_or("record too short")?;
    let (seq, rest) = rest.split_first_chunk::<8>().ok_or("record too short")?;
    let (&topic_length, rest) = rest.split_first().ok_or("record too short")?;
    let (topic, body) = rest
        .split_at_checked(usize::from(topic_length))
        .ok_or("record too short")?;
    if !is_valid_topic(topic) {
        return Err("invalid topic");
    }
    Ok(Record {
        run: u64::from_le_bytes(*run),
        seq: u64::from_le_bytes(*seq),
        // A valid topic is ASCII, so this never loses a byte.
        topic: String::from_utf8_lossy(topic).into_owned(),
        body: body.to_vec(),
    })
}

fn invalid_input(reason: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, reason)
}

#[cfg(test)]
mod tests {
    use super::super::crc32::crc32;
    use super::*;

    fn encoded(record: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&record.as_ref(), &mut out).expect("a valid record encodes");
        out
    }

    fn round_trip(bytes: &[u8]) -> Result<Record, &'static str> {
        let (frame, checked) = bytes.split_first_chunk::<FRAME_BYTES>().ok_or("short")?;
        let (length, crc) = decode_frame(*frame);
        assert_eq!(length as usize, checked.len());
        assert_eq!(crc, crc32(checked));
        decode(checked)
    }

    #[test]
    fn records_round_trip() {
        let records = [
            Record {
                run: 1,
                seq: 2,
                topic: "a".into(),
                body: Vec::new(),
            },
            Record {
                run: u64::MAX,
                seq: 7,
                topic: "news/eu:fr~x.y_z-1".into(),
                body: b"data: x\n\n".to_vec(),
            },
            Record {
                run: 3,
                seq: 4,
                topic: "t".repeat(MAX_TOPIC_BYTES),
                body: vec![0xFF; 70_000],
            },
        ];
        for record in records {
            let bytes = encoded(&record);
            assert_eq!(round_trip(&bytes), Ok(record.clone()));
        }
        let smallest = encoded(&Record {
            run: 0,
            seq: 0,
            topic: "a".into(),
            body: Vec::new(),
        });
        assert_eq!(smallest.len() as u64, MIN_RECORD_BYTES);
    }

    #[test]
    fn invalid_records_are_refused() {
        let long_topic = "t".repeat(MAX_TOPIC_BYTES + 1);
        let huge_body = vec![0; MAX_RECORD_BYTES];
        let cases: [(&str, &[u8], &str); 4] = [
            ("", b"", "journal record has an invalid topic"),
            ("a b", b"", "journal record has an invalid topic"),
            (&long_topic, b"", "journal record has an invalid topic"),
            ("a", &huge_body, "journal record is over 16 MiB"),
        ];
        for (topic, body, reason) in cases {
            let mut out = vec![1, 2, 3];
            let error = encode(
                &RecordRef {
                    run: 1,
                    seq: 1,
                    topic,
                    body,
                },
                &mut out,
            )
            .unwrap_err();
            assert_eq!(error.to_string(), reason);
            assert_eq!(out, [1, 2, 3], "nothing is written for a refused record");
        }
    }

    #[test]
    fn damaged_checked_parts_are_refused() {
        let good = encoded(&Record {
            run: 1,
            seq: 2,
            topic: "ab".into(),
            body: b"x".to_vec(),
        });
        let checked = good.get(FRAME_BYTES..).unwrap_or_default();
        let mut bad_topic = checked.to_vec();
        bad_topic[FIXED_BYTES] = b' ';
        let mut long_topic_length = checked.to_vec();
        long_topic_length[FIXED_BYTES - 1] = 200;
        let mut empty_topic = checked.to_vec();
        empty_topic[FIXED_BYTES - 1] = 0;
        let cases: [(&[u8], &str); 5] = [
            (&[], "record too short"),
            (
                checked.get(..FIXED_BYTES - 1).unwrap_or_default(),
                "record too short",
            ),
            (&long_topic_length, "record too short"),
            (&bad_topic, "invalid topic"),
            (&empty_topic, "invalid topic"),
        ];
        for (input, reason) in cases {
            assert_eq!(decode(input), Err(reason));
        }
    }

    #[test]
    fn lengths_are_checked_against_the_limits() {
        let cases = [
            (0, false),
            (17, false),
            (18, true),
            (16 * 1024 * 1024, true),
            (16 * 1024 * 1024 + 1, false),
            (u32::MAX, false),
        ];
        for (length, possible) in cases {
            assert_eq!(is_possible_length(length), possible, "length {length}");
        }
    }

    #[test]
    fn after_is_the_next_seq() {
        assert_eq!(after((5, 9)), (5, 10));
        assert_eq!(after((5, u64::MAX)), (6, 0));
    }
}
