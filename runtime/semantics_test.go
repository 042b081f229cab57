package runtime

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// adversary is a schedule of calls built to find the weak spot of window algorithms:
// bursts just before and at window boundaries (for the store's first window and any
// window the schedule could have opened), costs of 1 to 3, and quiet gaps of every length.
func adversary(w int64, n int) []step {
	rng := rand.New(rand.NewPCG(1, 2))
	gaps := []int64{0, 0, 0, 1, 2, w / 100, w / 20, w / 20, w / 2, w - 1, w, w + 1}
	var at int64
	var out []step
	for range n {
		switch rng.IntN(12) {
		case 0:
			at = (at/w+1)*w - 1 // the last ms of a window that started at a multiple of w
		case 1:
			at = (at/w + 1) * w
		default:
			at += gaps[rng.IntN(len(gaps))] + rng.Int64N(3)
		}
		out = append(out, step{At: at, Cost: 1 + rng.Int64N(3)})
	}
	return out
}

// allowedLog runs schedule against store under rule and returns the allowed calls.
func allowedLog(t *testing.T, sc clocked, rule Rule, schedule []step) []step {
	t.Helper()
	var got []step
	for _, s := range schedule {
		sc.set(s.At)
		r := rule
		r.Cost = s.Cost
		d, err := sc.store.Take(context.Background(), []*Rule{&r}, "adversary-"+rule.Pool)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			got = append(got, s)
		}
	}
	return got
}

// maxInWindow is the most cost allowed in any interval [s, s+w) by log, sorted by time.
func maxInWindow(log []step, w int64) int64 {
	var most, sum int64
	start := 0
	for _, s := range log {
		sum += s.Cost
		for log[start].At+w <= s.At {
			sum -= log[start].Cost
			start++
		}
		most = max(most, sum)
	}
	return most
}

// TestSlidingWindowNeverExceedsAllowanceInAnyWindow checks the sliding guarantee against
// an adversarial schedule: in every interval of one window length, allowed calls cost at
// most the allowance. It also checks that sliding allows every call the guarantee lets
// through (a call is denied only when the last window's allowed cost plus its own would
// exceed the allowance), that memory and Redis allow exactly the same calls, and that
// the schedule does break fixed windows (up to twice the allowance) and that GCRA stays
// within its own bound.
func TestSlidingWindowNeverExceedsAllowanceInAnyWindow(t *testing.T) {
	const w, allowance = 60_000, 10
	schedule := adversary(w, 1500)
	stores := clockedStores(t)
	var logs [][]step
	for _, sc := range stores {
		rule := Rule{Pool: "adv-sliding", Window: w * time.Millisecond, Allowance: allowance,
			Algorithm: SlidingWindow}
		log := allowedLog(t, sc, rule, schedule)
		if most := maxInWindow(log, w); most > allowance {
			t.Errorf("%s: %d allowed in one window, want at most %d", sc.name, most, allowance)
		}
		// Maximal: replay the schedule with an oracle deciding from the allowed log.
		var oracle []step
		for _, s := range schedule {
			var used int64
			for _, a := range oracle {
				if a.At+w > s.At {
					used += a.Cost
				}
			}
			if used+s.Cost <= allowance {
				oracle = append(oracle, s)
			}
		}
		if fmt.Sprint(oracle) != fmt.Sprint(log) {
			t.Errorf("%s: %d calls allowed, the exact sliding log allows %d", sc.name,
				len(log), len(oracle))
		}
		logs = append(logs, log)
		t.Logf("%s sliding: %d of %d calls allowed, at most %d in one window", sc.name,
			len(log), len(schedule), maxInWindow(log, w))
	}
	if len(logs) == 2 && fmt.Sprint(logs[0]) != fmt.Sprint(logs[1]) {
		t.Errorf("memory and redis allowed different calls")
	}

	for _, sc := range stores {
		fixed := allowedLog(t, sc, Rule{Pool: "adv-fixed", Window: w * time.Millisecond,
			Allowance: allowance}, schedule)
		most := maxInWindow(fixed, w)
		t.Logf("%s fixed: %d of %d calls allowed, at most %d in one window", sc.name,
			len(fixed), len(schedule), most)
		if most <= allowance || most > 2*allowance {
			t.Errorf("%s: fixed windows allowed at most %d in one window; the schedule "+
				"should show their straddling burst (more than %d, at most %d)", sc.name, most,
				allowance, 2*allowance)
		}
		gcra := allowedLog(t, sc, Rule{Pool: "adv-gcra", Window: w * time.Millisecond,
			Allowance: allowance, Algorithm: GCRA}, schedule)
		// At most allowance + t×allowance/w in any interval of length t.
		for i := range gcra {
			var sum int64
			for j := i; j < len(gcra); j++ {
				sum += gcra[j].Cost
				span := gcra[j].At - gcra[i].At
				if bound := allowance + span*allowance/w; sum > bound {
					t.Fatalf("%s: gcra allowed %d in %dms, bound %d", sc.name, sum, span, bound)
				}
				if span > 3*w {
					break
				}
			}
		}
	}
}

