package runtime

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/limitgen/limitgen/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// storeCase is one store under test with a way to let time pass for it: a fake clock for
// memory, real time for Redis (whose clock the store uses).
type storeCase struct {
	name  string
	store Store
	wait  func(time.Duration)
}

func stores(t *testing.T) []storeCase {
	var clock atomic.Int64
	memory := newMemoryStore(func() time.Duration { return time.Duration(clock.Load()) })
	server := redistest.Start(t)
	return []storeCase{
		{"memory", memory, func(d time.Duration) { clock.Add(int64(d)) }},
		{"redis", NewRedisStore(server.Client()), time.Sleep},
	}
}

func take(t *testing.T, s Store, rule *Rule, identity string) Decision {
	t.Helper()
	d, err := s.Take(context.Background(), []*Rule{rule}, identity)
	if err != nil {
		t.Fatalf("Take(%q, %q): %v", rule.Pool, identity, err)
	}
	return d
}

// countAllowed makes calls calls on each of goroutines goroutines at once and returns how many
// were allowed.
func countAllowed(t *testing.T, goroutines, calls int, take func() (Decision, error)) int64 {
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range calls {
				d, err := take()
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return allowed.Load()
}

func TestExactAllowanceUnderConcurrency(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			rule := &Rule{Pool: "concurrent", Window: time.Minute, Allowance: 50}
			got := countAllowed(t, 64, 10, func() (Decision, error) {
				return sc.store.Take(context.Background(), []*Rule{rule}, "alice")
			})
			if got != 50 {
				t.Fatalf("64 goroutines x 10 calls: %d allowed, want exactly 50", got)
			}
		})
	}
}

func TestWindowResetsAndDecisionFields(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			rule := &Rule{Pool: "reset", Window: 300 * time.Millisecond, Allowance: 3}
			// An hour-long window in the same memory shard postpones its sweep, so that the
			// ended window below is renewed in place rather than reclaimed and made anew.
			take(t, sc.store, &Rule{Pool: "reset-long", Window: time.Hour, Allowance: 1}, "bob")
			first := take(t, sc.store, rule, "bob")
			if !first.Allowed || first.Limit != 3 || first.Remaining != 2 ||
				first.RetryAfter != 0 || first.ResetAfter <= 0 || first.ResetAfter > rule.Window {
				t.Fatalf("first call: %+v", first)
			}
			take(t, sc.store, rule, "bob")
			if d := take(t, sc.store, rule, "bob"); !d.Allowed || d.Remaining != 0 {
				t.Fatalf("third call: %+v, want allowed with 0 remaining", d)
			}
			denied := take(t, sc.store, rule, "bob")
			if denied.Allowed || denied.Remaining != 0 || denied.RetryAfter <= 0 ||
				denied.RetryAfter > rule.Window {
				t.Fatalf("fourth call: %+v, want denied with 0 < RetryAfter <= window", denied)
			}

			sc.wait(rule.Window + 50*time.Millisecond)
			if d := take(t, sc.store, rule, "bob"); !d.Allowed || d.Remaining != 2 ||
				d.ResetAfter <= rule.Window/2 {
				t.Fatalf("after the window: %+v, want a fresh window", d)
			}
			take(t, sc.store, rule, "bob")
			take(t, sc.store, rule, "bob")
			if d := take(t, sc.store, rule, "bob"); d.Allowed {
				t.Fatalf("fourth call of the second window: %+v, want denied", d)
			}
		})
	}
}

func TestCostIsWeighedAndWindowsDoNotStretch(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			rule := &Rule{Pool: "cost", Window: 400 * time.Millisecond, Allowance: 5}
			d, err := takeCost(sc.store, rule, "nina", 3)
			if err != nil || !d.Allowed || d.Remaining != 2 {
				t.Fatalf("cost 3 of 5: %+v, %v; want allowed with 2 remaining", d, err)
			}
			first := d.ResetAfter
			sc.wait(150 * time.Millisecond)
			if d, _ = takeCost(sc.store, rule, "nina", 3); d.Allowed || d.Remaining != 2 {
				t.Fatalf("cost 3 more: %+v; want denied with 2 remaining", d)
			}
			if d, _ = takeCost(sc.store, rule, "nina", 2); !d.Allowed || d.Remaining != 0 {
				t.Fatalf("cost 2 more: %+v; want allowed with 0 remaining", d)
			}
			if d.ResetAfter > first-140*time.Millisecond {
				t.Fatalf("150ms after a window ending in %v, an allowed call says it ends in "+
					"%v: allowed calls must not stretch the window", first, d.ResetAfter)
			}
			if d, _ = takeCost(sc.store, rule, "nina", 6); d.Allowed {
				t.Fatalf("cost 6 above the allowance of 5: %+v, want denied", d)
			}
		})
	}
}

