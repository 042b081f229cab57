package runtime

import (
	"context"
	"testing"
	"time"

	"github.com/limitgen/limitgen/internal/redistest"
)

// TestRedisRepairsForeignState: state that limitgen never writes (a counter someone made
// persistent, a window end far in the future as after a clock stepped back, a GCRA debt
// larger than any rule allows) neither lives without a TTL nor locks an identity out.
func TestRedisRepairsForeignState(t *testing.T) {
	server := redistest.Start(t)
	client := server.Client()
	store := NewRedisStore(client)
	ctx := context.Background()
	window := 2 * time.Second

	for _, rules := range [][]*Rule{
		{{Pool: "repair", Window: window, Allowance: 5}},
		{{Pool: "repair", Window: window, Allowance: 5}, {Pool: "other", Window: window,
			Allowance: 5}},
	} {
		key := redisKeyFor("ann", "repair", FixedWindow)
		client.Del(ctx, key)
		if _, err := store.Take(ctx, rules, "ann"); err != nil {
			t.Fatal(err)
		}
		client.Persist(ctx, key)
		if _, err := store.Take(ctx, rules, "ann"); err != nil {
			t.Fatal(err)
		}
		if ttl := client.PTTL(ctx, key).Val(); ttl <= 0 || ttl > window {
			t.Errorf("%d rules: a persisted counter has TTL %v after an allowed call, want "+
				"0 < TTL <= %v", len(rules), ttl, window)
		}

		client.HSet(ctx, key, "n", 5, "e", int64(1)<<50)
		d, err := store.Take(ctx, rules, "ann")
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed || d.ResetAfter > window {
			t.Errorf("%d rules: a window ending far in the future: %+v, want a fresh window",
				len(rules), d)
		}
	}

	gcra := &Rule{Pool: "debt", Window: window, Allowance: 5, Algorithm: GCRA}
	client.HSet(ctx, redisKeyFor("bob", "debt", GCRA), "d", int64(1)<<50, "t", 0)
	d, err := store.Peek(ctx, gcra, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if d.Remaining < 0 || d.RetryAfter > window {
		t.Errorf("a huge GCRA debt: %+v, want it capped at one window", d)
	}
}
