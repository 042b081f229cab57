package bench

import (
	"reflect"
	"sync/atomic"
	"time"

	"github.com/limitgen/limitgen/runtime"
)

// Client is a Socket.IO client as examples/chat has it, reduced to what a handler needs.
type Client struct {
	id       string
	messages atomic.Int64
}

// ID is whose calls are counted.
func (c *Client) ID() string { return c.id }

// Chat is the handler: it counts its messages, so that calls are not optimized away. Its
// directive would be `limit:socketio key=chat window=1h allowance=1099511627776`.
func (c *Client) Chat(args ...any) {
	if len(args) > 0 {
		c.messages.Add(1)
	}
}

// ChatLimited is what limitgen generates for Chat (see examples/chat/client_limited.go),
// written by hand so that the benchmark module does not run the generator.
func (c *Client) ChatLimited(l *runtime.Limiter) func(args ...any) {
	rule := &runtime.Rule{Pool: "chat", Window: time.Hour, Allowance: 1099511627776}
	return func(args ...any) {
		if !l.Allow(rule, c.ID()).Allowed {
			return
		}

		c.Chat(args...)
	}
}

// reflectLimited is how a reflection-based wrapper does the same: it finds the handler
// and the identity by name and calls them through reflect, as decorator-style libraries
// and googollee/go-socket.io's event dispatch do.
func reflectLimited(l *runtime.Limiter, rule *runtime.Rule, receiver any,
	handler string) func(args ...any) {
	v := reflect.ValueOf(receiver)
	method := v.MethodByName(handler)
	id := v.MethodByName("ID")
	return func(args ...any) {
		identity := id.Call(nil)[0].String()
		if !l.Allow(rule, identity).Allowed {
			return
		}
		in := make([]reflect.Value, len(args))
		for i, a := range args {
			in[i] = reflect.ValueOf(a)
		}
		method.Call(in)
	}
}
