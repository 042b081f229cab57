package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The limits declared in examples/chat/client.go.
const (
	chatAllowance      = 5
	chatWindow         = 3 * time.Second
	expensiveAllowance = 3
	expensiveWindow    = 5 * time.Second
	typingAllowance    = 10
)

// TestChatMemory runs the chat scenarios against one server counting in memory.
func TestChatMemory(t *testing.T) {
	requireNode(t, "client")
	t.Parallel()
	runScenarios(t, nil)
}

// runScenarios runs every scenario as a parallel subtest, each with its own server started
// with env. Users are named after the subtest so that servers sharing one Redis do not
// share counters by accident.
func runScenarios(t *testing.T, env []string) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, url, user string)
	}{
		{"ChatBurst", testChatBurst},
		{"SharedPool", testSharedPool},
		{"TypingFlood", testTypingFlood},
		{"AnonymousBySocket", testAnonymousBySocket},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			url := startChat(t, env...)
			user := fmt.Sprintf("%s-%d", sc.name, time.Now().UnixNano())
			sc.run(t, url, user)
		})
	}
}

// chatEmits is n chat messages "text 1".."text n" sent with acks.
func chatEmits(n int, text string) []Emit {
	return repeat(n, Emit{Event: "chat", Data: text, Ack: true})
}

// checkBurst checks that acks are ok first and rate_limited after, wantOK of them ok, and
// returns the longest retryAfterMs of the limited ones.
func checkBurst(t *testing.T, who string, acks []Reply, wantOK int, window time.Duration) float64 {
	t.Helper()
	var ok int
	var longest float64
	for i, a := range acks {
		switch {
		case a.Error != "":
			t.Errorf("%s: ack %d (%s) failed: %s", who, i+1, a.Event, a.Error)
		case a.OK():
			ok++
			if ok != i+1 {
				t.Errorf("%s: ack %d (%s) ok after a rate_limited one", who, i+1, a.Event)
			}
		case a.Limited():
			ms := a.RetryAfterMs()
			if ms <= 0 || ms > float64(window.Milliseconds()) {
				t.Errorf("%s: ack %d: retryAfterMs = %v, want in (0, %d]",
					who, i+1, ms, window.Milliseconds())
			}
			longest = max(longest, ms)
		default:
			t.Errorf("%s: ack %d (%s): unexpected answer %v", who, i+1, a.Event, a.Response)
		}
	}
	if ok != wantOK {
		t.Errorf("%s: %d of %d calls ok, want %d", who, ok, len(acks), wantOK)
	}
	return longest
}

// testChatBurst: a burst gets exactly the allowance, the rest are answered rate_limited with
// a retry delay; the limit follows the user across connections, another user is not
// affected, denied messages are not posted, and after the delay the user is served again.
func testChatBurst(t *testing.T, url, user string) {
	const burst = chatAllowance + 3
	res := drive(t, Plan{URL: url, User: user, Emits: chatEmits(burst, user)})
	if len(res.Acks) != burst {
		t.Fatalf("got %d acks, want %d", len(res.Acks), burst)
	}
	retryMs := checkBurst(t, user, res.Acks, chatAllowance, chatWindow)

	// A new connection of the same user is counted against the same allowance.
	again := drive(t, Plan{URL: url, User: user, Emits: chatEmits(1, user+" again")})
	checkBurst(t, user+" reconnected", again.Acks, 0, chatWindow)

	// Another user has an allowance of their own, and sees only the allowed messages.
	other := user + "-other"
	res = drive(t, Plan{URL: url, User: other, Emits: append(chatEmits(chatAllowance, other),
		Emit{Event: "history", Ack: true})})
	checkBurst(t, other, res.Acks[:chatAllowance], chatAllowance, chatWindow)
	hist := res.Acks[chatAllowance]
	if !hist.OK() {
		t.Fatalf("history: %v %s", hist.Response, hist.Error)
	}
	var posted []string
	msgs, _ := hist.Response["messages"].([]any)
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		if mm["user"] == user {
			posted = append(posted, fmt.Sprint(mm["text"]))
		}
	}
	want := []string{}
	for i := range chatAllowance {
		want = append(want, fmt.Sprintf("%s %d", user, i+1))
	}
	if strings.Join(posted, "|") != strings.Join(want, "|") {
		t.Errorf("history has %q from %s, want %q", posted, user, want)
	}

	// After the advertised delay the user is served again, with a fresh allowance.
	time.Sleep(time.Duration(retryMs)*time.Millisecond + 100*time.Millisecond)
	res = drive(t, Plan{URL: url, User: user, Emits: chatEmits(chatAllowance+1, user+" later")})
	checkBurst(t, user+" after the window", res.Acks, chatAllowance, chatWindow)
}

