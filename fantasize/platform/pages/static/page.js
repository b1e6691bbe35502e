/*
 * What the scripts of /live and /ops share, loaded (deferred) before each: one namespace, FantasizePage, and no
 * other global. Elements by id, text-only elements, the time of day, error descriptions, the alert, the status
 * pill, and one JSON request that never rejects. Everything is set as text (textContent), never parsed as HTML.
 */
(function () {
  "use strict";

  function byId(id) {
    return document.getElementById(id);
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /* The time of day of an ISO date (now without one), or the value itself when it is not a date. */
  function clockTime(value) {
    var date = value ? new Date(value) : new Date();
    if (isNaN(date.getTime())) return String(value);
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  /* "CODE: message" of an API error; with `withDetails`, the per-field messages of a 422 follow. */
  function describeError(error, withDetails) {
    if (!error) return "Unknown error";
    var text = error.code ? error.code + ": " + (error.message || "") : String(error.message || error);
    if (withDetails && error.details && typeof error.details === "object") {
      var parts = Object.keys(error.details).map(function (field) {
        var messages = error.details[field];
        return field + " " + (Array.isArray(messages) ? messages.join(" ") : String(messages));
      });
      if (parts.length) text += " (" + parts.join("; ") + ")";
    }
    return text;
  }

  // The alert (#alert, #alert-text) and the status pill of the page's header

  function showError(text) {
    byId("alert-text").textContent = text;
    byId("alert").hidden = false;
  }

  function clearError() {
    byId("alert").hidden = true;
    byId("alert-text").textContent = "";
  }

  function setPill(id, kind, text) {
    var pill = byId(id);
    pill.dataset.state = kind;
    pill.textContent = text;
  }

  /*
   * One JSON request to this origin, with the bearer token when there is one and never a cookie. Resolves with
   * {ok, status, data, error, retryAfterS} (data: the body as sent; retryAfterS: the Retry-After of a refusal, or 0),
   * never rejects: an unreachable server is {ok: false, status: 0, error: NETWORK_ERROR}.
   */
  function requestJson(method, url, body, token) {
    var headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = "Bearer " + token;
    return fetch(url, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (response.ok) return { ok: true, status: response.status, data: data };
        var error = data && data.error ? data.error : { code: "HTTP_" + response.status, message: response.statusText };
        var retryAfter = Number(response.headers.get("Retry-After"));
        return { ok: false, status: response.status, data: data, error: error,
          retryAfterS: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : 0 };
      });
    }, function () {
      return { ok: false, status: 0, error: { code: "NETWORK_ERROR", message: "The server cannot be reached" } };
    });
  }

  window.FantasizePage = Object.freeze({
    byId: byId,
    element: element,
    clockTime: clockTime,
    describeError: describeError,
    showError: showError,
    clearError: clearError,
    setPill: setPill,
    requestJson: requestJson,
  });
})();
