// Headless Chromium (Debian's, driven by playwright-core) against a real
// `tinysse serve`: the browser's own EventSource and fetch, nothing of ours
// parses the stream.
//
// Optional environment: NGINX_URL (https://127.0.0.1:PORT, nginx from
// docs/deploy/nginx.conf in front of NGINX_UPSTREAM), NGINX_SPKI (base64
// SHA-256 of the self-signed certificate's public key, trusted for this run only).

import { createServer } from "node:http";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  Checks, E2E_DIR, TRICKY, freePort, metric, publish, requireDep, show, sleep, startServer, until, within,
} from "./lib.mjs";

const { chromium } = requireDep("playwright-core");

const C = {
  demo: "chromium: demo page at / shows a published event within 2 s",
  demoForm: "chromium: demo page publishes with its own form and shows the event with its topic",
  demoTypes: "chromium: demo page shows events of types it never heard of (greeting, a random one), once each",
  payloads: "chromium: EventSource('/events?topic=x') receives tricky payloads byte-exact",
  named: "chromium: addEventListener on a named event type (probe page)",
  restart: "chromium: EventSource reconnects by itself after a server restart, gets gap, then new events",
  demoRestart: "chromium: demo page shows reconnecting, then open, the gap and new events after a restart",
  screenshot: "chromium: screenshot of the demo page saved to target/e2e/demo.png",
  cors: "chromium: fetch-event-source from another origin, Bearer subscriber token, CORS preflight",
  corsDenied: "chromium: an origin not in --cors-origin cannot read the stream",
  h2: "chromium: demo page through nginx over HTTPS and HTTP/2 shows a published event; 10 streams at once",
};
const checks = new Checks(Object.values(C));
const NGINX_URL = process.env.NGINX_URL || "";

const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];


// ---------------------------------------------------------------------------

/** The entries the demo page shows, oldest first. */
function demoEntries(page) {
  return page.$$eval("#events li.event", (items) => items.reverse().map((li) => ({
    id: li.dataset.id,
    type: li.dataset.type,
    topic: li.dataset.topic,
    data: li.querySelector("pre.data").textContent,
  })));
}

async function waitForDemoEntry(page, want, ms) {
  return until(ms, `the demo page to show ${show(want)}`, async () => {
    const entries = await demoEntries(page);
    return entries.find((e) => Object.entries(want).every(([k, v]) => e[k] === v));
  });
}

// A page of our own served on tinysse's origin (by Playwright's router), so
// that `new EventSource('/events?topic=x')` is same-origin, as on a real site.
const PROBE = `<!DOCTYPE html><meta charset="utf-8"><title>probe</title>
<script>
  window.got = []; window.states = []; window.opens = 0;
  const es = new EventSource("/events?topic=x");
  const record = (e) => got.push({ type: e.type, data: e.data, id: e.lastEventId });
  es.onmessage = record;
  es.addEventListener("gap", record);
  es.addEventListener("greet", record);
  es.onopen = () => { window.opens += 1; };
  es.onerror = () => states.push(es.readyState);
</script>`;

