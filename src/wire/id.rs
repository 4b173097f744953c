//! Event ids, and the randomness behind them and behind reconnection jitter.
//!
//! An id is `<run>-<seq>`: `run` names one run of a hub (so that an id from
//! another run is never mistaken for one of ours), `seq` counts the events of
//! the run from 1, across all topics.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// An event id: two numbers, compared in order. Ids of a hub only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Id {
    pub(crate) run: u64,
    pub(crate) seq: u64,
}

impl Id {
    /// Reads `<digits>-<digits>`; `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<Id> {
        let (run, seq) = text.split_once('-')?;
        let number = |part: &str| {
            let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| part.parse::<u64>().ok()).flatten()
        };
        Some(Id {
            run: number(run)?,
            seq: number(seq)?,
        })
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.run, self.seq)
    }
}

/// Random bits in a run, below the start time: one in a million that two
/// runs started in the same millisecond share a run.
const RUN_RANDOM_BITS: u32 = 20;

/// A new run: the start time in milliseconds with random bits mixed in
/// (SPEC §4: routers often boot without a real-time clock, at the same date
/// every time), made greater than any earlier run in this process, so that
/// two hubs never share ids.
pub(crate) fn new_run() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0);
    let random = random_u64() & ((1 << RUN_RANDOM_BITS) - 1);
    let now = (millis << RUN_RANDOM_BITS) | random;
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let run = now.max(last.saturating_add(1));
        match LAST.compare_exchange(last, run, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return run,
            Err(current) => last = current,
        }
    }
}

/// A random number, for jitter (not for secrets).
pub(crate) fn random_u64() -> u64 {
    // Each `RandomState` gets new random keys, so any hash it makes is random.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u8(0);
    hasher.finish()
}

/// `millis` plus a random part of up to `millis` again (at least 1 s of
/// spread), so that clients told to come back do not all come at once.
pub(crate) fn jittered(millis: u64) -> u64 {
    millis.saturating_add(random_u64() % millis.max(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_print() {
        let id = Id { run: 17, seq: 4 };
        assert_eq!(Id::parse(&id.to_string()), Some(id));
        for bad in [
            "",
            "1",
            "1-",
            "-1",
            "+1-2",
            "1-+2",
            "a-1",
            "1-2-3",
            "1 -2",
            "99999999999999999999-1",
        ] {
            assert_eq!(Id::parse(bad), None, "{bad:?}");
        }
        assert!(Id { run: 1, seq: 9 } < Id { run: 2, seq: 1 });
    }

    #[test]
    fn runs_are_the_start_time_and_random_bits() {
        let millis = |run: u64| run >> RUN_RANDOM_BITS;
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (first, second) = (new_run(), new_run());
        assert!(first < second, "runs grow within a process");
        assert!(
            millis(first) >= before && millis(first) < before + 1000,
            "{first}"
        );
        // The random part: new keys each time, so two draws (almost) never
        // agree in their low bits.
        let mask = (1 << RUN_RANDOM_BITS) - 1;
        let draws: std::collections::HashSet<u64> = (0..20).map(|_| random_u64() & mask).collect();
        assert!(draws.len() > 15, "{draws:?}");
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let value = jittered(3000);
            assert!((3000..6000).contains(&value), "{value}");
        }
        assert!(jittered(u64::MAX) == u64::MAX);
    }
}
