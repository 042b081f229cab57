package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps counters in Redis, so that every server instance sharing the Redis
// enforces one limit together.
//
// Each decision is one Lua script run atomically inside Redis: read the counter and its
// remaining time-to-live, then either count the call or not. Windows are timed by Redis's
// own clock (key expiry), never by the app servers' clocks, so servers whose clocks disagree
// still agree on windows. A counter is always written together with its TTL, and a counter
// found without one (written by something else, or left by a crash of an older tool) starts
// a fresh window with a TTL, so no identity is ever locked out for good.
//
// Keys look like limitgen:{H}:POOL, where H is the first 128 bits of the SHA-256 of the
// identity in hex: any identity, whatever bytes it holds or however long it is, gives a key
// of bounded length (at most 44 bytes plus MaxPoolLen), and the braces put all keys of one
// identity in one Redis Cluster slot. H has a fixed length and pools are validated (see
// Rule.Validate), so no two (pool, identity) pairs share a key.
//
// Windows are counted in whole milliseconds: a Rule.Window of 1.5ms lasts 1ms in Redis.
type RedisStore struct {
	client redis.UniversalClient
}

// NewRedisStore returns a store that keeps its counters in the Redis that client talks to:
// a single server, a Sentinel-managed one or a Cluster. The caller keeps ownership of
// client. Set ContextTimeoutEnabled in its options (FromEnv does) so that a hung server
// releases each call at the Limiter's timeout; otherwise the Limiter still answers on time
// but the abandoned call waits out the client's ReadTimeout.
func NewRedisStore(client redis.UniversalClient) *RedisStore {
	return &RedisStore{client: client}
}

// fixedWindow counts one decision. KEYS[1] is the counter; ARGV is the window in
// milliseconds, the allowance and the cost. It returns {allowed, count, ms until reset}.
// The window's end is the counter's expiry, kept by Redis's clock: a fresh counter is
// written with SET PX in one command, later calls INCRBY it, which keeps its expiry, so
// the window never drifts. redis.Script runs it with EVALSHA and loads it again after a
// SCRIPT FLUSH or a restart. The script writes only deterministic commands, so it needs no
// redis.replicate_commands() on old servers.
var fixedWindow = redis.NewScript(`
local window = tonumber(ARGV[1])
local allowance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local ttl = redis.call('PTTL', KEYS[1])
local count = 0
if ttl > 0 then
  count = tonumber(redis.call('GET', KEYS[1])) or 0
end

if count + cost > allowance then
  if ttl <= 0 then
    -- Too costly for even a fresh window: deny without writing anything.
    return {0, 0, window}
  end
  return {0, count, ttl}
end
if ttl > 0 then
  redis.call('INCRBY', KEYS[1], cost)
  return {1, count + cost, ttl}
end
-- No counter (-2), or a counter without a TTL (-1) that something else wrote: a fresh
-- window, so that no identity is ever locked out for good.
redis.call('SET', KEYS[1], cost, 'PX', window)
return {1, cost, window}
`)

// Take counts cost calls of identity in rule's pool with one script call. It fails for an
// invalid rule or cost (matching ErrInvalidRule) and when Redis does not answer.
func (s *RedisStore) Take(ctx context.Context, rule *Rule, identity string,
	cost int64) (Decision, error) {
	if err := check(rule, cost); err != nil {
		return Decision{}, err
	}
	key := redisKey(rule.Pool, identity)
	windowMs := rule.Window.Milliseconds()
	res, err := fixedWindow.Run(ctx, s.client, []string{key}, windowMs, rule.Allowance, cost).
		Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("limitgen: redis decision for pool %q: %w", rule.Pool, err)
	}
	if len(res) != 3 {
		return Decision{}, fmt.Errorf("limitgen: redis script returned %v, want 3 numbers", res)
	}
	return decide(rule, res[0] == 1, res[1], time.Duration(res[2])*time.Millisecond), nil
}

// honorsDeadline reports whether the client ends each call at its context's deadline, so
// that a Limiter can call the store without a goroutine of its own.
func (s *RedisStore) honorsDeadline() bool {
	switch c := s.client.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// redisKey is the counter's key for (pool, identity); see RedisStore.
func redisKey(pool, identity string) string {
	sum := sha256.Sum256([]byte(identity))
	return "limitgen:{" + hex.EncodeToString(sum[:16]) + "}:" + pool
}
