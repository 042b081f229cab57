package runtime

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/limitgen/limitgen/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// clusterIdentities returns n identities and the master node of each, checking that they
// are spread over every node and over many slots.
func clusterIdentities(t *testing.T, c *redistest.Cluster, store *RedisStore,
	n int) ([]string, map[string]string) {
	t.Helper()
	ctx := context.Background()
	rule := []*Rule{{Pool: "spread", Window: time.Minute, Allowance: 1}}
	var ids []string
	nodeOf := map[string]string{}
	nodes := map[string]int{}
	slots := map[int64]bool{}
	for i := range n {
		id := fmt.Sprintf("user-%d", i)
		ids = append(ids, id)
		nodeOf[id] = store.nodeOf(rule, id)
		nodes[nodeOf[id]]++
		slot, err := store.client.(*redis.ClusterClient).ClusterKeySlot(ctx,
			redisKey("spread", id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		slots[slot] = true
	}
	for _, addr := range c.Addrs() {
		if nodes[addr] == 0 {
			t.Fatalf("no identity on node %s: %v", addr, nodes)
		}
	}
	if len(slots) < n*3/4 {
		t.Fatalf("%d identities in only %d slots", n, len(slots))
	}
	return ids, nodeOf
}

// TestCluster runs the stores' conformance tables, all-or-nothing calls under several
// rules, exact counting under concurrency and script flushes through a ClusterClient on a
// real 3-master Redis Cluster, with identities spread over every node and many slots; then
// freezes one node and checks that only its identities are decided by the failure policy.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	ctx := context.Background()

	t.Run("Conformance", func(t *testing.T) {
		var clock atomic.Int64
		const epoch = 1_780_000_000_000
		store := NewRedisStore(c.Client(&redis.ClusterOptions{ContextTimeoutEnabled: true}))
		store.clock = func() int64 { return epoch + clock.Load() }
		set := forward(&clock)
		ids, _ := clusterIdentities(t, c, store, 24)
		for _, table := range conformanceTables {
			rule := table.rule
			rule.Window *= time.Duration(table.scale)
			ms := time.Duration(table.scale) * time.Millisecond
			for i, s := range table.steps {
				set(s.At * table.scale)
				r := rule
				r.Cost = s.Cost
				want := Decision{Allowed: s.Allowed, Pool: rule.Pool, Limit: rule.Allowance,
					Remaining: s.Remaining, RetryAfter: time.Duration(s.Retry) * ms,
					ResetAfter: time.Duration(s.Reset) * ms}
				for _, id := range ids {
					var d Decision
					var err error
					if s.Peek {
						d, err = store.Peek(ctx, &r, id)
					} else {
						d, err = store.Take(ctx, []*Rule{&r}, id)
					}
					if err != nil {
						t.Fatalf("%s step %d, %s: %v", table.name, i, id, err)
					}
					if d != want {
						t.Fatalf("%s step %d (%+v), %s:\n got %+v\nwant %+v", table.name, i,
							s, id, d, want)
					}
				}
			}
		}
	})

	// The counting subtests give each decision a deadline no healthy cluster misses, even on
	// a loaded CI machine under -race: a late answer would be decided locally and counted
	// apart. OneNodeFrozen, about deadlines, has a limiter of its own.
	t.Setenv("REDIS_URL", c.URL())
	var logs logBuffer
	lim, err := FromEnv(WithLogger(logs.logger()), WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lim.Close() })
	if !lim.direct {
		t.Error("FromEnv's cluster client does not end calls at their deadline")
	}
	store := lim.store.(*RedisStore)
	ids, nodeOf := clusterIdentities(t, c, store, 300)

	t.Run("SeveralRulesOneSlot", func(t *testing.T) {
		rules := []*Rule{
			{Pool: "c-burst", Window: time.Minute, Allowance: 2},
			{Pool: "c-slide", Window: time.Minute, Allowance: 3, Algorithm: SlidingWindow},
			{Pool: "c-gcra", Window: time.Minute, Allowance: 2, Algorithm: GCRA},
		}
		for _, id := range ids {
			for i, want := range []bool{true, true, false} {
				d := lim.AllowAll(rules, id)
				if d.Allowed != want || d.Source != SourceStore {
					t.Fatalf("%s call %d: %+v, want allowed=%v by the store", id, i, d, want)
				}
			}
		}
		for _, s := range c.Nodes {
			if n, err := s.Client().DBSize(ctx).Result(); err != nil || n == 0 {
				t.Errorf("node %s holds %d keys (%v)", s.TCPAddr(), n, err)
			}
			checkTTLs(t, s.Client(), time.Minute)
		}
		if st := lim.Stats(); st.StoreErrors != 0 {
			t.Errorf("store errors (CROSSSLOT?): %+v\n%s", st, logs.String())
		}
	})

	t.Run("ExactUnderConcurrency", func(t *testing.T) {
		for _, algo := range []Algorithm{FixedWindow, SlidingWindow, GCRA} {
			rule := &Rule{Pool: "c-exact", Window: time.Minute, Allowance: 50, Algorithm: algo}
			n := countAllowed(t, 32, 10, func() (Decision, error) { return lim.Allow(rule, "hot"), nil })
			if n != 50 {
				t.Errorf("%v: 320 concurrent calls, %d allowed, want exactly 50", algo, n)
			}
		}
	})

	t.Run("ScriptFlush", func(t *testing.T) {
		errs := lim.Stats().StoreErrors
		for _, s := range c.Nodes {
			s.FlushScripts()
		}
		rule := &Rule{Pool: "c-flush", Window: time.Minute, Allowance: 1}
		for _, id := range ids[:30] {
			if d := lim.Allow(rule, id); !d.Allowed || d.Source != SourceStore {
				t.Fatalf("%s after SCRIPT FLUSH: %+v", id, d)
			}
		}
		if n := lim.Stats().StoreErrors - errs; n != 0 {
			t.Errorf("%d store errors after SCRIPT FLUSH on every node", n)
		}
	})

	t.Run("OneNodeFrozen", func(t *testing.T) {
		// A deadline a live node meets even on a loaded machine, that a frozen one misses.
		const timeout = 250 * time.Millisecond
		var logs logBuffer
		lim, err := FromEnv(WithLogger(logs.logger()), WithTimeout(timeout))
		if err != nil {
			t.Fatal(err)
		}
		defer lim.Close()
		frozen := c.Nodes[0]
		frozen.Pause()
		rule := &Rule{Pool: "c-frozen", Window: time.Minute, Allowance: 1}
		var calls callStats
		for round := range 3 {
			for _, id := range ids[:60] {
				d := calls.allow(lim, rule, id)
				onFrozen := nodeOf[id] == frozen.TCPAddr()
				if !onFrozen && d.Source != SourceStore {
					t.Fatalf("round %d, %s on a live node: %+v, want decided by the store",
						round, id, d)
				}
				if onFrozen && d.Source != SourceLocal {
					t.Fatalf("round %d, %s on the frozen node: %+v, want decided locally",
						round, id, d)
				}
				if d.Allowed != (round == 0) {
					t.Fatalf("round %d, %s: %+v, want only the first call allowed", round,
						id, d)
				}
			}
			time.Sleep(30 * time.Millisecond)
		}
		if !lim.Stats().StoreDown {
			t.Error("StoreDown false with a node frozen")
		}
		frozen.Resume()
		deadline := time.Now().Add(5 * time.Second)
		for {
			id := ids[0]
			for _, cand := range ids {
				if nodeOf[cand] == frozen.TCPAddr() {
					id = cand
					break
				}
			}
			if lim.Allow(rule, id).Source == SourceStore {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the resumed node is still not asked after 5s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		text := logs.String()
		if n := strings.Count(text, "store failed"); n != 1 ||
			!strings.Contains(text, "node="+frozen.TCPAddr()) {
			t.Errorf("%d outages logged, want one naming node %s:\n%s", n, frozen.TCPAddr(),
				text)
		}
		if n := strings.Count(text, "store answers again"); n != 1 {
			t.Errorf("%d recoveries logged, want 1:\n%s", n, text)
		}
		if lim.Stats().StoreDown {
			t.Error("StoreDown still true after the node answered")
		}
		if calls.slowestCall() > timeout+faultMargin {
			t.Errorf("a call took %v with a node frozen, want at most %v + %v",
				calls.slowestCall(), timeout, faultMargin)
		}
		t.Logf("one node of 3 frozen: %s", &calls)
	})

	t.Run("ColdClient", func(t *testing.T) {
		// A client that has not learnt the cluster's layout yet: its first call does.
		store := NewRedisStore(c.Client(&redis.ClusterOptions{ContextTimeoutEnabled: true}))
		lim := New(store, WithTimeout(time.Second))
		rule := []*Rule{{Pool: "c-cold", Window: time.Minute, Allowance: 1}}
		if node := store.nodeOf(rule, "cold"); node != "" {
			t.Fatalf("a fresh client knows node %q already", node)
		}
		if d := lim.AllowAll(rule, "cold"); !d.Allowed || d.Source != SourceStore {
			t.Fatalf("first call of a fresh client: %+v", d)
		}
		if node := store.nodeOf(rule, "cold"); node == "" {
			t.Fatal("the client has not learnt the layout with its first call")
		}

		// A cluster that cannot be reached: one deadline, then the policy.
		dead := redis.NewClusterClient(&redis.ClusterOptions{ContextTimeoutEnabled: true,
			Addrs: []string{redistest.FreeAddr(t)}})
		defer dead.Close()
		var deadLogs logBuffer
		lim = New(NewRedisStore(dead), WithTimeout(faultTimeout), WithLogger(deadLogs.logger()))
		start := time.Now()
		if d := lim.AllowAll(rule, "cold"); !d.Allowed || d.Source != SourceLocal {
			t.Fatalf("unreachable cluster: %+v, want allowed locally", d)
		}
		if took := time.Since(start); took > faultTimeout+faultMargin {
			t.Errorf("unreachable cluster: the call took %v, want at most %v + %v", took,
				faultTimeout, faultMargin)
		}
	})

	t.Run("OneSeedURL", func(t *testing.T) {
		addr := c.Addrs()[1]
		t.Setenv("REDIS_URL", "redis://"+addr+"?addr="+addr)
		lim, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		defer lim.Close()
		if _, ok := lim.store.(*RedisStore).client.(*redis.ClusterClient); !ok {
			t.Fatalf("client %T, want a cluster client", lim.store.(*RedisStore).client)
		}
		rule := &Rule{Pool: "c-seed", Window: time.Minute, Allowance: 1}
		for _, id := range ids[:30] {
			if d := lim.Allow(rule, id); !d.Allowed || d.Source != SourceStore {
				t.Fatalf("%s through one seed: %+v", id, d)
			}
		}
	})
}
