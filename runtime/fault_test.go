package runtime

import (
	"context"
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

// faultTimeout is the deadline of each decision in the fault tests, and faultMargin what a
// call may take beyond it (a loaded CI machine under -race schedules goroutines late). The
// bound is about blocking, not speed: a call that waited for a dead or frozen Redis would
// take seconds (the client's read timeout), not tens of milliseconds.
const (
	faultTimeout = 100 * time.Millisecond
	faultMargin  = 250 * time.Millisecond
	// recoveryBound is how soon after Redis answers again decisions must be the store's:
	// the limiter asks again within its longest backoff (250ms), but once go-redis's pool
	// has seen as many failed dials as its size over the client's life, it stops dialing
	// and re-dials in the background once a second, so the client itself may take up to a
	// second to notice that Redis is back.
	recoveryBound = 1500 * time.Millisecond
)

// callStats records what a limiter's callers got: the slowest call, and counts by source.
type callStats struct {
	mu       sync.Mutex
	slowest  time.Duration
	calls    int
	allowed  int
	bySource [3]int
}

func (c *callStats) allow(lim *Limiter, rule *Rule, identity string) Decision {
	start := time.Now()
	d := lim.Allow(rule, identity)
	took := time.Since(start)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slowest = max(c.slowest, took)
	c.calls++
	if d.Allowed {
		c.allowed++
	}
	c.bySource[d.Source]++
	return d
}

func (c *callStats) slowestCall() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slowest
}

func (c *callStats) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d calls, %d allowed, store/local/policy %v, slowest %v", c.calls,
		c.allowed, c.bySource, c.slowest)
}

// hammer calls lim from 8 goroutines, each about every millisecond, on identities of
// their own, until the test ends; it returns what they got.
func hammer(t *testing.T, lim *Limiter) *callStats {
	var c callStats
	rule := &Rule{Pool: "hammer", Window: time.Second, Allowance: 20}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				c.allow(lim, rule, fmt.Sprintf("hammer-%d-%d", g, i%10))
			}
		})
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
	return &c
}

