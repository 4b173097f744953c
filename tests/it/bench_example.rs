//! `examples/bench.rs`, the load generator, run as its own process against a
//! server in this test process (so `--pid` is our own pid).

use std::process::Command;
use std::time::Duration;

use crate::support::{Finished, config, example_binary, run_to_end, start};

/// Longest a run of the example may take: connecting 20 subscribers, 2 s of
/// publishing and a drain that ends as soon as every event arrived.
const RUN_LIMIT: Duration = Duration::from_secs(12);

/// Runs the example with `args` to its end; kills it after [`RUN_LIMIT`].
fn bench(args: &[&str]) -> Finished {
    let mut command = Command::new(example_binary("bench"));
    command.args(args);
    run_to_end(command, RUN_LIMIT)
}

/// The number on the report line that starts with `label`.
fn figure(report: &str, label: &str) -> f64 {
    let line = report
        .lines()
        .find(|line| line.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in\n{report}"));
    let value = line.split_whitespace().last().unwrap();
    value
        .parse()
        .unwrap_or_else(|_| panic!("{label:?} is not a number in {line:?}"))
}

#[test]
fn bench_delivers_every_event_to_every_subscriber() {
    let server = start(config());
    let url = format!("http://{}", server.addr);
    let pid = std::process::id().to_string();
    let args = [
        "--url",
        &url,
        "--subs",
        "20",
        "--rate",
        "50",
        "--duration",
        "2",
        "--pid",
        &pid,
    ];
    let run = bench(&args);
    let report = &run.stdout;
    assert!(run.status.success(), "{report}\n{}", run.stderr);
    assert_eq!(figure(report, "subscribers connected"), 20.0, "{report}");
    // 50 events/s for 2 s; a busy machine may delay the publisher, which then
    // reports the shortfall instead of publishing after its time.
    let published = figure(report, "published");
    assert!((80.0..=100.0).contains(&published), "{report}");
    assert_eq!(figure(report, "publish failures"), 0.0, "{report}");
    assert_eq!(
        figure(report, "deliveries made"),
        published * 20.0,
        "{report}"
    );
    assert_eq!(figure(report, "delivered (%)"), 100.0, "{report}");
    for zero in [
        "deliveries lost",
        "duplicates",
        "out of order",
        "gap events",
    ] {
        assert_eq!(figure(report, zero), 0.0, "{zero}: {report}");
    }
    let p50 = figure(report, "latency p50 (µs)");
    let p99 = figure(report, "latency p99 (µs)");
    assert!(0.0 < p50 && p50 <= p99, "{report}");
    assert!(p99 <= figure(report, "latency max (µs)"), "{report}");
    // Our own process is the server: its memory and threads are reported.
    assert!(
        figure(report, "server RSS with subscribers (KiB)") > 0.0,
        "{report}"
    );
    assert!(figure(report, "server threads peak") >= 20.0, "{report}");
}

#[test]
fn bench_json_is_one_line_with_the_same_figures() {
    let server = start(config());
    let url = format!("http://{}", server.addr);
    let args = [
        "--url",
        &url,
        "--subs",
        "3",
        "--rate",
        "20",
        "--duration",
        "0.5",
        "--json",
    ];
    let run = bench(&args);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    let line = run.stdout.trim_end();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.starts_with("{\"subscribers_connected\":3,"), "{line}");
    assert!(line.contains(",\"delivered_percent\":100,"), "{line}");
    assert!(line.contains(",\"latency_p50_us\":"), "{line}");
    assert!(
        line.contains(",\"server_rss_peak_kib\":null,"),
        "no --pid: {line}"
    );
    assert!(line.ends_with("]}"), "{line}");
}

#[test]
fn bench_help_exits_0_and_a_bad_flag_exits_2() {
    let help = bench(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(help.stdout.starts_with("usage: bench"), "{}", help.stdout);

    for args in [
        &["--subs", "many"][..],
        &["--frobnicate"],
        &["--rate"],
        &["--url", "https://127.0.0.1:1"],
    ] {
        let refused = bench(args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        assert_eq!(
            refused.stderr.lines().count(),
            1,
            "{args:?}: {}",
            refused.stderr
        );
        assert!(refused.stderr.starts_with("bench: "), "{}", refused.stderr);
    }
}

#[test]
fn bench_without_a_server_exits_1() {
    // A port that was just free: nothing listens there now.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    let refused = bench(&["--url", &url, "--subs", "2"]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("cannot subscribe"),
        "{}",
        refused.stderr
    );
}