async function sameOriginChecks() {
  const args = ["--retry", "500", "--heartbeat", "30"];
  let server = await startServer("browser", args);
  const base = server.url;
  try {
    // --- the demo page
    const demo = await context.newPage();
    await demo.goto(`${base}/`);
    await demo.waitForSelector("#state[data-state=open]", { timeout: 5000 });

    await checks.run(C.demo, "the event in #events within 2000 ms", async () => {
      const data = `hello from e2e ${Date.now()}`;
      const started = Date.now();
      const id = await publish(base, { data });
      const entry = await waitForDemoEntry(demo, { data }, 2000);
      const took = Date.now() - started;
      if (entry.id !== id || entry.type !== "message") {
        throw new Error(`entry ${show(entry)} (published id ${id})`);
      }
      if (took > 2000) throw new Error(`it took ${took} ms`);
    });

    await checks.run(C.demoForm, "#pub-result 'published id X' and an entry with that id and data", async () => {
      const data = "typed into the form\n  indented second line";
      await demo.fill("#pub-data", data);
      await demo.fill("#pub-topic", "default");
      await demo.click("#publish");
      const result = await until(3000, "#pub-result to say published", async () => {
        const text = await demo.textContent("#pub-result");
        return /^published id \S+$/.test(text) ? text : null;
      });
      const id = result.replace("published id ", "");
      await waitForDemoEntry(demo, { id, data, topic: "default" }, 2000);
    });

    await checks.run(C.demoTypes, "both in #events with their type, once each; 'topic unknown' for all topics; #listening says so", async () => {
      const listening = await demo.textContent("#listening");
      if (listening !== "all topics") throw new Error(`#listening says ${show(listening)}`);
      const random = `type-${Math.random().toString(36).slice(2, 10)}`;
      const greeting = await publish(base, { data: "hello", topic: "news", event: "greeting" });
      const other = await publish(base, { data: "never heard of", event: random });
      await waitForDemoEntry(demo, { id: greeting, type: "greeting", data: "hello", topic: "" }, 3000);
      await waitForDemoEntry(demo, { id: other, type: random, data: "never heard of" }, 3000);
      // The page listens for greeting now: the next one comes through the EventSource.
      const again = await publish(base, { data: "hello again", event: "greeting" });
      await waitForDemoEntry(demo, { id: again, type: "greeting", data: "hello again" }, 2000);
      // Once both views have read past them, each event shows once.
      const sentinel = await publish(base, { data: "after the new types" });
      await waitForDemoEntry(demo, { id: sentinel }, 2000);
      await until(2000, "the raw view to show the sentinel", async () =>
        (await demo.textContent("#raw")).includes(`id: ${sentinel}\ndata: after the new types`));
      const entries = await demoEntries(demo);
      for (const id of [greeting, other, again]) {
        const count = entries.filter((e) => e.id === id).length;
        if (count !== 1) throw new Error(`${count} entries with id ${id}`);
      }
      const meta = await demo.$eval(`#events li[data-id="${greeting}"] .meta`, (m) => getComputedStyle(m, "::after").content);
      if (!meta.includes("topic unknown")) throw new Error(`the entry's topic reads ${meta}`);
    });

    // --- the probe page: EventSource on topic x
    const probe = await context.newPage();
    // page.route, not context.route: with interception on, Playwright answers
    // CORS preflights itself, which would hide tinysse's answers from corsChecks.
    await probe.route(`${base}/e2e/probe.html`, (route) =>
      route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: PROBE }));
    await probe.goto(`${base}/e2e/probe.html`);
    await until(5000, "the probe's EventSource to open", () => probe.evaluate(() => window.opens >= 1));

    await checks.run(C.payloads, "each payload's data (CR and CRLF as LF) with its published id", async () => {
      const want = [];
      for (const { name, data, expected } of TRICKY) {
        const id = await publish(base, { data, topic: "x" });
        want.push({ name, type: "message", data: expected, id });
      }
      // The same data through a form body (percent-encoding, + and CRLF).
      const formData = "form & = + %2B\r\nsecond line ü";
      want.push({ name: "form body", type: "message", data: "form & = + %2B\nsecond line ü",
        id: await publish(base, { data: formData, topic: "x", form: true }) });
      // Another topic must not arrive on ?topic=x.
      await publish(base, { data: "not for topic x", topic: "y" });
      const sentinel = await publish(base, { data: "sentinel", topic: "x" });
      want.push({ name: "sentinel", type: "message", data: "sentinel", id: sentinel });

      const got = await until(3000, "all payloads to arrive", async () => {
        const list = await probe.evaluate(() => window.got);
        return list.some((e) => e.id === sentinel) ? list : null;
      });
      const problems = [];
      if (got.length !== want.length) problems.push(`${got.length} events for ${want.length} published`);
      want.forEach((w, i) => {
        const g = got[i] || {};
        if (g.type !== w.type || g.data !== w.data || g.id !== w.id) {
          problems.push(`${w.name}: expected ${show({ type: w.type, data: w.data, id: w.id })}, got ${show(g)}`);
        }
      });
      if (problems.length) throw new Error(problems.join("; "));
    });

    await checks.run(C.named, "greet events on the 'greet' listener only, unlistened types not delivered", async () => {
      const before = (await probe.evaluate(() => window.got)).length;
      const greetId = await publish(base, { data: "hi there", topic: "x", event: "greet" });
      await publish(base, { data: "nobody listens", topic: "x", event: "unheard" });
      const sentinel = await publish(base, { data: "after named", topic: "x" });
      const got = await until(2000, "the sentinel after the named events", async () => {
        const list = await probe.evaluate(() => window.got);
        return list.some((e) => e.id === sentinel) ? list.slice(before) : null;
      });
      const want = [
        { type: "greet", data: "hi there", id: greetId },
        { type: "message", data: "after named", id: sentinel },
      ];
      if (show(got) !== show(want)) throw new Error(show(got) + ` (wanted ${show(want)})`);
    });

    // --- restart tinysse on the same port: both pages must come back by themselves
    const lastProbeId = (await probe.evaluate(() => window.got)).at(-1).id;
    // The last id the demo's EventSource had: the highest one shown (an event
    // of a type learned late may show after a newer one).
    const seq = (id) => Number(id.split("-")[1]);
    const lastDemoId = (await demoEntries(demo)).map((e) => e.id).reduce((a, b) => (seq(b) > seq(a) ? b : a));
    const oldRun = lastProbeId.split("-")[0];
    await server.stop();
    await until(5000, "the demo page to show reconnecting", async () =>
      (await demo.getAttribute("#state", "data-state")) === "reconnecting").catch(() => {});
    const demoSawReconnecting = (await demo.getAttribute("#state", "data-state")) === "reconnecting";
    server = await startServer("browser", args, server.port);
    const restartedAt = Date.now();

    let afterId = "";
    await checks.run(C.restart, `gap with data ${lastProbeId}, then a new-run event, never CLOSED`, async () => {
      const gap = await until(10000, "the gap event after the restart", async () => {
        const list = await probe.evaluate(() => window.got);
        return list.find((e) => e.type === "gap");
      });
      if (gap.data !== lastProbeId) throw new Error(`gap data ${show(gap.data)}, expected the last id ${lastProbeId}`);
      // gap carries no id: lastEventId stays the old one.
      if (gap.id !== lastProbeId) throw new Error(`gap lastEventId ${show(gap.id)} (a gap must not carry an id)`);
      afterId = await publish(base, { data: "after the restart", topic: "x" });
      if (afterId.split("-")[0] === oldRun) throw new Error(`new run reused the old run prefix: ${afterId}`);
      const after = await until(2000, "the event published after the restart", async () => {
        const list = await probe.evaluate(() => window.got);
        return list.find((e) => e.id === afterId);
      });
      if (after.data !== "after the restart") throw new Error(show(after));
      const states = await probe.evaluate(() => window.states);
      if (states.includes(2)) throw new Error(`EventSource went CLOSED (readyStates seen on error: ${show(states)})`);
      const opens = await probe.evaluate(() => window.opens);
      if (opens < 2) throw new Error(`onopen fired ${opens} times`);
      console.error(`browser reconnected and got the gap ${Date.now() - restartedAt} ms after the restart`);
    });

    await checks.run(C.demoRestart, "state reconnecting, then open, a gap entry and the new event", async () => {
      if (!demoSawReconnecting) throw new Error("#state never showed reconnecting after the server stopped");
      await demo.waitForSelector("#state[data-state=open]", { timeout: 10000 });
      const gap = await waitForDemoEntry(demo, { type: "gap" }, 10000);
      if (gap.data !== lastDemoId) throw new Error(`gap entry data ${show(gap.data)}, expected ${lastDemoId}`);
      await waitForDemoEntry(demo, { id: afterId, data: "after the restart" }, 2000);
    });

    await checks.run(C.screenshot, "a PNG of the demo page", async () => {
      const path = join(E2E_DIR, "demo.png");
      await demo.fill("#pub-data", "");
      await demo.screenshot({ path });   // the viewport: state, the gap and the newest events
      const png = readFileSync(path);
      if (png.subarray(1, 4).toString() !== "PNG" || png.length < 10000) {
        throw new Error(`${path}: ${png.length} bytes, header ${show(png.subarray(0, 8).toString("latin1"))}`);
      }
    });
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------
// @microsoft/fetch-event-source in the browser, from another origin: a page
// on http://127.0.0.1:APP (served by a small static server, as a bundler's dev
// server would) reads the stream of tinysse on another port with an
// Authorization header, which makes the browser send a CORS preflight first.

