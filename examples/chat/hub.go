package main

import (
	"strings"
	"sync"
	"time"
)

// Message is one chat message: who sent it, what it says, and when (Unix milliseconds).
type Message struct {
	User string
	Text string
	At   int64
}

// Hub keeps the recent messages of the single chat room, for history and search.
type Hub struct {
	mu   sync.Mutex
	max  int
	msgs []Message
}

// newHub returns a Hub that remembers the last max messages.
func newHub(max int) *Hub {
	return &Hub{max: max}
}

// post records a message and returns it as it is broadcast.
func (h *Hub) post(user, text string) map[string]any {
	m := Message{User: user, Text: text, At: time.Now().UnixMilli()}
	h.mu.Lock()
	h.msgs = append(h.msgs, m)
	if len(h.msgs) > h.max {
		h.msgs = append(h.msgs[:0], h.msgs[len(h.msgs)-h.max:]...)
	}
	h.mu.Unlock()
	return m.wire()
}

// recent returns up to n of the latest messages, oldest first.
func (h *Hub) recent(n int) []any {
	h.mu.Lock()
	defer h.mu.Unlock()
	start := max(len(h.msgs)-n, 0)
	out := make([]any, 0, len(h.msgs)-start)
	for _, m := range h.msgs[start:] {
		out = append(out, m.wire())
	}
	return out
}

// search returns up to n of the latest messages whose text contains q, ignoring case.
func (h *Hub) search(q string, n int) []any {
	q = strings.ToLower(q)
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []any{}
	for i := len(h.msgs) - 1; i >= 0 && len(out) < n; i-- {
		if strings.Contains(strings.ToLower(h.msgs[i].Text), q) {
			out = append(out, h.msgs[i].wire())
		}
	}
	return out
}

// wire is the message as a socket.io payload: {user, text, at}.
func (m Message) wire() map[string]any {
	return map[string]any{"user": m.User, "text": m.Text, "at": m.At}
}
