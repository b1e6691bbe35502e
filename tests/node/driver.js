// What tests/node/live_browser.js and ops_browser.js share: the machine's Chromium (playwright-core, no browser
// download), the command loop, the report of what a page logged or refused, and the commands every page has.
//
// Protocol: one JSON command per line on stdin, one JSON answer per line on stdout, in order:
//   {"id": 1, "cmd": "open", "url": "http://127.0.0.1:5000/live"}  ->  {"id": 1, "ok": true, ...}
// A command that fails answers {"id": n, "ok": false, "error": "..."}; the driver then waits for the next one.
// Commands here: open, waitText, read, layout, screenshot, report, probeCsp, close; each page's driver adds its own
// and says what `open` waits for and answers besides.
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

/** The page the last `open` opened. */
function currentPage() {
  return page;
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

/** Fills the sign-in form both pages have (#email, #password) and sends it (#sign-in). */
async function submitSignIn(email, password) {
  await page.fill("#email", email);
  await page.fill("#password", password);
  await page.click("#sign-in");
}

/**
 * The commands every page has. `width` is `open`'s default viewport width; `opened(timeoutMs)` waits for what the
 * page must show once loaded and gives the fields `open` answers besides status, csp and title.
 */
function sharedCommands({ width: defaultWidth, opened }) {
  return {
    async open({ url, width = defaultWidth, height = 900, timeoutMs }) {
      if (context) await context.close();
      seen = { console: [], pageErrors: [], violations: [], failedRequests: [], errorResponses: [] };
      context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
      await context.exposeBinding("__pageViolation", (_source, violation) => seen.violations.push(violation));
      await context.addInitScript(() => {
        document.addEventListener("securitypolicyviolation", (event) => {
          window.__pageViolation({
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
      const extra = await opened(timeoutMs);
      return {
        status: response.status(),
        csp: response.headers()["content-security-policy"] || null,
        title: await page.title(),
        ...extra,
      };
    },

    /** Waits until the element's text equals `text` (or contains it, with `contains`). */
    async waitText({ selector, text, contains = false, timeoutMs }) {
      const found = await until(() => visibleText(selector),
        (value) => value !== null && (contains ? value.includes(text) : value === text),
        timeoutMs, `${selector} to read ${JSON.stringify(text)}`);
      return { text: found };
    },

    async read({ selectors }) {
      const texts = {};
      for (const selector of selectors) texts[selector] = await visibleText(selector);
      return { texts };
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
}

/** Starts Chromium and answers `commands` (the shared ones and the page's own) until `close` or end of input. */
async function serve(commands) {
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

/** A page's driver: `node <its script>`; a failure to start is answered as {ready: false, error}. */
function run(commands) {
  serve(commands).catch((error) => {
    answer({ ready: false, error: String(error && error.stack ? error.stack : error) });
    process.exit(1);
  });
}

module.exports = { DEFAULT_TIMEOUT_MS, currentPage, run, sharedCommands, submitSignIn, until, visibleText };
