package runtime

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/limitgen/limitgen/internal/redistest"
)

// noAdmin gives a test store the Peek and Reset of Store, failing.
type noAdmin struct{}

func (noAdmin) Peek(context.Context, *Rule, string) (Decision, error) {
	return Decision{}, errors.New("no peek")
}

func (noAdmin) Reset(context.Context, string, string) error { return errors.New("no reset") }

// takeCost decides one call under a copy of rule that costs cost, which must be at least
// 1 (a Rule's Cost of 0 means 1), as Limiter.AllowN does.
func takeCost(s Store, rule *Rule, identity string, cost int64) (Decision, error) {
	if err := check(rule, cost); err != nil {
		return Decision{}, err
	}
	r := *rule
	r.Cost = cost
	return s.Take(context.Background(), []*Rule{&r}, identity)
}

// clocked is a store under test whose clock the test moves, in milliseconds.
type clocked struct {
	name  string
	store Store
	set   func(ms int64)
}

// clockedStores returns a MemoryStore and, when redis-server is installed, a RedisStore,
// both on a clock the test sets. Redis then takes the time from the test instead of TIME;
// the scripts' arithmetic is the same.
func clockedStores(t *testing.T) []clocked {
	t.Helper()
	var memClock atomic.Int64
	memory := newMemoryStore(func() time.Duration {
		return time.Duration(memClock.Load()) * time.Millisecond
	})
	out := []clocked{{"memory", memory, forward(&memClock)}}
	server := redistest.Start(t)
	var redisClock atomic.Int64
	// Redis times are absolute; start from a realistic epoch to exercise big numbers.
	const epoch = 1_780_000_000_000
	store := NewRedisStore(server.Client())
	store.clock = func() int64 { return epoch + redisClock.Load() }
	out = append(out, clocked{"redis", store, forward(&redisClock)})
	return out
}

// forward returns a setter of clock that never moves it back, as stores need: setting a
// time earlier than the last one starts a new era, 1000 hours after the last time set,
// in which the state of earlier eras has ended.
func forward(clock *atomic.Int64) func(ms int64) {
	var mu sync.Mutex
	var origin, last int64
	return func(ms int64) {
		mu.Lock()
		defer mu.Unlock()
		if origin+ms < last {
			origin = last + 1000*3600*1000
		}
		last = origin + ms
		clock.Store(last)
	}
}

// step is one line of a conformance table: at time At (ms from the start of the table), a
// call of Cost is made (or peeked at), and the store must answer exactly so.
type step struct {
	At, Cost  int64
	Peek      bool
	Allowed   bool
	Remaining int64
	Retry     int64 // ms
	Reset     int64 // ms
}

// conformance is one table: rule, the scale by which its times are multiplied, and steps.
type conformance struct {
	name  string
	rule  Rule
	scale int64
	steps []step
}

