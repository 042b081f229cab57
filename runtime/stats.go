package runtime

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Stats are a Limiter's counters since it was made, for export to a metrics system. Every
// count only grows; export them as counters (StoreDown as a gauge). A snapshot is cheap:
// a few atomic loads, no lock.
//
// With expvar:
//
//	expvar.Publish("limitgen", expvar.Func(func() any { return limiter.Stats() }))
//
// With Prometheus (client_golang), one CounterFunc per field:
//
//	prometheus.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
//		Name: "limitgen_denied_total", Help: "Calls denied by a rate limit.",
//	}, func() float64 { return float64(limiter.Stats().Denied) }))
type Stats struct {
	// Allowed and Denied count every decision, whatever made it.
	Allowed, Denied uint64
	// StoreErrors counts store calls that failed or gave no answer within the timeout.
	StoreErrors uint64
	// LocalDecisions counts calls decided in process memory while the store failed
	// (FailLocal); PolicyDecisions those decided by FailOpen or FailClosed.
	LocalDecisions, PolicyDecisions uint64
	// Outages counts the times the store started failing (for a Redis Cluster, each
	// master node apart). StoreDown reports whether it (or a node) is failing now: it
	// failed the last time it was asked, and calls still ask it. (A node that no call is
	// routed to any longer, after a cluster failover, no longer counts after a few
	// seconds.)
	Outages   uint64
	StoreDown bool
}

// stats holds a Limiter's counters. Allowed and denied are striped: every call adds to
// one, and one cache line shared by every core would make busy servers queue on it.
type stats struct {
	decisions                  [statStripes]decisionCount
	storeErrors, local, policy atomic.Uint64
	outages                    atomic.Uint64
}

const statStripes = 16

type decisionCount struct {
	allowed, denied atomic.Uint64
	_               [48]byte // one stripe per 64-byte cache line
}

// record counts one decision.
func (s *stats) record(d Decision) {
	c := &s.decisions[stripe()]
	if d.Allowed {
		c.allowed.Add(1)
	} else {
		c.denied.Add(1)
	}
}

// stripe picks a stripe for a call: at random, which spreads concurrent calls over the
// stripes without any shared state (the generator is per thread).
func stripe() int { return int(rand.Uint32() % statStripes) }

// staleOutage is how long after its last question a failing cluster node no longer
// counts as down for Stats.StoreDown.
const staleOutage = 5 * time.Second

// storeDown reports whether the store, or a node of it still asked, is failing.
func (l *Limiter) storeDown() bool {
	if l.health.outage.Load() {
		return true
	}
	down := false
	now := healthNow()
	l.nodes.Range(func(_, v any) bool {
		h := v.(*health)
		down = h.outage.Load() && now-time.Duration(h.retryAt.Load()) < staleOutage
		return !down
	})
	return down
}

// Stats returns the limiter's counters; see Stats.
func (l *Limiter) Stats() Stats {
	s := &l.stats
	st := Stats{
		StoreErrors:     s.storeErrors.Load(),
		LocalDecisions:  s.local.Load(),
		PolicyDecisions: s.policy.Load(),
		Outages:         s.outages.Load(),
		StoreDown:       l.storeDown(),
	}
	for i := range s.decisions {
		st.Allowed += s.decisions[i].allowed.Load()
		st.Denied += s.decisions[i].denied.Load()
	}
	return st
}
