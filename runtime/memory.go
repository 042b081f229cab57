package runtime

import (
	"context"
	"hash/maphash"
	"strings"
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
	mu      sync.Mutex
	windows map[memoryKey]*memoryWindow
	// longest is the longest window any rule has opened in the shard; nextSweep is when
	// the shard is next scanned for ended windows by time, and sweepAt the number of
	// windows at which it is scanned because it grew.
	longest, nextSweep time.Duration
	sweepAt            int
}

// minSweepAt is how many windows a shard holds before growth alone makes it scan.
const minSweepAt = 16

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore() *MemoryStore {
	start := time.Now()
	return newMemoryStore(func() time.Duration { return time.Since(start) })
}

// newMemoryStore returns a store on the clock now, which must never go backwards.
func newMemoryStore(now func() time.Duration) *MemoryStore {
	s := &MemoryStore{seed: maphash.MakeSeed(), now: now}
	for i := range s.shards {
		s.shards[i].windows = map[memoryKey]*memoryWindow{}
	}
	return s
}

// Take counts cost calls of identity in rule's pool. It fails only for an invalid rule or
// cost, with an error matching ErrInvalidRule.
func (s *MemoryStore) Take(_ context.Context, rule *Rule, identity string,
	cost int64) (Decision, error) {
	if err := check(rule, cost); err != nil {
		return Decision{}, err
	}
	key := memoryKey{rule.Pool, identity}
	shard := &s.shards[maphash.String(s.seed, identity)%memoryShards]

	shard.mu.Lock()
	now := s.now()
	shard.sweep(now, rule.Window)
	w := shard.windows[key]
	switch {
	case w == nil:
		// Windows are updated in place, so the map keeps this clone as its key and not
		// whatever larger buffer the caller's identity was cut from.
		key.identity = strings.Clone(identity)
		w = &memoryWindow{end: now + rule.Window}
		shard.windows[key] = w
	case now >= w.end:
		*w = memoryWindow{end: now + rule.Window}
	}
	allowed := w.count+cost <= rule.Allowance
	if allowed {
		w.count += cost
	}
	count, end := w.count, w.end
	shard.mu.Unlock()

	return decide(rule, allowed, count, end-now), nil
}

// sweep drops ended windows. A shard is scanned when it has doubled since its last scan,
// so a scan of n windows follows at least n/2 new ones and the cost per call stays constant
// on average while memory stays within twice the windows that are still open. It is also
// scanned once per the longest window it has seen, so that a shard no longer growing gives
// back what it holds.
func (sh *memoryShard) sweep(now, window time.Duration) {
	sh.longest = max(sh.longest, window)
	if now < sh.nextSweep && len(sh.windows) < sh.sweepAt {
		return
	}
	for key, w := range sh.windows {
		if now >= w.end {
			delete(sh.windows, key)
		}
	}
	sh.nextSweep = now + sh.longest
	sh.sweepAt = max(2*len(sh.windows), minSweepAt)
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
		Pool:       rule.Pool,
		Limit:      rule.Allowance,
		Remaining:  max(rule.Allowance-count, 0),
		ResetAfter: resetAfter,
	}
	if !allowed {
		d.RetryAfter = resetAfter
	}
	return d
}