// checkTTLs fails t unless every key in the server has a TTL of at most max.
func checkTTLs(t *testing.T, client *redis.Client, max time.Duration) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	iter := client.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		n++
		ttl, err := client.PTTL(ctx, iter.Val()).Result()
		if err != nil || ttl <= 0 || ttl > max {
			t.Errorf("key %q has TTL %v (%v), want 0 < TTL <= %v", iter.Val(), ttl, err, max)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitForStore calls lim until a decision comes from the store again and returns how long
// that took; it fails t when it takes longer than recoveryBound, then keeps waiting up to
// 5s so that the rest of the test can go on.
func waitForStore(t *testing.T, lim *Limiter, what string) time.Duration {
	t.Helper()
	rule := &Rule{Pool: "probe", Window: time.Minute, Allowance: 1 << 40}
	start := time.Now()
	for {
		if d := lim.Allow(rule, "probe"); d.Source == SourceStore {
			took := time.Since(start)
			if took > recoveryBound {
				t.Errorf("%s: decisions came from Redis again %v after it answered, want "+
					"within %v", what, took, recoveryBound)
			}
			return took
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s: no decision from Redis within 5s of it answering: %+v", what,
				lim.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkExact checks that a fresh identity gets exactly the allowance from Redis.
func checkExact(t *testing.T, lim *Limiter, pool, identity string) {
	t.Helper()
	rule := &Rule{Pool: pool, Window: time.Minute, Allowance: 5}
	errs := lim.Stats().StoreErrors
	allowed := 0
	for i := range 8 {
		d := lim.Allow(rule, identity)
		if d.Source != SourceStore {
			t.Fatalf("%s call %d: decided by %v, want the store: %+v", identity, i, d.Source, d)
		}
		if d.Allowed {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("%s: %d of 8 calls allowed after recovery, want exactly 5", identity, allowed)
	}
	if n := lim.Stats().StoreErrors - errs; n != 0 {
		t.Errorf("%s: %d store errors with Redis up", identity, n)
	}
}

// outageCalls makes 150 calls of a fresh identity over about 150ms while Redis is down or
// frozen, and checks what the policy gave them.
func outageCalls(t *testing.T, lim *Limiter, policy FailurePolicy, identity string) {
	t.Helper()
	rule := &Rule{Pool: "outage", Window: time.Minute, Allowance: 5}
	var c callStats
	for range 150 {
		d := c.allow(lim, rule, identity)
		switch policy {
		case FailLocal:
			if d.Source != SourceLocal {
				t.Fatalf("FailLocal during an outage: %+v, want Source local", d)
			}
		case FailOpen:
			if !d.Allowed || d.Source != SourcePolicy {
				t.Fatalf("FailOpen during an outage: %+v, want allowed by policy", d)
			}
		case FailClosed:
			if d.Allowed || d.Source != SourcePolicy || d.RetryAfter <= 0 ||
				d.RetryAfter > maxBackoff || !strings.Contains(d.Err().Error(), "retry after") {
				t.Fatalf("FailClosed during an outage: %+v, want denied by policy with "+
					"0 < RetryAfter <= %v", d, maxBackoff)
			}
		}
		time.Sleep(time.Millisecond)
	}
	want := map[FailurePolicy]int{FailLocal: 5, FailOpen: 150, FailClosed: 0}[policy]
	if c.allowed != want {
		t.Errorf("%v during an outage: %d of 150 calls allowed, want %d", policy, c.allowed,
			want)
	}
	if c.slowest > faultTimeout+faultMargin {
		t.Errorf("%v during an outage: a call took %v, want at most %v + %v", policy,
			c.slowest, faultTimeout, faultMargin)
	}
}

// TestFaults runs each failure policy through a Redis that stops, restarts, freezes
// (SIGSTOP) and loses its scripts, under a steady load of calls, and checks what callers
// got, how long any call took, and that after each recovery every key has a TTL and the
// allowance is exact again.
func TestFaults(t *testing.T) {
	for _, policy := range []FailurePolicy{FailLocal, FailOpen, FailClosed} {
		t.Run(policy.String(), func(t *testing.T) {
			server := redistest.Start(t)
			admin := server.Client()
			var logs logBuffer
			t.Setenv("REDIS_URL", server.URL())
			lim, err := FromEnv(WithFailurePolicy(policy), WithTimeout(faultTimeout),
				WithLogger(logs.logger()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { lim.Close() })
			load := hammer(t, lim)
			checkExact(t, lim, "exact", "before")

			// Stopped: connections refused.
			server.Stop()
			callsBefore := load.String()
			outageCalls(t, lim, policy, "stopped")
			st := lim.Stats()
			if !st.StoreDown || st.Outages != 1 {
				t.Errorf("while Redis is stopped: %+v, want StoreDown and 1 outage", st)
			}
			// The 150 calls above and the load's hundreds went by at most one question to
			// Redis per backoff interval: 20ms, 40ms, 80ms, ...
			if st.StoreErrors > 20 {
				t.Errorf("%d store errors in about 200ms of outage, want the dead Redis "+
					"asked with backoff, not on every call (load: %s; before: %s)",
					st.StoreErrors, load, callsBefore)
			}

			// Restarted, empty and without scripts: NOSCRIPT must not reach callers.
			server.Restart()
			took := waitForStore(t, lim, "restart")
			t.Logf("%v: Redis restarted; decisions from Redis again after %v", policy, took)
			checkExact(t, lim, "exact", "after-restart")
			checkTTLs(t, admin, time.Minute)

			// Frozen: connections accepted, nothing answered.
			server.Pause()
			outageCalls(t, lim, policy, "paused")
			server.Resume()
			took = waitForStore(t, lim, "resume")
			t.Logf("%v: Redis resumed; decisions from Redis again after %v", policy, took)
			checkExact(t, lim, "exact", "after-pause")

			// Scripts flushed while up: no error, no outage.
			outages := lim.Stats().Outages
			server.FlushScripts()
			checkExact(t, lim, "exact", "after-flush")
			if n := lim.Stats().Outages; n != outages {
				t.Errorf("SCRIPT FLUSH caused an outage")
			}
			n := checkTTLs(t, admin, time.Minute)

			// Stopping and pausing Redis are two outages; a loaded machine may add one where
			// Redis, or this process, was slower than the deadline, and that is an outage
			// too. What must hold is one warning and one recovery logged for each.
			st = lim.Stats()
			if st.StoreDown || st.Outages < 2 || st.Outages > 4 {
				t.Errorf("at the end: %+v, want the store up after 2 outages (up to 4 on a "+
					"loaded machine)", st)
			}
			if st.Allowed+st.Denied < 1000 {
				t.Errorf("Stats count %d decisions, want the load's too: %+v",
					st.Allowed+st.Denied, st)
			}
			switch policy {
			case FailLocal:
				if st.LocalDecisions == 0 || st.PolicyDecisions != 0 {
					t.Errorf("FailLocal: %+v, want local decisions only", st)
				}
			default:
				if st.PolicyDecisions == 0 || st.LocalDecisions != 0 {
					t.Errorf("%v: %+v, want policy decisions only", policy, st)
				}
			}
			text := logs.String()
			if c := strings.Count(text, "store failed"); uint64(c) != st.Outages {
				t.Errorf("%d outages logged, want one per outage (%d):\n%s", c, st.Outages,
					text)
			}
			if c := strings.Count(text, "store answers again"); uint64(c) != st.Outages {
				t.Errorf("%d recoveries logged, want one per outage (%d):\n%s", c,
					st.Outages, text)
			}
			if !strings.Contains(text, "policy="+policy.String()) {
				t.Errorf("the outage log does not name the policy:\n%s", text)
			}
			if slowest := load.slowestCall(); slowest > faultTimeout+faultMargin {
				t.Errorf("a call of the load took %v, want at most %v + %v", slowest,
					faultTimeout, faultMargin)
			}
			t.Logf("%v: load %s; %d keys, all with a TTL; %+v", policy, load, n, st)
		})
	}
}

// flakyStore is a MemoryStore that fails while down, or panics while panicky, and counts
// the calls it gets. direct makes a Limiter call it without a goroutine.
type flakyStore struct {
	noAdmin
	mem           *MemoryStore
	down, panicky atomic.Bool
	calls         atomic.Int64
	direct        bool
}

func newFlakyStore() *flakyStore { return &flakyStore{mem: NewMemoryStore()} }

func (s *flakyStore) Take(ctx context.Context, rules []*Rule, identity string) (Decision,
	error) {
	s.calls.Add(1)
	if s.panicky.Load() {
		panic("flaky store panics")
	}
	if s.down.Load() {
		return Decision{}, errors.New("flaky store is down")
	}
	return s.mem.Take(ctx, rules, identity)
}

func (s *flakyStore) honorsDeadline() bool { return s.direct }

func TestFailingStoreIsAskedWithBackoff(t *testing.T) {
	store := newFlakyStore()
	var logs logBuffer
	lim := New(store, WithLogger(logs.logger()))
	rule := &Rule{Pool: "backoff", Window: time.Minute, Allowance: 1 << 40}
	store.down.Store(true)

	// Four callers, each calling about every 100µs for a second: tens of thousands of
	// calls, of which only the retries after 20ms, 40ms, 80ms, 160ms, then every 250ms at
	// most (each jittered down by up to half) reach the store.
	var calls atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				down := store.down.Load()
				d := lim.Allow(rule, fmt.Sprint("caller", g))
				if down && store.down.Load() && d.Source != SourceLocal {
					t.Errorf("while the store is down: %+v, want decided locally", d)
					return
				}
				calls.Add(1)
				time.Sleep(100 * time.Microsecond)
			}
		})
	}
	time.Sleep(time.Second)
	asked := store.calls.Load()
	// Without backoff every call would ask the store; with it, about 10 do.
	if asked < 4 || asked > 20 {
		t.Errorf("the store was asked %d times in a second of outage (%d calls), want "+
			"about 10", asked, calls.Load())
	}

	store.down.Store(false)
	up := time.Now()
	for lim.Allow(rule, "probe").Source != SourceStore {
		if time.Since(up) > 5*time.Second {
			t.Fatal("decisions still local 5s after the store came back")
		}
		time.Sleep(100 * time.Microsecond)
	}
	took := time.Since(up)
	close(stop)
	wg.Wait()
	if took > maxBackoff+100*time.Millisecond {
		t.Errorf("decisions came from the store %v after it came back, want within the "+
			"longest backoff %v", took, maxBackoff)
	}
	st := lim.Stats()
	if st.StoreErrors != uint64(asked) || st.Outages != 1 || st.StoreDown ||
		st.LocalDecisions < uint64(calls.Load())/2 {
		t.Errorf("Stats %+v after %d questions and %d calls, want every question an error, "+
			"one outage, the store up, and the calls local", st, asked, calls.Load())
	}
	t.Logf("%d calls in a second of outage asked the store %d times; back after %v",
		calls.Load(), asked, took)
}

func TestFailurePolicies(t *testing.T) {
	burst := &Rule{Pool: "pol-burst", Window: time.Minute, Allowance: 2}
	hour := &Rule{Pool: "pol-hour", Window: time.Hour, Allowance: 100}
	for _, policy := range []FailurePolicy{FailLocal, FailOpen, FailClosed} {
		t.Run(policy.String(), func(t *testing.T) {
			store := newFlakyStore()
			var logs logBuffer
			lim := New(store, WithFailurePolicy(policy), WithLogger(logs.logger()))
			lim.minBackoff, lim.maxBackoff = time.Hour, time.Hour // no retries in this test
			if d := lim.Allow(burst, "up"); !d.Allowed || d.Source != SourceStore {
				t.Fatalf("store up: %+v", d)
			}
			store.down.Store(true)
			var got []Decision
			for range 3 {
				got = append(got, lim.AllowAll([]*Rule{burst, hour}, "down"))
			}
			got = append(got, lim.Allow(burst, "down-one"))
			for i, d := range got {
				switch policy {
				case FailLocal:
					want := i != 2 // two of the burst, then denied; another identity allowed
					if d.Allowed != want || d.Source != SourceLocal || d.Pool != "pol-burst" {
						t.Errorf("call %d: %+v, want allowed=%v locally", i, d, want)
					}
				case FailOpen:
					if !d.Allowed || d.Source != SourcePolicy || d.Pool != "pol-burst" ||
						d.Limit != 2 || d.Err() != nil {
						t.Errorf("call %d: %+v, want allowed by policy", i, d)
					}
				case FailClosed:
					var le *LimitError
					if d.Allowed || d.Source != SourcePolicy || d.Pool != "pol-burst" ||
						d.RetryAfter <= 0 || !errors.As(d.Err(), &le) {
						t.Errorf("call %d: %+v, want denied by policy", i, d)
					}
				}
			}
			if n := store.calls.Load(); n != 2 {
				t.Errorf("the store was asked %d times, want 2: once up, once to find it down",
					n)
			}
			st := lim.Stats()
			local, pol := st.LocalDecisions, st.PolicyDecisions
			if policy == FailLocal && (local != 4 || pol != 0) ||
				policy != FailLocal && (local != 0 || pol != 4) {
				t.Errorf("Stats %+v, want the 4 calls counted as %v decisions", st, policy)
			}
			if st.Allowed+st.Denied != 5 || st.StoreErrors != 1 || st.Outages != 1 ||
				!st.StoreDown {
				t.Errorf("Stats %+v, want 5 decisions, 1 error, 1 outage, down", st)
			}
			text := logs.String()
			if strings.Count(text, "level=WARN") != 1 ||
				!strings.Contains(text, "policy="+policy.String()) ||
				!strings.Contains(text, "flaky store is down") {
				t.Errorf("want one warning naming the policy and the error:\n%s", text)
			}

			// Back up: the next question is the store's, and the local denial above is
			// not replayed in its place.
			store.down.Store(false)
			lim.health.retryAt.Store(0)
			if d := lim.Allow(burst, "down"); !d.Allowed || d.Source != SourceStore {
				t.Errorf("store back: %+v, want allowed by the store", d)
			}
			if !strings.Contains(logs.String(), "store answers again") {
				t.Errorf("recovery not logged:\n%s", logs.String())
			}
		})
	}
}

func TestLimiterAfterClose(t *testing.T) {
	server := redistest.Start(t)
	t.Setenv("REDIS_URL", server.URL())
	var logs logBuffer
	lim, err := FromEnv(WithLogger(logs.logger()), WithFailurePolicy(FailClosed))
	if err != nil {
		t.Fatal(err)
	}
	rule := &Rule{Pool: "closed", Window: time.Minute, Allowance: 1}
	if d := lim.Allow(rule, "x"); !d.Allowed || d.Source != SourceStore {
		t.Fatalf("before Close: %+v", d)
	}
	if err := lim.Close(); err != nil {
		t.Fatal(err)
	}
	if d := lim.Allow(rule, "y"); d.Allowed || d.Source != SourcePolicy {
		t.Errorf("after Close with FailClosed: %+v, want denied by policy", d)
	}
	if st := lim.Stats(); st.StoreErrors != 0 || st.Outages != 0 {
		t.Errorf("after Close: %+v, want no store error: the closed client is not asked", st)
	}
	if strings.Contains(logs.String(), "store failed") {
		t.Errorf("Close logged an outage:\n%s", logs.String())
	}
}

func TestPanickingStoreCalledDirectly(t *testing.T) {
	store := newFlakyStore()
	store.direct = true
	var logs logBuffer
	lim := New(store, WithLogger(logs.logger()))
	if !lim.direct {
		t.Fatal("the store is not called directly")
	}
	store.panicky.Store(true)
	rule := &Rule{Pool: "panic-direct", Window: time.Minute, Allowance: 1}
	if d := lim.Allow(rule, "p"); !d.Allowed || d.Source != SourceLocal {
		t.Fatalf("panicking store: %+v, want allowed locally", d)
	}
	if !strings.Contains(logs.String(), "flaky store panics") {
		t.Errorf("the panic is not in the outage log:\n%s", logs.String())
	}
}

func TestStatsCountEveryDecision(t *testing.T) {
	var logs logBuffer
	lim := New(nil, WithLogger(logs.logger()))
	rule := &Rule{Pool: "stats", Window: time.Minute, Allowance: 3}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				lim.Allow(rule, "s")
			}
		})
	}
	wg.Wait()
	lim.AllowN(context.Background(), rule, "s", 0) // invalid cost: denied
	st := lim.Stats()
	if st != (Stats{Allowed: 3, Denied: 798}) {
		t.Fatalf("Stats = %+v, want 3 allowed and 798 denied, nothing else", st)
	}
	if d := lim.Allow(rule, "t"); d.Source != SourceStore || d.Source.String() != "store" {
		t.Errorf("memory store decision: Source %v", d.Source)
	}
	for p, name := range map[FailurePolicy]string{FailLocal: "local", FailOpen: "open",
		FailClosed: "closed", 9: "FailurePolicy(9)"} {
		if p.String() != name {
			t.Errorf("%d.String() = %q, want %q", p, p.String(), name)
		}
	}
	if New(nil, WithFailurePolicy(9)).policy != FailLocal {
		t.Error("an unknown policy is not FailLocal")
	}
}

