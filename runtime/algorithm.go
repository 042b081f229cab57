package runtime

import "fmt"

// Algorithm is how a Rule counts calls. Every algorithm allows a burst of up to Allowance
// cost units to an identity that has been quiet for a Window; they differ in how spent
// allowance comes back. Stores compute all three in whole milliseconds with the same integer
// arithmetic, so MemoryStore and RedisStore give the same decisions at the same times.
type Algorithm uint8

const (
	// FixedWindow: the first call of an identity opens a window of Rule.Window; calls in it
	// are counted by cost and at most Rule.Allowance is allowed; the first call after the
	// window ends opens a new one. Guarantee: at most Allowance per window as the store
	// sees windows, but up to 2×Allowance in an interval of one window length that straddles
	// two windows. Cheapest: one small hash per (pool, identity) in Redis.
	FixedWindow Algorithm = iota
	// SlidingWindow keeps a log of the allowed calls of the last Window (time and cost, calls
	// of the same millisecond merged). A call is allowed when the cost logged in the last
	// Window plus its own is at most Allowance. Guarantee: in every interval of one Window
	// length (any start, half-open, on the store's millisecond clock), the allowed calls
	// cost at most Allowance in total — exact, with no straddling burst. Memory grows with
	// the allowed calls of one window: up to Allowance entries per (pool, identity).
	SlidingWindow
	// GCRA is the generic cell rate algorithm: a token bucket of Allowance tokens that
	// refills continuously, one token every Window/Allowance (the emission interval), and a
	// call takes Cost tokens. Guarantee: at most Allowance + t×Allowance/Window cost units
	// in any interval of length t (so at most 2×Allowance in one Window, but only after a
	// full Window of quiet), and sustained traffic is smoothed to the rate instead of coming
	// in bursts at window starts. Constant memory: two numbers per (pool, identity).
	GCRA
)

