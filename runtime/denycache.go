package runtime

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// denialCache remembers, per (rule, identity), until when a remote store denied calls, so
// that a flood of denied calls costs one store round trip per denial, not one per call.
// A denial lasts at least its RetryAfter whatever else happens in the store (other calls
// only consume more), except after a Reset, which clears the entries of its process.
//
// Entries are keyed by every field of the rule, so that a denial under one rule never
// denies a call under another rule of the same identity, and they end when their denial
// ends. Memory is bounded: a shard is swept of ended entries when it doubles or once a
// minute when it takes new entries, and holds at most maxDenialsPerShard.
type denialCache struct {
	shards [denialShards]denialShard
	// maxAge caps how long a denial is replayed; zero means its whole RetryAfter.
	maxAge time.Duration
	off    bool
	now    func() time.Duration // tests' clock; nil means time since denialEpoch
}

const (
	denialShards       = 32
	maxDenialsPerShard = 4096
	denialSweepEvery   = time.Minute
)

var (
	denialSeed  = maphash.MakeSeed()
	denialEpoch = time.Now()
)

type denialKey struct {
	pool, identity  string
	window          time.Duration
	allowance, cost int64
	algorithm       Algorithm
}

type denialEntry struct {
	until, resetAt time.Duration
	remaining      int64
}

type denialShard struct {
	mu      sync.Mutex
	entries map[denialKey]denialEntry
	// resets counts the forgets of the shard's identities, so that a denial the store
	// gave before a Reset is not remembered after it (see epoch).
	resets    atomic.Uint64
	sweepAt   int
	nextSweep time.Duration
	firstEnd  time.Duration // no entry ends before, so a full shard has nothing to sweep
}

// WithDenialCache caps how long a Limiter on a remote store (Redis) replays a denial in
// process instead of asking the store again. By default a denial is replayed for its whole
// RetryAfter: a caller denied until T is denied without a round trip until T. A Reset on
// another server instance cannot clear this process's replays, so a cap bounds how long an
// unbanned caller may still be denied here. Zero or a negative maxAge turns replays off.
// A MemoryStore decides as fast as the cache would, so it never uses it.
func WithDenialCache(maxAge time.Duration) Option {
	return func(l *Limiter) {
		l.denials.off = maxAge <= 0
		l.denials.maxAge = maxAge
	}
}

func denialKeyOf(rule *Rule, identity string) denialKey {
	return denialKey{rule.Pool, identity, rule.Window, rule.Allowance, rule.cost(),
		rule.Algorithm}
}

func (c *denialCache) shard(identity string) *denialShard {
	return &c.shards[maphash.String(denialSeed, identity)%denialShards]
}

// lookup1 returns the running denial of identity under rule, if any. It allocates nothing:
// lookup keeps no reference to its rules, so the one-rule slice stays on the stack.
func (c *denialCache) lookup1(rule *Rule, identity string, now time.Duration) (Decision,
	bool) {
	one := [1]*Rule{rule}
	return c.lookup(one[:], identity, now)
}

// lookup returns the running denial of identity under any of rules that lasts longest.
func (c *denialCache) lookup(rules []*Rule, identity string, now time.Duration) (Decision,
	bool) {
	if c.off {
		return Decision{}, false
	}
	sh := c.shard(identity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var best Decision
	found := false
	for _, rule := range rules {
		if d, ok := sh.find(rule, identity, now); ok && (!found || d.RetryAfter > best.RetryAfter) {
			best, found = d, true
		}
	}
	return best, found
}

func (sh *denialShard) find(rule *Rule, identity string, now time.Duration) (Decision, bool) {
	if len(sh.entries) == 0 {
		return Decision{}, false
	}
	key := denialKeyOf(rule, identity)
	e, ok := sh.entries[key]
	if !ok {
		return Decision{}, false
	}
	if now >= e.until {
		delete(sh.entries, key)
		return Decision{}, false
	}
	retry := e.until - now
	return Decision{Pool: rule.Pool, Limit: rule.Allowance, Remaining: e.remaining,
		RetryAfter: retry, ResetAfter: max(e.resetAt-now, retry)}, true
}

// epoch is a mark to take before asking the store about identity and to give to remember
// with the store's denial: a Reset in between makes remember drop the denial, which the
// store may have given from the state the Reset cleared.
func (c *denialCache) epoch(identity string) uint64 {
	return c.shard(identity).resets.Load()
}

// remember records that d, a denial of identity under rule decided at now, runs for
// d.RetryAfter, unless identity's shard was reset since epoch.
func (c *denialCache) remember(rule *Rule, identity string, d Decision, now time.Duration,
	epoch uint64) {
	if c.off {
		return
	}
	age := d.RetryAfter
	if c.maxAge > 0 {
		age = min(age, c.maxAge)
	}
	entry := denialEntry{until: now + age, resetAt: now + d.ResetAfter, remaining: d.Remaining}
	key := denialKeyOf(rule, identity)
	sh := c.shard(identity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.resets.Load() != epoch {
		return
	}
	if sh.entries == nil {
		sh.entries = map[denialKey]denialEntry{}
	}
	if _, ok := sh.entries[key]; ok {
		sh.entries[key] = entry
		return
	}
	full := len(sh.entries) >= maxDenialsPerShard
	if len(sh.entries) >= sh.sweepAt || now >= sh.nextSweep || full && now >= sh.firstEnd {
		sh.firstEnd = 1<<63 - 1
		for k, e := range sh.entries {
			if now >= e.until {
				delete(sh.entries, k)
			} else {
				sh.firstEnd = min(sh.firstEnd, e.until)
			}
		}
		sh.sweepAt = max(2*len(sh.entries), minSweepAt)
		sh.nextSweep = now + denialSweepEvery
	}
	if len(sh.entries) >= maxDenialsPerShard {
		return // full of running denials: this one is asked of the store each time
	}
	key.identity = strings.Clone(identity)
	sh.entries[key] = entry
	sh.firstEnd = min(sh.firstEnd, entry.until)
}

// forget drops the denials of identity in pool, whatever their rule.
func (c *denialCache) forget(pool, identity string) {
	sh := c.shard(identity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.resets.Add(1)
	for k := range sh.entries {
		if k.pool == pool && k.identity == identity {
			delete(sh.entries, k)
		}
	}
}

// len reports how many denials the cache holds, ended ones not yet swept included.
func (c *denialCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].entries)
		c.shards[i].mu.Unlock()
	}
	return n
}
