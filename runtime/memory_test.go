package runtime

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemoryTakeDoesNotAllocate(t *testing.T) {
	var clock atomic.Int64
	store := newMemoryStore(func() time.Duration { return time.Duration(clock.Load()) })
	ctx := context.Background()
	allowed := &Rule{Pool: "allocs", Window: time.Hour, Allowance: 1 << 50}
	denied := &Rule{Pool: "allocs-denied", Window: time.Hour, Allowance: 1}
	store.Take(ctx, []*Rule{allowed}, "olga")
	store.Take(ctx, []*Rule{denied}, "olga")
	for name, rule := range map[string]*Rule{"allowed": allowed, "denied": denied} {
		rules := []*Rule{rule}
		n := testing.AllocsPerRun(1000, func() { store.Take(ctx, rules, "olga") })
		if n != 0 {
			t.Errorf("%s Take: %v allocations per call, want 0", name, n)
		}
	}
}

func TestMemoryReclaimsShortWindowsBesideLongOnes(t *testing.T) {
	var clock atomic.Int64
	store := newMemoryStore(func() time.Duration { return time.Duration(clock.Load()) })
	long := &Rule{Pool: "long", Window: time.Hour, Allowance: 1}
	short := &Rule{Pool: "short", Window: time.Second, Allowance: 1}
	for i := range 200 {
		take(t, store, long, fmt.Sprint("resident", i))
	}
	for round := range 10 {
		clock.Add(int64(2 * time.Second))
		for i := range 1000 {
			take(t, store, short, fmt.Sprint("visitor", round, "-", i))
		}
	}
	// 200 open hour-long windows and 1000 open one-second ones; 9000 ended ones may go.
	if n := store.Len(); n < 1200 || n > 4000 {
		t.Fatalf("Len = %d after 10 rounds of 1000 one-second identities beside 200 hour-long "+
			"ones, want the 1200 open windows and not much more", n)
	}
	if d := take(t, store, long, "resident7"); d.Allowed {
		t.Fatal("an open hour-long window was reclaimed")
	}
}

func BenchmarkMemoryTakeParallel(b *testing.B) {
	store := NewMemoryStore()
	rule := &Rule{Pool: "bench", Window: time.Hour, Allowance: 1 << 50}
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprint("user", i)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		for pb.Next() {
			store.Take(context.Background(), []*Rule{rule}, ids[i%len(ids)])
			i++
		}
	})
}

func BenchmarkLimiterAllowMemory(b *testing.B) {
	lim := New(nil)
	rule := &Rule{Pool: "bench", Window: time.Hour, Allowance: 1 << 50}
	b.ReportAllocs()
	for b.Loop() {
		lim.Allow(rule, "alice")
	}
}