// TestAdminCallsKeepTheDeadline: Peek and Reset on a frozen Redis return an error within the
// limiter's timeout, even through a client that does not end its calls at their deadline.
func TestAdminCallsKeepTheDeadline(t *testing.T) {
	server := redistest.Start(t)
	for _, honors := range []bool{true, false} {
		client := redis.NewClient(&redis.Options{Network: "unix", Addr: server.Addr(),
			ContextTimeoutEnabled: honors, ReadTimeout: 5 * time.Second})
		lim := New(NewRedisStore(client), WithTimeout(faultTimeout))
		rule := &Rule{Pool: "admin", Window: time.Minute, Allowance: 3}
		if _, err := lim.Peek(context.Background(), rule, "ada"); err != nil {
			t.Fatal(err)
		}
		server.Pause()
		start := time.Now()
		_, peekErr := lim.Peek(context.Background(), rule, "ada")
		peekTook := time.Since(start)
		start = time.Now()
		resetErr := lim.Reset(context.Background(), "admin", "ada")
		resetTook := time.Since(start)
		server.Resume()
		client.Close()

		if peekErr == nil || resetErr == nil {
			t.Errorf("ContextTimeoutEnabled %v: Peek %v, Reset %v on a frozen Redis; want "+
				"errors", honors, peekErr, resetErr)
		}
		for what, took := range map[string]time.Duration{"Peek": peekTook, "Reset": resetTook} {
			if took > faultTimeout+faultMargin {
				t.Errorf("ContextTimeoutEnabled %v: %s took %v on a frozen Redis, want at "+
					"most the timeout %v (+%v)", honors, what, took, faultTimeout, faultMargin)
			}
		}
	}
}
