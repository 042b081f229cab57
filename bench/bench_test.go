package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/limitgen/limitgen/internal/redistest"
	"github.com/limitgen/limitgen/runtime"
	"github.com/redis/go-redis/v9"
	sethvargo "github.com/sethvargo/go-limiter"
	"github.com/sethvargo/go-limiter/memorystore"
	ulule "github.com/ulule/limiter/v3"
	ulredis "github.com/ulule/limiter/v3/drivers/store/redis"
	"golang.org/x/time/rate"
)

// callerCounts are the numbers of concurrent callers every comparison runs at.
var callerCounts = []int{1, 16, 64}

// huge is an allowance no benchmark exhausts; GCRA needs allowance × window in ms < 2^52.
const huge = 1 << 30

// ids are the identities of allowed-call benchmarks: many callers, each seen often.
var ids = func() []string {
	out := make([]string, 1024)
	for i := range out {
		out[i] = fmt.Sprintf("user-%04d", i)
	}
	return out
}()

// flooders are the identities of denied-call benchmarks, all over their limit.
var flooders = ids[:64]

// callers runs b.N calls of f split over n goroutines; f gets the caller's number and the
// call's.
func callers(b *testing.B, n int, f func(caller, i int)) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := range n {
		quota := b.N / n
		if c < b.N%n {
			quota++
		}
		wg.Go(func() {
			for i := range quota {
				f(c, c*7919+i)
			}
		})
	}
	wg.Wait()
}

// impl is one limiter under comparison: check asks it about a call of identity and says
// whether the call was allowed.
type impl struct {
	name  string
	check func(identity string) bool
}

// compare runs every impl at every caller count, on identities from pick.
func compare(b *testing.B, impls []impl, pick []string, wantAllowed bool) {
	for _, n := range callerCounts {
		for _, im := range impls {
			b.Run(fmt.Sprintf("callers=%d/impl=%s", n, im.name), func(b *testing.B) {
				var wrong sync.Once
				callers(b, n, func(_, i int) {
					if im.check(pick[i%len(pick)]) != wantAllowed {
						wrong.Do(func() { b.Errorf("%s: a call was not %v", im.name, wantAllowed) })
					}
				})
			})
		}
	}
}

// redisClient is one client for every implementation, with the options runtime.FromEnv
// sets (ContextTimeoutEnabled), so that limitgen runs its fast path, as in production.
func redisClient(b *testing.B) *redis.Client {
	server := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Network: "unix", Addr: server.Addr(),
		ContextTimeoutEnabled: true, PoolSize: 128})
	b.Cleanup(func() { client.Close() })
	return client
}

func limitgenImpl(name string, lim *runtime.Limiter, rule *runtime.Rule) impl {
	return impl{"limitgen-" + name, func(id string) bool { return lim.Allow(rule, id).Allowed }}
}

func redisRateImpl(client *redis.Client, limit redis_rate.Limit) impl {
	rl := redis_rate.NewLimiter(client)
	ctx := context.Background()
	return impl{"redis_rate-gcra", func(id string) bool {
		res, err := rl.Allow(ctx, id, limit)
		if err != nil {
			panic(err)
		}
		return res.Allowed > 0
	}}
}

func ululeImpl(b *testing.B, client *redis.Client, r ulule.Rate) impl {
	store, err := ulredis.NewStoreWithOptions(client, ulule.StoreOptions{Prefix: "ulule",
		MaxRetry: 3})
	if err != nil {
		b.Fatal(err)
	}
	lim := ulule.New(store, r)
	ctx := context.Background()
	return impl{"ulule-fixed", func(id string) bool {
		res, err := lim.Get(ctx, id)
		if err != nil {
			panic(err)
		}
		return !res.Reached
	}}
}

// rules returns one rule per algorithm, each with its own pool.
func rules(prefix string, window time.Duration, allowance int64) map[string]*runtime.Rule {
	return map[string]*runtime.Rule{
		"fixed": {Pool: prefix + "-fixed", Window: window, Allowance: allowance},
		"gcra":  {Pool: prefix + "-gcra", Window: window, Allowance: allowance, Algorithm: runtime.GCRA},
		"sliding": {Pool: prefix + "-sliding", Window: window, Allowance: allowance,
			Algorithm: runtime.SlidingWindow},
	}
}

// BenchmarkRedisAllowed: calls that are allowed, each a round trip to Redis.
func BenchmarkRedisAllowed(b *testing.B) {
	client := redisClient(b)
	lim := runtime.New(runtime.NewRedisStore(client))
	r := rules("allowed", time.Hour, huge)
	// The sliding log keeps one entry per millisecond with calls per identity: a minute
	// keeps it to what a real limit of this size would hold.
	r["sliding"].Window = time.Minute
	compare(b, []impl{
		limitgenImpl("fixed", lim, r["fixed"]),
		limitgenImpl("gcra", lim, r["gcra"]),
		limitgenImpl("sliding", lim, r["sliding"]),
		redisRateImpl(client, redis_rate.PerHour(huge)),
		ululeImpl(b, client, ulule.Rate{Period: time.Hour, Limit: huge}),
	}, ids, true)
}

