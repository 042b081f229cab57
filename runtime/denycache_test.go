package runtime

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// countedStore counts the calls that reach the store it wraps.
type countedStore struct {
	Store
	takes atomic.Int64
}

func (s *countedStore) Take(ctx context.Context, rules []*Rule, identity string) (Decision,
	error) {
	s.takes.Add(1)
	return s.Store.Take(ctx, rules, identity)
}

// cachedLimiter is a Limiter on Redis (clocked by the test) whose denial cache runs on the
// same test clock, with the store's round trips counted.
func cachedLimiter(t *testing.T, opts ...Option) (*Limiter, *countedStore, func(ms int64)) {
	t.Helper()
	stores := clockedStores(t)
	sc := stores[len(stores)-1]
	store := &countedStore{Store: sc.store}
	lim := New(store, append([]Option{WithTimeout(time.Second)}, opts...)...)
	var clock atomic.Int64
	lim.denials.now = func() time.Duration { return time.Duration(clock.Load()) }
	set := func(ms int64) {
		sc.set(ms)
		clock.Store(int64(time.Duration(ms) * time.Millisecond))
	}
	return lim, store, set
}

func TestDenialCacheSavesRoundTripsUntilTheDenialEnds(t *testing.T) {
	lim, store, set := cachedLimiter(t)
	rule := &Rule{Pool: "flood", Window: time.Minute, Allowance: 2}
	set(0)
	lim.Allow(rule, "sam")
	lim.Allow(rule, "sam")
	first := lim.Allow(rule, "sam")
	if first.Allowed || first.RetryAfter != time.Minute {
		t.Fatalf("third call: %+v", first)
	}
	before := store.takes.Load()
	set(30_000)
	for range 1000 {
		d := lim.Allow(rule, "sam")
		if d.Allowed || d.RetryAfter != 30*time.Second || d.Pool != "flood" || d.Limit != 2 {
			t.Fatalf("cached denial: %+v, want denied for the 30s left", d)
		}
	}
	if n := store.takes.Load() - before; n != 0 {
		t.Fatalf("1000 denied calls made %d round trips, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { lim.Allow(rule, "sam") }); n != 0 {
		t.Errorf("a cached denial allocates %v times, want 0", n)
	}
	set(60_000)
	if d := lim.Allow(rule, "sam"); !d.Allowed {
		t.Fatalf("after the denial ended: %+v, want allowed", d)
	}
	if n := store.takes.Load() - before; n != 1 {
		t.Fatalf("%d round trips after the denial ended, want 1", n)
	}
}

func TestDenialCacheNeverDeniesAnotherRule(t *testing.T) {
	lim, _, set := cachedLimiter(t)
	set(0)
	costly := &Rule{Pool: "shared", Window: time.Minute, Allowance: 3, Cost: 2}
	cheap := &Rule{Pool: "shared", Window: time.Minute, Allowance: 3} // same state, cost 1
	smooth := &Rule{Pool: "shared", Window: time.Minute, Allowance: 3, Algorithm: GCRA}
	lim.Allow(costly, "tom")
	if d := lim.Allow(costly, "tom"); d.Allowed {
		t.Fatalf("second costly call: %+v, want denied (1 left, cost 2)", d)
	}
	if d := lim.Allow(cheap, "tom"); !d.Allowed {
		t.Fatalf("a cost-1 call with 1 left: %+v; the cost-2 rule's denial denied it", d)
	}
	if d := lim.Allow(smooth, "tom"); !d.Allowed {
		t.Fatalf("a gcra rule of the same pool: %+v", d)
	}
	if d := lim.Allow(costly, "ursula"); !d.Allowed {
		t.Fatalf("another identity: %+v", d)
	}
	// Several rules: a cached denial of one denies the call, with its pool.
	other := &Rule{Pool: "other", Window: time.Minute, Allowance: 5}
	if d := lim.AllowAll([]*Rule{other, costly}, "tom"); d.Allowed || d.Pool != "shared" {
		t.Fatalf("AllowAll with a denied rule: %+v", d)
	}
	if d := lim.AllowAll([]*Rule{other, cheap}, "tom"); d.Allowed || d.Pool != "shared" {
		t.Fatalf("AllowAll over the limit: %+v", d)
	}
	if p, _ := lim.Peek(context.Background(), other, "tom"); p.Remaining != 5 {
		t.Fatalf("denied AllowAll calls consumed from another rule: %+v", p)
	}
}

func TestResetClearsCachedDenials(t *testing.T) {
	lim, _, set := cachedLimiter(t)
	set(0)
	rule := &Rule{Pool: "unban", Window: time.Hour, Allowance: 1, Algorithm: SlidingWindow}
	lim.Allow(rule, "vic")
	lim.Allow(rule, "vic")
	if lim.Allow(rule, "vic").Allowed {
		t.Fatal("not denied")
	}
	if err := lim.Reset(context.Background(), "unban", "vic"); err != nil {
		t.Fatal(err)
	}
	if d := lim.Allow(rule, "vic"); !d.Allowed {
		t.Fatalf("after Reset: %+v, want allowed at once", d)
	}
}

// slowDenyingStore denies every call, and holds each Take until release is closed.
type slowDenyingStore struct {
	noAdmin
	taking  chan struct{}
	release chan struct{}
	takes   atomic.Int64
}

func (s *slowDenyingStore) Take(ctx context.Context, rules []*Rule, _ string) (Decision,
	error) {
	if s.takes.Add(1) == 1 {
		close(s.taking)
		<-s.release
	}
	return Decision{Pool: rules[0].Pool, Limit: rules[0].Allowance,
		RetryAfter: time.Hour, ResetAfter: time.Hour}, nil
}

func (s *slowDenyingStore) Reset(context.Context, string, string) error { return nil }

// TestResetWinsOverADenialInFlight: a denial the store gave before a Reset but that reaches
// the limiter after it is not replayed: the next call asks the store again.
func TestResetWinsOverADenialInFlight(t *testing.T) {
	store := &slowDenyingStore{taking: make(chan struct{}), release: make(chan struct{})}
	lim := New(store, WithTimeout(10*time.Second))
	rule := &Rule{Pool: "inflight", Window: time.Hour, Allowance: 1}
	done := make(chan Decision)
	go func() { done <- lim.Allow(rule, "wes") }()
	<-store.taking
	if err := lim.Reset(context.Background(), "inflight", "wes"); err != nil {
		t.Fatal(err)
	}
	close(store.release)
	if d := <-done; d.Allowed {
		t.Fatalf("the store's denial came back as %+v", d)
	}
	lim.Allow(rule, "wes")
	if n := store.takes.Load(); n != 2 {
		t.Fatalf("%d store round trips, want 2: a denial from before the Reset was replayed", n)
	}
}

func TestDenialCacheOffAndCapped(t *testing.T) {
	rule := &Rule{Pool: "nocache", Window: time.Minute, Allowance: 1}
	t.Run("off", func(t *testing.T) {
		lim, store, set := cachedLimiter(t, WithDenialCache(0))
		set(0)
		for range 10 {
			lim.Allow(rule, "wes")
		}
		if n := store.takes.Load(); n != 10 {
			t.Fatalf("%d round trips for 10 calls without the cache, want 10", n)
		}
	})
	t.Run("capped", func(t *testing.T) {
		lim, store, set := cachedLimiter(t, WithDenialCache(time.Second))
		set(0)
		lim.Allow(rule, "wes")
		lim.Allow(rule, "wes")
		set(999)
		lim.Allow(rule, "wes")
		set(1000)
		if d := lim.Allow(rule, "wes"); d.Allowed || d.RetryAfter != 59*time.Second {
			t.Fatalf("%+v", d)
		}
		if n := store.takes.Load(); n != 3 {
			t.Fatalf("%d round trips, want 3: the capped denial is asked again after 1s", n)
		}
	})
}

func TestDenialCacheIsBounded(t *testing.T) {
	var c denialCache
	var clock time.Duration
	rule := &Rule{Pool: "bound", Window: time.Minute, Allowance: 1}
	denied := Decision{Pool: "bound", RetryAfter: time.Second}
	for i := range 200_000 {
		c.remember(rule, fmt.Sprint("id", i), denied, clock, 0)
	}
	if n := c.len(); n > denialShards*maxDenialsPerShard {
		t.Fatalf("%d denials held, want at most %d", n, denialShards*maxDenialsPerShard)
	}
	clock += 2 * time.Second
	for i := range denialShards * 100 {
		c.remember(rule, fmt.Sprint("later", i), denied, clock, 0)
	}
	if n := c.len(); n > denialShards*200 {
		t.Fatalf("%d denials held after the old ones ended, want about %d", n, denialShards*100)
	}
	if _, ok := c.lookup1(rule, "later7", clock); !ok {
		t.Fatal("a running denial was dropped")
	}
}

func TestMemoryPathAllocatesNothing(t *testing.T) {
	lim := New(nil)
	one := &Rule{Pool: "zero", Window: time.Hour, Allowance: 1 << 20, Algorithm: GCRA}
	rules := []*Rule{
		{Pool: "zero-f", Window: time.Hour, Allowance: 1 << 40},
		{Pool: "zero-s", Window: time.Hour, Allowance: 1 << 40, Algorithm: SlidingWindow},
		one,
	}
	denied := &Rule{Pool: "zero-d", Window: time.Hour, Allowance: 1, Algorithm: SlidingWindow}
	lim.Allow(one, "xia")
	lim.AllowAll(rules, "xia")
	lim.Allow(denied, "xia")
	for name, f := range map[string]func(){
		"Allow":        func() { lim.Allow(one, "xia") },
		"AllowAll":     func() { lim.AllowAll(rules, "xia") },
		"Allow denied": func() { lim.Allow(denied, "xia") },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s on memory: %v allocations per call, want 0", name, n)
		}
	}
}