// TestAllOrNothing checks that a call denied by one rule consumes from none, and which
// rule's decision a call under several rules gets.
func TestAllOrNothing(t *testing.T) {
	for _, sc := range clockedStores(t) {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			sc.set(0)
			burst := &Rule{Pool: "aon-burst", Window: time.Minute, Allowance: 2}
			hour := &Rule{Pool: "aon-hour", Window: time.Hour, Allowance: 5,
				Algorithm: SlidingWindow}
			smooth := &Rule{Pool: "aon-smooth", Window: time.Minute, Allowance: 4,
				Algorithm: GCRA}
			rules := []*Rule{burst, hour, smooth}
			d, _ := sc.store.Take(ctx, rules, "pat")
			if !d.Allowed || d.Pool != "aon-burst" || d.Remaining != 1 {
				t.Fatalf("first call: %+v, want allowed, decided by the rule with the least "+
					"remaining (aon-burst, 1 left)", d)
			}
			sc.set(1000)
			d, _ = sc.store.Take(ctx, rules, "pat")
			if !d.Allowed || d.Remaining != 0 || d.Pool != "aon-burst" {
				t.Fatalf("second call: %+v", d)
			}
			// Denied by burst (retry 58s) and by nothing else: hour and smooth keep theirs.
			sc.set(2000)
			for range 5 {
				d, _ = sc.store.Take(ctx, rules, "pat")
				if d.Allowed || d.Pool != "aon-burst" || d.RetryAfter != 58*time.Second {
					t.Fatalf("third call: %+v, want denied by aon-burst for 58s", d)
				}
			}
			if p, _ := sc.store.Peek(ctx, hour, "pat"); p.Remaining != 3 {
				t.Fatalf("after denied calls, the hour rule has %d left, want 3: a denied "+
					"call consumed from it", p.Remaining)
			}
			// smooth refills one per 15s; the two calls took 2 and 2s refilled nothing yet.
			if p, _ := sc.store.Peek(ctx, smooth, "pat"); p.Remaining != 2 {
				t.Fatalf("after denied calls, the gcra rule has %d left, want 2", p.Remaining)
			}
			// Two rules deny; the longest wait decides.
			strict := &Rule{Pool: "aon-strict", Window: 2 * time.Hour, Allowance: 1}
			sc.store.Take(ctx, []*Rule{strict}, "pat")
			d, _ = sc.store.Take(ctx, []*Rule{burst, strict}, "pat")
			if d.Allowed || d.Pool != "aon-strict" || d.RetryAfter != 2*time.Hour {
				t.Fatalf("denied by two rules: %+v, want the longer wait of aon-strict", d)
			}
			// Invalid sets of rules.
			for _, bad := range [][]*Rule{nil, {burst, burst}, {burst, {Pool: "aon-burst",
				Window: time.Hour, Allowance: 9}}, {burst, nil}} {
				if _, err := sc.store.Take(ctx, bad, "pat"); err == nil {
					t.Errorf("Take(%v): no error", bad)
				}
			}
		})
	}
}

