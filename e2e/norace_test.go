//go:build !race

package e2e

// raceEnabled makes the tests build the chat server with the race detector too.
const raceEnabled = false
