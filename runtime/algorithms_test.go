package runtime

import (
	"context"
	"errors"
)

// noAdmin gives a test store the Peek and Reset of Store, failing.
type noAdmin struct{}

func (noAdmin) Peek(context.Context, *Rule, string) (Decision, error) {
	return Decision{}, errors.New("no peek")
}

func (noAdmin) Reset(context.Context, string, string) error { return errors.New("no reset") }

// takeCost decides one call under a copy of rule that costs cost, which must be at least
// 1 (a Rule's Cost of 0 means 1), as Limiter.AllowN does.
func takeCost(s Store, rule *Rule, identity string, cost int64) (Decision, error) {
	if err := check(rule, cost); err != nil {
		return Decision{}, err
	}
	r := *rule
	r.Cost = cost
	return s.Take(context.Background(), []*Rule{&r}, identity)
}
