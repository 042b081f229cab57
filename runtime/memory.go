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

// memoryShard holds the identities whose hash falls in it. Each identity has a small list
// of (pool, algorithm) states, usually one: a call looks its identity up once, hashing
// only the identity, whatever the number of its rules.
type memoryShard struct {
	mu  sync.Mutex
	ids map[string]*identityStates
	n   int // states held
	// longest is the longest window any rule has used in the shard; nextSweep is when
	// the shard is next scanned for ended state by time (in ms), and sweepAt the number of
	// states at which it is scanned because it grew.
	longest, nextSweep int64
	sweepAt            int
	last               int64 // the latest time a call was decided at
}

type identityStates struct {
	list  []poolState // aliases first until an identity has a second state
	first [1]poolState
}

type poolState struct {
	pool      string
	algorithm Algorithm
	limitState
}

// find returns identity's state under (pool, algorithm), or nil.
func (ids *identityStates) find(pool string, a Algorithm) *limitState {
	if ids == nil {
		return nil
	}
	for i := range ids.list {
		if p := &ids.list[i]; p.algorithm == a && p.pool == pool {
			return &p.limitState
		}
	}
	return nil
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
		s.shards[i].ids = map[string]*identityStates{}
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
	now := s.nowMs() // read before locking, to hold the lock for less
	shard.mu.Lock()
	// Goroutines may lock in another order than they read the clock: the shard's clock
	// never goes back.
	now = max(now, shard.last)
	shard.last = now
	var longest time.Duration
	for _, rule := range rules {
		longest = max(longest, rule.Window)
	}
	shard.sweep(now, longest.Milliseconds())
	ids := shard.ids[identity]

	// States found, remembered for the commit when there are few rules (there usually is
	// one); adding a state may move the others, so existing ones are committed first.
	var found [4]*limitState
	var pick outcome
	picked := -1
	allowed, missing := true, false
	for i, rule := range rules {
		st := ids.find(rule.Pool, rule.Algorithm)
		if i < len(found) {
			found[i] = st
		}
		if st == nil {
			st, missing = &limitState{}, true // stays on the stack: evaluate keeps no pointer
		}
		o := st.evaluate(rule, now, true)
		if picked < 0 || better(o, pick) {
			pick, picked = o, i
		}
		allowed = allowed && o.allowed
	}
	if allowed {
		for i, rule := range rules {
			var st *limitState
			if i < len(found) {
				st = found[i]
			} else {
				st = ids.find(rule.Pool, rule.Algorithm)
			}
			if st != nil {
				st.commit(rule, now)
			}
		}
		if missing {
			shard.add(ids, rules, identity, now)
		}
	}
	shard.mu.Unlock()
	return pick.decision(rules[picked])
}

// add creates and commits the states of rules that identity does not have yet.
func (sh *memoryShard) add(ids *identityStates, rules []*Rule, identity string, now int64) {
	if ids == nil {
		ids = &identityStates{}
		ids.list = ids.first[:0]
		// The map keeps a clone of the identity, not whatever larger buffer the caller's
		// identity was cut from.
		sh.ids[strings.Clone(identity)] = ids
	}
	for _, rule := range rules {
		if ids.find(rule.Pool, rule.Algorithm) == nil {
			ids.list = append(ids.list, poolState{pool: rule.Pool, algorithm: rule.Algorithm})
			ids.list[len(ids.list)-1].commit(rule, now)
			sh.n++
		}
	}
}

// better reports whether o decides a call under several rules rather than best: a denial
// over any allowance, the longest wait among denials, the least remaining among
// allowances.
func better(o, best outcome) bool {
	switch {
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
	st := shard.ids[identity].find(rule.Pool, rule.Algorithm)
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
	if ids := shard.ids[identity]; ids != nil {
		shard.keep(identity, ids, func(p *poolState) bool { return p.pool != pool })
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
	if now < sh.nextSweep && sh.n < sh.sweepAt {
		return
	}
	for identity, ids := range sh.ids {
		sh.keep(identity, ids, func(p *poolState) bool { return now < p.expires })
	}
	sh.nextSweep = now + sh.longest
	sh.sweepAt = max(2*sh.n, minSweepAt)
}

// keep drops the states of identity for which keep is false, and the identity when none
// is left.
func (sh *memoryShard) keep(identity string, ids *identityStates, keep func(*poolState) bool) {
	kept := ids.list[:0]
	for i := range ids.list {
		if keep(&ids.list[i]) {
			kept = append(kept, ids.list[i])
		}
	}
	sh.n -= len(ids.list) - len(kept)
	clear(ids.list[len(kept):]) // let go of dropped logs
	ids.list = kept
	if len(kept) == 0 {
		delete(sh.ids, identity)
	}
}

// Len reports how many (pool, identity, algorithm) states the store holds, ended ones not
// yet reclaimed included.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += s.shards[i].n
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
