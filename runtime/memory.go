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
// windows. State that ended (a fixed window that closed, a drained bucket, a log whose
// calls all left the window) is reclaimed as the store is used, so memory follows the
// number of identities active within one window. All rules of one call lock one shard (the
// identity's), so a call under several rules is decided atomically, all or nothing.
type MemoryStore struct {
	seed   maphash.Seed
	shards [memoryShards]memoryShard
	now    func() time.Duration // monotonic time since the store was created
}

type memoryKey struct {
	pool, identity string
	algorithm      Algorithm
}

type memoryShard struct {
	mu     sync.Mutex
	states map[memoryKey]*limitState
	// longest is the longest window any rule has used in the shard; nextSweep is when
	// the shard is next scanned for ended state by time (in ms), and sweepAt the number of
	// states at which it is scanned because it grew.
	longest, nextSweep int64
	sweepAt            int
}

// minSweepAt is how many states a shard holds before growth alone makes it scan.
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
		s.shards[i].states = map[memoryKey]*limitState{}
	}
	return s
}

// Take decides one call of identity under every rule, all or nothing: when any rule denies
// it, no rule's state changes. It fails only for invalid rules, with an error matching
// ErrInvalidRule.
func (s *MemoryStore) Take(_ context.Context, rules []*Rule, identity string) (Decision,
	error) {
	if err := checkRules(rules); err != nil {
		return Decision{}, err
	}
	return s.take(rules, identity), nil
}

// take is Take for valid rules. It does not keep rules, so a caller's one-rule slice can
// stay on its stack.
func (s *MemoryStore) take(rules []*Rule, identity string) Decision {
	shard := &s.shards[maphash.String(s.seed, identity)%memoryShards]
	shard.mu.Lock()
	defer shard.mu.Unlock()
	now := s.nowMs()
	for _, rule := range rules {
		shard.sweep(now, rule.Window.Milliseconds())
	}

	var pick outcome
	picked := -1
	allowed := true
	for i, rule := range rules {
		st := shard.states[memoryKey{rule.Pool, identity, rule.Algorithm}]
		if st == nil {
			st = &limitState{} // stays on the stack: evaluate keeps no pointer
		}
		o := st.evaluate(rule, now, true)
		if better(o, pick, picked < 0) {
			pick, picked = o, i
		}
		allowed = allowed && o.allowed
	}
	if allowed {
		cloned := ""
		for _, rule := range rules {
			key := memoryKey{rule.Pool, identity, rule.Algorithm}
			st := shard.states[key]
			if st == nil {
				// The map keeps a clone of the identity as its key, not whatever larger
				// buffer the caller's identity was cut from.
				if cloned == "" {
					cloned = strings.Clone(identity)
				}
				key.identity = cloned
				st = &limitState{}
				shard.states[key] = st
			}
			st.commit(rule, now)
		}
	}
	return pick.decision(rules[picked])
}

// better reports whether o decides a call under several rules rather than best: a denial
// over any allowance, the longest wait among denials, the least remaining among
// allowances; first is set for the first rule.
func better(o, best outcome, first bool) bool {
	switch {
	case first:
		return true
	case o.allowed != best.allowed:
		return !o.allowed
	case !o.allowed:
		return o.retry > best.retry
	default:
		return o.remaining < best.remaining
	}
}

// Peek reports what a call of rule.Cost would get now, consuming nothing: Remaining and
// ResetAfter are those of now, RetryAfter is how long until such a call is allowed.
func (s *MemoryStore) Peek(_ context.Context, rule *Rule, identity string) (Decision, error) {
	if err := rule.Validate(); err != nil {
		return Decision{}, err
	}
	shard := &s.shards[maphash.String(s.seed, identity)%memoryShards]
	shard.mu.Lock()
	defer shard.mu.Unlock()
	st := shard.states[memoryKey{rule.Pool, identity, rule.Algorithm}]
	if st == nil {
		st = &limitState{}
	}
	return st.evaluate(rule, s.nowMs(), false).decision(rule), nil
}

// Reset forgets every count of identity in pool, under every algorithm: its next call
// starts afresh.
func (s *MemoryStore) Reset(_ context.Context, pool, identity string) error {
	if err := checkPool(pool); err != nil {
		return err
	}
	shard := &s.shards[maphash.String(s.seed, identity)%memoryShards]
	shard.mu.Lock()
	defer shard.mu.Unlock()
	for _, a := range []Algorithm{FixedWindow, SlidingWindow, GCRA} {
		delete(shard.states, memoryKey{pool, identity, a})
	}
	return nil
}

func (s *MemoryStore) nowMs() int64 { return int64(s.now() / time.Millisecond) }

// sweep drops ended state. A shard is scanned when it has doubled since its last scan, so
// a scan of n states follows at least n/2 new ones and the cost per call stays constant on
// average while memory stays within twice the state that is still live. It is also scanned
// once per the longest window it has seen, so that a shard no longer growing gives back
// what it holds.
func (sh *memoryShard) sweep(now, window int64) {
	sh.longest = max(sh.longest, window)
	if now < sh.nextSweep && len(sh.states) < sh.sweepAt {
		return
	}
	for key, st := range sh.states {
		if now >= st.expires {
			delete(sh.states, key)
		}
	}
	sh.nextSweep = now + sh.longest
	sh.sweepAt = max(2*len(sh.states), minSweepAt)
}

// Len reports how many (pool, identity, algorithm) states the store holds, ended ones not
// yet reclaimed included.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].states)
		s.shards[i].mu.Unlock()
	}
	return n
}

// decision is the Decision for rule from o.
func (o outcome) decision(rule *Rule) Decision {
	return Decision{
		Allowed:    o.allowed,
		Pool:       rule.Pool,
		Limit:      rule.Allowance,
		Remaining:  o.remaining,
		RetryAfter: time.Duration(o.retry) * time.Millisecond,
		ResetAfter: time.Duration(o.resetD) * time.Millisecond,
	}
}