// testSharedPool: search and history share the "expensive" pool: together they get exactly
// its allowance, after which both are denied; the chat pool is not touched.
func testSharedPool(t *testing.T, url, user string) {
	var emits []Emit
	for i := range expensiveAllowance + 3 {
		if i%2 == 0 {
			emits = append(emits, Emit{Event: "search", Data: "hello", Ack: true})
		} else {
			emits = append(emits, Emit{Event: "history", Ack: true})
		}
	}
	emits = append(emits, Emit{Event: "chat", Data: "still here", Ack: true})
	res := drive(t, Plan{URL: url, User: user, Emits: emits})
	n := len(emits)
	if len(res.Acks) != n {
		t.Fatalf("got %d acks, want %d", len(res.Acks), n)
	}
	checkBurst(t, user, res.Acks[:n-1], expensiveAllowance, expensiveWindow)
	limited := map[string]bool{}
	for _, a := range res.Acks[expensiveAllowance : n-1] {
		if a.Limited() {
			limited[a.Event] = true
		}
	}
	if !limited["search"] || !limited["history"] {
		t.Errorf("denied events %v, want both search and history", limited)
	}
	if chat := res.Acks[n-1]; !chat.OK() {
		t.Errorf("chat after the expensive pool ran out: %v %s, want ok", chat.Response, chat.Error)
	}
}

// testTypingFlood: typing within the allowance is fine; one more disconnects the client; a
// heavy flood gets it disconnected too.
func testTypingFlood(t *testing.T, url, user string) {
	typing := Emit{Event: "typing"}
	res := drive(t, Plan{URL: url, User: user + "-calm", Emits: repeat(typingAllowance, typing),
		WaitDisconnectMs: 300})
	if res.DisconnectReason != "" {
		t.Errorf("%d typing events: disconnected (%s), want connected",
			typingAllowance, res.DisconnectReason)
	}

	// The server sends a disconnect packet ("io server disconnect"); on a loaded machine the
	// server library's close of the transport can overtake it ("transport close"). Either is
	// the server disconnecting the client; no disconnect at all is the failure.
	res = drive(t, Plan{URL: url, User: user, Emits: repeat(typingAllowance+1, typing),
		WaitDisconnectMs: 3000})
	switch res.DisconnectReason {
	case "io server disconnect", "transport close":
	default:
		t.Errorf("%d typing events: disconnect reason %q, want the server to disconnect",
			typingAllowance+1, res.DisconnectReason)
	}

	for _, tr := range []string{"websocket", "polling"} {
		res = drive(t, Plan{URL: url, User: user + "-" + tr, Transports: []string{tr},
			Emits: repeat(10*typingAllowance, typing), WaitDisconnectMs: 3000})
		switch res.DisconnectReason {
		case "io server disconnect", "transport close":
		default:
			t.Errorf("flood over %s: disconnect reason %q, want the server to disconnect",
				tr, res.DisconnectReason)
		}
	}
}

// testAnonymousBySocket: clients without a user are counted per connection.
func testAnonymousBySocket(t *testing.T, url, _ string) {
	for i := range 2 {
		res := drive(t, Plan{URL: url, Emits: chatEmits(chatAllowance+1, "anon")})
		checkBurst(t, fmt.Sprintf("anonymous client %d", i+1), res.Acks, chatAllowance, chatWindow)
	}
}