func TestIdentitiesAndPoolsAreCountedApart(t *testing.T) {
	big := make([]byte, 10<<10)
	rand.Read(big)
	identities := []string{"", "a", "a:b", "a:{b}", "{a}", "}{", "line\nbreak", "nul\x00byte",
		"limitgen:{x}:p", string(big), string(big[:len(big)-1])}
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			for _, pool := range []string{"p1", "p1:x", "p2"} {
				rule := &Rule{Pool: pool, Window: time.Minute, Allowance: 1}
				for _, id := range identities {
					if d := take(t, sc.store, rule, id); !d.Allowed {
						t.Fatalf("pool %q identity %.20q: first call denied: another "+
							"(pool, identity) shares its counter", pool, id)
					}
					if d := take(t, sc.store, rule, id); d.Allowed {
						t.Fatalf("pool %q identity %.20q: second call allowed", pool, id)
					}
				}
			}
		})
	}
}

func TestRedisKeysAlwaysHaveTTLAndStayShort(t *testing.T) {
	server := redistest.Start(t)
	client := server.Client()
	store := NewRedisStore(client)
	ctx := context.Background()
	big := strings.Repeat("x", 10<<10)

	rule := &Rule{Pool: "ttl", Window: time.Minute, Allowance: 2}
	// Every identity's second call adds to an existing counter; alice's third is denied.
	for _, id := range []string{"alice", big, "{tag}"} {
		take(t, store, rule, id)
		if d := take(t, store, rule, id); !d.Allowed {
			t.Fatalf("%.20q: second call denied", id)
		}
	}
	take(t, store, rule, "alice")
	// A counter left without a TTL, as a hand-rolled GET-then-INCR limiter leaves them.
	planted := redisKey("ttl", "mallory")
	if err := client.Set(ctx, planted, 99, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if d := take(t, store, rule, "mallory"); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("counter without TTL: %+v, want a fresh window", d)
	}

	longPool := &Rule{Pool: strings.Repeat("p", MaxPoolLen), Window: time.Minute, Allowance: 1}
	take(t, store, longPool, big)

	var keys []string
	iter := client.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 5 {
		t.Fatalf("keys = %q, want 5", keys)
	}
	for _, key := range keys {
		ttl, err := client.PTTL(ctx, key).Result()
		if err != nil || ttl <= 0 || ttl > rule.Window {
			t.Errorf("key %q has TTL %v (%v), want 0 < TTL <= %v", key, ttl, err, rule.Window)
		}
		if len(key) > 44+MaxPoolLen {
			t.Errorf("key of %d bytes: %.80q", len(key), key)
		}
	}
}

func TestRedisSurvivesScriptFlush(t *testing.T) {
	server := redistest.Start(t)
	client := server.Client()
	store := NewRedisStore(client)
	rule := &Rule{Pool: "flush", Window: time.Minute, Allowance: 2}
	take(t, store, rule, "carol")
	if err := client.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if d := take(t, store, rule, "carol"); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after SCRIPT FLUSH: %+v", d)
	}
}

func TestLimiterDecidesLocallyWhileRedisIsDown(t *testing.T) {
	server := redistest.Start(t)
	var logs logBuffer
	lim := New(NewRedisStore(server.Client()), WithLogger(logs.logger()))
	rule := &Rule{Pool: "outage", Window: time.Minute, Allowance: 2}

	if !lim.Allow(rule, "dave").Allowed {
		t.Fatal("first call denied")
	}
	server.Stop()
	var allowed int
	for range 10 {
		if lim.Allow(rule, "dave").Allowed {
			allowed++
		}
	}
	if allowed != 2 {
		t.Fatalf("while Redis is down: %d of 10 calls allowed, want the rule's 2 enforced "+
			"locally", allowed)
	}

	server.Restart()
	waitForRecoveryLog(t, &logs, func() { lim.Allow(rule, "erin") })

	text := logs.String()
	if n := strings.Count(text, "store failed"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, text)
	}
	if n := strings.Count(text, "store answers again"); n != 1 {
		t.Errorf("recovery logged %d times, want once:\n%s", n, text)
	}
	if !strings.Contains(text, "call denied") || !strings.Contains(text, "pool=outage") ||
		!strings.Contains(text, "identity=dave") {
		t.Errorf("denied calls not logged at debug with pool and identity:\n%s", text)
	}
}

