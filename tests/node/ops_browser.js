// Drives /ops in the machine's Chromium for tests/test_ops_browser.py, through tests/node/driver.js (the protocol,
// the browser, the report and the commands every page has: open, waitText, read, layout, screenshot, report,
// probeCsp, close). `open` answers `session` (the body's data-session) and `status_text`, the pill's text.
// This page's own commands: signIn, waitNumber, chart.
"use strict";

const { currentPage, run, sharedCommands, submitSignIn, until, visibleText } = require("./driver");

/** A chart canvas's data attributes (points, and the newest value of each series) and its accessible label. */
async function chartData(id) {
  return currentPage().locator(`#${id}`).evaluate((canvas) => ({
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

run({
  ...sharedCommands({
    width: 1280,
    async opened() {
      return {
        session: await currentPage().locator("body").getAttribute("data-session"),
        status_text: await visibleText("#status"),
      };
    },
  }),

  /** Signs in; answers once the first figures are shown (data-ticks) or the page shows an alert instead. */
  async signIn({ email, password, timeoutMs }) {
    await submitSignIn(email, password);
    const body = currentPage().locator("body");
    return until(async () => ({
      session: await body.getAttribute("data-session"),
      ticks: Number(await body.getAttribute("data-ticks")) || 0,
      who: await visibleText("#who"),
      alert: await visibleText("#alert-text"),
    }), (s) => (s.session === "signed-in" && s.ticks > 0) || s.alert, timeoutMs, "the sign-in outcome");
  },

  /** Waits until the number in the element's `attribute` is at least `min`. */
  async waitNumber({ selector, attribute, min, timeoutMs }) {
    const value = await until(async () => {
      const raw = await currentPage().locator(selector).getAttribute(attribute);
      return raw === null || raw === "" ? null : Number(raw);
    }, (n) => n !== null && n >= min, timeoutMs, `${selector} [${attribute}] >= ${min}`);
    return { value };
  },

  async chart({ canvas }) {
    return chartData(canvas);
  },
});
