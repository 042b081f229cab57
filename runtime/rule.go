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
// accepts), a window of at least a millisecond (the Redis store's resolution) and an
// allowance of at least one call. Errors match ErrInvalidRule.
func (r *Rule) Validate() error {
	if r == nil {
		return fmt.Errorf("%w: nil rule", ErrInvalidRule)
	}
	if len(r.Pool) == 0 || len(r.Pool) > MaxPoolLen {
		return fmt.Errorf("%w: pool %.80q must be 1 to %d bytes long", ErrInvalidRule, r.Pool,
			MaxPoolLen)
	}
	for i := 0; i < len(r.Pool); i++ {
		if !poolByte(r.Pool[i]) {
			return fmt.Errorf("%w: pool %q may hold only letters, digits and _ - . : "+
				"(found %q)", ErrInvalidRule, r.Pool, r.Pool[i])
		}
	}
	if r.Window < time.Millisecond {
		return fmt.Errorf("%w: pool %q: window %v is shorter than 1ms", ErrInvalidRule, r.Pool,
			r.Window)
	}
	if r.Allowance < 1 {
		return fmt.Errorf("%w: pool %q: allowance %d is less than 1", ErrInvalidRule, r.Pool,
			r.Allowance)
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
