package runtime

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// memoryShards spreads identities over independently locked maps, so that goroutines
// deciding for different identities rarely wait for each other.
const memoryShards = 64

// MemoryStore keeps counters in process memory: the embedded default, right for a single
// server process. Time comes from the monotonic clock, so wall-clock jumps do not move
// windows. Windows that ended are reclaimed as the store is used, so memory follows the
// number of identities active within one window.
type MemoryStore struct {
	seed   maphash.Seed
	shards [memoryShards]memoryShard
	now    func() time.Duration // monotonic time since the store was created
}

type memoryKey struct {
	pool, identity string
}

type memoryWindow struct {
	count int64
	end   time.Duration // when the window closes, on the store's clock
}

type memoryShard struct {
	mu        sync.Mutex
	windows   map[memoryKey]memoryWindow
	nextSweep time.Duration
}

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore() *MemoryStore {
	start := time.Now()
	return newMemoryStore(func() time.Duration { return time.Since(start) })
}

func newMemoryStore(now func() time.Duration) *MemoryStore {
	s := &MemoryStore{seed: maphash.MakeSeed(), now: now}
	for i := range s.shards {
		s.shards[i].windows = map[memoryKey]memoryWindow{}
	}
	return s
}

// Take counts cost calls of identity in rule's pool. It never fails.
func (s *MemoryStore) Take(_ context.Context, rule *Rule, identity string, cost int64) (Decision, error) {
	key := memoryKey{rule.Pool, identity}
	shard := &s.shards[maphash.String(s.seed, identity)%memoryShards]

	shard.mu.Lock()
	now := s.now()
	shard.sweep(now, rule.Window)
	w, ok := shard.windows[key]
	if !ok || now >= w.end {
		w = memoryWindow{end: now + rule.Window}
	}
	allowed := w.count+cost <= rule.Allowance
	if allowed {
		w.count += cost
	}
	shard.windows[key] = w
	shard.mu.Unlock()

	return decide(rule, allowed, w.count, w.end-now), nil
}

// sweep drops ended windows, at most about once per window so that the cost per call stays
// constant on average.
func (sh *memoryShard) sweep(now, window time.Duration) {
	if now < sh.nextSweep {
		return
	}
	for key, w := range sh.windows {
		if now >= w.end {
			delete(sh.windows, key)
		}
	}
	sh.nextSweep = now + window
}

// Len reports how many windows the store holds, ended ones not yet reclaimed included.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].windows)
		s.shards[i].mu.Unlock()
	}
	return n
}

// decide builds the decision for a fixed window holding count after this call, ending in
// resetAfter.
func decide(rule *Rule, allowed bool, count int64, resetAfter time.Duration) Decision {
	d := Decision{
		Allowed:    allowed,
		Limit:      rule.Allowance,
		Remaining:  max(rule.Allowance-count, 0),
		ResetAfter: resetAfter,
	}
	if !allowed {
		d.RetryAfter = resetAfter
	}
	return d
}
