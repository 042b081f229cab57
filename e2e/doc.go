// Package e2e tests the examples end to end: it builds examples/chat, runs the server on a
// loopback port, and drives it with the official socket.io-client under Node
// (e2e/client/drive.js).
//
// The tests need node, the client's packages (npm ci --prefix e2e/client) and, for the Redis
// variant, redis-server on PATH. Missing ones make the tests skip, or fail when the
// environment variable LIMITGEN_REQUIRE_SERVICES is 1.
package e2e
