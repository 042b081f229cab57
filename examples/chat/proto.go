package main

import (
	"time"

	runtime "github.com/limitgen/limitgen/runtime"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// splitAck separates the ack callback, which the server library appends as the last
// argument when the client asked for one, from the event's payload.
func splitAck(args []any) ([]any, socket.Ack) {
	if n := len(args); n > 0 {
		if ack, ok := args[n-1].(socket.Ack); ok {
			return args[:n-1], ack
		}
	}
	return args, nil
}

// reply answers ack with one payload; it does nothing when the client asked for no ack.
// Errors go in the payload because the ack's error argument never reaches the client.
func reply(ack socket.Ack, payload map[string]any) {
	if ack != nil {
		ack([]any{payload}, nil)
	}
}

// textArg reads a string event argument given either as a plain string or as an object
// field named field.
func textArg(payload []any, field string) string {
	if len(payload) == 0 {
		return ""
	}
	switch v := payload[0].(type) {
	case string:
		return v
	case map[string]any:
		s, _ := v[field].(string)
		return s
	}
	return ""
}

// retryAfterMs rounds a denied decision's RetryAfter up to whole milliseconds, so a client
// that waits that long is not denied again for a rounding error.
func retryAfterMs(d runtime.Decision) int64 {
	ms := (d.RetryAfter + time.Millisecond - 1) / time.Millisecond
	return max(int64(ms), 1)
}
