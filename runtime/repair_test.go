package runtime

import (
	"context"
	"fmt"
	"sync/atomic"
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

// TestRedisDeniedCallsRestoreTTL: a key someone made persistent gets a TTL back from a
// denied call too, under every algorithm, alone or with another rule, so that an identity
// that never gets another call through does not leave a key forever.
func TestRedisDeniedCallsRestoreTTL(t *testing.T) {
	server := redistest.Start(t)
	client := server.Client()
	store := NewRedisStore(client)
	ctx := context.Background()
	window := 3 * time.Second
	for _, a := range []Algorithm{FixedWindow, SlidingWindow, GCRA} {
		rule := &Rule{Pool: "persist", Window: window, Allowance: 1, Algorithm: a}
		other := &Rule{Pool: "persist-other", Window: window, Allowance: 9}
		for _, rules := range [][]*Rule{{rule}, {rule, other}} {
			identity := fmt.Sprintf("%v-%d", a, len(rules))
			key := redisKeyFor(identity, rule.Pool, a)
			if d, err := store.Take(ctx, rules, identity); err != nil || !d.Allowed {
				t.Fatalf("%v: first call %+v, %v", a, d, err)
			}
			client.Persist(ctx, key)
			if d, err := store.Take(ctx, rules, identity); err != nil || d.Allowed {
				t.Fatalf("%v: second call %+v, %v; want denied", a, d, err)
			}
			if ttl := client.PTTL(ctx, key).Val(); ttl <= 0 || ttl > window {
				t.Errorf("%v, %d rules: a persisted key has TTL %v after a denied call, "+
					"want 0 < TTL <= %v", a, len(rules), ttl, window)
			}
		}
	}
}

// TestRedisClockSteppingBack: after Redis's clock steps back (a failover to a replica whose
// clock is behind), state stamped in the "future" is dropped under every algorithm, as if
// its window had ended, instead of locking identities out until the clock catches up.
func TestRedisClockSteppingBack(t *testing.T) {
	server := redistest.Start(t)
	store := NewRedisStore(server.Client())
	var now atomic.Int64
	now.Store(1_780_000_000_000)
	store.clock = now.Load
	ctx := context.Background()
	for _, a := range []Algorithm{FixedWindow, SlidingWindow, GCRA} {
		rule := &Rule{Pool: "clock", Window: time.Minute, Allowance: 2, Algorithm: a}
		other := &Rule{Pool: "clock-other", Window: time.Minute, Allowance: 100}
		for _, rules := range [][]*Rule{{rule}, {rule, other}} {
			identity := fmt.Sprintf("%v-%d", a, len(rules))
			now.Store(1_780_000_000_000)
			for i, want := range []bool{true, true, false} {
				if d, err := store.Take(ctx, rules, identity); err != nil || d.Allowed != want {
					t.Fatalf("%v: call %d: %+v, %v; want allowed %v", a, i+1, d, err, want)
				}
			}
			now.Add(-time.Hour.Milliseconds())
			d, err := store.Take(ctx, rules, identity)
			if err != nil || !d.Allowed || d.Remaining != 1 {
				t.Errorf("%v, %d rules: after the clock stepped back an hour: %+v, %v; want "+
					"a fresh allowance (1 left after this call)", a, len(rules), d, err)
			}
		}
	}
}
