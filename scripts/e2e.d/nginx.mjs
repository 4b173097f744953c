// nginx with TLS in front of tinysse, configured by docs/deploy/nginx.conf
// (scripts/e2e starts both). The subscriber is curl over HTTPS and HTTP/2.
//
// Environment: NGINX_URL (https://127.0.0.1:PORT), NGINX_HTTP_URL (the plain
// HTTP port that redirects), NGINX_CA (the self-signed certificate),
// NGINX_UPSTREAM (tinysse's own http://127.0.0.1:PORT), NGINX_TOKEN (its
// publish token), NGINX_HEARTBEAT (its --heartbeat in seconds).

import { spawn } from "node:child_process";
import { Checks, publish, show, sleep, until, within } from "./lib.mjs";

const C = {
  head: "nginx: HTTPS + HTTP/2 to the client, text/event-stream, stream opens at once",
  latency: "nginx: events published to tinysse reach a subscriber through nginx within 500 ms",
  heartbeat: "nginx: heartbeat comments pass through while idle",
  lastEventId: "nginx: the client's Last-Event-ID reaches tinysse (replay after it; unknown id gets gap)",
  publish: "nginx: publishing through nginx over HTTP/2 (form, chunked, Authorization passed)",
  redirect: "nginx: plain HTTP redirects to HTTPS",
};
const checks = new Checks(Object.values(C));

const URL_ = process.env.NGINX_URL;
const UPSTREAM = process.env.NGINX_UPSTREAM;
const CA = process.env.NGINX_CA;
const TOKEN = process.env.NGINX_TOKEN;
const HEARTBEAT = Number(process.env.NGINX_HEARTBEAT || "1");
const auth = { Authorization: `Bearer ${TOKEN}` };
const curls = new Set();
process.on("exit", () => curls.forEach((c) => c.kill("SIGKILL")));

/** `curl -N` over HTTP/2 against nginx; records every chunk with its arrival time. */
function subscribe(path, headers = []) {
  const args = ["-sS", "-N", "-i", "--http2", "--cacert", CA, "--max-time", "30"];
  for (const h of headers) args.push("-H", h);
  args.push(`${URL_}${path}`);
  const child = spawn("curl", args, { stdio: ["ignore", "pipe", "pipe"] });
  curls.add(child);
  const sub = { child, text: "", chunks: [], stderr: "" };
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk) => {
    sub.text += chunk;
    sub.chunks.push({ at: Date.now(), text: sub.text });
  });
  child.stderr.on("data", (d) => { sub.stderr += d; });
  sub.close = () => { child.kill("SIGTERM"); curls.delete(child); };
  /** When the whole output first contained `needle` (ms since epoch), waiting up to `ms`. */
  sub.arrival = (needle, ms) => until(ms, `${show(needle)} through nginx (have ${show(sub.text.slice(-300))} ${sub.stderr})`,
    () => sub.chunks.find((c) => c.text.includes(needle))?.at);
  return sub;
}

function body(sub) {
  const at = sub.text.indexOf("\r\n\r\n");
  return at < 0 ? "" : sub.text.slice(at + 4);
}

if (!URL_) {
  checks.finish("not run: nginx is not up (see target/e2e/nginx/error.log)");
  process.exit(1);
}

