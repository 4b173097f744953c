// Node SSE clients from npm against a real `tinysse serve`:
//   eventsource                    (the WHATWG EventSource for Node)
//   @microsoft/fetch-event-source  (fetch-based, can send headers)

import net from "node:net";
import { Checks, TRICKY, freePort, publish, requireDep, show, sleep, startServer, until } from "./lib.mjs";

// Both packages ship CommonJS builds; resolve them from target/e2e/node.
const { EventSource } = requireDep("eventsource");
const { fetchEventSource } = requireDep("@microsoft/fetch-event-source");

const C = {
  payloads: "node eventsource: tricky payloads byte-exact, ids and named events",
  drop: "node eventsource: stream dropped, reconnects with Last-Event-ID, gets the missed events once",
  restart: "node eventsource: after a server restart gets gap with its last id, then new events",
  bearer: "node fetch-event-source: subscriber token as Authorization: Bearer (401 without it)",
  fesData: "node fetch-event-source: multi-line, leading-space and named events arrive intact",
};
const checks = new Checks(Object.values(C));

/**
 * A TCP proxy in front of tinysse that can cut every connection and refuse
 * new ones for a while: the stream drops as it does behind a flaky network or
 * a proxy timeout, while tinysse keeps its history. It records the request
 * heads it forwards, to show what the client sent on reconnecting.
 */
