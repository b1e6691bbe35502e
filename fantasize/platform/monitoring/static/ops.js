/*
 * /ops: the administrators' view of Fantasize's monitoring (API.md "Monitoring" and "Health").
 *
 * Sign in as an administrator (POST /api/v1/auth/login); the token is kept in this script's memory only (no
 * storage, no cookie), so reloading the page signs out. Every few seconds (2-30 s, chosen in the page or with
 * `?interval=` in seconds) the page reads, in parallel:
 *   GET /api/admin/performance/metrics?timeWindow=60000   the last minute: one point of each chart
 *   GET /api/admin/performance/slow-requests?limit=10     the latest requests slower than SLOW_REQUEST_THRESHOLD
 *   GET /api/admin/performance/summary                    longer windows, memory, uptime, slow SQL statements
 *   GET /health                                           the dependencies
 *   GET /api/v1/admin/realtime/stats                      the connected sockets
 * The charts plot each metrics reading as one point: rolling figures over the window (`?window=` in ms, default
 * 60000), not per-interval counts. The last MAX_POINTS points are kept in memory and drawn on canvases by this
 * script. Everything shown is set as text (textContent), never parsed as HTML.
 * Four of the five readings are counted by the monitoring rate-limit tier (RATE_LIMIT_MONITORING): when it
 * answers 429 the page keeps what it shows and reads again after the Retry-After the server sent.
 */