const APP_PAGE = `<!DOCTYPE html><meta charset="utf-8"><title>app</title>
<script type="module">
  import { fetchEventSource } from "/fes/index.js";
  window.got = []; window.errors = []; window.statuses = [];
  window.subscribe = (url, token) => {
    const ctrl = new AbortController();
    fetchEventSource(url, {
      headers: { Authorization: "Bearer " + token },
      signal: ctrl.signal,
      openWhenHidden: true,
      async onopen(response) {
        statuses.push(response.status);
        if (!response.ok) throw new Error("status " + response.status);
      },
      onmessage(m) { got.push({ id: m.id, event: m.event, data: m.data }); },
      onerror(err) { errors.push(String(err)); throw err; },   // no retries: report
    }).catch(() => {});
    return true;
  };
  window.ready = true;
</script>`;

async function corsChecks() {
  const fesDir = join(dirname(requireDep.resolve("@microsoft/fetch-event-source/package.json")), "lib", "esm");
  const appPort = await freePort();
  const app = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(APP_PAGE);
      return;
    }
    if (path === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    const name = path.startsWith("/fes/") ? path.slice(5).replace(/[^\w.-]/g, "") : "";
    for (const file of [name, `${name}.js`]) {
      const full = join(fesDir, file);
      if (name && existsSync(full) && statSync(full).isFile()) {
        res.writeHead(200, { "Content-Type": "text/javascript" }).end(readFileSync(full));
        return;
      }
    }
    res.writeHead(404).end();
  });
  await new Promise((resolve) => app.listen(appPort, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${appPort}`;
  const server = await startServer("browser-cors", ["--subscribe-token", "sub-secret", "--cors-origin", origin]);
  try {
    const page = await context.newPage();
    const said = [];   // the browser's console errors: where it says why it blocked a request
    page.on("console", (m) => { if (m.type() === "error") said.push(m.text()); });
    const withWhatTheBrowserSaid = (err) => {
      throw new Error(`${err.message}; the browser said: ${said.join(" | ") || "nothing"}`);
    };
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => window.ready === true);

    await checks.run(C.cors, "preflight answered (204), 200 stream, event delivered; wrong token visible as 401", async () => {
      const preflightsBefore = await metric(server.url, 'tinysse_requests_total{code="204"}');
      await page.evaluate((url) => window.subscribe(url, "sub-secret"), `${server.url}/events?topic=app`);
      await until(5000, "the stream to open", () => page.evaluate(() => window.statuses.includes(200)))
        .catch(withWhatTheBrowserSaid);
      const preflights = (await metric(server.url, 'tinysse_requests_total{code="204"}')) - preflightsBefore;
      if (preflights < 1) throw new Error("no OPTIONS preflight reached tinysse (204 count unchanged)");
      const id = await publish(server.url, { data: "cross-origin\nhello", topic: "app", event: "note" });
      const got = await until(2000, "the event through fetch-event-source", async () => {
        const list = await page.evaluate(() => window.got);
        return list.find((m) => m.id === id);
      });
      if (got.event !== "note" || got.data !== "cross-origin\nhello") throw new Error(show(got));
      // A wrong token: the 401 must carry CORS headers, or the page cannot tell it from a network error.
      await page.evaluate((url) => window.subscribe(url, "wrong"), `${server.url}/events?topic=app2`);
      await until(3000, "a status or an error for the wrong token", () =>
        page.evaluate(() => window.statuses.length >= 2 || window.errors.length >= 1));
      const statuses = await page.evaluate(() => window.statuses);
      if (statuses[1] !== 401) {
        const errors = await page.evaluate(() => window.errors);
        withWhatTheBrowserSaid(new Error(`wrong token: statuses ${show(statuses)}, errors ${show(errors)}`));
      }
    });

    await checks.run(C.corsDenied, "the browser blocks it (fetch error, no event)", async () => {
      const other = await context.newPage();
      const otherSaid = [];
      other.on("console", (m) => { if (m.type() === "error") otherSaid.push(m.text()); });
      // Same app server, but the origin http://localhost:APP is not allowed.
      await other.goto(`http://localhost:${appPort}/`);
      await other.waitForFunction(() => window.ready === true);
      await other.evaluate((url) => window.subscribe(url, "sub-secret"), `${server.url}/events?topic=app`);
      await until(5000, "an error for the disallowed origin", () => other.evaluate(() => window.errors.length > 0));
      await publish(server.url, { data: "must not be readable", topic: "app" });
      await sleep(300);
      const got = await other.evaluate(() => window.got);
      const statuses = await other.evaluate(() => window.statuses);
      if (got.length || statuses.length) throw new Error(`statuses ${show(statuses)}, events ${show(got)}`);
      if (!otherSaid.some((m) => m.includes("No 'Access-Control-Allow-Origin' header"))) {
        throw new Error(`blocked for another reason: ${otherSaid.join(" | ")}`);
      }
      await other.close();
    });
    await page.close();
  } finally {
    await server.stop();
    app.closeAllConnections();
    app.close();
  }
}

