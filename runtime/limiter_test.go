package runtime

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/limitgen/limitgen/internal/redistest"
)

// logBuffer collects a Limiter's log lines, debug included.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// hungStore never answers until released, ignoring its context as a go-redis client
// without ContextTimeoutEnabled does with a hung server.
type hungStore struct {
	noAdmin
	release chan struct{}
	calls   atomic.Int64
}

func (s *hungStore) Take(context.Context, []*Rule, string) (Decision, error) {
	s.calls.Add(1)
	<-s.release
	return Decision{}, errors.New("released")
}

func TestLimiterAnswersWithinTimeoutWhileRedisHangs(t *testing.T) {
	server := redistest.Start(t)
	t.Run("ContextTimeoutEnabled off", func(t *testing.T) {
		// server.Client() leaves it off, the go-redis default.
		testHungRedis(t, server, func(opts ...Option) *Limiter {
			return New(NewRedisStore(server.Client()), opts...)
		})
	})
	t.Run("FromEnv", func(t *testing.T) {
		t.Setenv("REDIS_URL", server.URL())
		testHungRedis(t, server, func(opts ...Option) *Limiter {
			lim, err := FromEnv(opts...)
			if err != nil {
				t.Fatal(err)
			}
			if !lim.direct {
				t.Error("FromEnv's client does not honour deadlines")
			}
			t.Cleanup(func() { lim.Close() })
			return lim
		})
	})
}