try {
  await checks.run(C.head, "HTTP/2 200, content-type text/event-stream, retry: within 1 s", async () => {
    const sub = subscribe("/events?topic=head");
    try {
      const opened = Date.now();
      await sub.arrival("retry: ", 1000);
      const head = sub.text.split("\r\n\r\n")[0];
      if (!/^HTTP\/2 200 ?\r\n/.test(head)) throw new Error(`head ${show(head)}`);
      if (!/\r\ncontent-type: text\/event-stream/i.test(head)) throw new Error(`head ${show(head)}`);
      if (!/\r\ncache-control: no-cache/i.test(head)) throw new Error(`head ${show(head)}`);
      console.error(`stream opened through nginx in ${Date.now() - opened} ms`);
    } finally {
      sub.close();
    }
  });

  await checks.run(C.latency, "each of 5 events within 500 ms of its publish", async () => {
    const sub = subscribe("/events?topic=latency");
    try {
      await sub.arrival("retry: ", 2000);
      const times = [];
      for (let i = 0; i < 5; i++) {
        const data = `latency probe ${i} ${Date.now()}`;
        const started = Date.now();
        const id = await publish(UPSTREAM, { data, topic: "latency", headers: auth });
        const arrived = await sub.arrival(`id: ${id}\ndata: ${data}\n\n`, 3000);
        times.push(arrived - started);
        await sleep(150);
      }
      console.error(`latencies through nginx (ms): ${times.join(", ")}`);
      if (Math.max(...times) > 500) throw new Error(`latencies ${times.join(", ")} ms`);
    } finally {
      sub.close();
    }
  });

  await checks.run(C.heartbeat, `at least 2 ': heartbeat' comments within ${2 * HEARTBEAT + 1.5} s of an idle stream`, async () => {
    const sub = subscribe("/events?topic=idle");
    try {
      await sub.arrival("retry: ", 2000);
      await sleep((2 * HEARTBEAT + 1.5) * 1000);
      const count = body(sub).split(": heartbeat\n\n").length - 1;
      if (count < 2) throw new Error(`${count} heartbeats; body ${show(body(sub))}`);
    } finally {
      sub.close();
    }
  });

  await checks.run(C.lastEventId, "only the events after the given id; gap with an unknown id", async () => {
    const ids = [];
    for (const data of ["first", "second", "third"]) {
      ids.push(await publish(UPSTREAM, { data, topic: "resume", headers: auth }));
    }
    const sub = subscribe("/events?topic=resume", [`Last-Event-ID: ${ids[0]}`]);
    try {
      await sub.arrival(`id: ${ids[2]}\n`, 2000);
      const want = `retry: 3000\n\nid: ${ids[1]}\ndata: second\n\nid: ${ids[2]}\ndata: third\n\n`;
      if (!body(sub).startsWith(want)) throw new Error(`body ${show(body(sub))}, wanted it to start with ${show(want)}`);
    } finally {
      sub.close();
    }
    const unknown = "1-1";
    const gap = subscribe("/events?topic=resume", [`Last-Event-ID: ${unknown}`]);
    try {
      await gap.arrival(`id: ${ids[2]}\n`, 2000);
      const want = `retry: 3000\n\nevent: gap\ndata: ${unknown}\n\nid: ${ids[0]}\ndata: first\n\n`;
      if (!body(gap).startsWith(want)) throw new Error(`body ${show(body(gap))}, wanted it to start with ${show(want)}`);
    } finally {
      gap.close();
    }
  });

  await checks.run(C.publish, "401 without the token, ids with it, both bodies delivered", async () => {
    const sub = subscribe("/events?topic=via-nginx");
    try {
      await sub.arrival("retry: ", 2000);
      const curl = (args) => within(10000, `curl ${args.join(" ")}`, new Promise((resolve) => {
        const child = spawn("curl", ["-sS", "--http2", "--cacert", CA, "-w", "\n%{http_code} %{http_version}", ...args]);
        let out = "";
        child.stdout.on("data", (d) => { out += d; });
        child.stderr.on("data", (d) => { out += d; });
        child.on("exit", () => resolve(out));
      }));
      const denied = await curl(["-d", "data=nope", "-d", "topic=via-nginx", `${URL_}/publish`]);
      if (!denied.endsWith("\n401 2")) throw new Error(`without a token: ${show(denied)}`);
      const form = await curl(["-H", `Authorization: Bearer ${TOKEN}`, "-d", "data=form via nginx",
        "-d", "topic=via-nginx", `${URL_}/publish`]);
      const formMatch = /^(\S+)\n+200 2$/.exec(form);
      if (!formMatch) throw new Error(`form publish: ${show(form)}`);
      const chunked = await curl(["-H", `Authorization: Bearer ${TOKEN}`, "-H", "Content-Type: text/plain",
        "-H", "Transfer-Encoding: chunked", "--data-binary", "chunked\nvia nginx", `${URL_}/publish?topic=via-nginx`]);
      const chunkedMatch = /^(\S+)\n+200 2$/.exec(chunked);
      if (!chunkedMatch) throw new Error(`chunked publish: ${show(chunked)}`);
      await sub.arrival(`id: ${formMatch[1]}\ndata: form via nginx\n\n`, 2000);
      await sub.arrival(`id: ${chunkedMatch[1]}\ndata: chunked\ndata: via nginx\n\n`, 2000);
    } finally {
      sub.close();
    }
  });

  await checks.run(C.redirect, "301 to https://", async () => {
    const response = await fetch(`${process.env.NGINX_HTTP_URL}/events?topic=a`, { redirect: "manual" });
    const location = response.headers.get("location") || "";
    if (response.status !== 301 || !location.startsWith("https://")) {
      throw new Error(`${response.status} Location ${show(location)}`);
    }
  });
} catch (err) {
  console.error(err);
}
process.exit(checks.finish() > 0 ? 1 : 0);
