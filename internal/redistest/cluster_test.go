package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestClusterSpreadsSlotsOverEveryNode(t *testing.T) {
	c := StartCluster(t, 3)
	client := c.Client(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 100 {
		if err := client.Set(ctx, fmt.Sprint("key", i), i, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range c.Nodes {
		n, err := s.Client().DBSize(ctx).Result()
		if err != nil || n == 0 {
			t.Errorf("node %s holds %d keys (%v), want some of the 100", s.TCPAddr(), n, err)
		}
	}
	if u := c.URL(); !strings.HasPrefix(u, "redis://127.0.0.1:") || strings.Count(u, "addr=") != 2 {
		t.Errorf("URL %q", u)
	}
}

func TestSentinelNamesItsMaster(t *testing.T) {
	master := StartTCP(t)
	sentinel := StartSentinel(t, master, "lgmaster")
	client := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "lgmaster",
		SentinelAddrs: []string{sentinel.TCPAddr()}})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := master.Client().Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("the master has k=%q (%v), want the value set through the sentinel", v, err)
	}
}