// ---------------------------------------------------------------------------

async function nginxCheck() {
  if (!NGINX_URL) {
    checks.fail(C.h2, "NGINX_URL to be set by scripts/e2e", "not set (nginx did not start)");
    return;
  }
  await checks.run(C.h2, "navigation over h2, the event in #events within 2 s, 9 more EventSources open", async () => {
    const page = await context.newPage();
    await page.goto(`${NGINX_URL}/`);
    const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
    if (protocol !== "h2") throw new Error(`the page came over ${show(protocol)}`);
    await page.waitForSelector("#state[data-state=open]", { timeout: 5000 });
    const data = `through nginx ${Date.now()}`;
    const headers = { Authorization: `Bearer ${process.env.NGINX_TOKEN}` };
    const id = await publish(process.env.NGINX_UPSTREAM, { data, headers });
    await waitForDemoEntry(page, { id, data }, 2000);
    // What HTTP/2 is for (SPEC §7): over HTTP/1.1 a browser holds at most six
    // connections per host, so a 7th EventSource would wait; over h2 they share one.
    const open = await page.evaluate(async () => {
      const sources = Array.from({ length: 9 }, (_, i) => new EventSource(`/events?topic=many-${i}`));
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline && sources.some((s) => s.readyState !== EventSource.OPEN)) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const count = sources.filter((s) => s.readyState === EventSource.OPEN).length;
      sources.forEach((s) => s.close());
      return count;
    });
    if (open !== 9) throw new Error(`${open} of 9 more EventSources open through nginx within 3 s`);
    await page.close();
  });
}

// ---------------------------------------------------------------------------

let context;

async function main() {
  const profile = mkdtempSync(join(E2E_DIR, "chromium-profile-"));
  try {
    const args = [...FLAGS];
    if (process.env.NGINX_SPKI) args.push(`--ignore-certificate-errors-spki-list=${process.env.NGINX_SPKI}`);
    context = await within(30000, "chromium to start", chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args,
      viewport: { width: 1100, height: 900 },
    }));
    context.setDefaultTimeout(10000);
    await sameOriginChecks();
    await corsChecks();
    await nginxCheck();
  } catch (err) {
    console.error(err);
    checks.finish(`not run: ${err.message.split("\n")[0]}`);
  } finally {
    if (context) await within(10000, "chromium to close", context.close()).catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

process.on("unhandledRejection", (err) => {
  console.error("unhandled rejection:", err);
});
await main();
process.exit(checks.finish() > 0 ? 1 : 0);
