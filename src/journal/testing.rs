//! Test helpers: temporary directories, removed when dropped, and events.

use std::path::{Path, PathBuf};

use super::load::Loaded;
use super::record::{Id, Record};
use super::writer::{Journal, OpenError, SyncMode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::{fs, process};

/// A fresh directory under the system's temporary directory, removed on drop.
pub(crate) struct TestDir(PathBuf);

impl TestDir {
    /// Creates a directory whose name holds `name`, the process id and a counter.
    pub(crate) fn new(name: &str) -> TestDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("journalparts-{name}-{}-{unique}", process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create a test directory");
        TestDir(path)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The run part of the ids the tests write.
pub(crate) const RUN: u64 = 1_795_282_987_199;

/// The event with id `(RUN, seq)`, a topic and a `body_bytes` long body that
/// both derive from `seq`, so that any mix-up shows.
pub(crate) fn event(seq: u64, body_bytes: usize) -> Record {
    let topic = format!("news/{}", seq % 7);
    let body = (0..body_bytes)
        .map(|index| b'a' + ((seq as usize + index) % 26) as u8)
        .collect();
    Record {
        run: RUN,
        seq,
        topic,
        body,
    }
}

/// Appends each record as a batch of its own.
pub(crate) fn append_each(journal: &Journal, records: &[Record]) {
    for record in records {
        journal.append(&[record.as_ref()]).expect("append");
    }
}

/// Opens the journal in `dir` with mode `no` and no history limits. A
/// journal just dropped may still look in use for a moment: a child process
/// another test forks holds a copy of its lock until it execs.
pub(crate) fn open(dir: &Path) -> (Journal, Loaded) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Journal::open(dir, SyncMode::No, usize::MAX, usize::MAX) {
            Ok(opened) => return opened,
            Err(OpenError::InUse(_)) if std::time::Instant::now() < deadline => {
                std::thread::yield_now();
            }
            Err(err) => panic!("open the journal {}: {err}", dir.display()),
        }
    }
}

/// The ids of `records`.
pub(crate) fn ids(records: &[Record]) -> Vec<Id> {
    records.iter().map(Record::id).collect()
}

/// The names of the files in `dir` that end with `suffix`, sorted.
pub(crate) fn files(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read the directory")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// Copies every file in `from` into `to`.
pub(crate) fn copy_files(from: &Path, to: &Path) {
    for name in files(from, "") {
        fs::copy(from.join(&name), to.join(&name)).expect("copy a file");
    }
}
