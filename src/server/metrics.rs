//! Counters for `GET /metrics`, rendered in the Prometheus text format.
//!
//! Plain atomics: counting never takes the hub lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::http::STATUSES;
use crate::hub::HubStats;

/// Why a subscriber was dropped by the server (not by its client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Its socket accepted nothing for the write timeout.
    WriteTimeout,
    /// The server was at `--max-subscribers` (answered "full", retry later).
    Full,
    /// The server shut down.
    Shutdown,
}

/// Why a connection was closed by the server before it was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every connection slot was taken (503).
    Full,
    /// Its client address had `--max-per-address` connections open (503).
    PerAddress,
    /// It waited longest for its request head when a slot was needed (408).
    SlowHead,
}

impl Refusal {
    const ALL: [Refusal; 3] = [Refusal::Full, Refusal::PerAddress, Refusal::SlowHead];

    fn label(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::PerAddress => "per_address",
            Refusal::SlowHead => "slow_head",
        }
    }
}

impl DropReason {
    const ALL: [DropReason; 3] = [
        DropReason::WriteTimeout,
        DropReason::Full,
        DropReason::Shutdown,
    ];

    fn label(self) -> &'static str {
        match self {
            DropReason::WriteTimeout => "write_timeout",
            DropReason::Full => "full",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// The server's counters, shared by every connection thread without a lock.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    connections: AtomicU64,
    delivered: AtomicU64,
    bytes_sent: AtomicU64,
    dropped: [AtomicU64; 3],
    refused: [AtomicU64; 3],
    accept_errors: AtomicU64,
    requests: [AtomicU64; STATUSES.len() + 1],
}

impl Metrics {
    /// A connection was accepted (`+1`) or closed (`-1`).
    pub(crate) fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// See [`Metrics::connection_opened`].
    pub(crate) fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// `events` events in `bytes` bytes were written to a subscriber.
    pub(crate) fn delivered(&self, events: usize, bytes: usize) {
        self.delivered.fetch_add(events as u64, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Other bytes (heads, heartbeats, responses) were written.
    pub(crate) fn sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A subscriber was dropped for `reason`.
    pub(crate) fn dropped(&self, reason: DropReason) {
        let index = DropReason::ALL
            .iter()
            .position(|&known| known == reason)
            .unwrap_or(0);
        self.dropped[index].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed for `why` before it was served.
    pub(crate) fn refused(&self, why: Refusal) {
        let index = Refusal::ALL
            .iter()
            .position(|&known| known == why)
            .unwrap_or(0);
        self.refused[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Accepting a connection failed (out of descriptors, say).
    pub(crate) fn accept_failed(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A response with `status` was sent.
    ///
    /// Statuses never sent are left out; unknown ones count as `other`.
    pub(crate) fn request(&self, status: u16) {
        let index = STATUSES
            .iter()
            .position(|&(known, _)| known == status)
            .unwrap_or(STATUSES.len());
        self.requests[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter and of `hub`.
    pub(crate) fn render(&self, hub: &HubStats) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(
                out,
                "# HELP tinysse_{name} {help}\n# TYPE tinysse_{name} {kind}"
            );
            for (labels, value) in samples {
                let _ = writeln!(out, "tinysse_{name}{labels} {value}");
            }
        };
        let plain = |value: u64| vec![(String::new(), value)];
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        metric(
            "subscribers",
            "gauge",
            "Subscribers connected now.",
            &plain(hub.subscribers as u64),
        );
        metric(
            "connections",
            "gauge",
            "Connections open now.",
            &plain(self.connections()),
        );
        metric(
            "events_published_total",
            "counter",
            "Events published.",
            &plain(hub.published),
        );
        metric(
            "events_delivered_total",
            "counter",
            "Events written to subscribers.",
            &plain(load(&self.delivered)),
        );
        metric(
            "bytes_sent_total",
            "counter",
            "Bytes written to clients.",
            &plain(load(&self.bytes_sent)),
        );
        metric(
            "gaps_sent_total",
            "counter",
            "Gap events sent to subscribers that lost events.",
            &plain(hub.gaps),
        );
        let dropped: Vec<_> = DropReason::ALL
            .iter()
            .zip(&self.dropped)
            .map(|(reason, counter)| (format!("{{reason=\"{}\"}}", reason.label()), load(counter)))
            .collect();
        metric(
            "subscribers_dropped_total",
            "counter",
            "Subscribers dropped by the server, by reason.",
            &dropped,
        );
        let refused: Vec<_> = Refusal::ALL
            .iter()
            .zip(&self.refused)
            .map(|(why, counter)| (format!("{{reason=\"{}\"}}", why.label()), load(counter)))
            .collect();
        metric(
            "connections_refused_total",
            "counter",
            "Connections closed before they were served: every slot taken (full), too many from one address (per_address), or closed with 408 to make room (slow_head).",
            &refused,
        );
        metric(
            "accept_errors_total",
            "counter",
            "Failed accepts (out of file descriptors, say).",
            &plain(load(&self.accept_errors)),
        );
        let requests: Vec<_> = STATUSES
            .iter()
            .map(|(status, _)| status.to_string())
            .chain(["other".to_string()])
            .zip(&self.requests)
            .filter(|(_, counter)| load(counter) > 0)
            .map(|(code, counter)| (format!("{{code=\"{code}\"}}"), load(counter)))
            .collect();
        metric(
            "requests_total",
            "counter",
            "Responses sent, by status code.",
            &requests,
        );
        metric(
            "history_events",
            "gauge",
            "Events held in the history.",
            &plain(hub.history_len as u64),
        );
        metric(
            "history_bytes",
            "gauge",
            "Bytes of encoded events held in the history.",
            &plain(hub.history_bytes as u64),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics.request(200);
        metrics.request(200);
        metrics.request(299);
        metrics.dropped(DropReason::WriteTimeout);
        metrics.refused(Refusal::SlowHead);
        let stats = HubStats {
            subscribers: 2,
            published: 7,
            history_len: 3,
            history_bytes: 90,
            gaps: 4,
        };
        let text = metrics.render(&stats);
        for line in [
            "# TYPE tinysse_subscribers gauge",
            "tinysse_subscribers 2",
            "tinysse_events_published_total 7",
            "tinysse_requests_total{code=\"200\"} 2",
            "tinysse_requests_total{code=\"other\"} 1",
            "tinysse_subscribers_dropped_total{reason=\"write_timeout\"} 1",
            "tinysse_connections_refused_total{reason=\"slow_head\"} 1",
            "tinysse_connections_refused_total{reason=\"per_address\"} 0",
            "tinysse_accept_errors_total 0",
            "tinysse_history_bytes 90",
            "tinysse_gaps_sent_total 4",
        ] {
            assert!(
                text.lines().any(|got| got == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