(function () {
  "use strict";

  var API = "/api/v1";
  var PERFORMANCE = "/api/admin/performance";
  var MAX_POINTS = 120;
  var MIN_SPAN = 30;
  var SLOW_LIMIT = 10;
  var TOP_LIMIT = 8;
  var INTERVALS = [2, 5, 10, 30];
  var params = new URLSearchParams(window.location.search);
  var windowMs = positiveInteger(params.get("window"), 60000);

  var state = {
    token: null,
    user: null,
    intervalS: chooseInterval(params.get("interval")),
    paused: false,
    timer: null,
    generation: 0, // a new session or a new schedule makes the older ticks' answers moot
    points: [],
    ticks: 0,
  };

  function positiveInteger(text, fallback) {
    var value = Number(text);
    return Number.isInteger(value) && value > 0 ? value : fallback;
  }

  function chooseInterval(text) {
    var value = Number(text);
    return Number.isFinite(value) && value >= 1 && value <= 60 ? value : 5;
  }

  var page = window.FantasizePage; // fantasize/platform/pages/static/page.js, loaded first
  var byId = page.byId;
  var element = page.element;
  var clockTime = page.clockTime;
  var describeError = page.describeError;
  var showError = page.showError;
  var clearError = page.clearError;

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  function formatMs(value) {
    if (!isNumber(value)) return "–";
    if (value >= 10000) return (value / 1000).toFixed(1) + " s";
    return (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)) + " ms";
  }

  function formatRate(value) {
    if (!isNumber(value)) return "–";
    return value >= 100 ? value.toFixed(0) : value.toFixed(value >= 10 ? 1 : 2);
  }

  function formatPercent(value) {
    if (!isNumber(value)) return "–";
    return (value >= 10 ? value.toFixed(1) : value.toFixed(2)) + " %";
  }

  function formatCount(value) {
    return isNumber(value) ? value.toLocaleString("en") : "–";
  }

  function formatBytes(value) {
    if (!isNumber(value)) return "–";
    return (value / 1048576).toFixed(value >= 1073741824 ? 0 : 1) + " MiB";
  }

  function formatDuration(seconds) {
    if (!isNumber(seconds)) return "–";
    var s = Math.floor(seconds);
    var parts = [];
    if (s >= 86400) parts.push(Math.floor(s / 86400) + " d");
    if (s >= 3600) parts.push(Math.floor((s % 86400) / 3600) + " h");
    if (s >= 60) parts.push(Math.floor((s % 3600) / 60) + " min");
    if (s % 60 || !parts.length) parts.push((s % 60) + " s");
    return parts.slice(0, 2).join(" ");
  }

  // The status pill

  function setStatus(kind, text) {
    page.setPill("status", kind, text);
  }

  // HTTP

  /* One JSON request (page.requestJson, which never rejects); an API's `{success, data}` is unwrapped. */
  function call(method, url, body) {
    return page.requestJson(method, url, body, state.token).then(function (result) {
      var data = result.data;
      result.data = data && data.success === true && "data" in data ? data.data : data;
      return result;
    });
  }

  // Charts: a canvas per chart, drawn from state.points

  var CHARTS = {
    "chart-rate": { title: "Request rate", series: [{ key: "rate", color: "--accent" }], unit: formatRate,
      floor: 1 },
    "chart-latency": { title: "Latency", series: [{ key: "p50", color: "--info" }, { key: "p99", color: "--warn" }],
      unit: formatMs, floor: 1 },
    "chart-errors": { title: "Error rate", series: [{ key: "errors", color: "--bad" }], unit: formatPercent,
      floor: 1 },
  };

  function cssColor(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  /* A round ceiling for the y axis: 1, 2 or 5 times a power of ten, at least the chart's floor. */
  function niceCeiling(value, floor) {
    var top = Math.max(value, floor);
    var power = Math.pow(10, Math.floor(Math.log10(top)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * power >= top) return steps[i] * power;
    }
    return 10 * power;
  }

  function drawChart(id) {
    var chart = CHARTS[id];
    var canvas = byId(id);
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth;
    var height = canvas.clientHeight;
    if (!width || !height) return;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    var points = state.points;
    // The x axis spans the time from the oldest point kept (MAX_POINTS) to the newest, at least MIN_SPAN intervals:
    // the first readings start at the right and the chart fills leftwards.
    var now = points.length ? points[points.length - 1].at : 0;
    var spanMs = Math.max(MIN_SPAN * state.intervalS * 1000, points.length ? now - points[0].at : 0);
    var highest = 0;
    points.forEach(function (point) {
      chart.series.forEach(function (series) {
        if (isNumber(point[series.key])) highest = Math.max(highest, point[series.key]);
      });
    });
    var top = niceCeiling(highest, chart.floor);
    var left = 4;
    var right = width - 4;
    var plotTop = 16;
    var bottom = height - 18;
    var muted = cssColor("--muted");
    var line = cssColor("--line");

    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = line;
    ctx.fillStyle = muted;
    for (var step = 0; step <= 2; step++) {
      var y = Math.round(bottom - (bottom - plotTop) * step / 2) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(right, y);
      ctx.stroke();
    }
    ctx.textBaseline = "bottom";
    ctx.textAlign = "left";
    ctx.fillText(chart.unit(top), left, plotTop - 2);
    ctx.textBaseline = "top";
    ctx.fillText("−" + formatDuration(spanMs / 1000), left, bottom + 4);
    ctx.textAlign = "right";
    ctx.fillText("now", right, bottom + 4);

    // The newest point at the right edge, the others placed by the time they were read.
    function xOf(point) {
      return right - ((now - point.at) / spanMs) * (right - left);
    }
    function yOf(value) {
      return bottom - (bottom - plotTop) * Math.min(value, top) / top;
    }
    chart.series.forEach(function (series, index) {
      var color = cssColor(series.color);
      var shown = points.filter(function (point) { return isNumber(point[series.key]); });
      if (!shown.length) return;
      ctx.beginPath();
      shown.forEach(function (point, i) {
        if (i === 0) ctx.moveTo(xOf(point), yOf(point[series.key]));
        else ctx.lineTo(xOf(point), yOf(point[series.key]));
      });
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.lineJoin = "round";
      ctx.stroke();
      if (index === 0) { // the first series is filled below its line
        ctx.lineTo(xOf(shown[shown.length - 1]), bottom);
        ctx.lineTo(xOf(shown[0]), bottom);
        ctx.closePath();
        ctx.globalAlpha = 0.12;
        ctx.fillStyle = color;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
      var last = shown[shown.length - 1];
      ctx.beginPath();
      ctx.arc(xOf(last), yOf(last[series.key]), 3, 0, 2 * Math.PI);
      ctx.fillStyle = color;
      ctx.fill();
    });

    // What the chart shows, for tests and screen readers alike.
    var newest = points[points.length - 1];
    canvas.dataset.points = String(points.length);
    chart.series.forEach(function (series) {
      canvas.dataset[series.key] = newest && isNumber(newest[series.key]) ? String(newest[series.key]) : "";
    });
    canvas.setAttribute("aria-label", chart.title + ": " + (newest ? chart.series.map(function (series) {
      return series.key + " " + chart.unit(newest[series.key]);
    }).join(", ") : "no data yet") + " (" + points.length + " points)");
  }

  function drawCharts() {
    Object.keys(CHARTS).forEach(drawChart);
  }

  // What each endpoint answered

  function setFigure(id, value, text) {
    var node = byId(id);
    node.textContent = text;
    node.dataset.value = isNumber(value) ? String(value) : "";
  }

  function showMetrics(result) {
    if (!result.ok) {
      byId("window-note").textContent = "Metrics: " + describeError(result.error);
      return;
    }
    var m = result.data || {};
    state.points.push({ at: Date.now(), rate: m.requestsPerSecond, p50: m.p50ResponseTime, p99: m.p99ResponseTime,
      errors: m.errorRate });
    while (state.points.length > MAX_POINTS) state.points.shift();
    setFigure("fig-rate", m.requestsPerSecond, formatRate(m.requestsPerSecond));
    setFigure("fig-p50", m.p50ResponseTime, formatMs(m.p50ResponseTime));
    setFigure("fig-p99", m.p99ResponseTime, formatMs(m.p99ResponseTime));
    setFigure("fig-errors", m.errorRate, formatPercent(m.errorRate));
    setFigure("fig-total", m.totalRequests, formatCount(m.totalRequests));
    setFigure("fig-slow", m.slowRequests, formatCount(m.slowRequests));
    var scope = m.scope === "cluster" ? "every instance (through Redis)" : "this instance only";
    byId("window-note").textContent = m.enabled === false
      ? "Monitoring is off on this instance (ENABLE_PERFORMANCE_MONITORING=false): nothing is recorded."
      : "Figures over the last " + formatDuration(windowMs / 1000) + " of " + scope + ", read at " + clockTime()
        + "; average " + formatMs(m.averageResponseTime) + ", p95 " + formatMs(m.p95ResponseTime) + ".";

    var body = byId("top-endpoints");
    body.replaceChildren();
    (Array.isArray(m.topEndpoints) ? m.topEndpoints : []).slice(0, TOP_LIMIT).forEach(function (entry) {
      var row = element("tr");
      row.appendChild(element("td", "route", entry.endpoint));
      var count = element("td", "num count", formatCount(entry.count));
      count.dataset.value = isNumber(entry.count) ? String(entry.count) : "";
      row.appendChild(count);
      row.appendChild(element("td", "num", formatMs(entry.averageResponseTime)));
      body.appendChild(row);
    });
    var codes = m.statusCodes && typeof m.statusCodes === "object" ? Object.keys(m.statusCodes).sort() : [];
    byId("status-codes").textContent = codes.length ? "Statuses: " + codes.map(function (code) {
      return code + " × " + formatCount(m.statusCodes[code]);
    }).join(", ") : "No requests in the window.";
  }

  function showSlow(result) {
    var body = byId("slow-requests");
    body.replaceChildren();
    if (!result.ok) {
      byId("slow-empty").textContent = "Slow requests: " + describeError(result.error);
      byId("slow-empty").hidden = false;
      return;
    }
    var list = Array.isArray(result.data) ? result.data : [];
    list.slice(0, SLOW_LIMIT).forEach(function (entry) {
      var row = element("tr");
      row.appendChild(element("td", null, clockTime(entry.timestamp)));
      var what = element("td", "route", [entry.method, entry.route].filter(Boolean).join(" "));
      if (entry.path && entry.path !== entry.route) what.appendChild(element("span", "path", entry.path));
      row.appendChild(what);
      row.appendChild(element("td", "num", entry.status));
      row.appendChild(element("td", "num", formatMs(entry.durationMs)));
      row.appendChild(element("td", "mono", entry.requestId || ""));
      body.appendChild(row);
    });
    byId("slow-empty").textContent = "None: no request was slower than the threshold lately.";
    byId("slow-empty").hidden = list.length > 0;
  }

  function showSummary(result) {
    var body = byId("summary");
    body.replaceChildren();
    if (!result.ok) {
      byId("process").textContent = "Summary: " + describeError(result.error);
      return;
    }
    var s = result.data || {};
    [["last5Minutes", "5 minutes"], ["lastHour", "1 hour"], ["last24Hours", "24 hours"]].forEach(function (pair) {
      var w = s[pair[0]];
      if (!w) return;
      var row = element("tr");
      row.appendChild(element("td", null, pair[1]));
      row.appendChild(element("td", "num", formatCount(w.totalRequests)));
      row.appendChild(element("td", "num", formatMs(w.p50ResponseTime)));
      row.appendChild(element("td", "num", formatMs(w.p99ResponseTime)));
      row.appendChild(element("td", "num", formatPercent(w.errorRate)));
      body.appendChild(row);
    });
    var memory = s.memory || {};
    var parts = [];
    if (isNumber(memory.rssBytes)) parts.push("process RSS " + formatBytes(memory.rssBytes));
    if (isNumber(memory.systemUsagePercent)) parts.push("system memory " + formatPercent(memory.systemUsagePercent));
    if (isNumber(s.uptime)) parts.push("up " + formatDuration(s.uptime / 1000));
    byId("process").textContent = parts.length ? "The instance that answered: " + parts.join(", ") + "." : "";

    var queries = byId("slow-queries");
    queries.replaceChildren();
    var listed = Array.isArray(s.slowQueries) ? s.slowQueries.slice(0, SLOW_LIMIT) : [];
    listed.forEach(function (entry) {
      var row = element("tr");
      row.appendChild(element("td", null, clockTime(entry.timestamp)));
      var statement = String(entry.statement || "");
      row.appendChild(element("td", "route", statement.length > 200 ? statement.slice(0, 200) + "…" : statement));
      row.appendChild(element("td", "num", formatMs(entry.durationMs)));
      row.appendChild(element("td", "mono", entry.requestId || ""));
      queries.appendChild(row);
    });
    byId("queries-empty").hidden = listed.length > 0;
  }

  function showHealth(result) {
    var body = byId("health-checks");
    var badge = byId("health-status");
    body.replaceChildren();
    var h = result.data;
    if (!h || typeof h !== "object" || !h.status) { // 503 answers carry the report too; anything else does not
      badge.textContent = "unknown";
      badge.dataset.status = "unknown";
      byId("health-meta").textContent = "Health: " + describeError(result.error);
      return;
    }
    badge.textContent = h.status;
    badge.dataset.status = h.status;
    var checks = h.checks && typeof h.checks === "object" ? h.checks : {};
    Object.keys(checks).forEach(function (name) {
      var check = checks[name] || {};
      var row = element("tr");
      row.appendChild(element("td", null, name));
      var status = element("td");
      var tag = element("span", "badge", check.status || "?");
      tag.dataset.status = check.status || "unknown";
      status.appendChild(tag);
      row.appendChild(status);
      row.appendChild(element("td", "num", formatMs(check.responseTime)));
      var detail = check.message || "";
      var details = check.details || {};
      if (details.systemMemory && isNumber(details.systemMemory.usagePercent)) {
        detail = "system " + formatPercent(details.systemMemory.usagePercent);
      }
      if (details.process && isNumber(details.process.rssBytes)) {
        detail += (detail ? ", " : "") + "RSS " + formatBytes(details.process.rssBytes);
      }
      row.appendChild(element("td", "detail", detail));
      body.appendChild(row);
    });
    var meta = [];
    if (h.version) meta.push("version " + h.version);
    if (h.environment) meta.push(h.environment);
    if (isNumber(h.uptime)) meta.push("up " + formatDuration(h.uptime / 1000));
    meta.push("checked " + clockTime(h.timestamp));
    byId("health-meta").textContent = meta.join(" · ");
  }

  function showSockets(result) {
    var list = byId("sockets");
    list.replaceChildren();
    if (!result.ok) {
      byId("sockets-meta").textContent = "Sockets: " + describeError(result.error);
      return;
    }
    var stats = result.data || {};
    var total = stats.total || {};
    var rooms = total.rooms || {};
    function pair(label, value, id) {
      list.appendChild(element("dt", null, label));
      var dd = element("dd", null, formatCount(value));
      if (id) {
        dd.id = id;
        dd.dataset.value = isNumber(value) ? String(value) : "";
      }
      list.appendChild(dd);
    }
    pair("Connected clients", total.connectedClients, "sockets-connected");
    pair("Signed in", total.authenticatedClients);
    pair("Distinct users", total.authenticatedUsers);
    pair("Tracking orders", rooms.order && rooms.order.members);
    pair("Tracking products", rooms.inventory && rooms.inventory.members);
    pair("Instances", total.instances);
    var note = stats.messageQueue ? "Every instance, through the Redis message queue" : "This instance only (no message queue)";
    if (stats.complete === false) note += "; other instances could not be read";
    byId("sockets-meta").textContent = note + ".";
  }

  // Polling

  function schedule(delayMs) {
    clearTimeout(state.timer);
    state.timer = null;
    if (!state.token || state.paused) return;
    state.timer = setTimeout(tick, delayMs);
  }

  function tick() {
    clearTimeout(state.timer);
    var generation = ++state.generation;
    var encoded = encodeURIComponent(windowMs);
    return Promise.all([
      call("GET", PERFORMANCE + "/metrics?timeWindow=" + encoded),
      call("GET", PERFORMANCE + "/slow-requests?limit=" + SLOW_LIMIT),
      call("GET", PERFORMANCE + "/summary"),
      call("GET", "/health"),
      call("GET", API + "/admin/realtime/stats"),
    ]).then(function (results) {
      if (generation !== state.generation || !state.token) return; // signed out or rescheduled meanwhile
      var refused = results.filter(function (r) { return r.status === 401 || r.status === 403; })[0];
      if (refused) {
        endSession(refused.status === 403 ? "This account may not read the figures: " + describeError(refused.error)
          : "Signed out: " + describeError(refused.error));
        return;
      }
      // A rate-limited reading (429) leaves what its card shows as it was; the others are shown.
      [showMetrics, showSlow, showSummary, showHealth, showSockets].forEach(function (show, index) {
        if (results[index].status !== 429) show(results[index]);
      });
      drawCharts();
      state.ticks += 1;
      document.body.dataset.ticks = String(state.ticks);
      var limited = results.filter(function (r) { return r.status === 429; });
      if (limited.length) {
        // The monitoring tier's budget (RATE_LIMIT_MONITORING) is spent: wait as long as the server asks before reading again.
        var waitS = Math.max(state.intervalS, Math.max.apply(null, limited.map(function (r) { return r.retryAfterS; })));
        setStatus("limited", "Rate limited · next reading in " + formatDuration(waitS));
        schedule(waitS * 1000);
        return;
      }
      // /health answers 503 with its report when the database is down: shown, not a failed reading.
      var failed = results.filter(function (r, index) {
        return !r.ok && !(index === 3 && r.data && r.data.status);
      }).length;
      setStatus(failed ? "stale" : "live", (failed ? "Partly updated " : "Live · updated ") + clockTime()
        + " · every " + state.intervalS + " s");
      schedule(state.intervalS * 1000);
    });
  }

  // Sessions

  function startSession(token, user) {
    state.token = token;
    state.user = user;
    state.points = [];
    state.ticks = 0;
    state.paused = false;
    document.body.dataset.session = "signed-in";
    byId("who").textContent = user.email || user.username || "user " + user.id;
    byId("role").textContent = user.role || "";
    byId("password").value = "";
    byId("account").hidden = true;
    byId("session").hidden = false;
    byId("dashboard").hidden = false;
    byId("pause").textContent = "Pause";
    setStatus("loading", "Loading…");
    return tick();
  }

  function endSession(message) {
    state.token = null;
    state.user = null;
    state.points = [];
    state.generation += 1;
    clearTimeout(state.timer);
    document.body.dataset.session = "signed-out";
    delete document.body.dataset.ticks;
    byId("account").hidden = false;
    byId("session").hidden = true;
    byId("dashboard").hidden = true;
    setStatus("signed-out", "Signed out");
    if (message) showError(message);
  }

  // The controls

  var select = byId("interval");
  if (INTERVALS.indexOf(state.intervalS) < 0) { // an interval from the address that the list lacks
    var option = element("option", null, state.intervalS + " s");
    option.value = String(state.intervalS);
    select.insertBefore(option, select.firstChild);
  }
  select.value = String(state.intervalS);
  select.addEventListener("change", function () {
    state.intervalS = chooseInterval(select.value);
    state.points = []; // the points are spaced by the interval: a new spacing starts a new series
    drawCharts();
    if (state.token && !state.paused) tick();
  });

  byId("login-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var button = byId("sign-in");
    if (button.disabled) return;
    clearError();
    var email = byId("email").value.trim();
    var password = byId("password").value;
    if (!email || !password) {
      showError("Enter your email and password.");
      return;
    }
    button.disabled = true;
    call("POST", API + "/auth/login", { email: email, password: password }).then(function (result) {
      if (!result.ok) {
        showError("Sign-in failed: " + describeError(result.error));
        return null;
      }
      var user = result.data.user || {};
      if (user.role !== "admin") {
        showError("Sign-in refused: " + (user.email || "this account") + " is not an administrator.");
        return null;
      }
      return startSession(result.data.accessToken, user);
    }).catch(function (error) {
      showError("Unexpected error: " + (error && error.message ? error.message : String(error)));
    }).then(function () { button.disabled = false; });
  });

  byId("pause").addEventListener("click", function () {
    state.paused = !state.paused;
    byId("pause").textContent = state.paused ? "Resume" : "Pause";
    if (state.paused) {
      state.generation += 1;
      clearTimeout(state.timer);
      setStatus("paused", "Paused");
    } else {
      tick();
    }
  });

  byId("sign-out").addEventListener("click", function () {
    endSession(null);
    clearError();
  });

  byId("alert-dismiss").addEventListener("click", clearError);

  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(drawCharts, 100);
  });
})();
