#!/bin/sh
# demo.sh generates the chat example's limited wrappers, builds it, starts it on a free
# loopback port counting in memory, runs the demo client (e2e/client/demo.js) against it,
# and stops it.
#
# Needs: Go, Node.js 18 or later, and the client's packages: npm ci --prefix e2e/client
# (run from the repository root). Set DEMO_LOG=1 to see the server's log afterwards.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
client="$root/e2e/client"

for tool in go node; do
	command -v "$tool" >/dev/null 2>&1 || { echo "demo: $tool not found on PATH" >&2; exit 1; }
done
if [ ! -d "$client/node_modules/socket.io-client" ]; then
	echo "demo: socket.io-client is not installed; run: npm ci --prefix $client" >&2
	exit 1
fi

tmp=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ "${DEMO_LOG:-0}" = 1 ] && [ -f "$tmp/server.log" ]; then
		echo "--- server log"
		cat "$tmp/server.log"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "generating the limited wrappers (go generate)"
(cd "$here" && go generate ./...)

echo "building examples/chat"
go build -C "$here" -o "$tmp/chat" .

env -u REDIS_URL "$tmp/chat" -addr 127.0.0.1:0 -addr-file "$tmp/addr" -debug \
	>/dev/null 2>"$tmp/server.log" &
pid=$!

tries=0
while [ ! -s "$tmp/addr" ]; do
	tries=$((tries + 1))
	if [ "$tries" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "demo: the server did not start; its log:" >&2
		cat "$tmp/server.log" >&2
		exit 1
	fi
	sleep 0.1
done
addr=$(cat "$tmp/addr")
echo "server listening on $addr (memory store)"

node "$client/demo.js" "http://$addr"