// TestExactUnderConcurrencyEveryAlgorithm: 64 goroutines call under two rules at once on a
// frozen clock; exactly the smaller allowance is allowed, and the other rule counted
// exactly as many.
func TestExactUnderConcurrencyEveryAlgorithm(t *testing.T) {
	for _, sc := range clockedStores(t) {
		for _, pair := range [][2]Algorithm{{SlidingWindow, GCRA}, {GCRA, FixedWindow},
			{FixedWindow, SlidingWindow}} {
			t.Run(fmt.Sprint(sc.name, "/", pair[0], "+", pair[1]), func(t *testing.T) {
				sc.set(0)
				a := &Rule{Pool: "conc-a", Window: time.Minute, Allowance: 50, Algorithm: pair[0]}
				b := &Rule{Pool: "conc-b", Window: time.Minute, Allowance: 70, Algorithm: pair[1]}
				got := countAllowed(t, 64, 4, func() (Decision, error) {
					return sc.store.Take(context.Background(), []*Rule{a, b}, "conc")
				})
				if got != 50 {
					t.Fatalf("%d allowed, want exactly 50", got)
				}
				if p, _ := sc.store.Peek(context.Background(), b, "conc"); p.Remaining != 20 {
					t.Fatalf("the second rule has %d left, want 20", p.Remaining)
				}
			})
		}
	}
}

// TestPeekAndReset: Peek consumes nothing; Reset gives back the whole allowance in one
// pool, under every algorithm, and nothing else.
func TestPeekAndReset(t *testing.T) {
	for _, sc := range clockedStores(t) {
		t.Run(sc.name, func(t *testing.T) {
			sc.set(0)
			lim := New(sc.store)
			ctx := context.Background()
			var rules []*Rule
			for _, a := range []Algorithm{FixedWindow, SlidingWindow, GCRA} {
				rules = append(rules, &Rule{Pool: "admin", Window: time.Hour, Allowance: 2,
					Algorithm: a})
			}
			other := &Rule{Pool: "admin-other", Window: time.Hour, Allowance: 1}
			for _, r := range rules {
				for range 10 {
					if d, err := lim.Peek(ctx, r, "quinn"); err != nil || !d.Allowed ||
						d.Remaining != 2 {
						t.Fatalf("%v: Peek = %+v, %v; want 2 remaining", r.Algorithm, d, err)
					}
				}
				lim.Allow(r, "quinn")
				lim.Allow(r, "quinn")
				if d := lim.Allow(r, "quinn"); d.Allowed {
					t.Fatalf("%v: third call allowed", r.Algorithm)
				}
				d, err := lim.Peek(ctx, r, "quinn")
				if err != nil || d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 {
					t.Fatalf("%v: Peek over the limit = %+v, %v", r.Algorithm, d, err)
				}
			}
			lim.Allow(other, "quinn")
			lim.Allow(rules[0], "rita")
			if err := lim.Reset(ctx, "admin", "quinn"); err != nil {
				t.Fatal(err)
			}
			for _, r := range rules {
				if d := lim.Allow(r, "quinn"); !d.Allowed || d.Remaining != 1 {
					t.Fatalf("%v after Reset: %+v, want the whole allowance back", r.Algorithm, d)
				}
			}
			if lim.Allow(other, "quinn").Allowed || lim.Allow(rules[0], "rita").Remaining != 0 {
				t.Fatal("Reset of one (pool, identity) reset another")
			}
			if err := lim.Reset(ctx, "bad pool", "quinn"); err == nil {
				t.Fatal("Reset of an invalid pool: no error")
			}
			if _, err := lim.Peek(ctx, &Rule{Pool: "p"}, "quinn"); err == nil {
				t.Fatal("Peek with an invalid rule: no error")
			}
		})
	}
}

