//! Topic names: what a topic may be called; and topic patterns, the topics
//! a client may read or write ([`Topics`]).

use std::collections::HashSet;

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

/// Topics a client may read or write: every topic, none, or those that match
/// patterns. SPEC §10: "A topic pattern is a topic, `*` (every topic), or a
/// prefix ending in `/*` (`user/42/*` matches every topic that starts with
/// `user/42/`, such as `user/42/inbox` and `user/42/a/b`, not `user/42`
/// itself)."
///
/// ```
/// use tinysse::Topics;
///
/// let topics = Topics::patterns(&["news", "user/42/*"])?;
/// assert!(topics.allows("news") && topics.allows("user/42/inbox"));
/// assert!(!topics.allows("user/42") && !topics.allows("user/420/x"));
/// assert!(Topics::all().allows("anything") && !Topics::none().allows("news"));
/// # Ok::<(), tinysse::Error>(())
/// ```
// Implementation notes: a client may carry many patterns and every event is
// matched against them, so matching must not walk the list. `*` is a flag,
// exact topics sit in one hash set, and prefixes (kept with their final `/`,
// without the `*`) in another. A topic can only match a prefix that ends just
// after one of its own `/`, so `allows` looks up the topic and then each of
// those few prefixes: the cost follows the number of `/` in the topic, not
// the number of patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    every: bool,
    exact: HashSet<Box<str>>,
    /// Each ends with `/`, as `user/42/` for the pattern `user/42/*`.
    prefixes: HashSet<Box<str>>,
}

impl Topics {
    /// Every topic.
    pub fn all() -> Topics {
        Topics {
            every: true,
            ..Topics::default()
        }
    }

    /// No topic at all.
    pub fn none() -> Topics {
        Topics::default()
    }

    /// The topics that match any of `patterns`. A bad pattern (empty, over
    /// 128 bytes, a character outside the topic set, or a `*` that is not
    /// the whole last segment) is refused with a reason.
    pub fn patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Topics, Error> {
        let mut topics = Topics::default();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            if pattern == "*" {
                topics.every = true;
            } else if let Some(prefix) = pattern.strip_suffix('*') {
                // Only "/*" may end a prefix: "user/42*" is refused here, and
                // a '*' anywhere else by the topic check.
                if !prefix.ends_with('/') {
                    return Err(Error::BadRequest(
                        "a topic pattern's '*' must be its whole last segment",
                    ));
                }
                check_pattern(prefix)?;
                topics.prefixes.insert(prefix.into());
            } else {
                check_pattern(pattern)?;
                topics.exact.insert(pattern.into());
            }
        }
        Ok(topics)
    }

    /// Whether `topic` is one of these topics.
    pub fn allows(&self, topic: &str) -> bool {
        if self.every || self.exact.contains(topic) {
            return true;
        }
        // Every prefix of the topic that ends just after a '/'; a '/' is one
        // byte, so `index + 1` is a character boundary within the topic.
        topic
            .match_indices('/')
            .filter_map(|(index, _)| topic.get(..index + 1))
            .any(|prefix| self.prefixes.contains(prefix))
    }

    /// Whether no topic at all is allowed.
    pub fn is_none(&self) -> bool {
        !self.every && self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// Whether every topic is allowed.
    pub(crate) fn is_all(&self) -> bool {
        self.every
    }

    /// The topics, when they are a plain list (no `*`, no prefix).
    pub(crate) fn exact_list(&self) -> Option<Vec<&str>> {
        (!self.every && self.prefixes.is_empty()).then(|| self.exact.iter().map(|t| &**t).collect())
    }
}

/// A pattern's topic part: a topic, with room for a prefix's final `/`.
fn check_pattern(topic: &str) -> Result<(), Error> {
    check_topic(topic).map_err(|_| {
        Error::BadRequest("a topic pattern is not 1-128 characters of A-Z a-z 0-9 - _ . ~ : /")
    })
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

    fn check(patterns: &[&str], matching: &[&str], not_matching: &[&str]) {
        let set = Topics::patterns(patterns).unwrap();
        for topic in matching {
            assert!(set.allows(topic), "{patterns:?} should match {topic:?}");
        }
        for topic in not_matching {
            assert!(
                !set.allows(topic),
                "{patterns:?} should not match {topic:?}"
            );
        }
    }

    #[test]
    fn patterns_match_as_the_spec_says() {
        check(
            &["user/42/*"],
            &["user/42/inbox", "user/42/a/b", "user/42/"],
            &[
                "user/42",
                "user/420/x",
                "user/4",
                "user",
                "user/43/inbox",
                "xuser/42/inbox",
            ],
        );
        check(
            &["user/42", "news"],
            &["user/42", "news"],
            &["user/42/inbox", "new", "news/x"],
        );
        check(&["*"], &["news", "a/b/c", "/"], &[]);
        check(&["/*"], &["/", "/a", "/a/b"], &["a", "a/b"]);
        check(&["a//*"], &["a//", "a//b"], &["a/b", "a/", "a"]);
        check(&["news", "*", "user/42/*"], &["x", "user/1"], &[]);
        check(&["a/*", "a/b/c/*"], &["a/x", "a/b/c/d"], &["b/a"]);
        assert!(Topics::patterns::<&str>(&[]).unwrap().is_none());
        assert!(!Topics::patterns(&["a/*"]).unwrap().is_none());
    }

    #[test]
    fn many_patterns_are_cheap_to_match() {
        let list: Vec<String> = (0..10_000)
            .flat_map(|user| [format!("user/{user}"), format!("user/{user}/inbox/*")])
            .collect();
        let set = Topics::patterns(&list).unwrap();
        assert!(set.allows("user/9999") && set.allows("user/1234/inbox/today"));
        assert!(!set.allows("user/1234/outbox/today") && !set.allows("user/10000"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        let longest = format!("{}/*", "a".repeat(MAX_TOPIC_BYTES - 1));
        assert!(Topics::patterns(&[longest.as_str()]).is_ok());
        let too_long = format!("{}/*", "a".repeat(MAX_TOPIC_BYTES));
        for bad in [
            "",
            "a b",
            "café",
            "a/*/b",
            "a/**",
            "a?b",
            "user/42*",
            "**",
            too_long.as_str(),
        ] {
            assert!(Topics::patterns(&["news", bad]).is_err(), "{bad:?}");
        }
    }
}
