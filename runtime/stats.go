package runtime

import (
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

// stats holds a Limiter's counters. Allowed and denied, added to by every call, are on
// cache lines of their own, away from the Limiter's read-mostly fields.
type stats struct {
	_                          [64]byte
	allowed, denied            atomic.Uint64
	_                          [48]byte
	storeErrors, local, policy atomic.Uint64
	outages                    atomic.Uint64
}

// record counts one decision.
func (s *stats) record(d Decision) {
	if d.Allowed {
		s.allowed.Add(1)
	} else {
		s.denied.Add(1)
	}
}

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
	return Stats{
		Allowed:         s.allowed.Load(),
		Denied:          s.denied.Load(),
		StoreErrors:     s.storeErrors.Load(),
		LocalDecisions:  s.local.Load(),
		PolicyDecisions: s.policy.Load(),
		Outages:         s.outages.Load(),
		StoreDown:       l.storeDown(),
	}
}
