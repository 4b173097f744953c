//! Counters for `GET /metrics`, rendered in the Prometheus text format.
//!
//! Plain atomics: counting never takes the hub lock.
//!
//! ```
//! use tinysse::Hub;
//! use tinysse::metrics::Metrics;
//!
//! let metrics = Metrics::default();
//! metrics.request(200);
//! let text = metrics.render(&Hub::new().stats());
//! assert!(text.contains("\n# TYPE tinysse_requests_total counter\n"));
//! assert!(text.contains("\ntinysse_requests_total{code=\"200\"} 1\n"));
//! ```

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hub::HubStats;

/// The status codes counted one by one; any other counts as `other`.
const STATUSES: [u16; 17] = [
    100, 200, 204, 400, 401, 403, 404, 405, 408, 411, 413, 414, 431, 500, 501, 503, 505,
];

/// Why a subscriber was dropped by the server (not by its client).
///
/// ```
/// use tinysse::Hub;
/// use tinysse::metrics::{DropReason, Metrics};
///
/// let shutting_down = true;
/// let reason = if shutting_down { DropReason::Shutdown } else { DropReason::WriteTimeout };
/// let metrics = Metrics::default();
/// metrics.dropped(reason);
/// let text = metrics.render(&Hub::new().stats());
/// assert!(text.contains("\ntinysse_subscribers_dropped_total{reason=\"shutdown\"} 1\n"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its socket accepted nothing for the write timeout.
    WriteTimeout,
    /// The server was at `--max-subscribers` (answered "full", retry later).
    Full,
    /// The server shut down.
    Shutdown,
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

/// The server's counters.
///
/// Shared by every connection thread without a lock:
///
/// ```
/// use tinysse::Hub;
/// use tinysse::metrics::Metrics;
///
/// let metrics = Metrics::default();
/// std::thread::scope(|scope| {
///     for _ in 0..4 {
///         scope.spawn(|| metrics.sent(10));
///     }
/// });
/// assert!(metrics.render(&Hub::new().stats()).contains("\ntinysse_bytes_sent_total 40\n"));
/// ```
#[derive(Debug, Default)]
pub struct Metrics {
    connections: AtomicU64,
    delivered: AtomicU64,
    bytes_sent: AtomicU64,
    dropped: [AtomicU64; 3],
    requests: [AtomicU64; STATUSES.len() + 1],
}

impl Metrics {
    /// A connection was accepted (`+1`) or closed (`-1`).
    ///
    /// ```
    /// use tinysse::metrics::Metrics;
    ///
    /// let metrics = Metrics::default();
    /// metrics.connection_opened();
    /// assert_eq!(metrics.connections(), 1);
    /// ```
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// See [`Metrics::connection_opened`].
    ///
    /// ```
    /// use tinysse::metrics::Metrics;
    ///
    /// let metrics = Metrics::default();
    /// metrics.connection_opened();
    /// // ... serve the connection ...
    /// metrics.connection_closed();
    /// assert_eq!(metrics.connections(), 0);
    /// ```
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections open now.
    ///
    /// ```
    /// use tinysse::Hub;
    /// use tinysse::metrics::Metrics;
    ///
    /// let metrics = Metrics::default();
    /// metrics.connection_opened();
    /// metrics.connection_opened();
    /// assert_eq!(metrics.connections(), 2);
    /// assert!(metrics.render(&Hub::new().stats()).contains("\ntinysse_connections 2\n"));
    /// ```
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// `events` events in `bytes` bytes were written to a subscriber.
    ///
    /// ```
    /// use tinysse::Hub;
    /// use tinysse::metrics::Metrics;
    ///
    /// let metrics = Metrics::default();
    /// metrics.delivered(3, 120);
    /// let text = metrics.render(&Hub::new().stats());
    /// assert!(text.contains("\ntinysse_events_delivered_total 3\n"));
    /// assert!(text.contains("\ntinysse_bytes_sent_total 120\n"));
    /// ```
    pub fn delivered(&self, events: usize, bytes: usize) {
        self.delivered.fetch_add(events as u64, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Other bytes (heads, heartbeats, responses) were written.
    ///
    /// ```
    /// use tinysse::Hub;
    /// use tinysse::metrics::Metrics;
    ///
    /// let metrics = Metrics::default();
    /// metrics.sent(75);
    /// let text = metrics.render(&Hub::new().stats());
    /// assert!(text.contains("\ntinysse_bytes_sent_total 75\n"));
    /// assert!(text.contains("\ntinysse_events_delivered_total 0\n"));
    /// ```
    pub fn sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A subscriber was dropped for `reason`.
    ///
    /// ```
    /// use tinysse::Hub;
    /// use tinysse::metrics::{DropReason, Metrics};
    ///
    /// let metrics = Metrics::default();
    /// metrics.dropped(DropReason::Full);
    /// let text = metrics.render(&Hub::new().stats());
    /// assert!(text.contains("\ntinysse_subscribers_dropped_total{reason=\"full\"} 1\n"));
    /// assert!(text.contains("\ntinysse_subscribers_dropped_total{reason=\"write_timeout\"} 0\n"));
    /// ```
    pub fn dropped(&self, reason: DropReason) {
        let index = DropReason::ALL
            .iter()
            .position(|&known| known == reason)
            .unwrap_or(0);
        self.dropped[index].fetch_add(1, Ordering::Relaxed);
    }

    /// A response with `status` was sent.
    ///
    /// Statuses never sent are left out; unknown ones count as `other`:
    ///
    /// ```
    /// use tinysse::Hub;
    /// use tinysse::metrics::Metrics;
    ///
    /// let metrics = Metrics::default();
    /// metrics.request(404);
    /// metrics.request(418);
    /// let text = metrics.render(&Hub::new().stats());
    /// assert!(text.contains("\ntinysse_requests_total{code=\"404\"} 1\n"));
    /// assert!(text.contains("\ntinysse_requests_total{code=\"other\"} 1\n"));
    /// assert!(!text.contains("{code=\"200\"}"));
    /// ```
    pub fn request(&self, status: u16) {
        let index = STATUSES
            .iter()
            .position(|&known| known == status)
            .unwrap_or(STATUSES.len());
        self.requests[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter and of `hub`.
    ///
    /// ```
    /// use tinysse::metrics::Metrics;
    /// use tinysse::{Event, Hub};
    ///
    /// let hub = Hub::new();
    /// hub.publish("default", Event::new("hello"))?;
    /// let text = Metrics::default().render(&hub.stats());
    /// let first: Vec<&str> = text.lines().take(3).collect();
    /// assert_eq!(first, [
    ///     "# HELP tinysse_subscribers Subscribers connected now.",
    ///     "# TYPE tinysse_subscribers gauge",
    ///     "tinysse_subscribers 0",
    /// ]);
    /// assert!(text.contains("\ntinysse_events_published_total 1\n"));
    /// # Ok::<(), tinysse::Error>(())
    /// ```
    pub fn render(&self, hub: &HubStats) -> String {
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
        let requests: Vec<_> = STATUSES
            .iter()
            .map(|status| status.to_string())
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
