// alternate.js connects one socket.io-client 4.x client per server URL, all with the same
// user, and sends one event at a time, each waiting for its ack, alternating between the
// servers: emit 1 to the first, emit 2 to the second, and so on. It prints on stdout, as
// one JSON line, what came back.
//
//   node alternate.js '<plan as JSON>'
//
// plan: {
//   urls: ["http://127.0.0.1:P1", "http://127.0.0.1:P2"],  // required, at least one
//   user: "alice",                  // handshake auth user
//   event: "chat",                  // the event to send
//   data: "hello",                  // its data, numbered: "hello 1", "hello 2", ...
//   count: 8,                       // how many to send in all
//   ackTimeoutMs: 3000              // how long each ack may take (default 3000)
// }
// result: {acks: [{server, event, response} | {server, event, error}]}, in the order sent;
// server is the index in urls of the server that answered.
//
// The script exits non-zero, with a message on stderr, if a client cannot connect or if
// the whole run takes longer than a hard limit.
"use strict";

const { io } = require("socket.io-client");

const plan = JSON.parse(process.argv[2] || "{}");
if (!Array.isArray(plan.urls) || plan.urls.length === 0) {
  console.error("usage: node alternate.js '{\"urls\": [\"http://127.0.0.1:PORT\"], ...}'");
  process.exit(2);
}
const ackTimeoutMs = plan.ackTimeoutMs || 3000;
const count = plan.count || 0;
const hardLimitMs = 10000 + count * ackTimeoutMs;
const hardLimit = setTimeout(() => {
  console.error(`alternate.js: gave up after ${hardLimitMs}ms`);
  process.exit(3);
}, hardLimitMs);

function connect(url) {
  return new Promise((resolve, reject) => {
    const socket = io(url, {
      auth: plan.user ? { user: plan.user } : {},
      transports: ["websocket"],
      reconnection: false,
      timeout: 5000,
    });
    socket.once("welcome", () => resolve(socket)); // the server is ready for events
    socket.once("connect_error", (err) => reject(new Error(`${url}: ${err.message}`)));
  });
}

(async () => {
  let sockets;
  try {
    sockets = await Promise.all(plan.urls.map(connect));
  } catch (err) {
    console.error(`alternate.js: connect_error: ${err.message}`);
    process.exit(1);
  }
  const acks = [];
  for (let i = 0; i < count; i++) {
    const server = i % sockets.length;
    const args = plan.data === undefined ? [] : [`${plan.data} ${i + 1}`];
    try {
      const response = await sockets[server]
        .timeout(ackTimeoutMs)
        .emitWithAck(plan.event, ...args);
      acks.push({ server, event: plan.event, response });
    } catch (err) {
      acks.push({ server, event: plan.event, error: err.message });
    }
  }
  for (const s of sockets) s.disconnect();
  clearTimeout(hardLimit);
  // Exit once the line is written, whatever the transports still hold open.
  process.stdout.write(JSON.stringify({ acks }) + "\n", () => process.exit(0));
})();
