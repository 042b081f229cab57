// demo.js shows the chat example's limits from a client's point of view: it floods "chat",
// prints each answer, waits as long as the server asked, and is served again.
//
//   node demo.js http://127.0.0.1:PORT
"use strict";

const { io } = require("socket.io-client");

const url = process.argv[2];
if (!url) {
  console.error("usage: node demo.js http://127.0.0.1:PORT");
  process.exit(2);
}
const hardLimit = setTimeout(() => {
  console.error("demo: gave up after 20s");
  process.exit(1);
}, 20000);

const socket = io(url, {
  auth: { user: "demo" },
  transports: ["websocket"],
  reconnection: false,
  timeout: 5000,
});
socket.on("connect_error", (err) => {
  console.error(`demo: cannot connect to ${url}: ${err.message}`);
  process.exit(1);
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function show(label, r) {
  if (r.ok) {
    console.log(`${label}: ok`);
  } else if (r.error === "rate_limited") {
    console.log(`${label}: rate_limited, retry in ${r.retryAfterMs} ms`);
  } else {
    console.log(`${label}: ${JSON.stringify(r)}`);
  }
}

async function flood(n, from) {
  const sent = [];
  for (let i = from; i < from + n; i++) {
    sent.push(socket.timeout(3000).emitWithAck("chat", { text: `message ${i}` }));
  }
  const answers = await Promise.all(sent);
  answers.forEach((r, k) => show(`chat #${from + k}`, r));
  return answers;
}

// The server says "welcome" once it can take events (see examples/chat/main.go).
socket.once("welcome", async () => {
  try {
    console.log(`connected to ${url} as user "demo"; sending 7 chat messages at once`);
    const answers = await flood(7, 1);
    const wait = Math.max(0, ...answers.map((r) => r.retryAfterMs || 0));
    console.log(`waiting ${wait} ms, as the server asked`);
    await sleep(wait + 50);
    await flood(1, 8);

    console.log("search and history share one pool of 3 calls:");
    for (const ev of ["search", "history", "search", "history"]) {
      show(ev, await socket.timeout(3000).emitWithAck(ev, "message"));
    }
  } catch (err) {
    console.error(`demo: ${err.message}`);
    process.exitCode = 1;
  }
  clearTimeout(hardLimit);
  socket.disconnect();
});
