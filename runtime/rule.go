package runtime

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidRule is matched, with errors.Is, by the error a Store returns for a rule or cost
// it cannot count: see Rule.Validate. A Limiter denies such calls and logs the error once per
// pool.
var ErrInvalidRule = errors.New("invalid rate limit rule")

// MaxPoolLen is the longest pool name, in bytes, that a Rule may have.
const MaxPoolLen = 64

// Validate reports why rule cannot be counted, or nil. A rule needs a pool of 1 to
// MaxPoolLen bytes made of ASCII letters, digits and _ - . : (the names a directive
// accepts), a window of at least a millisecond (stores count in whole milliseconds), an
// allowance from 1 to 2^53-1 (exact in Redis's Lua), a cost from 0 (meaning 1) to the
// allowance and a known algorithm; GCRA also needs allowance × window in milliseconds
// below 2^52. Errors match ErrInvalidRule.
func (r *Rule) Validate() error {
	if r == nil {
		return fmt.Errorf("%w: nil rule", ErrInvalidRule)
	}
	if err := checkPool(r.Pool); err != nil {
		return err
	}
	if r.Window < time.Millisecond {
		return fmt.Errorf("%w: pool %q: window %v is shorter than 1ms", ErrInvalidRule, r.Pool,
			r.Window)
	}
	if r.Allowance < 1 || r.Allowance > maxExact {
		return fmt.Errorf("%w: pool %q: allowance %d is not from 1 to 2^53-1", ErrInvalidRule,
			r.Pool, r.Allowance)
	}
	if r.Cost < 0 || r.Cost > r.Allowance {
		return fmt.Errorf("%w: pool %q: cost %d is not from 1 (0 means 1) to the allowance %d",
			ErrInvalidRule, r.Pool, r.Cost, r.Allowance)
	}
	switch r.Algorithm {
	case FixedWindow, SlidingWindow:
	case GCRA:
		// The bucket is counted in units of ms × allowance; with a call's cost on top,
		// twice the full bucket must stay an exact integer in Redis's Lua.
		if ms := r.Window.Milliseconds(); r.Allowance > (maxExact/2)/ms {
			return fmt.Errorf("%w: pool %q: gcra needs allowance × window in ms below 2^52; "+
				"%d × %d is more: use a shorter window or the fixed or sliding algorithm",
				ErrInvalidRule, r.Pool, r.Allowance, ms)
		}
	default:
		return fmt.Errorf("%w: pool %q: unknown algorithm %v", ErrInvalidRule, r.Pool,
			r.Algorithm)
	}
	return nil
}

// checkPool validates a pool name; see Rule.Validate.
func checkPool(pool string) error {
	if len(pool) == 0 || len(pool) > MaxPoolLen {
		return fmt.Errorf("%w: pool %.80q must be 1 to %d bytes long", ErrInvalidRule, pool,
			MaxPoolLen)
	}
	for i := 0; i < len(pool); i++ {
		if !poolByte(pool[i]) {
			return fmt.Errorf("%w: pool %q may hold only ASCII letters, digits and _ - . : "+
				"(found %q)", ErrInvalidRule, pool, pool[i])
		}
	}
	return nil
}

// checkRules validates the rules of one call: at least one, each valid, and no two that
// would count in the same state (same pool and algorithm).
func checkRules(rules []*Rule) error {
	if len(rules) == 0 {
		return fmt.Errorf("%w: no rules", ErrInvalidRule)
	}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return err
		}
		for _, o := range rules[:i] {
			if o.Pool == r.Pool && o.Algorithm == r.Algorithm {
				return fmt.Errorf("%w: two %v rules of one call count in pool %q",
					ErrInvalidRule, r.Algorithm, r.Pool)
			}
		}
	}
	return nil
}

func poolByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '-' || c == '.' || c == ':'
}

// check validates a rule and a cost together, for Store implementations.
func check(rule *Rule, cost int64) error {
	if err := rule.Validate(); err != nil {
		return err
	}
	if cost < 1 {
		return fmt.Errorf("%w: pool %q: cost %d is less than 1", ErrInvalidRule, rule.Pool, cost)
	}
	return nil
}