// Windows are a minute long (a table written for 1000ms, scaled by 60) so that the keys'
// real TTLs in Redis outlast the test even when its clock is the test's.
var conformanceTables = []conformance{
	{"fixed", Rule{Pool: "conf-fixed", Window: time.Second, Allowance: 3}, 60, []step{
		{At: 0, Cost: 1, Allowed: true, Remaining: 2, Reset: 1000},
		{At: 100, Cost: 2, Allowed: true, Remaining: 0, Reset: 900},
		{At: 150, Cost: 1, Peek: true, Remaining: 0, Retry: 850, Reset: 850},
		{At: 200, Cost: 1, Remaining: 0, Retry: 800, Reset: 800},
		{At: 999, Cost: 1, Remaining: 0, Retry: 1, Reset: 1},
		// The straddling burst fixed windows allow: 3 at 100ms, 3 more at 1000ms.
		{At: 1000, Cost: 3, Allowed: true, Remaining: 0, Reset: 1000},
		{At: 1500, Cost: 1, Remaining: 0, Retry: 500, Reset: 500},
		{At: 2000, Cost: 2, Allowed: true, Remaining: 1, Reset: 1000},
		{At: 2500, Cost: 1, Peek: true, Allowed: true, Remaining: 1, Reset: 500},
		{At: 2999, Cost: 1, Allowed: true, Remaining: 0, Reset: 1},
		{At: 9000, Cost: 1, Peek: true, Allowed: true, Remaining: 3},
	}},
	{"sliding", Rule{Pool: "conf-sliding", Window: time.Second, Allowance: 3,
		Algorithm: SlidingWindow}, 60, []step{
		{At: 0, Cost: 1, Allowed: true, Remaining: 2, Reset: 1000},
		{At: 100, Cost: 1, Allowed: true, Remaining: 1, Reset: 1000},
		{At: 100, Cost: 1, Allowed: true, Remaining: 0, Reset: 1000}, // merged with the last
		{At: 500, Cost: 1, Remaining: 0, Retry: 500, Reset: 600},
		{At: 500, Cost: 1, Peek: true, Remaining: 0, Retry: 500, Reset: 600},
		// Unlike fixed windows, the calls of 100ms still count at 1000ms.
		{At: 1000, Cost: 1, Allowed: true, Remaining: 0, Reset: 1000},
		{At: 1000, Cost: 2, Remaining: 0, Retry: 100, Reset: 1000},
		{At: 1099, Cost: 2, Remaining: 0, Retry: 1, Reset: 901},
		{At: 1100, Cost: 2, Allowed: true, Remaining: 0, Reset: 1000},
		{At: 2099, Cost: 1, Allowed: true, Remaining: 0, Reset: 1000},
		{At: 2100, Cost: 1, Peek: true, Allowed: true, Remaining: 2, Reset: 999},
		{At: 9000, Cost: 3, Allowed: true, Remaining: 0, Reset: 1000},
	}},
	{"gcra", Rule{Pool: "conf-gcra", Window: time.Second, Allowance: 4, Algorithm: GCRA}, 60,
		[]step{
			{At: 0, Cost: 1, Allowed: true, Remaining: 3, Reset: 250},
			{At: 0, Cost: 3, Allowed: true, Remaining: 0, Reset: 1000},
			{At: 100, Cost: 1, Remaining: 0, Retry: 150, Reset: 900},
			{At: 100, Cost: 1, Peek: true, Remaining: 0, Retry: 150, Reset: 900},
			{At: 250, Cost: 1, Allowed: true, Remaining: 0, Reset: 1000},
			{At: 600, Cost: 2, Remaining: 1, Retry: 150, Reset: 650},
			{At: 750, Cost: 2, Allowed: true, Remaining: 0, Reset: 1000},
			{At: 1500, Cost: 1, Peek: true, Allowed: true, Remaining: 3, Reset: 250},
			{At: 5000, Cost: 4, Allowed: true, Remaining: 0, Reset: 1000},
		}},
	// An emission interval that is not a whole number of ms: 60000/7 = 8571.43ms.
	{"gcra-fraction", Rule{Pool: "conf-gcra7", Window: time.Minute, Allowance: 7,
		Algorithm: GCRA}, 1, []step{
		{At: 0, Cost: 7, Allowed: true, Remaining: 0, Reset: 60000},
		{At: 8571, Cost: 1, Remaining: 0, Retry: 1, Reset: 51429},
		{At: 8572, Cost: 1, Allowed: true, Remaining: 0, Reset: 60000},
		{At: 8572, Cost: 1, Peek: true, Remaining: 0, Retry: 8571, Reset: 60000},
		{At: 60000, Cost: 1, Peek: true, Allowed: true, Remaining: 6, Reset: 8572},
	}},
}

// TestConformance runs every table against MemoryStore and RedisStore: both must give
// exactly the table's decisions, so they provably agree with each other.
func TestConformance(t *testing.T) {
	stores := clockedStores(t)
	for _, table := range conformanceTables {
		for _, sc := range stores {
			t.Run(table.name+"/"+sc.name, func(t *testing.T) {
				rule := table.rule
				rule.Window *= time.Duration(table.scale)
				ctx := context.Background()
				for i, s := range table.steps {
					sc.set(s.At * table.scale)
					r := rule
					r.Cost = s.Cost
					var d Decision
					var err error
					if s.Peek {
						d, err = sc.store.Peek(ctx, &r, "conformance")
					} else {
						d, err = sc.store.Take(ctx, []*Rule{&r}, "conformance")
					}
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					ms := time.Duration(table.scale) * time.Millisecond
					want := Decision{Allowed: s.Allowed, Pool: rule.Pool, Limit: rule.Allowance,
						Remaining: s.Remaining, RetryAfter: time.Duration(s.Retry) * ms,
						ResetAfter: time.Duration(s.Reset) * ms}
					if d != want {
						t.Errorf("step %d (%+v):\n got %+v\nwant %+v", i, s, d, want)
					}
				}
			})
		}
	}
}
