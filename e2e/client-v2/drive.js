// drive.js connects one socket.io-client 2.x client to the legacy example (go-socket.io),
// sends the events a plan lists, and prints on stdout, as one JSON line, what came back.
// It takes the same plan and prints the same result as ../client/drive.js (4.x), except
// that the user is sent in the handshake's query (?user=NAME), which is where go-socket.io
// reads it.
//
//   node drive.js '<plan as JSON>'
//
// The script exits non-zero, with a message on stderr, if it cannot connect or if the
// whole run takes longer than a hard limit.
"use strict";

const io = require("socket.io-client");

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
  query: plan.user ? { user: plan.user } : {},
  transports: plan.transports || ["websocket"],
  reconnection: false,
  forceNew: true,
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

// emitWithAck sends one event and resolves with its ack, or with an error after the
// timeout (2.x has no socket.timeout()).
function emitWithAck(event, args) {
  return new Promise((resolve) => {
    const timer = setTimeout(
      () => resolve({ event, error: "operation has timed out" }),
      ackTimeoutMs
    );
    socket.emit(event, ...args, (response) => {
      clearTimeout(timer);
      resolve({ event, response });
    });
  });
}

socket.on("connect", async () => {
  const pending = [];
  for (const e of plan.emits || []) {
    const args = e.data === undefined ? [] : [e.data];
    if (e.ack) {
      pending.push(emitWithAck(e.event, args));
    } else {
      socket.emit(e.event, ...args);
    }
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
  // Taken before close(), which reports "io client disconnect" to the handler above.
  const result = { id: socket.id || null, acks, disconnectReason };
  socket.close();
  clearTimeout(hardLimit);
  process.stdout.write(JSON.stringify(result) + "\n");
});