// TestRedisKeysOfEveryAlgorithm: keys of one identity share one hash tag (one Cluster
// slot), all have a TTL of at most their window, and are of bounded length.
func TestRedisKeysOfEveryAlgorithm(t *testing.T) {
	stores := clockedStores(t)
	store := stores[len(stores)-1].store.(*RedisStore)
	store.clock = nil // real Redis TIME
	ctx := context.Background()
	long := strings.Repeat("p", MaxPoolLen)
	var rules []*Rule
	for _, a := range []Algorithm{FixedWindow, SlidingWindow, GCRA} {
		rules = append(rules, &Rule{Pool: long, Window: time.Minute, Allowance: 5, Algorithm: a,
			Cost: 2})
	}
	for _, id := range []string{"{x}", strings.Repeat("é", 5000)} {
		if d, err := store.Take(ctx, rules, id); err != nil || !d.Allowed {
			t.Fatalf("%v, %v", d, err)
		}
		if d, err := store.Take(ctx, rules, id); err != nil || !d.Allowed || d.Remaining != 1 {
			t.Fatalf("second call: %+v, %v", d, err)
		}
	}
	client := store.client
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 6 {
		t.Fatalf("keys %q, want 3 per identity", keys)
	}
	tags := map[string]int{}
	for _, k := range keys {
		open, end := strings.IndexByte(k, '{'), strings.IndexByte(k, '}')
		tags[k[open:end+1]]++
		if len(k) > 45+MaxPoolLen {
			t.Errorf("key %q: %d bytes", k, len(k))
		}
		if ttl, err := client.PTTL(ctx, k).Result(); err != nil || ttl <= 0 || ttl > time.Minute {
			t.Errorf("key %q: TTL %v, %v", k, ttl, err)
		}
	}
	if len(tags) != 2 {
		t.Errorf("hash tags %v, want one per identity", tags)
	}
	// Keys of other types under our names are taken as empty and overwritten.
	for _, r := range rules {
		key := redisKeyOf(redisTag("mallory"), r.Pool, r.Algorithm)
		client.Set(ctx, key, "junk", 0)
	}
	if d, err := store.Take(ctx, rules, "mallory"); err != nil || !d.Allowed || d.Remaining != 3 {
		t.Fatalf("over foreign keys: %+v, %v; want a fresh start", d, err)
	}
}

// TestDeniedCallLeavesSlidingLogExact: a call denied by another rule consumes nothing from
// a sliding window even when it finds entries of that window to drop, and the window's
// allowance afterwards is exactly what its remaining entries leave.
func TestDeniedCallLeavesSlidingLogExact(t *testing.T) {
	for _, sc := range clockedStores(t) {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			sliding := &Rule{Pool: "phantom-s", Window: 200 * time.Millisecond, Allowance: 4,
				Algorithm: SlidingWindow}
			once := &Rule{Pool: "phantom-f", Window: time.Hour, Allowance: 1}
			sc.set(0)
			sc.store.Take(ctx, []*Rule{once}, "pia")
			sc.store.Take(ctx, []*Rule{sliding}, "pia")
			sc.set(150)
			sc.store.Take(ctx, []*Rule{sliding}, "pia")
			sc.set(220) // the entry at 0 has ended, the one at 150 has not
			if d, _ := sc.store.Take(ctx, []*Rule{sliding, once}, "pia"); d.Allowed {
				t.Fatalf("a call under a spent rule was allowed: %+v", d)
			}
			if p, _ := sc.store.Peek(ctx, sliding, "pia"); p.Remaining != 3 {
				t.Fatalf("after a call denied by another rule, the sliding window has %d "+
					"left, want 3", p.Remaining)
			}
			sc.set(230)
			for i := range 3 {
				if d, _ := sc.store.Take(ctx, []*Rule{sliding}, "pia"); !d.Allowed {
					t.Fatalf("call %d of the 3 left: denied %+v", i+1, d)
				}
			}
		})
	}
}

// TestSharedPoolWithAShorterWindow: a pool counted under a long window and then under a
// shorter one (hand-built rules that disagree) starts a window of the shorter length, on
// every store, rather than going on counting against the long window's end.
func TestSharedPoolWithAShorterWindow(t *testing.T) {
	for _, sc := range clockedStores(t) {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			long := &Rule{Pool: "shared-long", Window: time.Hour, Allowance: 100}
			short := &Rule{Pool: "shared-long", Window: time.Second, Allowance: 2}
			sc.set(0)
			sc.store.Take(ctx, []*Rule{long}, "sol")
			allowed := 0
			for range 10 {
				d, err := sc.store.Take(ctx, []*Rule{short}, "sol")
				if err != nil {
					t.Fatal(err)
				}
				if d.Allowed {
					allowed++
				}
				if d.Remaining < 0 {
					t.Fatalf("Remaining %d < 0: %+v", d.Remaining, d)
				}
			}
			if allowed != 2 {
				t.Errorf("%d of 10 calls allowed under the short rule, want its allowance 2",
					allowed)
			}
		})
	}
}
