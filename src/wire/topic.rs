//! Topic names: what a topic may be called.

use crate::Error;

/// Longest topic name, in bytes; a longer one is refused with
/// [`Error::BadTopic`].
pub(crate) const MAX_TOPIC_BYTES: usize = 128;
/// The topic of an event published without one.
pub(crate) const DEFAULT_TOPIC: &str = "default";

/// Checks a topic name: 1 to 128 characters of `A-Z a-z 0-9 - _ . ~ : /`.
///
/// ```
/// assert!(tinysse::check_topic("rooms/lobby").is_ok());
/// assert!(tinysse::check_topic("").is_err());
/// assert!(tinysse::check_topic("a b").is_err());
/// ```
pub fn check_topic(topic: &str) -> Result<(), Error> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.~:/".contains(&b);
    if topic.is_empty() || topic.len() > MAX_TOPIC_BYTES || !topic.bytes().all(allowed) {
        return Err(Error::BadTopic);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_checked() {
        for good in ["a", "A-z_0.9~:/", &"x".repeat(MAX_TOPIC_BYTES)] {
            assert!(check_topic(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "é", "a?b", &"x".repeat(MAX_TOPIC_BYTES + 1)] {
            assert!(check_topic(bad).is_err(), "{bad}");
        }
    }
}
