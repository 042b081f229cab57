package main

import (
	"fmt"
	"log/slog"
	"strings"

	runtime "github.com/limitgen/limitgen/runtime"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

//go:generate go tool limitgen

// Client is one Socket.IO connection. Its methods are the event handlers; the ones
// annotated with //limit:socketio get a rate-limited variant in client_limited.go.
type Client struct {
	sock *socket.Socket
	user string
	hub  *Hub
	log  *slog.Logger
}

// newClient wraps a freshly connected socket. The user name is taken, unverified, from
// the handshake's auth payload ({auth: {user: "alice"}} in socket.io-client).
func newClient(sock *socket.Socket, hub *Hub, log *slog.Logger) *Client {
	c := &Client{sock: sock, hub: hub}
	if auth := sock.Handshake().Auth; auth != nil {
		if u, ok := auth["user"].(string); ok {
			c.user = strings.TrimSpace(u)
		}
	}
	c.log = log.With("socket", string(sock.Id()), "id", c.ID())
	return c
}

// ID is the identity every limit of this client is counted under: "user:NAME" when the
// handshake named a user, else "socket:SID" for the connection's random socket id.
//
// The user name is whatever the client claims. That makes the per-user limit hold across
// all connections of one honest user, but a hostile client can rotate names to get a fresh
// allowance each time, or claim someone else's name to use up their allowance. A real
// application must take the user from a verified token or session instead.
func (c *Client) ID() string {
	if c.user != "" {
		return "user:" + c.user
	}
	return "socket:" + string(c.sock.Id())
}

// Disconnect disconnects the client's socket from the server; with closeTransport it also
// closes the underlying connection at once. Without it the client sees the reason
// "io server disconnect" and does not reconnect on its own; with it, over WebSocket, the
// close usually overtakes the disconnect packet and the client sees "transport close",
// which socket.io-client treats as a network failure and retries.
func (c *Client) Disconnect(closeTransport bool) {
	c.log.Warn("disconnecting client", "closeTransport", closeTransport)
	c.sock.Disconnect(closeTransport)
}

// name is how the client appears to others in chat messages.
func (c *Client) name() string {
	if c.user != "" {
		return c.user
	}
	return "anonymous"
}

// register installs the rate-limited handlers on the client's socket.
func (c *Client) register(lim *runtime.Limiter) {
	c.sock.On("chat", c.ChatLimited(lim))
	c.sock.On("search", c.SearchLimited(lim))
	c.sock.On("history", c.HistoryLimited(lim))
	c.sock.On("typing", c.TypingLimited(lim))
	c.sock.On("disconnect", func(args ...any) {
		c.log.Info("client disconnected", "reason", fmt.Sprint(args...))
	})
}

// Chat posts a message: emit("chat", {text} | text, ack). The message is broadcast to the
// other clients as "message" {user, text} and acknowledged with {ok: true}.
//
//limit:socketio key=chat window=3s allowance=5 by=c.ID() on=chatRejected
func (c *Client) Chat(args ...any) {
	payload, ack := splitAck(args)
	text := textArg(payload, "text")
	if text == "" {
		reply(ack, map[string]any{"ok": false, "error": "empty_message"})
		return
	}
	msg := c.hub.post(c.name(), text)
	if err := c.sock.Broadcast().Emit("message", msg); err != nil {
		c.log.Error("broadcast message", "err", err)
	}
	reply(ack, map[string]any{"ok": true})
}

// chatRejected answers a chat call over the limit instead of Chat.
func (c *Client) chatRejected(d runtime.Decision, args ...any) {
	c.rejected(d, args)
}

// Search looks for messages containing a query: emit("search", {q} | q, ack), answered
// with {ok: true, results: [...]}. It shares the "expensive" pool with History.
//
//limit:socketio key=expensive window=5s allowance=3 on=expensiveRejected
func (c *Client) Search(args ...any) {
	payload, ack := splitAck(args)
	results := c.hub.search(textArg(payload, "q"), 20)
	reply(ack, map[string]any{"ok": true, "results": results})
}

// History returns the most recent messages: emit("history", ack), answered with
// {ok: true, messages: [...]}. It shares the "expensive" pool with Search.
//
//limit:socketio key=expensive window=5s allowance=3 on=expensiveRejected
func (c *Client) History(args ...any) {
	_, ack := splitAck(args)
	reply(ack, map[string]any{"ok": true, "messages": c.hub.recent(20)})
}

// expensiveRejected answers a search or history call over the shared limit.
func (c *Client) expensiveRejected(d runtime.Decision, args ...any) {
	c.rejected(d, args)
}

// Typing tells the other clients that this one is typing. It is sent often and without an
// ack, so a client that floods it is disconnected rather than answered.
//
//limit:socketio key=typing window=1s allowance=10 on=disconnect
func (c *Client) Typing(args ...any) {
	err := c.sock.Broadcast().Volatile().Emit("typing", map[string]any{"user": c.name()})
	if err != nil {
		c.log.Error("broadcast typing", "err", err)
	}
}

// rejected answers a denied call's ack, if it has one, with
// {ok: false, error: "rate_limited", retryAfterMs: N}. The limiter has logged the denial.
func (c *Client) rejected(d runtime.Decision, args []any) {
	_, ack := splitAck(args)
	reply(ack, map[string]any{
		"ok":           false,
		"error":        "rate_limited",
		"retryAfterMs": retryAfterMs(d),
	})
}
