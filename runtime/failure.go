package runtime

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// FailurePolicy is what a Limiter does with a call when its store (Redis) fails: errs,
// does not answer within the timeout (see WithTimeout), or is known to be failing and not
// due to be asked again yet. It applies only to a remote store; a MemoryStore does not
// fail. Whatever the policy, a call never waits for the store longer than the timeout and
// never panics, and the store is asked again with backoff until it answers.
type FailurePolicy uint8

const (
	// FailLocal, the default, keeps enforcing the same rules in an in-process MemoryStore
	// while the store fails. Each server instance then enforces the limits on its own:
	// with N instances an identity may get up to N allowances per window, and what was
	// counted locally is not carried to the store when it is back. Decisions have
	// Source SourceLocal.
	FailLocal FailurePolicy = iota
	// FailOpen allows every call while the store fails: no limit at all, no lost traffic.
	// Decisions have Source SourcePolicy.
	FailOpen
	// FailClosed denies every call while the store fails: the limit is never exceeded,
	// but every caller is refused until the store is back. Denials have Source
	// SourcePolicy and a RetryAfter of the time until the store is asked again.
	FailClosed
)

// String is the policy's name: "local", "open" or "closed".
func (p FailurePolicy) String() string {
	switch p {
	case FailLocal:
		return "local"
	case FailOpen:
		return "open"
	case FailClosed:
		return "closed"
	}
	return fmt.Sprintf("FailurePolicy(%d)", uint8(p))
}

// WithFailurePolicy sets what a Limiter on a remote store does with calls while the store
// fails; see FailurePolicy. The default is FailLocal. An unknown policy means FailLocal.
func WithFailurePolicy(p FailurePolicy) Option {
	return func(l *Limiter) {
		if p <= FailClosed {
			l.policy = p
		}
	}
}

// Source says what made a Decision.
type Source uint8

const (
	// SourceStore: the limiter's store decided (Redis, or the MemoryStore of a limiter made
	// without one), or the denial is the replay of one the store gave (see
	// WithDenialCache). It is the zero value: stores never set Source.
	SourceStore Source = iota
	// SourceLocal: the store failed and the in-process fallback store decided under the
	// same rules (FailLocal).
	SourceLocal
	// SourcePolicy: the store failed and the failure policy decided (FailOpen or
	// FailClosed) without counting the call anywhere. Remaining and ResetAfter are zero.
	SourcePolicy
	// SourceInvalid: the call's rule was invalid (see Rule.Validate), so the limiter denied
	// it without counting it anywhere and logged why. It is a bug in the rule, not a caller
	// over a limit: Exceeded is false and Err matches ErrInvalidRule, not ErrLimited.
	SourceInvalid
)

// String is the source's name: "store", "local", "policy" or "invalid".
func (s Source) String() string {
	switch s {
	case SourceStore:
		return "store"
	case SourceLocal:
		return "local"
	case SourcePolicy:
		return "policy"
	case SourceInvalid:
		return "invalid"
	}
	return fmt.Sprintf("Source(%d)", uint8(s))
}

// Backoff between questions to a failing store: the first retry comes minBackoff after
// the failure, and each failed retry doubles the wait up to maxBackoff, each wait jittered
// down by up to a half so that server instances do not retry in step. maxBackoff bounds
// how long limits stay local after the store answers again.
const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = 250 * time.Millisecond
)

// healthEpoch is the zero of the limiter's monotonic clock for retry times.
var healthEpoch = time.Now()

func healthNow() time.Duration { return time.Since(healthEpoch) }

// jitter is a wait drawn from [d/2, d].
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// health is whether a store, or one node of a Redis Cluster, is failing. During an outage
// the store is asked again at retryAt (on healthNow's clock), by one call at a time (the
// one holding probing); backoff is the wait last scheduled.
type health struct {
	node             string // the cluster node's address, or "" for the whole store
	outage, probing  atomic.Bool
	retryAt, backoff atomic.Int64
}

