// drive.js connects one socket.io-client 2.x client to the legacy example (go-socket.io),
// runs a plan and prints what came back: the plans and results of ../client/drive.js (4.x),
// except that the user goes in the handshake's query (?user=NAME), where go-socket.io reads
// it. ../client/plan.js does the work; it needs no package of its own.
//
//   node drive.js '<plan as JSON>'
"use strict";

const io = require("socket.io-client");
const { readPlan, run } = require("../client/plan.js");

const plan = readPlan("drive.js");
run(
  plan,
  io(plan.url, {
    query: plan.user ? { user: plan.user } : {},
    transports: plan.transports || ["websocket"],
    reconnection: false,
    forceNew: true,
    timeout: 5000,
  })
);
