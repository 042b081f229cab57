package runtime

import (
	"context"
	"log/slog"
	"time"
)

// AllowAll decides one call of identity under every rule at once, in one store round trip,
// all or nothing: a call denied by any rule consumes from none. Each rule consumes its
// Cost. When denied, the Decision is that of the denying rule with the longest RetryAfter
// (its Pool says which); when allowed, that of the rule with the least Remaining. Rules
// must not repeat a (Pool, Algorithm) pair; a call with an invalid rule is denied.
func (l *Limiter) AllowAll(rules []*Rule, identity string) Decision {
	ctx := context.Background()
	if len(rules) == 1 {
		return l.allowOne(ctx, rules[0], identity)
	}
	if err := checkRules(rules); err != nil {
		var first *Rule
		if len(rules) > 0 {
			first = rules[0]
		}
		return l.denyInvalid(first, err)
	}
	var d Decision
	if m, ok := l.store.(*MemoryStore); ok {
		d = m.take(rules, identity)
	} else {
		d = l.decideRemote(ctx, rules, identity)
	}
	l.logDenied(ctx, d, identity)
	return d
}

// allowOne decides a call under one rule. On a MemoryStore it allocates nothing.
func (l *Limiter) allowOne(ctx context.Context, rule *Rule, identity string) Decision {
	if err := rule.Validate(); err != nil {
		return l.denyInvalid(rule, err)
	}
	var d Decision
	if m, ok := l.store.(*MemoryStore); ok {
		one := [1]*Rule{rule}
		d = m.take(one[:], identity)
	} else {
		d = l.decideOneRemote(ctx, rule, identity)
	}
	l.logDenied(ctx, d, identity)
	return d
}

// decideOneRemote is kept apart from allowOne so that only a call that reaches the store
// allocates its one-rule slice.
func (l *Limiter) decideOneRemote(ctx context.Context, rule *Rule, identity string) Decision {
	if d, ok := l.denials.lookup1(rule, identity, l.denialNow()); ok {
		return d
	}
	return l.decideRemote(ctx, []*Rule{rule}, identity)
}

// decideRemote asks a remote store (or its fallback) unless a denial it gave is still
// running, and remembers the denials it gives.
func (l *Limiter) decideRemote(ctx context.Context, rules []*Rule, identity string) Decision {
	now := l.denialNow()
	if len(rules) > 1 {
		if d, ok := l.denials.lookup(rules, identity, now); ok {
			return d
		}
	}
	epoch := l.denials.epoch(identity)
	d := l.takeRemote(ctx, rules, identity)
	if !d.Allowed && d.RetryAfter > 0 && d.Source == SourceStore { // not outage decisions
		if rule := decidingRule(rules, d); rule != nil {
			l.denials.remember(rule, identity, d, now, epoch)
		}
	}
	return d
}

// decidingRule is the rule of rules whose pool is d's, or nil when several share it.
func decidingRule(rules []*Rule, d Decision) *Rule {
	var found *Rule
	for _, r := range rules {
		if r.Pool == d.Pool {
			if found != nil {
				return nil
			}
			found = r
		}
	}
	return found
}

// denialNow is the denial cache's clock: monotonic time since the cache began.
func (l *Limiter) denialNow() time.Duration {
	if l.denials.now != nil {
		return l.denials.now()
	}
	return time.Since(denialEpoch)
}

// logDenied counts every decision (see Stats) and logs a denied call at debug level.
func (l *Limiter) logDenied(ctx context.Context, d Decision, identity string) {
	l.stats.record(d)
	if !d.Allowed && l.logger.Enabled(ctx, slog.LevelDebug) {
		l.logger.DebugContext(ctx, "limitgen: call denied", "pool", d.Pool,
			"identity", shorten(identity), "retry_after", d.RetryAfter)
	}
}