// String is the name a directive uses for the algorithm: "fixed", "sliding" or "gcra".
func (a Algorithm) String() string {
	switch a {
	case FixedWindow:
		return "fixed"
	case SlidingWindow:
		return "sliding"
	case GCRA:
		return "gcra"
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// maxExact is the largest integer that Redis's Lua (IEEE doubles) holds exactly; stores
// keep every number they compute at or below it.
const maxExact = 1<<53 - 1

// cost is what one call under r consumes: Cost, where 0 means 1.
func (r *Rule) cost() int64 {
	if r.Cost == 0 {
		return 1
	}
	return r.Cost
}

// limitState is the state of one (pool, identity, algorithm), on a millisecond clock.
// The zero value is the state of an identity never seen, or whose state ended.
//
// FixedWindow: a is the count of the window ending at b.
// GCRA: a is the bucket's debt at time b, in units of milliseconds × Allowance: a call of
// cost c adds c×Window, and the debt drains by Allowance per millisecond. A call is allowed
// when the debt after it is at most Window×Allowance (the full bucket). In these units the
// emission interval Window/Allowance needs no division, so the arithmetic is exact.
// SlidingWindow: a is the total cost logged in log[head:], the allowed calls of the last
// window, oldest first.
type limitState struct {
	a, b    int64
	log     []logEntry
	head    int
	expires int64 // when the state is back to the zero value and may be dropped
}

type logEntry struct{ t, cost int64 }

// outcome is a store's answer for one rule, in milliseconds.
type outcome struct {
	allowed                  bool
	remaining, retry, resetD int64
}

// evaluate says what a call of rule's cost at now would get, without consuming anything;
// remaining and resetD are those after the call when consume is set and the call is
// allowed, and those of now otherwise. For SlidingWindow it drops log entries that ended,
// which changes no decision.
func (st *limitState) evaluate(rule *Rule, now int64, consume bool) outcome {
	w, allowance, cost := rule.Window.Milliseconds(), rule.Allowance, rule.cost()
	var o outcome
	switch rule.Algorithm {
	case FixedWindow:
		// A window never ends more than w from now: one stored under a longer window, or
		// before a clock stepped back, starts afresh instead of locking an identity out.
		count, end := st.a, st.b
		if end <= now || end > now+w {
			count, end = 0, now+w
		}
		o.allowed = count+cost <= allowance
		if o.allowed && consume {
			count += cost
		}
		o.remaining = allowance - count
		if !o.allowed {
			o.retry = end - now
		}
		if count > 0 {
			o.resetD = end - now
		}
	case GCRA:
		debt := st.gcraDebt(w, allowance, now)
		after := debt + cost*w
		full := w * allowance
		o.allowed = after <= full
		if !o.allowed {
			o.retry = ceilDiv(after-full, allowance)
		}
		if o.allowed && consume {
			debt = after
		}
		o.remaining = (full - debt) / w
		o.resetD = ceilDiv(debt, allowance)
	case SlidingWindow:
		st.prune(w, now)
		used := st.a
		o.allowed = used+cost <= allowance
		if !o.allowed {
			// The oldest entries that must end before cost fits; used+cost-allowance is
			// at most used since cost <= allowance, so the walk ends inside the log.
			need, freed := used+cost-allowance, int64(0)
			for _, e := range st.log[st.head:] {
				freed += e.cost
				if freed >= need {
					o.retry = e.t + w - now
					break
				}
			}
		}
		last := int64(-1)
		if n := len(st.log); n > st.head {
			last = st.log[n-1].t
		}
		if o.allowed && consume {
			used += cost
			last = now
		}
		o.remaining = allowance - used
		if last >= 0 {
			o.resetD = last + w - now
		}
	}
	return o
}

// commit consumes rule's cost at now; evaluate(rule, now, true) must have allowed it.
func (st *limitState) commit(rule *Rule, now int64) {
	w, allowance, cost := rule.Window.Milliseconds(), rule.Allowance, rule.cost()
	switch rule.Algorithm {
	case FixedWindow:
		if st.b <= now || st.b > now+w { // as in evaluate
			st.a, st.b = 0, now+w
		}
		st.a += cost
		st.expires = st.b
	case GCRA:
		st.a = st.gcraDebt(w, allowance, now) + cost*w
		st.b = now
		st.expires = now + ceilDiv(st.a, allowance)
	case SlidingWindow:
		st.a += cost
		if n := len(st.log); n > st.head && st.log[n-1].t == now {
			st.log[n-1].cost += cost
		} else {
			if len(st.log) == cap(st.log) && st.head > 0 {
				n := copy(st.log, st.log[st.head:])
				st.log, st.head = st.log[:n], 0
			}
			st.log = append(st.log, logEntry{now, cost})
		}
		st.expires = now + w
	}
}

// gcraDebt is the debt left at now. The debt is at most w×allowance (a larger one, stored
// under another rule, is capped), all drained after w. A debt stamped later than now (by a
// clock that since stepped back) is dropped, as fixed windows are, rather than drained
// only once the clock is back there.
func (st *limitState) gcraDebt(w, allowance, now int64) int64 {
	elapsed := now - st.b
	if elapsed >= w || elapsed < 0 {
		return 0
	}
	return min(max(st.a-elapsed*allowance, 0), w*allowance)
}

// prune drops log entries that ended: an entry at t counts while now < t+w. A log whose
// newest entry is later than now (written before a clock stepped back) is dropped whole.
func (st *limitState) prune(w, now int64) {
	if n := len(st.log); n > st.head && st.log[n-1].t > now {
		st.log, st.head, st.a = st.log[:0], 0, 0
		return
	}
	for st.head < len(st.log) && st.log[st.head].t+w <= now {
		st.a -= st.log[st.head].cost
		st.head++
	}
	if st.head == len(st.log) {
		st.log, st.head, st.a = st.log[:0], 0, 0
	}
}

// ceilDiv is ⌈a/b⌉ for b > 0, and 0 for a <= 0.
func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a-1)/b + 1
}