func TestMemoryReclaimsEndedWindows(t *testing.T) {
	var clock atomic.Int64
	store := newMemoryStore(func() time.Duration { return time.Duration(clock.Load()) })
	rule := &Rule{Pool: "reclaim", Window: time.Second, Allowance: 1}
	for i := range 10000 {
		take(t, store, rule, fmt.Sprint("user", i))
	}
	if n := store.Len(); n != 10000 {
		t.Fatalf("Len = %d after 10000 identities, want 10000", n)
	}
	clock.Add(int64(2 * time.Second))
	for i := range memoryShards * 20 {
		take(t, store, rule, fmt.Sprint("later", i))
	}
	if n := store.Len(); n != memoryShards*20 {
		t.Fatalf("Len = %d after every window ended, want only the %d new ones",
			n, memoryShards*20)
	}
}

func TestLimitErrorMatchesErrLimited(t *testing.T) {
	lim := New(nil)
	rule := &Rule{Pool: "err", Window: time.Minute, Allowance: 1}
	if err := lim.Allow(rule, "x").Err(); err != nil {
		t.Fatalf("allowed call: Err = %v, want nil", err)
	}
	err := lim.Allow(rule, "x").Err()
	var limitErr *LimitError
	if !errors.Is(err, ErrLimited) || !errors.As(err, &limitErr) ||
		limitErr.RetryAfter <= 0 || limitErr.Pool != "err" {
		t.Fatalf("denied call: Err = %#v, want a *LimitError matching ErrLimited", err)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	lim, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lim.store.(*MemoryStore); !ok {
		t.Fatalf("without REDIS_URL: store %T, want *MemoryStore", lim.store)
	}

	server := redistest.Start(t)
	t.Setenv("REDIS_URL", server.URL())
	a, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	b, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	rule := &Rule{Pool: "env", Window: time.Minute, Allowance: 1}
	if !a.Allow(rule, "frank").Allowed || b.Allow(rule, "frank").Allowed {
		t.Fatal("two limiters on one REDIS_URL do not share their counters")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := New(nil).Close(); err != nil {
		t.Fatalf("Close of a memory limiter: %v", err)
	}

	t.Setenv("REDIS_URL", "http://not-redis")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Fatalf("malformed REDIS_URL: err = %v, want an error naming REDIS_URL", err)
	}

	t.Setenv("REDIS_URL", "unix:///nonexistent/redis.sock")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Fatalf("unreachable REDIS_URL: err = %v, want an error naming REDIS_URL", err)
	}
}

func BenchmarkMemoryTake(b *testing.B) {
	store := NewMemoryStore()
	ctx := context.Background()
	b.Run("allowed", func(b *testing.B) {
		rule := &Rule{Pool: "bench", Window: time.Hour, Allowance: 1 << 50}
		b.ReportAllocs()
		for b.Loop() {
			store.Take(ctx, []*Rule{rule}, "alice")
		}
	})
	b.Run("denied", func(b *testing.B) {
		rule := &Rule{Pool: "bench-denied", Window: time.Hour, Allowance: 1}
		b.ReportAllocs()
		for b.Loop() {
			store.Take(ctx, []*Rule{rule}, "alice")
		}
	})
}

func BenchmarkRedisTake(b *testing.B) {
	server := redistest.Start(b)
	store := NewRedisStore(server.Client())
	rule := &Rule{Pool: "bench", Window: time.Hour, Allowance: 1 << 50}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.Take(ctx, []*Rule{rule}, "alice"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLimiterAllowRedis(b *testing.B) {
	server := redistest.Start(b)
	rule := &Rule{Pool: "bench", Window: time.Hour, Allowance: 1 << 50}
	for _, honour := range []bool{false, true} {
		b.Run(fmt.Sprintf("ContextTimeoutEnabled=%v", honour), func(b *testing.B) {
			client := redis.NewClient(&redis.Options{Network: "unix", Addr: server.Addr(),
				ContextTimeoutEnabled: honour})
			defer client.Close()
			lim := New(NewRedisStore(client))
			b.ReportAllocs()
			for b.Loop() {
				lim.Allow(rule, "alice")
			}
		})
	}
}

// waitForRecoveryLog makes calls until logs say the store answers again, and fails t if that
// takes more than 5s.
func waitForRecoveryLog(t *testing.T, logs *logBuffer, call func()) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "store answers again") {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery logged within 5s of Redis answering again:\n%s",
				logs.String())
		}
		call()
		time.Sleep(10 * time.Millisecond)
	}
}
