package runtime

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/limitgen/limitgen/internal/redistest"
)

// TestRedisOneRuleScriptsMatchDecideScript: fixedScript and gcraScript, which take under
// one rule, decide every call exactly as decideScript does, over random times and costs,
// foreign keys included; each runs on an identity of its own, on one clock.
func TestRedisOneRuleScriptsMatchDecideScript(t *testing.T) {
	server := redistest.Start(t)
	client := server.Client()
	store := NewRedisStore(client)
	const epoch = 1_780_000_000_000
	var now int64
	store.clock = func() int64 { return epoch + now }
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, a := range []Algorithm{FixedWindow, GCRA} {
		for _, rule := range []Rule{
			{Pool: "one", Window: time.Second, Allowance: 5, Algorithm: a},
			{Pool: "seven", Window: time.Minute, Allowance: 7, Algorithm: a},
			{Pool: "big", Window: time.Hour, Allowance: 1 << 40, Algorithm: a},
		} {
			now += 1000 * 3600 * 1000 // an era of its own
			w := rule.Window.Milliseconds()
			for i := range 400 {
				now += rng.Int64N(w/3 + 1)
				r := rule
				r.Cost = 1 + rng.Int64N(min(r.Allowance, 4))
				if i%97 == 0 { // a key of another type under both identities' names
					for _, id := range []string{"fast", "general"} {
						client.Set(ctx, redisKeyOf(redisTag(id), r.Pool, a), "junk", 0)
					}
				}
				fast, err := store.takeOne(ctx, &r, "fast")
				if err != nil {
					t.Fatal(err)
				}
				outs, err := store.run(ctx, "take", []*Rule{&r}, "general")
				if err != nil {
					t.Fatal(err)
				}
				if fast != outs[0] {
					t.Fatalf("%v step %d at %d: one-rule script %+v, decideScript %+v", &r, i,
						now, fast, outs[0])
				}
			}
		}
	}
}

func TestRedisKeyFor(t *testing.T) {
	for _, a := range []Algorithm{FixedWindow, SlidingWindow, GCRA} {
		for _, id := range []string{"", "alice", "{x}", string(make([]byte, 5000))} {
			if got, want := redisKeyFor(id, "pool", a), redisKeyOf(redisTag(id), "pool", a); got != want {
				t.Errorf("redisKeyFor = %q, want %q", got, want)
			}
		}
	}
}
