package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/limitgen/limitgen/internal/redistest"
)

// AltPlan is what alternate.js does; see e2e/client/alternate.js.
type AltPlan struct {
	URLs         []string `json:"urls"`
	User         string   `json:"user"`
	Event        string   `json:"event"`
	Data         string   `json:"data"`
	Count        int      `json:"count"`
	AckTimeoutMs int      `json:"ackTimeoutMs,omitempty"`
}

// AltReply is one ack of alternate.js, with the index of the server that gave it.
type AltReply struct {
	Reply
	Server int `json:"server"`
}

// alternate runs one client per server through plan, alternating its events between
// them, and returns the acks in the order sent.
func alternate(t *testing.T, plan AltPlan) []AltReply {
	t.Helper()
	b, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	script := filepath.Join(repoRoot(t), "e2e", "client", "alternate.js")
	cmd := exec.CommandContext(ctx, "node", script, string(b))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node alternate.js: %v\nstderr: %s", err, stderr.String())
	}
	var res struct{ Acks []AltReply }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("decode alternate.js output %q: %v", out, err)
	}
	if len(res.Acks) != plan.Count {
		t.Fatalf("alternate.js gave %d acks for %d events", len(res.Acks), plan.Count)
	}
	return res.Acks
}

// checkAlternating checks a run of alternating chat events: wantOK answered ok, then
// rate_limited, with both servers among the ok and the limited answers.
func checkAlternating(t *testing.T, who string, acks []AltReply, wantOK int) {
	t.Helper()
	replies := make([]Reply, len(acks))
	okBy, limitedBy := map[int]int{}, map[int]int{}
	for i, a := range acks {
		replies[i] = a.Reply
		if a.OK() {
			okBy[a.Server]++
		} else if a.Limited() {
			limitedBy[a.Server]++
		}
	}
	checkBurst(t, who, replies, wantOK, chatWindow)
	if len(okBy) != 2 || len(limitedBy) != 2 {
		t.Errorf("%s: ok answers by server %v, rate_limited by server %v: want both servers "+
			"in each", who, okBy, limitedBy)
	}
}

// TestChatRedisAlternating has one user's socket.io-client alternate its chat messages
// between two chat server processes on one Redis: together they allow the allowance once,
// not once per process. While Redis is stopped, each process enforces the limit on its own
// (the default failure policy, FailLocal), no call hangs or fails, and once Redis is
// back the two share one limit again.
func TestChatRedisAlternating(t *testing.T) {
	requireNode(t, "client")
	t.Parallel()
	redis := redistest.Start(t)
	env := []string{"REDIS_URL=" + redis.URL()}
	// The default 50ms deadline: the outage below must be detected quickly, and each probe
	// of the dead Redis must not hold a call for long.
	servers := []string{startExample(t, "chat", env), startExample(t, "chat", env)}
	stamp := time.Now().Format("150405.000000000")
	run := func(phase string, count int) (string, []AltReply) {
		user := fmt.Sprintf("alternating-%s-%s", phase, stamp)
		return user, alternate(t, AltPlan{URLs: servers, User: user, Event: "chat",
			Data: user, Count: count})
	}

	user, acks := run("shared", chatAllowance+4)
	checkAlternating(t, user+" (Redis up)", acks, chatAllowance)

	redis.Stop()
	user, acks = run("outage", 2*chatAllowance+4)
	checkAlternating(t, user+" (Redis stopped)", acks, 2*chatAllowance)

	redis.Restart()
	// The limiters ask Redis again within 250ms; go-redis may take up to a second more to
	// dial again after many failed dials.
	time.Sleep(1500 * time.Millisecond)
	user, acks = run("recovered", chatAllowance+4)
	checkAlternating(t, user+" (Redis restarted)", acks, chatAllowance)
}
