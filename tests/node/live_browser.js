// Drives /live in the machine's Chromium for tests/test_live_browser.py, through tests/node/driver.js (the
// protocol, the browser, the report and the commands every page has: open, waitText, read, layout, screenshot,
// report, probeCsp, close). `open` waits for the socket to connect and answers `connection`, the pill's text.
// This page's own commands: signIn, useToken, track.
"use strict";

const { DEFAULT_TIMEOUT_MS, currentPage, run, sharedCommands, submitSignIn, until, visibleText } = require("./driver");

/** After a form is sent: the signed-in state, or the alert the page shows instead. */
async function sessionOutcome(timeoutMs) {
  return until(async () => ({
    session: await currentPage().locator("body").getAttribute("data-session"),
    who: await visibleText("#who"),
    alert: await visibleText("#alert-text"),
  }), (s) => s.session === "signed-in" || s.alert, timeoutMs, "the sign-in outcome");
}

run({
  ...sharedCommands({
    width: 960,
    async opened(timeoutMs) {
      const connection = await until(
        async () => ({ state: await currentPage().locator("#connection").getAttribute("data-state"),
          text: await visibleText("#connection") }),
        (c) => c.state === "connected", timeoutMs, "the socket to connect");
      return { connection: connection.text };
    },
  }),

  async signIn({ email, password, timeoutMs }) {
    await submitSignIn(email, password);
    return sessionOutcome(timeoutMs);
  },

  async useToken({ token, timeoutMs }) {
    const page = currentPage();
    await page.click(".token-box summary");
    await page.fill("#token", token);
    await page.click("#use-token");
    return sessionOutcome(timeoutMs);
  },

  async track({ orderId, timeoutMs }) {
    const page = currentPage();
    const option = `#order-select option[value="${Number(orderId)}"]`;
    await page.waitForSelector(option, { state: "attached", timeout: timeoutMs || DEFAULT_TIMEOUT_MS });
    await page.selectOption("#order-select", String(orderId));
    await page.click("#track");
    return until(async () => ({
      trackedId: await visibleText("#tracked-id"),
      status: await visibleText("#order-status"),
      alert: await visibleText("#alert-text"),
    }), (s) => s.trackedId === `#${orderId}` || s.alert, timeoutMs, `order ${orderId} to be tracked`);
  },
});