// dueToAsk reports, during an outage, whether this call should ask the store: the retry
// time has come and no other call is asking. It then holds h.probing, which the caller
// releases.
func (h *health) dueToAsk() bool {
	if healthNow() < time.Duration(h.retryAt.Load()) {
		return false
	}
	return h.probing.CompareAndSwap(false, true)
}

// scheduleRetry sets when a failing store is next asked: after the first failure of an
// outage (first) the shortest wait, after a failed retry twice the last one, at most
// the longest.
func (h *health) scheduleRetry(first bool, shortest, longest time.Duration) {
	wait := shortest
	if !first {
		wait = max(min(2*time.Duration(h.backoff.Load()), longest), shortest)
	}
	h.backoff.Store(int64(wait))
	h.retryAt.Store(int64(healthNow() + jitter(wait)))
}

// untilRetry is how long until the store is next asked, at least a millisecond.
func (h *health) untilRetry() time.Duration {
	return max(time.Duration(h.retryAt.Load())-healthNow(), time.Millisecond)
}

// logAttrs names the node in outage log lines.
func (h *health) logAttrs() []any {
	if h.node == "" {
		return nil
	}
	return []any{"node", h.node}
}

// partitioned is a store made of parts that fail apart: a RedisStore on a Redis Cluster.
type partitioned interface {
	// nodeOf names the part that decides identity's calls under rules, or "" when
	// unknown, without waiting.
	nodeOf(rules []*Rule, identity string) string
}

// endedContext is a context that has ended.
var endedContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// healthOf is the health of the part of the store that decides identity's calls: for a
// Redis Cluster, of the master node that holds identity's slot, so that a node that fails
// puts only its own identities under the failure policy while the others are still
// decided by the store; otherwise of the whole store.
func (l *Limiter) healthOf(rules []*Rule, identity string) *health {
	p, ok := l.store.(partitioned)
	if !ok {
		return &l.health
	}
	node := p.nodeOf(rules, identity)
	if node == "" {
		return &l.health
	}
	if h, ok := l.nodes.Load(node); ok {
		return h.(*health)
	}
	h, _ := l.nodes.LoadOrStore(node, &health{node: node})
	return h.(*health)
}

// nodeOf names the cluster master node that holds identity's keys, from the client's
// cached view of the cluster, without waiting; "" for a client of one server (or
// Sentinel), or when the client has not learnt the cluster's layout yet (its first
// command, the Take that follows, does).
func (s *RedisStore) nodeOf(rules []*Rule, identity string) string {
	c, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return ""
	}
	key := redisKeyOf(redisTag(identity), rules[0].Pool, rules[0].Algorithm)
	// With a layout cached, MasterForKey does not use its context; without one, the
	// ended context makes it give up at once instead of loading it.
	master, err := c.MasterForKey(endedContext, key)
	if err != nil {
		return ""
	}
	return master.Options().Addr
}

// decideFailed decides a call while the store (or its part h) fails, by the limiter's
// policy.
func (l *Limiter) decideFailed(h *health, rules []*Rule, identity string) Decision {
	var d Decision
	switch l.policy {
	case FailOpen:
		d = Decision{Allowed: true, Pool: rules[0].Pool, Limit: rules[0].Allowance,
			Source: SourcePolicy}
		l.stats.policy.Add(1)
	case FailClosed:
		d = Decision{Pool: rules[0].Pool, Limit: rules[0].Allowance,
			RetryAfter: h.untilRetry(), Source: SourcePolicy}
		l.stats.policy.Add(1)
	default:
		d = l.fallback.take(rules, identity)
		d.Source = SourceLocal
		l.stats.local.Add(1)
	}
	return d
}

// policyWords says, for the outage log line, what the policy does with calls.
func (l *Limiter) policyWords() string {
	switch l.policy {
	case FailOpen:
		return "allowing every call (FailOpen)"
	case FailClosed:
		return "denying every call (FailClosed)"
	}
	return "enforcing limits in this process"
}
