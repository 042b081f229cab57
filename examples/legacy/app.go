package main

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"

	socketio "github.com/googollee/go-socket.io"
	"github.com/limitgen/limitgen/runtime"
)

//go:generate go tool limitgen

// App holds the chat's state. Its methods are the event handlers; the ones annotated with
// //limit:socketio get a rate-limited variant in app_limited.go.
type App struct {
	server   *socketio.Server
	log      *slog.Logger
	instance string // random, so that connection counters of two processes never meet

	mu       sync.Mutex
	messages []Message
}

// Message is one chat line, as broadcast to every client in the "message" event.
type Message struct {
	User string `json:"user"`
	Text string `json:"text"`
}

// Reply is what every acknowledged event answers: {ok: true} or
// {ok: false, error: "rate_limited", retryAfterMs: N}.
type Reply struct {
	OK           bool      `json:"ok"`
	Error        string    `json:"error,omitempty"`
	RetryAfterMs int64     `json:"retryAfterMs,omitempty"`
	Messages     []Message `json:"messages,omitempty"`
}

func newApp(server *socketio.Server, log *slog.Logger) *App {
	b := make([]byte, 6)
	rand.Read(b)
	return &App{server: server, log: log, instance: hex.EncodeToString(b)}
}

// identity is whose calls a limit counts: "user:NAME" when the client connected with
// ?user=NAME, else its connection. go-socket.io numbers connections 1, 2, 3... in each
// process, so the connection id alone would be shared by strangers on other instances
// counting in the same Redis; the instance prefix keeps them apart.
//
// The user name is whatever the client claims; a real application takes it from a
// verified session instead.
func (a *App) identity(s socketio.Conn) string {
	u := s.URL()
	if user := strings.TrimSpace(u.Query().Get("user")); user != "" {
		return "user:" + user
	}
	return "conn:" + a.instance + ":" + s.ID()
}

// register installs the rate-limited handlers on the server.
func (a *App) register(lim *runtime.Limiter) {
	a.server.OnConnect("/", func(s socketio.Conn) error {
		s.Join("chat")
		a.log.Info("client connected", "id", a.identity(s))
		return nil
	})
	a.server.OnEvent("/", "chat", a.ChatLimited(lim))
	a.server.OnEvent("/", "history", a.HistoryLimited(lim))
	a.server.OnEvent("/", "typing", a.TypingLimited(lim))
	a.server.OnError("/", func(s socketio.Conn, err error) {
		a.log.Info("connection error", "err", err)
	})
	a.server.OnDisconnect("/", func(s socketio.Conn, reason string) {
		a.log.Info("client disconnected", "reason", reason)
	})
}

// Chat posts a message: emit("chat", text, ack). It is broadcast to every client as
// "message" {user, text} and acknowledged with {ok: true}.
//
//limit:socketio key=chat window=3s allowance=5 by=a.identity(s) on=chatRejected
func (a *App) Chat(s socketio.Conn, text string) Reply {
	text = strings.TrimSpace(text)
	if text == "" {
		return Reply{Error: "empty_message"}
	}
	msg := Message{User: a.identity(s), Text: text}
	a.mu.Lock()
	a.messages = append(a.messages, msg)
	if len(a.messages) > 100 {
		a.messages = a.messages[len(a.messages)-100:]
	}
	a.mu.Unlock()
	a.server.BroadcastToRoom("/", "chat", "message", msg)
	return Reply{OK: true}
}

// History answers emit("history", ack) with the latest messages. Reading history is
// cheap for one client and expensive for a thousand, so it is allowed twice per 5 seconds
// and at most 20 times an hour, two limits checked together.
//
//limit:socketio key=history-burst window=5s allowance=2 by=a.identity(s) on=historyRejected
//limit:socketio key=history-hour window=1h allowance=20 algo=gcra
func (a *App) History(s socketio.Conn) Reply {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Reply{OK: true, Messages: append([]Message(nil), a.messages...)}
}

// chatRejected answers a chat call over the limit instead of Chat.
func (a *App) chatRejected(d runtime.Decision, s socketio.Conn, text string) Reply {
	return rejected(d)
}

// historyRejected answers a history call over either limit instead of History.
func (a *App) historyRejected(d runtime.Decision, s socketio.Conn) Reply {
	return rejected(d)
}

// rejected is the ack of a call over a limit: {ok: false, error: "rate_limited",
// retryAfterMs: N}, N at least 1 so that a client waiting N ms is not early.
func rejected(d runtime.Decision) Reply {
	return Reply{Error: "rate_limited", RetryAfterMs: max(d.RetryAfter.Milliseconds(), 1)}
}

// Typing tells the other clients that this one is typing: emit("typing"), no ack. It is
// sent often, so a client that floods it is disconnected (go-socket.io's Conn.Close)
// rather than answered.
//
//limit:socketio key=typing window=1s allowance=10 by=a.identity(s) on=disconnect
func (a *App) Typing(s socketio.Conn) {
	a.server.BroadcastToRoom("/", "chat", "typing", a.identity(s))
}
