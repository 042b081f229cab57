package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of masters without replicas, each a Server on a TCP port of
// 127.0.0.1 (and its unix socket), stopped when the test ends.
type Cluster struct {
	t     testing.TB
	Nodes []*Server
}

// StartCluster starts masters redis-server processes in cluster mode, joins them into one
// cluster with redis-cli --cluster create (the 16384 slots split between them), and waits
// until every node reports cluster_state:ok. It needs redis-cli (Debian's redis-tools,
// installed with redis-server) and skips, or fails under LIMITGEN_REQUIRE_SERVICES=1,
// without it.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		Require(t, "redis-cli not found on PATH; install it (apt-get install redis-tools, "+
			"or redis-server, which depends on it)")
	}
	c := &Cluster{t: t}
	args := []string{"--cluster", "create"}
	for range masters {
		// The cluster bus listens on port+10000.
		s := start(t, freePort(t, 10000), "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
		c.Nodes = append(c.Nodes, s)
		args = append(args, s.TCPAddr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, s := range c.Nodes {
		c.waitOK(ctx, s, masters)
	}
	return c
}

// waitOK waits until node s sees the whole cluster: state ok and every node known.
func (c *Cluster) waitOK(ctx context.Context, s *Server, masters int) {
	c.t.Helper()
	client := redis.NewClient(&redis.Options{Network: "unix", Addr: s.socket})
	defer client.Close()
	want := fmt.Sprintf("cluster_known_nodes:%d", masters)
	var info string
	for ctx.Err() == nil {
		info, _ = client.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("redistest: cluster node %s not ok within 60s:\n%s\nlog:\n%s", s.TCPAddr(),
		info, s.Log())
}

// Addrs are the nodes' 127.0.0.1:port addresses.
func (c *Cluster) Addrs() []string {
	var addrs []string
	for _, s := range c.Nodes {
		addrs = append(addrs, s.TCPAddr())
	}
	return addrs
}

// URL is a REDIS_URL naming every node: redis://NODE1?addr=NODE2&addr=NODE3...
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

// Client returns a new cluster client of the cluster, closed when the test ends.
func (c *Cluster) Client(opts *redis.ClusterOptions) *redis.ClusterClient {
	if opts == nil {
		opts = &redis.ClusterOptions{}
	}
	opts.Addrs = c.Addrs()
	client := redis.NewClusterClient(opts)
	c.t.Cleanup(func() { client.Close() })
	return client
}

// StartSentinel starts a Redis Sentinel on a free TCP port of 127.0.0.1 that monitors
// master (which must listen on TCP: see StartTCP) under the name masterName, and waits
// until it answers with the master's address. It is stopped when the test ends.
func StartSentinel(t testing.TB, master *Server, masterName string) *Server {
	t.Helper()
	if master.port == 0 {
		t.Fatal("redistest: a sentinel needs a master on TCP; start it with StartTCP")
	}
	conf := func(string) string {
		return fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds %s 5000\n", masterName, master.port, masterName)
	}
	s := startConf(t, freePort(t, 0), conf, "--sentinel")
	client := redis.NewSentinelClient(&redis.Options{Network: "unix", Addr: s.socket})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		addr, err := client.GetMasterAddrByName(ctx, masterName).Result()
		if err == nil && len(addr) == 2 && addr[1] == fmt.Sprint(master.port) {
			return s
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: sentinel does not name master %s within 10s: %v %v\nlog:\n%s",
				masterName, addr, err, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
