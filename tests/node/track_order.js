#!/usr/bin/env node
// Track one order with the official Socket.IO client, as any JavaScript client of Fantasize would.
//
//   FANTASIZE_TOKEN=<jwt> node track_order.js --url http://127.0.0.1:5000 --order 42 \
//       [--transport websocket|polling] [--auth connect|event] [--updates 1] [--timeout 20] [--local-address ADDR]
//
// --auth connect sends the token in the connect payload (`auth: {token}`); --auth event sends it afterwards
// through the `authenticate` event. The token may also be given as --token, but the environment keeps it out of
// the process list. --local-address connects from that address of this machine (127.0.0.2, say: all of 127.0.0.0/8
// is loopback), so that a proxy hashing the client's address sends the socket where a test expects it.
// Every event the server sends, and every acknowledgement, is one JSON line on stdout:
//   {"event": "authenticated", "data": {"userId": 7, "role": "customer"}}
//   {"event": "ack", "data": {"event": "track_order", "reply": {"orderId": 42, "status": "pending"}}}
//   {"event": "tracking", "data": {"orderId": 42, "status": "pending"}}
//   {"event": "order_status_update", "data": {"orderId": 42, "status": "confirmed", ...}}
// Exit status: 0 once --updates order_status_update events arrived; 2 tracking refused (the ack's error), 3 not
// authenticated (auth_error), 4 could not connect or lost the connection, 5 timed out, 64 bad arguments.
"use strict";

const http = require("node:http");
const { parseArgs } = require("node:util");
const { io } = require("socket.io-client");

const EXIT = { ok: 0, refused: 2, unauthenticated: 3, disconnected: 4, timeout: 5, usage: 64 };

function print(event, data) {
  process.stdout.write(JSON.stringify({ event, data }) + "\n");
}

function options() {
  const { values } = parseArgs({
    options: {
      url: { type: "string", default: process.env.FANTASIZE_URL || "http://127.0.0.1:5000" },
      token: { type: "string", default: process.env.FANTASIZE_TOKEN },
      order: { type: "string", default: process.env.FANTASIZE_ORDER_ID },
      transport: { type: "string", default: process.env.FANTASIZE_TRANSPORT || "websocket" },
      auth: { type: "string", default: "connect" },
      updates: { type: "string", default: "1" },
      timeout: { type: "string", default: "20" },
      "local-address": { type: "string" },
    },
  });
  const [orderId, updates, timeout] = [Number(values.order), Number(values.updates), Number(values.timeout)];
  const problems = [
    !values.token && "a token (FANTASIZE_TOKEN or --token)",
    !(Number.isInteger(orderId) && orderId > 0) && "--order <positive integer>",
    !["websocket", "polling"].includes(values.transport) && "--transport websocket|polling",
    !["connect", "event"].includes(values.auth) && "--auth connect|event",
    !(Number.isInteger(updates) && updates > 0) && "--updates <positive integer>",
    !(timeout > 0) && "--timeout <seconds>",
  ].filter(Boolean);
  if (problems.length) {
    print("usage_error", { needs: problems });
    process.exit(EXIT.usage);
  }
  return { ...values, orderId, updates, timeout };
}

function main() {
  const opts = options();
  const socket = io(opts.url, {
    transports: [opts.transport], // one transport only: no upgrade from polling to websocket
    auth: opts.auth === "connect" ? { token: opts.token } : {},
    reconnection: false,
    // Both transports make their requests through this agent (xmlhttprequest-ssl for polling, ws for websocket).
    agent: opts["local-address"] ? new http.Agent({ localAddress: opts["local-address"] }) : false,
  });
  let updates = 0;
  let tracking = false;
  let done = false;

  const finish = (code, why) => {
    if (done) return;
    done = true;
    if (why) print(why.event, why.data);
    clearTimeout(timer);
    socket.close();
    setTimeout(() => process.exit(code), 20); // lets the close packet leave
  };
  const timer = setTimeout(() => finish(EXIT.timeout, { event: "timeout", data: { seconds: opts.timeout } }),
    opts.timeout * 1000);

  const track = () => {
    tracking = true;
    socket.emit("track_order", opts.orderId, (reply) => {
      print("ack", { event: "track_order", reply });
      if (reply.error) finish(EXIT.refused);
    });
  };

  // Events a server sends in its connect handler (the `authenticated` of a connect-time token) arrive before
  // "connect" fires, so every listener is in place before the connection opens.
  socket.on("authenticated", (data) => {
    print("authenticated", data);
    if (opts.auth === "connect" && !tracking) track();
  });
  socket.on("auth_error", (data) => {
    print("auth_error", data);
    if (opts.auth === "connect" || tracking) finish(EXIT.unauthenticated); // else the ack below answers
  });
  socket.on("tracking", (data) => print("tracking", data));
  socket.on("error", (data) => print("error", data));
  socket.on("order_status_update", (data) => {
    print("order_status_update", data);
    updates += 1;
    if (updates >= opts.updates) finish(EXIT.ok);
  });

  socket.on("connect", () => {
    if (done) return; // e.g. a connect-time token refused: auth_error came first, and finished
    print("connect", { id: socket.id, transport: socket.io.engine.transport.name });
    if (opts.auth === "event") {
      socket.emit("authenticate", opts.token, (reply) => {
        print("ack", { event: "authenticate", reply });
        if (reply.error) finish(EXIT.unauthenticated);
        else track();
      });
    }
  });
  socket.on("connect_error", (err) => {
    finish(EXIT.disconnected, { event: "connect_error", data: { message: err.message } });
  });
  socket.on("disconnect", (reason) => finish(EXIT.disconnected, { event: "disconnect", data: { reason } }));
}

main();
