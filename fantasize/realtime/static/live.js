/*
 * /live: the reference browser client of Fantasize's real-time API (API.md "Real time").
 *
 * Sign in (POST /api/v1/auth/login, or a pasted token), authenticate the socket, pick one of your orders
 * (GET /api/v1/orders) and track it; order status updates, your notifications and announcements arrive live.
 * Every client event asks for an acknowledgement and the page acts on the answer; every server event is listed
 * in the event log. Everything shown is set as text (textContent), never parsed as HTML.
 * `?transport=websocket` or `?transport=polling` pins one Socket.IO transport (both by default).
 */
(function () {
  "use strict";

  var API = "/api/v1";
  var ACK_TIMEOUT_MS = 8000;
  var LOG_LIMIT = 100;
  var FEED_LIMIT = 50;
  var STATUSES = ["pending", "confirmed", "processing", "shipped", "delivered", "completed", "cancelled",
    "rejected", "returned"];
  var FEED_TYPES = ["info", "warning", "maintenance", "success", "error"];
  var DETAIL_LABELS = { trackingNumber: "Tracking number", estimatedDelivery: "Estimated delivery" };

  var state = { token: null, user: null, orderId: null, orders: new Map(), busy: false };

  var page = window.FantasizePage; // fantasize/platform/pages/static/page.js, loaded first
  var byId = page.byId;
  var element = page.element;
  var clockTime = page.clockTime;
  var showError = page.showError;
  var clearError = page.clearError;

  function describeError(error) {
    return page.describeError(error, true);
  }

  // The event log

  function logEvent(name, payload, bad) {
    var log = byId("log");
    var item = element("li");
    item.appendChild(element("time", null, clockTime()));
    item.appendChild(element("span", bad ? "event bad" : "event", name));
    var text = payload === undefined ? "" : JSON.stringify(payload);
    if (text && text.length > 400) text = text.slice(0, 400) + "…";
    item.appendChild(element("span", "payload", text));
    log.insertBefore(item, log.firstChild);
    while (log.childElementCount > LOG_LIMIT) log.removeChild(log.lastChild);
  }

  function addToFeed(listId, entry) {
    var list = byId(listId);
    var item = element("li", FEED_TYPES.indexOf(entry.type) >= 0 ? "type-" + entry.type : null);
    item.appendChild(element("p", "title", entry.title || "(untitled)"));
    if (entry.message) item.appendChild(element("p", "message", entry.message));
    var meta = [clockTime(entry.timestamp)];
    if (entry.type) meta.push(entry.type);
    item.appendChild(element("p", "meta", meta.join(" · ")));
    list.insertBefore(item, list.firstChild);
    while (list.childElementCount > FEED_LIMIT) list.removeChild(list.lastChild);
  }

  // HTTP

  function api(method, path, body) {
    return page.requestJson(method, API + path, body, state.token);
  }

  // The socket

  var options = {};
  var pinned = new URLSearchParams(window.location.search).get("transport");
  if (pinned === "websocket" || pinned === "polling") options.transports = [pinned];
  var socket = io(options);

  function setConnection(kind, text) {
    page.setPill("connection", kind, text);
  }

  function transportName() {
    var engine = socket.io && socket.io.engine;
    return engine && engine.transport ? engine.transport.name : "?";
  }

  /* A client event with its acknowledgement: resolves with the server's answer, or {error} when none came. */
  function request(event, payload) {
    return new Promise(function (resolve) {
      socket.timeout(ACK_TIMEOUT_MS).emit(event, payload, function (err, answer) {
        if (err) {
          resolve({ error: { code: "TIMEOUT", message: "No answer to " + event + " within "
            + ACK_TIMEOUT_MS / 1000 + " s" } });
        } else if (!answer || typeof answer !== "object") {
          resolve({ error: { code: "NO_ANSWER", message: "Empty answer to " + event } });
        } else {
          resolve(answer);
        }
      });
    });
  }

  socket.on("connect", function () {
    setConnection("connected", "Connected · " + transportName());
    socket.io.engine.once("upgrade", function () {
      setConnection("connected", "Connected · " + transportName());
    });
    logEvent("connect", { transport: transportName() });
    if (state.token) resume();
  });

  socket.on("disconnect", function (reason) {
    setConnection("disconnected", "Disconnected");
    logEvent("disconnect", { reason: reason }, true);
    if (reason === "io server disconnect") socket.connect();
  });

  socket.on("connect_error", function (error) {
    setConnection("error", "Cannot connect");
    logEvent("connect_error", { message: error && error.message }, true);
  });

  socket.io.on("reconnect_attempt", function (attempt) {
    setConnection("connecting", "Reconnecting… (" + attempt + ")");
  });

  // Server events: every one is logged; these change what the page shows.
  ["authenticated", "tracking", "untracked", "inventory_update"].forEach(function (name) {
    socket.on(name, function (payload) { logEvent(name, payload); });
  });

  socket.on("auth_error", function (payload) {
    logEvent("auth_error", payload, true);
    if (state.token) {
      endSession("Signed out by the server: " + ((payload && payload.message) || "authentication ended"));
    }
  });

  socket.on("error", function (payload) {
    logEvent("error", payload, true);
    showError(describeError(payload));
  });

  socket.on("order_status_update", function (update) {
    logEvent("order_status_update", update);
    if (!update) return;
    var order = state.orders.get(update.orderId);
    if (order) {
      order.status = update.status;
      renderOrderOptions();
    }
    if (update.orderId === state.orderId) showTracked(update);
  });

  socket.on("real_time_notification", function (notification) {
    logEvent("real_time_notification", notification);
    if (notification) addToFeed("notifications", notification);
  });

  socket.on("system_announcement", function (announcement) {
    logEvent("system_announcement", announcement);
    if (announcement) addToFeed("announcements", announcement);
  });

  // Sessions

  function setBusy(busy) {
    state.busy = busy;
    ["sign-in", "use-token", "track", "refresh-orders", "sign-out"].forEach(function (id) {
      byId(id).disabled = busy;
    });
  }

  function startSession(token, user) {
    return request("authenticate", token).then(function (answer) {
      if (answer.error) {
        showError("Token refused: " + describeError(answer.error));
        return false;
      }
      state.token = token;
      // A pasted token says nothing of whose it is beyond the id: ask who that is.
      var known = user && user.email ? Promise.resolve(user) : api("GET", "/users/me").then(function (result) {
        return result.ok ? result.data : { id: answer.userId };
      });
      return known.then(function (profile) {
        if (state.token !== token) return false; // signed out meanwhile
        state.user = profile;
        state.user.role = answer.role;
        showSignedIn();
        return loadOrders().then(function () { return true; });
      });
    });
  }

  /* After a reconnection: authenticate again and track the same order again. */
  function resume() {
    var token = state.token;
    request("authenticate", token).then(function (answer) {
      if (state.token !== token) return;
      if (answer.error) {
        endSession("Signed out: " + describeError(answer.error));
      } else if (state.orderId) {
        track(state.orderId);
      }
    });
  }

  function endSession(message) {
    state.token = null;
    state.user = null;
    state.orders = new Map();
    if (state.orderId) {
      byId("order-change").textContent = "No longer tracked.";
    }
    state.orderId = null;
    document.body.dataset.session = "signed-out";
    byId("signed-in-panel").hidden = true;
    byId("signed-out-panel").hidden = false;
    byId("orders-card").hidden = true;
    byId("tracked").hidden = true;
    byId("order-select").replaceChildren();
    if (message) showError(message);
  }

  function showSignedIn() {
    document.body.dataset.session = "signed-in";
    byId("who").textContent = state.user.email || state.user.username || "user " + state.user.id;
    byId("role").textContent = state.user.role || "";
    byId("signed-out-panel").hidden = true;
    byId("signed-in-panel").hidden = false;
    byId("orders-card").hidden = false;
    byId("password").value = "";
    byId("token").value = "";
  }

  // Orders

  function orderLabel(order) {
    var parts = ["#" + order.id, order.status];
    if (order.total !== undefined) parts.push(order.total);
    if (order.createdAt) parts.push(new Date(order.createdAt).toLocaleDateString());
    return parts.join(" · ");
  }

  function renderOrderOptions() {
    var select = byId("order-select");
    var chosen = select.value;
    select.replaceChildren();
    if (state.orders.size === 0) {
      var none = element("option", null, "No orders yet");
      none.value = "";
      none.disabled = true;
      select.appendChild(none);
      return;
    }
    state.orders.forEach(function (order) {
      var option = element("option", null, orderLabel(order));
      option.value = String(order.id);
      select.appendChild(option);
    });
    var keep = chosen || (state.orderId ? String(state.orderId) : "");
    if (keep && state.orders.has(Number(keep))) select.value = keep;
  }

  function loadOrders() {
    return api("GET", "/orders?limit=100").then(function (result) {
      if (!result.ok) {
        if (result.status === 401) endSession("Signed out: " + describeError(result.error));
        else showError("Orders could not be loaded: " + describeError(result.error));
        return;
      }
      state.orders = new Map();
      (Array.isArray(result.data) ? result.data : []).forEach(function (order) {
        state.orders.set(order.id, order);
      });
      renderOrderOptions();
    });
  }

  function track(orderId) {
    var previous = state.orderId;
    var leave = previous && previous !== orderId ? request("untrack_order", previous) : Promise.resolve(null);
    return leave.then(function () {
      return request("track_order", orderId);
    }).then(function (answer) {
      if (answer.error) {
        if (previous && previous !== orderId) {
          state.orderId = null;
          byId("tracked").hidden = true;
        }
        showError("Order #" + orderId + " cannot be tracked: " + describeError(answer.error));
        return;
      }
      clearError();
      var fresh = state.orderId !== answer.orderId;
      state.orderId = answer.orderId;
      showTracked({ orderId: answer.orderId, status: answer.status }, fresh);
    });
  }

  function showTracked(update, fresh) {
    var statusNode = byId("order-status");
    var changed = !fresh && statusNode.textContent && statusNode.textContent !== update.status;
    byId("tracked-id").textContent = "#" + update.orderId;
    statusNode.textContent = update.status;
    statusNode.dataset.status = update.status;
    statusNode.className = "status";
    if (STATUSES.indexOf(update.status) >= 0) statusNode.classList.add("status-" + update.status);
    if (changed) {
      void statusNode.offsetWidth; // restart the highlight animation
      statusNode.classList.add("changed");
    }
    var change = byId("order-change");
    if (update.previousStatus) {
      change.textContent = "Changed from " + update.previousStatus + " at " + clockTime(update.timestamp);
    } else if (fresh) {
      change.textContent = "Tracking since " + clockTime() + "; changes appear here live.";
    }
    var details = byId("order-details");
    if (fresh || "details" in update) details.replaceChildren();
    if (update.details && typeof update.details === "object") {
      Object.keys(update.details).forEach(function (key) {
        var known = Object.prototype.hasOwnProperty.call(DETAIL_LABELS, key);
        details.appendChild(element("dt", null, known ? DETAIL_LABELS[key] : key));
        var value = update.details[key];
        details.appendChild(element("dd", null, typeof value === "object" ? JSON.stringify(value) : value));
      });
    }
    byId("tracked").hidden = false;
  }

  // The forms

  function guarded(work) {
    return function (event) {
      event.preventDefault();
      if (state.busy) return;
      clearError(); // a new attempt: the last one's error no longer applies
      setBusy(true);
      Promise.resolve().then(work).catch(function (error) {
        showError("Unexpected error: " + (error && error.message ? error.message : String(error)));
      }).then(function () { setBusy(false); });
    };
  }

  byId("login-form").addEventListener("submit", guarded(function () {
    var email = byId("email").value.trim();
    var password = byId("password").value;
    if (!email || !password) {
      showError("Enter your email and password.");
      return null;
    }
    return api("POST", "/auth/login", { email: email, password: password }).then(function (result) {
      if (!result.ok) {
        showError("Sign-in failed: " + describeError(result.error));
        return null;
      }
      return startSession(result.data.accessToken, result.data.user);
    });
  }));

  byId("token-form").addEventListener("submit", guarded(function () {
    var token = byId("token").value.trim().replace(/^Bearer\s+/i, "");
    if (!token) {
      showError("Paste an access token.");
      return null;
    }
    return startSession(token, null);
  }));

  byId("track-form").addEventListener("submit", guarded(function () {
    var orderId = Number(byId("order-select").value);
    if (!orderId) {
      showError("Choose an order to track.");
      return null;
    }
    return track(orderId);
  }));

  byId("refresh-orders").addEventListener("click", guarded(loadOrders));

  byId("sign-out").addEventListener("click", function () {
    endSession(null);
    clearError();
    // The socket still speaks for the user until it reconnects: a new, anonymous connection.
    socket.disconnect().connect();
  });

  byId("alert-dismiss").addEventListener("click", clearError);

  byId("order-status").addEventListener("animationend", function () {
    byId("order-status").classList.remove("changed");
  });
})();
