package runtime

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// FromEnv returns a Limiter on Redis when the environment variable REDIS_URL is set, and on
// a new MemoryStore otherwise.
//
// REDIS_URL takes the forms go-redis v9 parses, each with go-redis's options as query
// parameters (dial_timeout=1s, pool_size=20, max_retries=1, ...):
//
//   - one server: redis://[user:password@]host:port[/db], rediss://... for TLS, or
//     unix://[user:password@]/path/to/redis.sock[?db=N] (redis.ParseURL);
//   - Redis Cluster: redis://host1:port1?addr=host2:port2&addr=host3:port3, any URL with
//     at least one addr= parameter; the host of the URL and each addr are seed nodes
//     (redis.ParseClusterURL). A cluster reached through one address needs it twice:
//     redis://host:port?addr=host:port;
//   - Sentinel: redis://sentinel1:26379?master_name=mymaster&addr=sentinel2:26379, any URL
//     with a master_name= parameter; the host of the URL and each addr are sentinels, the
//     URL's user and password are the sentinels', password=...&username=... parameters
//     the master's, and rediss:// uses TLS (redis.ParseFailoverURL).
//
// The client always ends each call at the limiter's deadline (ContextTimeoutEnabled).
// FromEnv pings Redis once, so that a wrong address fails at start-up, not on the first
// event. The limiter owns the client it opened: Close releases it.
func FromEnv(opts ...Option) (*Limiter, error) {
	raw := os.Getenv("REDIS_URL")
	if raw == "" {
		return New(NewMemoryStore(), opts...), nil
	}
	client, err := clientFromURL(raw)
	if err != nil {
		return nil, fmt.Errorf("limitgen: REDIS_URL: %w; fix it or unset it to count in memory",
			err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("limitgen: REDIS_URL: ping: %w; check that Redis is running "+
			"and reachable, or unset REDIS_URL to count in memory", err)
	}
	lim := New(NewRedisStore(client), opts...)
	lim.closer = client
	return lim, nil
}

// clientFromURL builds a Sentinel client when the URL names a master with master_name=, a
// cluster client when it names seed addresses with addr=, and a single-server client
// otherwise.
func clientFromURL(raw string) (redis.UniversalClient, error) {
	u, err := url.Parse(raw)
	if err == nil && u.Query().Has("master_name") {
		opts, err := redis.ParseFailoverURL(raw)
		if err != nil {
			return nil, err
		}
		if opts.MasterName == "" {
			return nil, fmt.Errorf("master_name is empty")
		}
		opts.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(opts), nil
	}
	if err == nil && u.Query().Has("addr") {
		opts, err := redis.ParseClusterURL(raw)
		if err != nil {
			return nil, err
		}
		opts.ContextTimeoutEnabled = true
		return redis.NewClusterClient(opts), nil
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	// Let the Limiter's per-decision deadline reach the socket, so that a hung server
	// costs each call the timeout, not the client's ReadTimeout.
	opts.ContextTimeoutEnabled = true
	return redis.NewClient(opts), nil
}
