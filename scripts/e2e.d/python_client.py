"""httpx-sse (PyPI) against a real `tinysse serve`: receiving, resuming with
Last-Event-ID the way an application written with it would, and gap.

Run by scripts/e2e with the venv in target/e2e/venv; environment TINYSSE_BIN,
E2E_DIR, E2E_PIDS as for the Node checks.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import httpx
from httpx_sse import connect_sse

BIN = os.environ["TINYSSE_BIN"]
LOGS = os.path.join(os.environ["E2E_DIR"], "logs")
PIDS = os.environ["E2E_PIDS"]

CHECKS = {
    "receive": "python httpx-sse: receives events with data, event type and id intact",
    "resume": "python httpx-sse: reconnects with Last-Event-ID and gets the missed events once, then live ones",
    "gap": "python httpx-sse: an unknown Last-Event-ID gets gap, then the history",
}
pending = dict(CHECKS)
failed = 0


def ok(key):
    print(f"ok   {pending.pop(key)}", flush=True)


def fail(key, expected, got):
    global failed
    failed += 1
    print(f"FAIL {pending.pop(key)}: expected {expected}, got {got}", flush=True)


def show(value):
    return json.dumps(value, ensure_ascii=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server():
    port = free_port()
    log = open(os.path.join(LOGS, "tinysse-python.log"), "ab")
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--heartbeat", "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
    )
    with open(PIDS, "a") as f:
        f.write(f"{proc.pid}\n")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("tinysse did not answer /healthz within 5 s")


def publish(base, data, topic, event=None):
    query = {"topic": topic}
    if event:
        query["event"] = event
    request = urllib.request.Request(
        f"{base}/publish?{urllib.parse.urlencode(query)}",
        data=data.encode("utf-8"),
        headers={"Content-Type": "text/plain; charset=utf-8"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read().decode().strip()


class Subscriber(threading.Thread):
    """Reads one connection with httpx-sse, keeping what an application keeps."""

    def __init__(self, url, last_event_id=None, stop_when=None):
        super().__init__(daemon=True)
        self.url = url
        self.stop_when = stop_when or (lambda event: False)
        self.headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.events = []
        self.opened = threading.Event()
        self.error = None

    def run(self):
        try:
            timeout = httpx.Timeout(5.0)  # tinysse sends a heartbeat every second
            with httpx.Client(timeout=timeout) as client:
                with connect_sse(client, "GET", self.url, headers=self.headers) as source:
                    source.response.raise_for_status()
                    self.opened.set()
                    for sse in source.iter_sse():
                        # httpx-sse also yields the stream's opening `retry:`
                        # block (a browser would not): skip it.
                        if sse.retry is not None and sse.data == "" and sse.id == "":
                            continue
                        event = {"type": sse.event, "data": sse.data, "id": sse.id}
                        self.events.append(event)
                        if self.stop_when(event):
                            return  # leaving the with blocks closes the connection
        except Exception as err:  # noqa: BLE001 - reported as the check's result
            self.error = err
            self.opened.set()

    def wait_for(self, predicate, seconds, what):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(predicate(e) for e in self.events):
                return
            if self.error:
                raise RuntimeError(f"{what}: the subscriber failed: {self.error!r}")
            time.sleep(0.02)
        raise RuntimeError(f"{what}: timed out after {seconds} s; events {show(self.events)}")

    def close(self):
        self.join(5)
        if self.is_alive():
            raise RuntimeError("the subscriber did not stop")


def open_subscriber(url, last_event_id=None, stop_when=None):
    sub = Subscriber(url, last_event_id, stop_when)
    sub.start()
    if not sub.opened.wait(5) or sub.error:
        raise RuntimeError(f"subscribing failed: {sub.error!r}")
    return sub


def main():
    proc, base = start_server()
    try:
        url = f"{base}/events?topic=py"

        # 1. receive
        try:
            sub = open_subscriber(url, stop_when=lambda e: e["data"] == "data: id: event: look-alikes")
            cases = [
                ("plain", None, "plain"),
                ("multi\nline\n", None, "multi\nline\n"),
                (" leading space", "note", " leading space"),
                ("crlf\r\nand cr\rend", None, "crlf\nand cr\nend"),
                ("", None, ""),
                ("emoji 😀 ünï 日本語", "note", "emoji 😀 ünï 日本語"),
                ("data: id: event: look-alikes", None, "data: id: event: look-alikes"),
            ]
            want = []
            for data, event, expected in cases:
                want.append({"type": event or "message", "data": expected, "id": publish(base, data, "py", event)})
            sub.wait_for(lambda e: e["id"] == want[-1]["id"], 3, "the last event")
            sub.close()
            if sub.events != want:
                fail("receive", show(want), show(sub.events))
            else:
                ok("receive")
        except Exception as err:  # noqa: BLE001
            fail("receive", "events as published", repr(err))

        # 2. resume: an application keeps the last id it saw and sends it when
        # it reconnects; events published in between must come, once.
        try:
            first = open_subscriber(url, stop_when=lambda e: e["data"] == "r2")
            ids = [publish(base, d, "py") for d in ("r1", "r2")]
            first.wait_for(lambda e: e["id"] == ids[1], 3, "r2")
            first.close()
            last_seen = first.events[-1]["id"]
            ids += [publish(base, d, "py") for d in ("r3", "r4")]  # while disconnected
            again = open_subscriber(url, last_event_id=last_seen, stop_when=lambda e: e["data"] == "r5")
            ids.append(publish(base, "r5", "py"))                  # live
            again.wait_for(lambda e: e["id"] == ids[4], 3, "r5")
            again.close()
            got = [f'{e["id"]}:{e["data"]}' for e in again.events]
            want = [f"{ids[i]}:r{i + 1}" for i in (2, 3, 4)]
            if last_seen != ids[1] or got != want:
                fail("resume", f"last id {ids[1]} then {show(want)}", f"last id {last_seen} then {show(got)}")
            else:
                ok("resume")
        except Exception as err:  # noqa: BLE001
            fail("resume", "the missed events after reconnecting", repr(err))

        # 3. gap for an id the server never issued (e.g. from before a restart)
        try:
            unknown = "1-1"
            history_first = publish(base, "h-last", "py-gap")
            sub = open_subscriber(f"{base}/events?topic=py-gap", last_event_id=unknown,
                                  stop_when=lambda e: e["data"] == "h-last")
            sub.wait_for(lambda e: e["id"] == history_first, 3, "the history after the gap")
            sub.close()
            got = [(e["type"], e["data"]) for e in sub.events]
            want = [("gap", unknown), ("message", "h-last")]
            if got != want:
                fail("gap", show(want), show(got))
            else:
                ok("gap")
        except Exception as err:  # noqa: BLE001
            fail("gap", "gap then history", repr(err))
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        for key in list(pending):
            fail(key, "the check to run", "not run")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
