// Shared helpers for the Node and browser checks of scripts/e2e.
//
// Environment (set by scripts/e2e):
//   TINYSSE_BIN   the release binary under test
//   E2E_DIR       target/e2e (logs, screenshots, pid list)
//   E2E_PIDS      file that lists the pid of every server started, so that
//                 scripts/e2e can kill them even if this process dies
//   E2E_NODE_DIR  the folder holding node_modules (npm ci --prefix)

import { spawn } from "node:child_process";
import { appendFileSync, createWriteStream, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import { join } from "node:path";

export const BIN = need("TINYSSE_BIN");
export const E2E_DIR = need("E2E_DIR");
const PIDS = need("E2E_PIDS");
export const LOG_DIR = join(E2E_DIR, "logs");
mkdirSync(LOG_DIR, { recursive: true });

// `require` that resolves packages from target/e2e/node/node_modules.
export const requireDep = createRequire(join(need("E2E_NODE_DIR"), "noop.js"));

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set: run this through scripts/e2e`);
    process.exit(2);
  }
  return value;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with `what` if `promise` has not settled within `ms`. */
export function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `test` every 20 ms until it returns a truthy value or `ms` pass. */
export async function until(ms, what, test) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await test();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** JSON with every character visible (so CR, NUL, spaces show in messages). */
export const show = (value) => JSON.stringify(value);

/**
 * The checks one program runs. Every name must be reported once; `finish`
 * reports the ones never reached as failures, so a crash cannot hide a check.
 */
export class Checks {
  constructor(names) {
    this.pending = new Set(names);
    this.failed = 0;
  }
  ok(name) {
    this.#done(name);
    console.log(`ok   ${name}`);
  }
  fail(name, expected, got) {
    this.#done(name);
    this.failed += 1;
    console.log(`FAIL ${name}: expected ${expected}, got ${got}`);
  }
  #done(name) {
    if (!this.pending.delete(name)) throw new Error(`check reported twice or unknown: ${name}`);
  }
  /** Runs `body`; a throw is a failure of `name` with the error as what arrived. */
  async run(name, expected, body) {
    try {
      await body();
      this.ok(name);
    } catch (err) {
      this.fail(name, expected, `${err && err.message ? err.message : err}`);
    }
  }
  finish(reason = "not run (an earlier step failed)") {
    for (const name of [...this.pending]) this.fail(name, "the check to run", reason);
    return this.failed;
  }
}

/** Every server this process started, so that exit handlers can stop them. */
const running = new Set();

function killAll() {
  for (const server of running) {
    try {
      server.child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}
process.on("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

/**
 * Starts `tinysse serve --listen 127.0.0.1:PORT ...args` and resolves once it
 * prints its "listening on" line. `name` names its log file in target/e2e/logs.
 */
export async function startServer(name, args = [], port = 0) {
  if (port === 0) port = await freePort();
  const argv = ["serve", "--listen", `127.0.0.1:${port}`, ...args];
  const logPath = join(LOG_DIR, `tinysse-${name}.log`);
  const log = createWriteStream(logPath, { flags: "a" });
  log.write(`\n== ${new Date().toISOString()} ${BIN} ${argv.join(" ")}\n`);
  const child = spawn(BIN, argv, { stdio: ["ignore", "ignore", "pipe"] });
  appendFileSync(PIDS, `${child.pid}\n`);
  const server = { name, port, url: `http://127.0.0.1:${port}`, child, logPath };
  running.add(server);
  let stderr = "";
  await within(
    5000,
    `tinysse (${name}) to print its listening line; see ${logPath}`,
    new Promise((resolve, reject) => {
      child.stderr.on("data", (chunk) => {
        log.write(chunk);
        stderr += chunk;
        if (stderr.includes("listening on")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`tinysse (${name}) exited with ${code}: ${stderr.trim()}`)));
      child.once("error", reject);
    }),
  );
  server.stop = () => stopServer(server);
  return server;
}

/** SIGTERM (what systemd and procd send), then waits for the process to be gone. */
export async function stopServer(server) {
  running.delete(server);
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const gone = new Promise((resolve) => server.child.once("exit", resolve));
  server.child.kill("SIGTERM");
  await within(5000, `tinysse (${server.name}) to exit after SIGTERM`, gone).catch(() => {
    server.child.kill("SIGKILL");
  });
}

/**
 * POST /publish. `data` goes as the raw body (text/plain) unless `form` is
 * set. Resolves to the assigned id; rejects on any status but 200.
 */
export async function publish(baseUrl, { data, topic, event, form = false, headers = {} }) {
  const query = new URLSearchParams();
  let body;
  let type;
  if (form) {
    const fields = new URLSearchParams({ data });
    if (topic) fields.set("topic", topic);
    if (event) fields.set("event", event);
    body = fields.toString();
    type = "application/x-www-form-urlencoded";
  } else {
    if (topic) query.set("topic", topic);
    if (event) query.set("event", event);
    body = data;
    type = "text/plain; charset=utf-8";
  }
  const qs = query.toString();
  const response = await within(
    5000,
    "POST /publish",
    fetch(`${baseUrl}/publish${qs ? "?" + qs : ""}`, {
      method: "POST",
      headers: { "Content-Type": type, ...headers },
      body,
    }),
  );
  const text = await response.text();
  if (response.status !== 200) throw new Error(`publish answered ${response.status}: ${text.trim()}`);
  return text.trim();
}

/** The value of one Prometheus sample in GET /metrics, e.g. metric(url, 'tinysse_requests_total{code="204"}'). */
export async function metric(baseUrl, sample) {
  const text = await (await within(5000, "GET /metrics", fetch(`${baseUrl}/metrics`))).text();
  for (const line of text.split("\n")) {
    if (line.startsWith(sample + " ")) return Number(line.slice(sample.length + 1));
  }
  return 0;
}

/**
 * Payloads that catch encoders and parsers out, with what a conforming
 * client must deliver (the wire cannot carry CR: CRLF and lone CR arrive as LF).
 */
export const TRICKY = [
  ["multi-line", "line one\nline two\n\nline four", null],
  ["leading space", " leading space", null],
  ["two leading spaces", "  two leading spaces", null],
  ["trailing newline", "ends with a newline\n", null],
  ["only a newline", "\n", null],
  ["empty", "", null],
  ["emoji and non-ASCII", "emoji 😀🎉 (astral), ünïcødé, 日本語, \u00a0nbsp", null],
  ["lone CR", "carriage\rreturn", "carriage\nreturn"],
  ["CRLF", "windows\r\nline\r\n", "windows\nline\n"],
  ["ends with CR", "ends with CR\r", "ends with CR\n"],
  ["field look-alikes", "data: not a field\nid: 42\nevent: evil\nretry: 1", null],
  ["comment look-alike", ": not a comment", null],
  ["colons and tabs", "a:b\tc: d", null],
  ["NEL and line separator (not SSE line breaks)", "a\u0085b\u2028c\u2029d", null],
  ["NUL", "nul\u0000inside", null],
  ["long multi-line", Array.from({ length: 400 }, (_, i) => `line ${i} ${"x".repeat(i % 50)}`).join("\n"), null],
].map(([name, data, expected]) => ({ name, data, expected: expected ?? data }));
