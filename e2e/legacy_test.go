package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/limitgen/limitgen/internal/redistest"
)

// The limits declared in examples/legacy/app.go.
const (
	legacyChatAllowance    = 5
	legacyChatWindow       = 3 * time.Second
	legacyHistoryAllowance = 2 // per 5s; the hourly limit of 20 is not reached here
	legacyHistoryWindow    = 5 * time.Second
	legacyTypingAllowance  = 10
)

// TestLegacy drives the go-socket.io example with socket.io-client 2.x, the pair that apps
// on the older Go server run: the generated wrappers must look to go-socket.io's reflection
// exactly like the handlers, acks included.
func TestLegacy(t *testing.T) {
	requireNode(t, "client-v2")
	t.Parallel()
	scenarios := []struct {
		name string
		run  func(t *testing.T, url, user string)
	}{
		{"ChatBurst", testLegacyChatBurst},
		{"HistoryTwoLimits", testLegacyHistory},
		{"TypingFlood", testLegacyTypingFlood},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			url := startExample(t, "legacy", nil)
			sc.run(t, url, fmt.Sprintf("%s-%d", sc.name, time.Now().UnixNano()))
		})
	}

	t.Run("SharedAcrossInstancesInRedis", func(t *testing.T) {
		t.Parallel()
		env := []string{"REDIS_URL=" + redistest.Start(t).URL()}
		a := startExample(t, "legacy", env, countingArgs(env)...)
		b := startExample(t, "legacy", env, countingArgs(env)...)
		user := fmt.Sprintf("instances-%d", time.Now().UnixNano())
		res := driveWith(t, "client-v2", Plan{URL: a, User: user, Emits: chatEmits(2, user)})
		checkBurst(t, user+" on A", res.Acks, 2, legacyChatWindow)
		res = driveWith(t, "client-v2", Plan{URL: b, User: user,
			Emits: chatEmits(legacyChatAllowance, user)})
		checkBurst(t, user+" on B", res.Acks, legacyChatAllowance-2, legacyChatWindow)
	})
}

// testLegacyChatBurst: a burst gets exactly the allowance acknowledged {ok: true}, the rest
// {ok: false, error: "rate_limited", retryAfterMs}; another user is not affected; after the
// delay the user is served again.
func testLegacyChatBurst(t *testing.T, url, user string) {
	const burst = legacyChatAllowance + 3
	res := driveWith(t, "client-v2", Plan{URL: url, User: user, Emits: chatEmits(burst, user)})
	if len(res.Acks) != burst {
		t.Fatalf("got %d acks, want %d", len(res.Acks), burst)
	}
	retryMs := checkBurst(t, user, res.Acks, legacyChatAllowance, legacyChatWindow)

	other := user + "-other"
	res = driveWith(t, "client-v2", Plan{URL: url, User: other,
		Emits: chatEmits(legacyChatAllowance, other)})
	checkBurst(t, other, res.Acks, legacyChatAllowance, legacyChatWindow)

	time.Sleep(time.Duration(retryMs)*time.Millisecond + 100*time.Millisecond)
	res = driveWith(t, "client-v2", Plan{URL: url, User: user,
		Emits: chatEmits(legacyChatAllowance+1, user+" later")})
	checkBurst(t, user+" after the window", res.Acks, legacyChatAllowance, legacyChatWindow)
}

// testLegacyHistory: history has two limits checked together; the short one runs out first,
// and the messages posted are in the answer.
func testLegacyHistory(t *testing.T, url, user string) {
	emits := []Emit{{Event: "chat", Data: "hello from " + user, Ack: true}}
	emits = append(emits, repeat(legacyHistoryAllowance+2, Emit{Event: "history", Ack: true})...)
	res := driveWith(t, "client-v2", Plan{URL: url, User: user, Emits: emits})
	if len(res.Acks) != len(emits) {
		t.Fatalf("got %d acks, want %d", len(res.Acks), len(emits))
	}
	checkBurst(t, user, res.Acks[1:], legacyHistoryAllowance, legacyHistoryWindow)
	msgs, _ := res.Acks[1].Response["messages"].([]any)
	found := false
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		found = found || mm["text"] == "hello from "+user
	}
	if !found {
		t.Errorf("history %v does not hold the message just posted", msgs)
	}
}

// testLegacyTypingFlood: typing within the allowance is fine; a flood gets the client
// disconnected (go-socket.io's Conn.Close).
func testLegacyTypingFlood(t *testing.T, url, user string) {
	typing := Emit{Event: "typing"}
	res := driveWith(t, "client-v2", Plan{URL: url, User: user + "-calm",
		Emits: repeat(legacyTypingAllowance, typing), WaitDisconnectMs: 300})
	if res.DisconnectReason != "" {
		t.Errorf("%d typing events: disconnected (%s), want connected",
			legacyTypingAllowance, res.DisconnectReason)
	}
	res = driveWith(t, "client-v2", Plan{URL: url, User: user,
		Emits: repeat(legacyTypingAllowance+5, typing), WaitDisconnectMs: 3000})
	if res.DisconnectReason == "" {
		t.Errorf("%d typing events: still connected, want the server to disconnect",
			legacyTypingAllowance+5)
	}
}