func testHungRedis(t *testing.T, server *redistest.Server, newLimiter func(...Option) *Limiter) {
	var logs logBuffer
	lim := newLimiter(WithTimeout(50*time.Millisecond), WithLogger(logs.logger()))
	rule := &Rule{Pool: "hang", Window: time.Minute, Allowance: 2}
	id := t.Name()
	if !lim.Allow(rule, id).Allowed {
		t.Fatal("first call denied")
	}

	server.Pause()
	allowed := 0
	for i := range 5 {
		start := time.Now()
		if lim.Allow(rule, id).Allowed {
			allowed++
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Fatalf("call %d took %v while Redis hung, want about the 50ms timeout", i, took)
		}
	}
	if allowed != 2 {
		t.Errorf("while Redis hung: %d of 5 calls allowed, want the rule's 2 enforced locally",
			allowed)
	}

	server.Resume()
	waitForRecoveryLog(t, &logs, func() { lim.Allow(rule, "hank") })
	if n := strings.Count(logs.String(), "store failed"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestLimiterAsksAHungStoreOneCallAtATime(t *testing.T) {
	store := &hungStore{release: make(chan struct{})}
	defer close(store.release)
	var logs logBuffer
	lim := New(store, WithTimeout(20*time.Millisecond), WithLogger(logs.logger()))
	rule := &Rule{Pool: "hung", Window: time.Minute, Allowance: 100}
	lim.Allow(rule, "first") // finds the outage

	var allowed, slow atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 5 {
				start := time.Now()
				if lim.Allow(rule, "ivy").Allowed {
					allowed.Add(1)
				}
				if time.Since(start) > time.Second {
					slow.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := slow.Load(); n > 0 {
		t.Errorf("%d calls took over a second", n)
	}
	if got := allowed.Load(); got != 100 {
		t.Errorf("%d of 320 calls allowed during the outage, want the allowance of 100", got)
	}
	if n := store.calls.Load(); n >= 64 {
		t.Errorf("store asked %d times during the outage, want one call at a time", n)
	}
	if n := strings.Count(logs.String(), "store failed"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, logs.String())
	}
}

// panicStore panics on every call.
type panicStore struct{ noAdmin }

func (panicStore) Take(context.Context, []*Rule, string) (Decision, error) {
	panic("broken store")
}

func TestLimiterSurvivesAPanickingStore(t *testing.T) {
	var logs logBuffer
	lim := New(panicStore{}, WithLogger(logs.logger()))
	rule := &Rule{Pool: "panic", Window: time.Minute, Allowance: 1}
	if !lim.Allow(rule, "jo").Allowed || lim.Allow(rule, "jo").Allowed {
		t.Fatal("with a panicking store, want the rule enforced locally: 1 allowed, then denied")
	}
	if !strings.Contains(logs.String(), "broken store") {
		t.Errorf("the panic is not in the outage log:\n%s", logs.String())
	}
}

// countingStore counts its calls and allows everything.
type countingStore struct {
	noAdmin
	calls atomic.Int64
}

func (s *countingStore) Take(context.Context, []*Rule, string) (Decision, error) {
	s.calls.Add(1)
	return Decision{Allowed: true}, nil
}

func TestInvalidRulesAreDeniedAndLoggedOnce(t *testing.T) {
	var logs logBuffer
	store := &countingStore{}
	lim := New(store, WithLogger(logs.logger()))
	bad := []struct {
		rule *Rule
		cost int64
	}{
		{nil, 1},
		{&Rule{Pool: "", Window: time.Second, Allowance: 1}, 1},
		{&Rule{Pool: strings.Repeat("p", MaxPoolLen+1), Window: time.Second, Allowance: 1}, 1},
		{&Rule{Pool: "with space", Window: time.Second, Allowance: 1}, 1},
		{&Rule{Pool: "{tag}", Window: time.Second, Allowance: 1}, 1},
		{&Rule{Pool: "short", Window: time.Microsecond, Allowance: 1}, 1},
		{&Rule{Pool: "none", Window: time.Second, Allowance: 0}, 1},
		{&Rule{Pool: "free", Window: time.Second, Allowance: 1}, 0},
		{&Rule{Pool: "refund", Window: time.Second, Allowance: 1}, -5},
	}
	for _, b := range bad {
		for range 3 {
			d := lim.AllowN(context.Background(), b.rule, "kim", b.cost)
			if d.Allowed {
				t.Errorf("rule %+v cost %d: allowed, want denied", b.rule, b.cost)
			}
			// A wrapper must neither disconnect the caller nor tell it to retry: the bug
			// is the server's.
			if d.Exceeded() || d.Source != SourceInvalid {
				t.Errorf("rule %+v cost %d: Exceeded %v, Source %v; want a denial by an "+
					"invalid rule, not a caller over its limit", b.rule, b.cost, d.Exceeded(),
					d.Source)
			}
			if err := d.Err(); !errors.Is(err, ErrInvalidRule) || errors.Is(err, ErrLimited) {
				t.Errorf("rule %+v cost %d: Err() = %v, want ErrInvalidRule and not ErrLimited",
					b.rule, b.cost, err)
			}
		}
		if b.cost == 1 && !errors.Is(b.rule.Validate(), ErrInvalidRule) {
			t.Errorf("rule %+v: Validate = %v, want ErrInvalidRule", b.rule, b.rule.Validate())
		}
		_, err := takeCost(NewMemoryStore(), b.rule, "kim", b.cost)
		if !errors.Is(err, ErrInvalidRule) {
			t.Errorf("rule %+v cost %d: MemoryStore.Take = %v, want ErrInvalidRule",
				b.rule, b.cost, err)
		}
	}
	if d := lim.AllowAll(nil, "kim"); d.Allowed || d.Exceeded() || d.Source != SourceInvalid {
		t.Errorf("AllowAll with no rules: %+v, want a denial by invalid rules", d)
	}
	if n := store.calls.Load(); n != 0 {
		t.Errorf("the store was asked %d times about invalid rules", n)
	}
	text := logs.String()
	if n := strings.Count(text, "invalid rule"); n != len(bad) {
		t.Errorf("%d invalid-rule log lines for %d bad rules called 3 times each, want one "+
			"per pool:\n%s", n, len(bad), text)
	}
	if strings.Contains(text, "store failed") {
		t.Errorf("an invalid rule was taken for a store outage:\n%s", text)
	}
	good := &Rule{Pool: "Az09_-.:", Window: time.Millisecond, Allowance: 1}
	if err := good.Validate(); err != nil {
		t.Errorf("valid rule %+v: %v", good, err)
	}
}

func TestDeniedCallsAreLoggedWithAShortIdentity(t *testing.T) {
	var logs logBuffer
	lim := New(nil, WithLogger(logs.logger()))
	rule := &Rule{Pool: "log", Window: time.Minute, Allowance: 1}
	huge := strings.Repeat("é", 5000)
	lim.Allow(rule, huge)
	if logs.String() != "" {
		t.Fatalf("an allowed call was logged:\n%s", logs.String())
	}
	lim.Allow(rule, huge)
	text := logs.String()
	if !strings.Contains(text, "level=DEBUG") || !strings.Contains(text, "pool=log") ||
		!strings.Contains(text, "(10000 bytes)") {
		t.Fatalf("denied call not logged at debug with pool and a shortened identity:\n%s", text)
	}
	if len(text) > 400 || strings.Contains(text, `\x`) {
		t.Fatalf("log line of %d bytes for a huge identity, or a character cut in half:\n%s",
			len(text), text)
	}
}

func TestOptionsKeepDefaults(t *testing.T) {
	lim := New(nil, WithLogger(nil), WithTimeout(0))
	if lim.logger == nil || lim.timeout != DefaultTimeout {
		t.Fatalf("WithLogger(nil), WithTimeout(0): logger %v timeout %v, want the defaults",
			lim.logger, lim.timeout)
	}
	rule := &Rule{Pool: "defaults", Window: time.Minute, Allowance: 1}
	lim.Allow(rule, "lee")
	lim.Allow(rule, "lee") // logs the denial through the default logger without panicking
}
