package runtime

import "context"

// Peek reports, for admin tools, how close identity is to rule's limit, consuming
// nothing: Remaining and ResetAfter as of now, and whether a call of rule.Cost would be
// allowed now (Allowed) or after how long (RetryAfter). It asks the store, waiting at most
// the limiter's timeout (and until ctx ends), and returns its error instead of falling
// back: while a remote store fails, calls are decided in process memory, which a Peek
// does not see.
func (l *Limiter) Peek(ctx context.Context, rule *Rule, identity string) (Decision, error) {
	if err := rule.Validate(); err != nil {
		return Decision{}, err
	}
	return withDeadline(ctx, l, func(ctx context.Context) (Decision, error) {
		return l.store.Peek(ctx, rule, identity)
	})
}

// Reset forgets, for admin tools ("unban this user"), everything identity consumed in
// pool under every algorithm: its next call there starts with the full allowance. It
// clears the store, this process's fallback counts and the denials this process replays
// (see WithDenialCache); other server instances on the same Redis may replay a denial
// they saw until it runs out. It waits at most the limiter's timeout (and until ctx ends).
func (l *Limiter) Reset(ctx context.Context, pool, identity string) error {
	if err := checkPool(pool); err != nil {
		return err
	}
	l.denials.forget(pool, identity)
	if l.fallback != nil {
		l.fallback.Reset(ctx, pool, identity)
	}
	_, err := withDeadline(ctx, l, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, l.store.Reset(ctx, pool, identity)
	})
	if err != nil {
		return err
	}
	// A call that was being denied while the store reset may have put a denial back.
	l.denials.forget(pool, identity)
	return nil
}

// withDeadline runs f, an admin call to the store, with the limiter's deadline: directly
// when the store ends its calls at their deadline, else on a goroutine of its own (see
// onTime). Take has its own path, ask, which allocates no closure.
func withDeadline[T any](ctx context.Context, l *Limiter,
	f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	if l.direct {
		return f(ctx)
	}
	return onTime(ctx, l.timeout, f)
}