async function cuttableProxy(targetPort) {
  const port = await freePort();
  const sockets = new Set();
  const proxy = { port, up: true, heads: [] };
  const server = net.createServer((client) => {
    if (!proxy.up) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    let head = "";
    client.on("data", (d) => {
      if (head !== null) {
        head += d.toString("latin1");
        const end = head.indexOf("\r\n\r\n");
        if (end >= 0) {
          proxy.heads.push(head.slice(0, end));
          head = null;
        }
      }
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  proxy.cut = () => {
    proxy.up = false;
    for (const s of sockets) s.destroy();
  };
  proxy.close = () => {
    proxy.cut();
    server.close();
  };
  return proxy;
}

/** An EventSource that records every message, gap and named event, and its errors. */
function record(url, types = []) {
  const es = new EventSource(url);
  const log = { es, got: [], errors: [], opens: 0 };
  const push = (e) => log.got.push({ type: e.type, data: e.data, id: e.lastEventId });
  es.onmessage = push;
  for (const type of ["gap", ...types]) es.addEventListener(type, push);
  es.onopen = () => { log.opens += 1; };
  es.onerror = (e) => log.errors.push({ state: es.readyState, code: e.code, message: e.message });
  return log;
}

const waitId = (log, id, ms = 3000) =>
  until(ms, `event ${id} (have ${show(log.got.slice(-3))}, errors ${show(log.errors.slice(-2))})`,
    () => log.got.find((e) => e.id === id));

try {
  let server = await startServer("node", ["--retry", "300", "--heartbeat", "30"]);

  await checks.run(C.payloads, "every payload (CR as LF) with its id and type", async () => {
    const log = record(`${server.url}/events?topic=x`, ["greet"]);
    try {
      await until(5000, "eventsource to open", () => log.opens >= 1);
      const want = [];
      for (const { name, data, expected } of TRICKY) {
        want.push({ name, type: "message", data: expected, id: await publish(server.url, { data, topic: "x" }) });
      }
      want.push({ name: "named", type: "greet", data: "hi\n there",
        id: await publish(server.url, { data: "hi\r\n there", topic: "x", event: "greet" }) });
      await waitId(log, want.at(-1).id);
      const problems = [];
      if (log.got.length !== want.length) problems.push(`${log.got.length} events for ${want.length} published`);
      want.forEach((w, i) => {
        const g = log.got[i] || {};
        if (g.type !== w.type || g.data !== w.data || g.id !== w.id) {
          problems.push(`${w.name}: expected ${show({ type: w.type, data: w.data, id: w.id })}, got ${show(g)}`);
        }
      });
      if (problems.length) throw new Error(problems.join("; "));
    } finally {
      log.es.close();
    }
  });

  let lastId = "";
  let log;
  let proxy;
  await checks.run(C.drop, "events 1..6 exactly once, the reconnect sending Last-Event-ID: <id 3>", async () => {
    proxy = await cuttableProxy(server.port);
    log = record(`http://127.0.0.1:${proxy.port}/events?topic=n`);
    await until(5000, "eventsource to open", () => log.opens >= 1);
    const ids = [];
    for (const data of ["one", "two", "three"]) ids.push(await publish(server.url, { data, topic: "n" }));
    await waitId(log, ids[2]);
    proxy.cut();                                   // the stream drops; reconnects are refused
    await until(3000, "the client to notice the drop", () => log.errors.length >= 1);
    for (const data of ["four", "five"]) ids.push(await publish(server.url, { data, topic: "n" }));
    await sleep(400);
    proxy.up = true;                               // the network is back
    await waitId(log, ids[4], 5000);
    ids.push(await publish(server.url, { data: "six", topic: "n" }));
    await waitId(log, ids[5]);
    const got = log.got.map((e) => `${e.type}:${e.id}:${e.data}`);
    const want = ["one", "two", "three", "four", "five", "six"].map((d, i) => `message:${ids[i]}:${d}`);
    if (show(got) !== show(want)) throw new Error(`${show(got)} (wanted ${show(want)})`);
    const resumed = proxy.heads.slice(1).find((h) => /\r\nlast-event-id: /i.test(h)) || "";
    if (!new RegExp(`\\r\\nlast-event-id: ${ids[2]}(\\r|$)`, "i").test(resumed)) {
      throw new Error(`reconnect request heads ${show(proxy.heads.slice(1))}`);
    }
    if (log.errors.some((e) => e.state === 2)) throw new Error(`went CLOSED: ${show(log.errors)}`);
    lastId = ids[5];
  });

  await checks.run(C.restart, "gap with the old last id, then an event of the new run", async () => {
    if (!log || !lastId) throw new Error("the previous check did not leave a connected client");
    const before = log.got.length;
    await server.stop();
    server = await startServer("node", ["--retry", "300", "--heartbeat", "30"], server.port);
    const gap = await until(8000, `the gap (have ${show(log.got.slice(before))}, errors ${show(log.errors.slice(-2))})`,
      () => log.got.slice(before).find((e) => e.type === "gap"));
    if (gap.data !== lastId) throw new Error(`gap data ${show(gap.data)}, expected ${lastId}`);
    const id = await publish(server.url, { data: "new run", topic: "n" });
    await waitId(log, id);
    const after = log.got.slice(before).map((e) => `${e.type}:${e.data}`);
    if (show(after) !== show(["gap:" + lastId, "message:new run"])) throw new Error(show(after));
    if (id.split("-")[0] === lastId.split("-")[0]) throw new Error(`run prefix reused: ${lastId} then ${id}`);
  });
  log?.es.close();
  proxy?.close();
  await server.stop();

  // --- fetch-event-source in Node. It was written for browsers: it calls
  // window.setTimeout and document.removeEventListener, so Node needs both
  // (the usual shims for using it outside a browser).
  globalThis.window ??= globalThis;
  globalThis.document ??= { hidden: false, addEventListener() {}, removeEventListener() {} };
  const secured = await startServer("node-token", ["--subscribe-token", "sub-secret", "--retry", "300"]);
  const fes = (path, token, types) => {
    const ctrl = new AbortController();
    const state = { got: [], statuses: [], errors: [], ctrl };
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    fetchEventSource(`${secured.url}${path}`, {
      headers, signal: ctrl.signal, openWhenHidden: true,
      async onopen(response) {
        state.statuses.push(response.status);
        if (!response.ok) throw new Error(`status ${response.status}`);
      },
      onmessage(m) {
        // It also calls onmessage for the stream's opening `retry:` block,
        // which has no data (a browser's EventSource does not): skip that.
        if (m.id === "" && m.event === "" && m.data === "") return;
        state.got.push({ id: m.id, event: m.event, data: m.data });
      },
      onerror: (err) => { state.errors.push(String(err)); throw err; },
    }).catch(() => {});
    return state;
  };
  try {
    await checks.run(C.bearer, "200 and the event with the token; 401 without or with a wrong one", async () => {
      const good = fes("/events?topic=t", "sub-secret");
      const none = fes("/events?topic=t", null);
      const wrong = fes("/events?topic=t", "not-it");
      try {
        await until(3000, "the three statuses", () =>
          good.statuses.length && none.statuses.length && wrong.statuses.length);
        const statuses = [good.statuses[0], none.statuses[0], wrong.statuses[0]];
        if (show(statuses) !== show([200, 401, 401])) throw new Error(`statuses (good, none, wrong) ${show(statuses)}`);
        const id = await publish(secured.url, { data: "for token holders", topic: "t" });
        await until(2000, "the event", () => good.got.find((m) => m.id === id && m.data === "for token holders"));
      } finally {
        for (const s of [good, none, wrong]) s.ctrl.abort();
      }
    });

    await checks.run(C.fesData, "data, event and id as published", async () => {
      const sub = fes("/events?topic=t", "sub-secret");
      try {
        await until(3000, "the stream to open", () => sub.statuses.includes(200));
        // fetch-event-source joins data lines its own way; these payloads have
        // no empty first line, which it is known to drop.
        const cases = [
          ["multi\nline\ndata", "", "multi\nline\ndata"],
          [" leading space", "", " leading space"],
          ["crlf\r\nsecond", "note", "crlf\nsecond"],
          ["emoji 😀 日本語", "note", "emoji 😀 日本語"],
        ];
        const want = [];
        for (const [data, event, expected] of cases) {
          const id = await publish(secured.url, { data, topic: "t", event: event || undefined });
          want.push({ id, event, data: expected });
        }
        await until(3000, "all four events", () => sub.got.length >= want.length);
        if (show(sub.got) !== show(want)) throw new Error(`${show(sub.got)} (wanted ${show(want)})`);
      } finally {
        sub.ctrl.abort();
      }
    });
  } finally {
    await secured.stop();
  }
} catch (err) {
  console.error(err);
}
process.exit(checks.finish() > 0 ? 1 : 0);
