package e2e

import (
	"testing"
	"time"

	"github.com/limitgen/limitgen/internal/redistest"
)

// TestChatRedis runs the chat scenarios with the servers counting in one Redis, and checks
// that two server instances enforce one limit together.
func TestChatRedis(t *testing.T) {
	requireNode(t, "client")
	t.Parallel()
	env := []string{"REDIS_URL=" + redistest.Start(t).URL()}
	runScenarios(t, env)

	t.Run("SharedAcrossInstances", func(t *testing.T) {
		t.Parallel()
		a, b := startChat(t, env...), startChat(t, env...)
		user := "instances-" + time.Now().Format("150405.000000000")
		first := chatAllowance / 2
		res := drive(t, Plan{URL: a, User: user, Emits: chatEmits(first, user)})
		checkBurst(t, user+" on A", res.Acks, first, chatWindow)
		res = drive(t, Plan{URL: b, User: user, Emits: chatEmits(chatAllowance, user)})
		checkBurst(t, user+" on B", res.Acks, chatAllowance-first, chatWindow)
	})
}
