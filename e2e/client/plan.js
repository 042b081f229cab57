// plan.js runs a drive plan (see drive.js) over a connected-to-be socket of any
// socket.io-client version from 2.x on, and prints what came back as one JSON line on
// stdout. Acks use the callback form and a timer of their own, which every version has.
"use strict";

// readPlan parses the plan given as the first argument, or exits with a usage message.
function readPlan(script) {
  const plan = JSON.parse(process.argv[2] || "{}");
  if (!plan.url) {
    console.error(`usage: node ${script} '{"url": "http://127.0.0.1:PORT", ...}'`);
    process.exit(2);
  }
  return plan;
}

// run sends plan's emits on socket once it connects (and, if plan.waitFor names an event,
// once the server sent it: the chat example says "welcome" when it can take events), waits
// for their acks (and, if asked, for the server to disconnect the client), prints the
// result and closes the socket.
function run(plan, socket) {
  const ackTimeoutMs = plan.ackTimeoutMs || 3000;
  const hardLimitMs = 5000 + ackTimeoutMs + (plan.waitDisconnectMs || 0);
  const hardLimit = setTimeout(() => {
    console.error(`drive: gave up after ${hardLimitMs}ms`);
    process.exit(3);
  }, hardLimitMs);

  let disconnectReason = null;
  let onDisconnect = () => {};
  socket.on("disconnect", (reason) => {
    disconnectReason = reason;
    onDisconnect();
  });
  socket.on("connect_error", (err) => {
    console.error(`drive: connect_error: ${err.message}`);
    process.exit(1);
  });

  const emitWithAck = (event, args) =>
    new Promise((resolve) => {
      const timer = setTimeout(
        () => resolve({ event, error: "operation has timed out" }),
        ackTimeoutMs
      );
      socket.emit(event, ...args, (response) => {
        clearTimeout(timer);
        resolve({ event, response });
      });
    });

  const ready = new Promise((resolve) => {
    if (plan.waitFor) {
      socket.once(plan.waitFor, () => resolve());
    } else {
      socket.once("connect", () => resolve());
    }
  });

  ready.then(async () => {
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
    // Taken before disconnect(), which reports "io client disconnect" to the handler.
    const result = { id: socket.id || null, acks, disconnectReason };
    socket.disconnect();
    clearTimeout(hardLimit);
    // Exit once the line is written: a polling transport the server dropped may keep a
    // request open that would hold the process until the test gives up on it.
    process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
  });
}

module.exports = { readPlan, run };