// BenchmarkRedisDenied: a flood of calls over the limit. limitgen answers them from its
// denial cache; "nocache" turns the cache off to show the round trip it saves.
func BenchmarkRedisDenied(b *testing.B) {
	client := redisClient(b)
	lim := runtime.New(runtime.NewRedisStore(client))
	nocache := runtime.New(runtime.NewRedisStore(client), runtime.WithDenialCache(0))
	r := rules("denied", time.Hour, 1)
	impls := []impl{
		limitgenImpl("fixed", lim, r["fixed"]),
		limitgenImpl("gcra", lim, r["gcra"]),
		limitgenImpl("sliding", lim, r["sliding"]),
		{"limitgen-fixed-nocache", func(id string) bool {
			return nocache.Allow(r["fixed"], id).Allowed
		}},
		redisRateImpl(client, redis_rate.PerHour(1)),
		ululeImpl(b, client, ulule.Rate{Period: time.Hour, Limit: 1}),
	}
	for _, im := range impls {
		for _, id := range flooders {
			im.check(id) // the one allowed call
		}
	}
	compare(b, impls, flooders, false)
}

// xrateMap is the usual hand-rolled limiter: a map of golang.org/x/time/rate limiters
// behind a mutex.
type xrateMap struct {
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	limit    rate.Limit
	burst    int
}

func (m *xrateMap) allow(id string) bool {
	m.mu.Lock()
	l, ok := m.limiters[id]
	if !ok {
		l = rate.NewLimiter(m.limit, m.burst)
		m.limiters[id] = l
	}
	m.mu.Unlock()
	return l.Allow()
}

func memoryImpls(b *testing.B, window time.Duration, allowance int64) []impl {
	lim := runtime.New(nil)
	r := rules("memory", window, allowance)
	xm := &xrateMap{limiters: map[string]*rate.Limiter{},
		limit: rate.Limit(float64(allowance) / window.Seconds()), burst: int(allowance)}
	sv, err := memorystore.New(&memorystore.Config{Tokens: uint64(allowance), Interval: window})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sv.Close(context.Background()) })
	ctx := context.Background()
	return []impl{
		limitgenImpl("fixed", lim, r["fixed"]),
		limitgenImpl("gcra", lim, r["gcra"]),
		limitgenImpl("sliding", lim, r["sliding"]),
		{"xrate-mutexmap", xm.allow},
		{"sethvargo-memory", func(id string) bool {
			_, _, _, ok, err := sv.Take(ctx, id)
			if err != nil {
				panic(err)
			}
			return ok
		}},
	}
}

var _ sethvargo.Store // the interface sethvargo-memory implements

// BenchmarkMemoryAllowed: allowed calls decided in process memory.
func BenchmarkMemoryAllowed(b *testing.B) {
	// A minute: the sliding log keeps one entry per millisecond with calls per identity.
	compare(b, memoryImpls(b, time.Minute, huge), ids, true)
}

// BenchmarkMemoryDenied: a flood of calls over the limit, decided in process memory.
func BenchmarkMemoryDenied(b *testing.B) {
	impls := memoryImpls(b, time.Hour, 1)
	for _, im := range impls {
		for _, id := range flooders {
			im.check(id)
		}
	}
	compare(b, impls, flooders, false)
}

// BenchmarkWrapper: the generated wrapper against calling the handler directly and
// against a reflection-based wrapper, all on the memory store.
func BenchmarkWrapper(b *testing.B) {
	lim := runtime.New(nil)
	rule := &runtime.Rule{Pool: "chat", Window: time.Hour, Allowance: 1099511627776}
	clients := make([]*Client, len(ids))
	generated := make([]func(...any), len(ids))
	reflected := make([]func(...any), len(ids))
	for i, id := range ids {
		clients[i] = &Client{id: id}
		generated[i] = clients[i].ChatLimited(lim)
		reflected[i] = reflectLimited(lim, rule, clients[i], "Chat")
	}
	args := []any{"hello", float64(42)}
	for _, n := range callerCounts {
		for _, v := range []struct {
			name string
			call func(i int)
		}{
			{"direct", func(i int) { clients[i].Chat(args...) }},
			{"limitgen-generated", func(i int) { generated[i](args...) }},
			{"reflect", func(i int) { reflected[i](args...) }},
		} {
			b.Run(fmt.Sprintf("callers=%d/impl=%s", n, v.name), func(b *testing.B) {
				callers(b, n, func(_, i int) { v.call(i % len(ids)) })
			})
		}
	}
}
