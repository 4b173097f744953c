#!/usr/bin/env python3
"""The stack pages an idle subscriber keeps, on the release build.

ARCHITECTURE.md's invariant: a subscriber's thread touches two pages of its
64 KiB stack (8 KiB), and that is most of its memory. Debug builds have other
frames, so `cargo test` cannot see this; a frame that grows in the stream
path (an inlined helper, a buffer on the stack) shows here as a third page.

Starts TINYSSE_BIN, opens 200 subscribers, publishes one event that each
receives, then reads /proc/PID/smaps: the connection threads' stacks are
the anonymous read-write mappings of 64 KiB. Run by scripts/e2e with
TINYSSE_BIN, E2E_DIR and E2E_PIDS set; prints one ok/FAIL line per check.
"""
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

SUBSCRIBERS = 200
STACK_KIB = 64
failed = 0


def ok(name):
    print(f"ok   {name}", flush=True)


def fail(name, expected, got):
    global failed
    failed += 1
    print(f"FAIL {name}: expected {expected}, got {got}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until(sock, needle, deadline):
    data = b""
    while needle not in data:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"stream ended; received {data!r}")
        data += chunk
    return data


def stacks(pid):
    """Resident KiB of each anonymous rw mapping of STACK_KIB."""
    found, current = [], None
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:
                anonymous = len(fields) == 5 and fields[1].startswith("rw")
                current = {"anonymous": anonymous}
            elif current is not None and fields[0] in ("Size:", "Rss:"):
                current[fields[0]] = int(fields[1])
                if fields[0] == "Rss:" and current["anonymous"] and current.get("Size:") == STACK_KIB:
                    found.append(current["Rss:"])
    return found


port = free_port()
log = open(os.path.join(os.environ["E2E_DIR"], "logs", "tinysse-stack.log"), "ab")
server = subprocess.Popen(
    [os.environ["TINYSSE_BIN"], "serve", "--listen", f"127.0.0.1:{port}", "--heartbeat", "30"],
    stderr=log,
)
with open(os.environ["E2E_PIDS"], "a") as pids:
    pids.write(f"{server.pid}\n")
subscribers = []
try:
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    for _ in range(SUBSCRIBERS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        read_until(sock, b"retry: ", time.monotonic() + 10)
        subscribers.append(sock)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/publish", data=b"data=on%20every%20stack", method="POST"
    )
    urllib.request.urlopen(request, timeout=5).read()
    for sock in subscribers:
        read_until(sock, b"data: on every stack\n\n", time.monotonic() + 10)
    resident = stacks(server.pid)
    if len(resident) < SUBSCRIBERS:
        fail(
            "stack: a 64 KiB stack per subscriber thread in /proc/PID/smaps",
            f"at least {SUBSCRIBERS}",
            f"{len(resident)}",
        )
    else:
        median = statistics.median(resident)
        spread = f"median {median} KiB, max {max(resident)} KiB over {len(resident)} stacks"
        if median <= 8:
            ok(f"stack: an idle subscriber that received an event keeps two stack pages ({spread})")
        else:
            fail("stack: two resident stack pages per idle subscriber", "at most 8 KiB", spread)
finally:
    for sock in subscribers:
        sock.close()
    server.terminate()
    server.wait(timeout=10)
sys.exit(1 if failed else 0)
