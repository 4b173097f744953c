//! Topics (SPEC §2, `GET /events`): a subscriber gets exactly the topics it
//! asked for (all when it names none), in publish order; ids are global across
//! topics; a bad topic answers 400; publishers default to `default`.

use std::net::SocketAddr;

use tinysse::Message;

use crate::support;

/// Publishes `data` on `topic` as a plain body; returns the id.
pub fn publish_on(addr: SocketAddr, topic: &str, data: &str) -> String {
    let (status, body) = support::publish(
        addr,
        &format!("?topic={topic}"),
        Some("text/plain"),
        data.as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    body.trim_end().to_string()
}

/// The sequence number of an id `<run>-<seq>`.
pub fn seq(id: &str) -> u64 {
    let (run, seq) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("id {id:?} is not <run>-<seq>"));
    assert!(run.parse::<u64>().is_ok(), "id {id:?}");
    seq.parse()
        .unwrap_or_else(|_| panic!("id {id:?} is not <run>-<seq>"))
}

/// The run part of an id `<run>-<seq>`.
pub fn run(id: &str) -> &str {
    id.split_once('-').map(|(run, _)| run).unwrap()
}

fn message(data: &str, id: &str) -> Message {
    Message {
        event: "message".into(),
        data: data.into(),
        id: id.into(),
    }
}

/// Publishes `(topic, data)` pairs in order; returns their ids.
fn publish_all(addr: SocketAddr, events: &[(&str, &str)]) -> Vec<String> {
    events
        .iter()
        .map(|(topic, data)| publish_on(addr, topic, data))
        .collect()
}

/// Subscribes to `target`, publishes `events`, then a marker on `marker_topic`
/// (which the subscriber must want), and checks that the subscriber gets
/// exactly the events whose topic is in `wanted` (all when `None`), in publish
/// order, then the marker: anything else would arrive before the marker.
fn check_delivery(target: &str, wanted: Option<&[&str]>, marker_topic: &str) {
    let server = support::start_default();
    let mut subscriber = support::subscribe(server.addr, target, "");
    let events = [
        ("b", "b1"),
        ("a", "a1"),
        ("c", "c1"),
        ("default", "d1"),
        ("b", "b2"),
        ("a", "a2"),
        ("a/b", "slash"),
        ("A", "upper"),
        ("c", "c2"),
        ("a", "a3"),
    ];
    let ids = publish_all(server.addr, &events);
    let marker = publish_on(server.addr, marker_topic, "marker");
    let mut expected: Vec<Message> = events
        .iter()
        .zip(&ids)
        .filter(|((topic, _), _)| wanted.is_none_or(|wanted| wanted.contains(topic)))
        .map(|((_, data), id)| message(data, id))
        .collect();
    expected.push(message("marker", &marker));
    assert_eq!(subscriber.events(expected.len()), expected, "{target}");
}

#[test]
fn subscribe_to_one_topic_then_publish_on_several_gets_only_that_topic() {
    check_delivery("/events?topic=a", Some(&["a"]), "a");
}

#[test]
fn subscribe_to_two_topics_then_publish_on_several_gets_both_in_publish_order() {
    check_delivery("/events?topic=a&topic=b", Some(&["a", "b"]), "b");
}

#[test]
fn subscribe_to_topics_with_allowed_punctuation_gets_them() {
    check_delivery(
        "/events?topic=a%2Fb&topic=A&topic=x-_.~:/y",
        Some(&["a/b", "A"]),
        "x-_.~:/y",
    );
}

#[test]
fn subscribe_to_no_topic_then_publish_on_several_gets_all() {
    check_delivery("/events", None, "zzz");
}

#[test]
fn subscribe_then_publish_on_several_topics_ids_are_global_and_increasing() {
    let server = support::start_default();
    let mut everything = support::subscribe(server.addr, "/events", "");
    let mut only_b = support::subscribe(server.addr, "/events?topic=b", "");
    let topics = ["a", "b", "c", "b", "a", "default", "b"];
    let ids: Vec<String> = topics
        .iter()
        .enumerate()
        .map(|(n, topic)| publish_on(server.addr, topic, &n.to_string()))
        .collect();
    // One run, and the seq grows by exactly one per event across topics.
    for pair in ids.windows(2) {
        assert_eq!(run(&pair[0]), run(&pair[1]), "{ids:?}");
        assert_eq!(seq(&pair[0]) + 1, seq(&pair[1]), "{ids:?}");
    }
    let seen: Vec<String> = everything
        .events(ids.len())
        .into_iter()
        .map(|message| message.id)
        .collect();
    assert_eq!(seen, ids);
    // A topic subscriber sees the same global ids, with holes where other topics were.
    let seen_b: Vec<String> = only_b.events(3).into_iter().map(|m| m.id).collect();
    assert_eq!(seen_b, [ids[1].clone(), ids[3].clone(), ids[6].clone()]);
}

#[test]
fn subscribe_with_bad_topic_answers_400_with_one_line_reason() {
    let server = support::start_default();
    let too_long = "x".repeat(129);
    let bad = [
        "topic=a%20b".to_string(),
        "topic=a+b".to_string(),
        "topic=".to_string(),
        "topic".to_string(),
        format!("topic={too_long}"),
        "topic=%C3%A9".to_string(),
        "topic=a%3Fb".to_string(),
        "topic=good&topic=a%20b".to_string(),
    ];
    for query in bad {
        let request =
            format!("GET /events?{query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let response = support::raw(server.addr, request.as_bytes());
        assert_eq!(response.status, 400, "{query}: {response:?}");
        let text = response.text();
        let reason = text
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("{query}: reason {text:?} does not end its line"));
        assert!(
            !reason.trim().is_empty() && !reason.contains(['\n', '\r']),
            "{query}: reason {text:?} is not one line"
        );
        assert!(reason.contains("topic"), "{query}: reason {text:?}");
    }
    // Nobody got subscribed by any of those.
    assert_eq!(server.hub().subscriber_count(), 0);
}

#[test]
fn subscribe_with_topic_of_128_characters_is_accepted() {
    let server = support::start_default();
    let longest = "y".repeat(128);
    let mut subscriber = support::subscribe(server.addr, &format!("/events?topic={longest}"), "");
    let id = publish_on(server.addr, &longest, "at the limit");
    assert_eq!(subscriber.next_event(), message("at the limit", &id));
}

#[test]
fn publish_without_topic_goes_to_default() {
    let server = support::start_default();
    let mut default = support::subscribe(server.addr, "/events?topic=default", "");
    let mut other = support::subscribe(server.addr, "/events?topic=other", "");
    let (status, plain) = support::publish(server.addr, "", Some("text/plain"), b"plain");
    assert_eq!(status, 200, "{plain}");
    let (status, form) = support::publish(
        server.addr,
        "",
        Some("application/x-www-form-urlencoded"),
        b"data=form",
    );
    assert_eq!(status, 200, "{form}");
    let (status, batch) =
        support::publish(server.addr, "", Some("text/event-stream"), b"data: batch\n");
    assert_eq!(status, 200, "{batch}");
    assert_eq!(
        default.events(3),
        [
            message("plain", plain.trim_end()),
            message("form", form.trim_end()),
            message("batch", batch.trim_end()),
        ]
    );
    // The `other` subscriber got none of them: its first event is this one.
    let id = publish_on(server.addr, "other", "mine");
    assert_eq!(other.next_event(), message("mine", &id));
}
