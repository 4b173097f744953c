// Per-client rights in signed tokens (SPEC §10, `--jwt-key-file`) with tokens
// minted by npm's jsonwebtoken, read by Node's eventsource and by headless
// Chromium's EventSource (the token in a cookie), nothing of ours on the
// client side.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Checks, E2E_DIR, requireDep, show, startServer, until, within } from "./lib.mjs";

const jwt = requireDep("jsonwebtoken");
const { EventSource } = requireDep("eventsource");
const { chromium } = requireDep("playwright-core");

const C = {
  subscribe: "jwt: jsonwebtoken's HS256 token in ?token= lets eventsource read its topics, and only those",
  publish: "jwt: publishing with a Bearer token: its publish patterns 200, any other topic 401",
  refused: "jwt: alg none, HS512, expired, not yet valid, bad signature and no token each get 401 with a one-line reason",
  cookie: "jwt: chromium's EventSource sends the tinysse_token cookie and receives the allowed topic",
  demo: "jwt: the demo page's token fields subscribe and publish with signed tokens",
};
const checks = new Checks(Object.values(C));
const KEY = "e2e-jwt-key-at-least-32-bytes-long-0123456789";
const now = () => Math.floor(Date.now() / 1000);
const sign = (claims, options = {}) => jwt.sign(claims, KEY, { algorithm: "HS256", expiresIn: "1h", ...options });

async function post(url, topic, token, data) {
  const headers = { "Content-Type": "text/plain" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await within(5000, "POST /publish", fetch(`${url}/publish?topic=${encodeURIComponent(topic)}`, {
    method: "POST", headers, body: data,
  }));
  return { status: response.status, text: (await response.text()).trim() };
}

/** Events of an eventsource subscription, and when it opened or failed. */
function listen(url) {
  const sub = { events: [], opened: false, status: null };
  sub.source = new EventSource(url, {
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      sub.status = response.status;
      return response;
    },
  });
  sub.source.onopen = () => { sub.opened = true; };
  sub.source.onmessage = (e) => sub.events.push(e.data);
  sub.source.onerror = () => {
    if (!sub.opened) sub.source.close();
  };
  return sub;
}

const dir = mkdtempSync(join(E2E_DIR, "jwt-"));
const keyFile = join(dir, "jwt.key");
writeFileSync(keyFile, `${KEY}\n`);
const server = await startServer("jwt", ["--jwt-key-file", keyFile, "--heartbeat", "1"]);
let browser;

try {
  const writer = sign({ mercure: { publish: ["user/42/*", "news"] } });

  await checks.run(C.subscribe, "200 and its events for user/42/inbox; 401 for user/43/inbox", async () => {
    const reader = sign({ mercure: { subscribe: ["user/42/*"] } });
    const allowed = listen(`${server.url}/events?topic=user/42/inbox&token=${reader}`);
    const denied = listen(`${server.url}/events?topic=user/43/inbox&token=${reader}`);
    try {
      await until(5000, "the allowed stream to open", () => allowed.opened);
      await until(5000, "the refused stream's status", () => denied.status);
      if (denied.status !== 401) throw new Error(`user/43/inbox answered ${denied.status}`);
      const sent = await post(server.url, "user/42/inbox", writer, "hello 42");
      if (sent.status !== 200) throw new Error(`publish answered ${sent.status} ${show(sent.text)}`);
      await until(5000, "the event on the allowed stream", () => allowed.events.includes("hello 42"));
    } finally {
      allowed.source.close();
      denied.source.close();
    }
  });

  await checks.run(C.publish, "200 for user/42/inbox and news; 401 for user/43/inbox and sports", async () => {
    for (const [topic, want] of [["user/42/inbox", 200], ["news", 200], ["user/43/inbox", 401], ["sports", 401], ["user/42", 401]]) {
      const got = await post(server.url, topic, writer, "x");
      if (got.status !== want) throw new Error(`${topic}: ${got.status} ${show(got.text)}`);
    }
  });

  await checks.run(C.refused, "401, one line starting with 'bad token' or 'missing'", async () => {
    const claims = { mercure: { publish: ["*"] } };
    const cases = {
      "alg none": jwt.sign(claims, null, { algorithm: "none" }),
      HS512: jwt.sign(claims, KEY, { algorithm: "HS512" }),
      expired: jwt.sign({ ...claims, exp: now() - 120 }, KEY, { algorithm: "HS256" }),
      "not yet valid": jwt.sign({ ...claims, nbf: now() + 120 }, KEY, { algorithm: "HS256" }),
      "bad signature": jwt.sign(claims, `${KEY}-other`, { algorithm: "HS256" }),
      "no token": "",
    };
    for (const [name, token] of Object.entries(cases)) {
      const got = await post(server.url, "news", token, "x");
      if (got.status !== 401 || got.text.includes("\n") || !/^(bad token|missing)/.test(got.text)) {
        throw new Error(`${name}: ${got.status} ${show(got.text)}`);
      }
      if (got.text.includes(KEY)) throw new Error(`${name}: the key leaked: ${show(got.text)}`);
    }
  });

  await checks.run(C.cookie, "the browser's EventSource opens with the cookie and gets the event", async () => {
    const profile = mkdtempSync(join(E2E_DIR, "chromium-jwt-"));
    browser = await within(30000, "chromium to start", chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    }));
    await browser.addCookies([{
      name: "tinysse_token", value: sign({ mercure: { subscribe: ["news"] } }), url: server.url,
    }]);
    const page = await browser.newPage();
    await page.goto(`${server.url}/healthz`);
    await page.evaluate(() => {
      window.got = [];
      window.opened = false;
      const source = new EventSource("/events?topic=news", { withCredentials: true });
      source.onopen = () => { window.opened = true; };
      source.onmessage = (e) => window.got.push(e.data);
    });
    await until(5000, "the browser's stream to open", () => page.evaluate(() => window.opened));
    const sent = await post(server.url, "news", writer, "for cookies");
    if (sent.status !== 200) throw new Error(`publish answered ${sent.status}`);
    await until(5000, "the event in the browser", () => page.evaluate(() => window.got.includes("for cookies")));
    await page.close();
  });

  await checks.run(C.demo, "closed without a token; open with one; the form's event shown", async () => {
    if (!browser) throw new Error("no browser (the cookie check failed)");
    await browser.clearCookies();
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await until(5000, "the demo to give up without a token", async () =>
      (await page.textContent("#state")) === "closed");
    await page.fill("#sub-token", sign({ mercure: { subscribe: ["user/7/*"] } }));
    await page.click("#apply");
    await until(5000, "the demo's stream to open with the token", async () =>
      (await page.textContent("#state")) === "open");
    await page.fill("#pub-data", "typed by hand");
    await page.fill("#pub-topic", "user/7/inbox");
    await page.fill("#pub-token", sign({ mercure: { publish: ["user/7/*"] } }));
    await page.click("#publish");
    await until(5000, "the published event on the demo page", async () =>
      (await page.$$eval("#events li.event pre.data", (items) => items.map((i) => i.textContent))).includes("typed by hand"));
    const result = await page.textContent("#pub-result");
    if (!result.startsWith("published id ")) throw new Error(`publish result ${show(result)}`);
  });
} catch (err) {
  console.error(err);
} finally {
  if (browser) await browser.close().catch(() => {});
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(checks.finish() > 0 ? 1 : 0);
