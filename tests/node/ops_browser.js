// Drives /ops in the machine's Chromium (playwright-core, no browser download) for tests/test_ops_browser.py.
//
// The same protocol as live_browser.js: one JSON command per line on stdin, one JSON answer per line on stdout:
//   {"id": 1, "cmd": "open", "url": "http://127.0.0.1:5000/ops"}  ->  {"id": 1, "ok": true, ...}
// A command that fails answers {"id": n, "ok": false, "error": "..."}; the driver then waits for the next one.
// Commands: open, signIn, waitText, waitNumber, read, chart, layout, screenshot, report, probeCsp, close.
// The page's console messages, uncaught errors, failed or refused requests and `securitypolicyviolation` events are
// collected from the moment the page opens and returned by `report`.
// Environment: CHROMIUM (default /usr/bin/chromium).
"use strict";

const readline = require("node:readline");
const { chromium } = require("playwright-core");

const DEFAULT_TIMEOUT_MS = 15000;
const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

let browser = null;
let context = null;
let page = null;
let seen = null;

function answer(payload) {
  process.stdout.write(`${JSON.stringify(payload)}\n`);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until `read()` gives a value `accept` takes; throws with the last value seen on timeout. */
async function until(read, accept, timeoutMs, what) {
  const deadline = Date.now() + (timeoutMs || DEFAULT_TIMEOUT_MS);
  let last;
  for (;;) {
    last = await read();
    if (accept(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last seen: ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

async function visibleText(selector) {
  const node = page.locator(selector);
  if ((await node.count()) === 0 || !(await node.isVisible())) return null;
  return (await node.textContent()).trim();
}

/** A chart canvas's data attributes (points, and the newest value of each series) and its accessible label. */
async function chartData(id) {
  return page.locator(`#${id}`).evaluate((canvas) => ({
    ...canvas.dataset,
    label: canvas.getAttribute("aria-label"),
    width: canvas.width,
    height: canvas.height,
    // Some pixel is drawn: the canvas is not blank. Read through a copy, so that reading leaves the page's own
    // context alone (Chromium warns about repeated readbacks of one context).
    drawn: (() => {
      const copy = document.createElement("canvas");
      copy.width = canvas.width;
      copy.height = canvas.height;
      const context = copy.getContext("2d", { willReadFrequently: true });
      context.drawImage(canvas, 0, 0);
      const data = context.getImageData(0, 0, copy.width, copy.height).data;
      for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
      return false;
    })(),
  }));
}

const commands = {
  async open({ url, width = 1280, height = 900, timeoutMs }) {
    if (context) await context.close();
    seen = { console: [], pageErrors: [], violations: [], failedRequests: [], errorResponses: [] };
    context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
    await context.exposeBinding("__opsViolation", (_source, violation) => seen.violations.push(violation));
    await context.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (event) => {
        window.__opsViolation({
          directive: event.effectiveDirective || event.violatedDirective,
          blocked: event.blockedURI,
          source: event.sourceFile,
          line: event.lineNumber,
          sample: event.sample,
        });
      });
    });
    page = await context.newPage();
    page.on("console", (message) => seen.console.push({ type: message.type(), text: message.text() }));
    page.on("pageerror", (error) => seen.pageErrors.push(String(error)));
    page.on("requestfailed", (request) => {
      seen.failedRequests.push({ url: request.url(), error: (request.failure() || {}).errorText });
    });
    page.on("response", (response) => {
      if (response.status() >= 400) seen.errorResponses.push({ url: response.url(), status: response.status() });
    });
    const response = await page.goto(url, { waitUntil: "load", timeout: timeoutMs || DEFAULT_TIMEOUT_MS });
    return {
      status: response.status(),
      csp: response.headers()["content-security-policy"] || null,
      title: await page.title(),
      session: await page.locator("body").getAttribute("data-session"),
      status_text: await visibleText("#status"),
    };
  },

  /** Signs in; answers once the first figures are shown (data-ticks) or the page shows an alert instead. */
  async signIn({ email, password, timeoutMs }) {
    await page.fill("#email", email);
    await page.fill("#password", password);
    await page.click("#sign-in");
    return until(async () => ({
      session: await page.locator("body").getAttribute("data-session"),
      ticks: Number(await page.locator("body").getAttribute("data-ticks")) || 0,
      who: await visibleText("#who"),
      alert: await visibleText("#alert-text"),
    }), (s) => (s.session === "signed-in" && s.ticks > 0) || s.alert, timeoutMs, "the sign-in outcome");
  },

  /** Waits until the element's text equals `text` (or contains it, with `contains`). */
  async waitText({ selector, text, contains = false, timeoutMs }) {
    const found = await until(() => visibleText(selector),
      (value) => value !== null && (contains ? value.includes(text) : value === text),
      timeoutMs, `${selector} to read ${JSON.stringify(text)}`);
    return { text: found };
  },

  /** Waits until the number in the element's `attribute` is at least `min`. */
  async waitNumber({ selector, attribute, min, timeoutMs }) {
    const value = await until(async () => {
      const raw = await page.locator(selector).getAttribute(attribute);
      return raw === null || raw === "" ? null : Number(raw);
    }, (n) => n !== null && n >= min, timeoutMs, `${selector} [${attribute}] >= ${min}`);
    return { value };
  },

  async read({ selectors }) {
    const texts = {};
    for (const selector of selectors) texts[selector] = await visibleText(selector);
    return { texts };
  },

  async chart({ canvas }) {
    return chartData(canvas);
  },

  /** Whether the page fits its viewport's width (no sideways scrolling on a phone). */
  async layout() {
    return page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
    }));
  },

  async screenshot({ path, fullPage = true }) {
    await page.screenshot({ path, fullPage, animations: "disabled" });
    return { path };
  },

  async report() {
    return seen;
  },

  /** Breaks the policy on purpose (an inline script and a style attribute): proves violations are seen. */
  async probeCsp() {
    const before = seen.violations.length;
    const ran = await page.evaluate(() => {
      const script = document.createElement("script");
      script.textContent = "window.__inlineRan = true;";
      document.head.appendChild(script);
      document.body.setAttribute("style", "outline: 1px solid red");
      return window.__inlineRan === true;
    });
    await until(async () => seen.violations.length - before, (n) => n >= 2, 5000, "two violations");
    return { inlineScriptRan: ran, violations: seen.violations.slice(before) };
  },

  async close() {
    if (browser) await browser.close();
    browser = null;
    return {};
  },
};

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
  });
  answer({ ready: true, browser: browser.version() });
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let message;
    try {
      message = JSON.parse(line);
    } catch (error) {
      answer({ ok: false, error: `not JSON: ${error.message}` });
      continue;
    }
    const handler = commands[message.cmd];
    try {
      if (!handler) throw new Error(`unknown command ${message.cmd}`);
      if (!page && !["open", "close"].includes(message.cmd)) throw new Error("no page: send open first");
      const result = await handler(message);
      answer({ ...result, id: message.id, ok: true });
    } catch (error) {
      answer({ id: message.id, ok: false, error: String(error && error.message ? error.message : error) });
    }
    if (message.cmd === "close") break;
  }
  lines.close();
  if (browser) await browser.close();
  process.exit(0); // stdin may still be open: the caller learns the end from the process's exit
}

main().catch((error) => {
  answer({ ready: false, error: String(error && error.stack ? error.stack : error) });
  process.exit(1);
});
