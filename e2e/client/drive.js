// drive.js connects one socket.io-client 4.x client to the chat example, sends the events a
// plan lists, and prints on stdout, as one JSON line, what came back.
//
//   node drive.js '<plan as JSON>'
//
// plan: {
//   url: "http://127.0.0.1:PORT",      // required
//   user: "alice",                      // handshake auth user; omitted: anonymous
//   transports: ["websocket"],          // default ["websocket"]
//   emits: [{event: "chat", data: {text: "hi"}, ack: true}, ...],
//                                       // sent back to back, without waiting for acks
//   ackTimeoutMs: 3000,                 // how long each ack may take (default 3000)
//   waitDisconnectMs: 0                 // > 0: then wait this long for the server to
//                                       // disconnect the client
// }
// result: {id, acks: [{event, response} | {event, error}], disconnectReason}
// acks are in the order of emits; events sent without ack are not listed.
//
// The script exits non-zero, with a message on stderr, if it cannot connect or if the
// whole run takes longer than a hard limit.
"use strict";

const { io } = require("socket.io-client");

const plan = JSON.parse(process.argv[2] || "{}");
if (!plan.url) {
  console.error("usage: node drive.js '{\"url\": \"http://127.0.0.1:PORT\", ...}'");
  process.exit(2);
}
const ackTimeoutMs = plan.ackTimeoutMs || 3000;
const hardLimitMs = 5000 + ackTimeoutMs + (plan.waitDisconnectMs || 0);
const hardLimit = setTimeout(() => {
  console.error(`drive.js: gave up after ${hardLimitMs}ms`);
  process.exit(3);
}, hardLimitMs);

const socket = io(plan.url, {
  auth: plan.user ? { user: plan.user } : {},
  transports: plan.transports || ["websocket"],
  reconnection: false,
  timeout: 5000,
});

let disconnectReason = null;
let onDisconnect = () => {};
socket.on("disconnect", (reason) => {
  disconnectReason = reason;
  onDisconnect();
});

socket.on("connect_error", (err) => {
  console.error(`drive.js: connect_error: ${err.message}`);
  process.exit(1);
});

socket.on("connect", async () => {
  const pending = [];
  for (const e of plan.emits || []) {
    const args = e.data === undefined ? [] : [e.data];
    if (!e.ack) {
      socket.emit(e.event, ...args);
      continue;
    }
    pending.push(
      socket
        .timeout(ackTimeoutMs)
        .emitWithAck(e.event, ...args)
        .then(
          (response) => ({ event: e.event, response }),
          (err) => ({ event: e.event, error: err.message })
        )
    );
  }
  const acks = await Promise.all(pending);
  if (plan.waitDisconnectMs > 0 && disconnectReason === null) {
    await new Promise((resolve) => {
      const t = setTimeout(resolve, plan.waitDisconnectMs);
      onDisconnect = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
  const result = { id: socket.id || null, acks, disconnectReason };
  socket.disconnect();
  clearTimeout(hardLimit);
  process.stdout.write(JSON.stringify(result) + "\n");
});
