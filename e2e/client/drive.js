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
//   waitFor: "welcome",                 // emit only once the server sent this event
//   waitDisconnectMs: 0                 // > 0: then wait this long for the server to
//                                       // disconnect the client
// }
// result: {id, acks: [{event, response} | {event, error}], disconnectReason}
// acks are in the order of emits; events sent without ack are not listed.
//
// The script exits non-zero, with a message on stderr, if it cannot connect or if the
// whole run takes longer than a hard limit. plan.js does the work; ../client-v2/drive.js
// runs the same plans with socket.io-client 2.x.
"use strict";

const { io } = require("socket.io-client");
const { readPlan, run } = require("./plan.js");

const plan = readPlan("drive.js");
run(
  plan,
  io(plan.url, {
    auth: plan.user ? { user: plan.user } : {},
    transports: plan.transports || ["websocket"],
    reconnection: false,
    timeout: 5000,
  })
);
