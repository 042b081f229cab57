package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps counters in Redis, so that every server instance sharing the Redis
// enforces one limit together.
//
// Each decision is one Lua script run atomically inside Redis, for all the rules of a call
// at once: read each rule's state, decide every rule, and write only when all allow the
// call. Time is Redis's own clock (the TIME command inside the script), never the app
// servers' clocks, so servers whose clocks disagree still agree on windows. Every key is
// written together with a TTL that ends when its state would be back to empty, so idle
// identities cost nothing. State is judged by the times stored in it, not by the TTL, so a
// key left without a TTL (by something else) cannot lock an identity out for good; a key
// of another type under the same name is taken as empty and overwritten.
//
// Keys look like limitgen:{H}:POOL (fixed window: a hash of count and window end),
// limitgen:{H}g:POOL (GCRA: a hash of debt and time) and limitgen:{H}s:POOL (sliding
// window: a list of the total and one "ms:cost" entry per millisecond with allowed calls),
// where H is the first 128 bits of the SHA-256 of the identity in hex: any identity,
// whatever bytes it holds or however long it is, gives a key of bounded length (at most
// 45 bytes plus MaxPoolLen), and the braces put all keys of one identity in one Redis
// Cluster slot, so a script over several rules of one call never meets CROSSSLOT. H has a
// fixed length and pools are validated (see Rule.Validate), so no two (pool, identity,
// algorithm) share a key.
//
// Times are whole milliseconds: a Rule.Window of 1.5ms lasts 1ms.
type RedisStore struct {
	client redis.UniversalClient
	// clock, when set (by tests only), replaces Redis's TIME, in milliseconds.
	clock func() int64
}

// NewRedisStore returns a store that keeps its counters in the Redis that client talks to:
// a single server, a Sentinel-managed one or a Cluster. The caller keeps ownership of
// client. Set ContextTimeoutEnabled in its options (FromEnv does) so that a hung server
// releases each call at the Limiter's timeout; otherwise the Limiter still answers on time
// but the abandoned call waits out the client's ReadTimeout.
func NewRedisStore(client redis.UniversalClient) *RedisStore {
	return &RedisStore{client: client}
}

// luaPrelude starts every script: replication by effects on servers older than Redis 5,
// clock(arg), the time in ms given by a test or else Redis's own TIME, keepTTL for denied
// calls, which write nothing else, and exact integer division for integers 0 <= a,
// 1 <= b below 2^53, whatever the double rounding.
const luaPrelude = `
if redis.replicate_commands then redis.replicate_commands() end
local function clock(arg)
  local now = tonumber(arg)
  if now then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- keepTTL gives k, if it exists without a TTL (made persistent by someone), one of ms.
local function keepTTL(k, ms)
  if redis.call('PTTL', k) == -1 then redis.call('PEXPIRE', k, math.max(ms, 1)) end
end
local function floordiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
`

// decideScript decides one call under several rules, or peeks at one rule. It is the Lua
// twin of limitState.evaluate and commit (algorithm.go): the same integer arithmetic in
// milliseconds, exact because Rule.Validate keeps every number below 2^53.
//
// ARGV[1] is "take" or "peek", ARGV[2] the time in ms or "" for Redis's TIME; then four
// numbers per rule: algorithm (0 fixed, 1 sliding, 2 gcra), window ms, allowance, cost.
// KEYS has one key per rule. It returns {allowed, remaining, retry ms, reset ms} per rule.
// A take writes only when every rule allows the call (a denied call may still drop
// sliding-log entries that ended, which changes no decision). The script takes TIME before
// writing, which Redis 5 and later replicate by effects; replicate_commands asks older
// servers for that.
// redis.Script runs it with EVALSHA and loads it again after a SCRIPT FLUSH or a restart.
var decideScript = redis.NewScript(luaPrelude + `
local take = ARGV[1] == 'take'
local now = clock(ARGV[2])

local function ceildiv(a, b)
  if a <= 0 then return 0 end
  return floordiv(a - 1, b) + 1
end

-- read runs a read command on k, or returns false when k holds something of another type
-- (written by something else), which a take then deletes so that it can be written.
local function read(cmd, k, ...)
  local ok, v = pcall(redis.call, cmd, k, ...)
  if ok then return v end
  if take then redis.call('DEL', k) end
  return false
end

local function entry(e)
  local sep = string.find(e, ':', 1, true)
  return tonumber(string.sub(e, 1, sep - 1)), tonumber(string.sub(e, sep + 1))
end

local out, states, allowed = {}, {}, true
for r = 1, #KEYS do
  local k = KEYS[r]
  local base = 2 + (r - 1) * 4
  local s = {algo = tonumber(ARGV[base + 1]), w = tonumber(ARGV[base + 2]),
    allowance = tonumber(ARGV[base + 3]), cost = tonumber(ARGV[base + 4])}
  local w, allowance, cost = s.w, s.allowance, s.cost
  local ok, remaining, retry, reset = false, 0, 0, 0
  if s.algo == 0 then
    -- Fixed window: a hash of the count n of the window ending at e.
    local count, fin = 0, 0
    local v = read('HMGET', k, 'n', 'e')
    if v then count, fin = tonumber(v[1]) or 0, tonumber(v[2]) or 0 end
    s.fresh = fin <= now or fin > now + w
    if s.fresh then count, fin = 0, now + w end
    ok = count + cost <= allowance
    if ok and take then count = count + cost end
    remaining = allowance - count
    if not ok then retry = fin - now end
    if count > 0 then reset = fin - now end
    s.count, s.fin = count, fin
  elseif s.algo == 2 then
    -- GCRA: a hash of the debt d at time t, in ms x allowance.
    local debt, at = 0, 0
    local v = read('HMGET', k, 'd', 't')
    if v then debt, at = tonumber(v[1]) or 0, tonumber(v[2]) or 0 end
    -- A debt stamped later than now (before the clock stepped back) is dropped.
    local elapsed = now - at
    if elapsed >= w or elapsed < 0 then debt = 0
    else debt = math.max(debt - elapsed * allowance, 0) end
    debt = math.min(debt, w * allowance)
    local after, full = debt + cost * w, w * allowance
    ok = after <= full
    if not ok then retry = ceildiv(after - full, allowance) end
    if ok and take then debt = after end
    remaining = floordiv(full - debt, w)
    reset = ceildiv(debt, allowance)
    s.debt = debt
  else
    -- Sliding window: a list of the total cost logged, then "ms:cost" entries, oldest
    -- first. List positions below are 1-based: the total is at 1, entries from 2 to len.
    local used, len = 0, read('LLEN', k) or 0
    if len > 0 then used = tonumber(redis.call('LINDEX', k, 0)) or 0 end
    -- Entries are read in chunks that grow from 1 to 64: most calls need only the oldest.
    local chunk, from, size = {}, 0, 1
    local function at(j)
      if j < from or j >= from + #chunk then
        from = j
        chunk = redis.call('LRANGE', k, j - 1, j + size - 2)
        size = math.min(size * 4, 64)
      end
      return entry(chunk[j - from + 1])
    end
    -- Skip the entries that ended: an entry at t counts while now < t + w. A log whose
    -- newest entry is later than now (written before the clock stepped back) ended whole.
    local first, newest = 2, -1
    if len >= first then newest = entry(redis.call('LINDEX', k, -1)) end
    if newest > now then first, used = len + 1, 0 end
    while first <= len do
      local t, c = at(first)
      if t + w > now then break end
      used = used - c
      first = first + 1
    end
    ok = used + cost <= allowance
    if not ok then
      local need, freed = used + cost - allowance, 0
      for j = first, len do
        local t, c = at(j)
        freed = freed + c
        if freed >= need then retry = t + w - now break end
      end
    end
    local last = -1
    if len >= first then last = newest end
    -- s.used is the total before this call: what stays if another rule denies the call.
    s.used, s.first, s.len, s.last = used, first, len, last
    if ok and take then used, last = used + cost, now end
    remaining = allowance - used
    if last >= 0 then reset = last + w - now end
  end
  s.ttl = math.max(reset, 1)
  states[r] = s
  allowed = allowed and ok
  out[#out + 1] = ok and 1 or 0
  out[#out + 1] = remaining
  out[#out + 1] = retry
  out[#out + 1] = reset
end
if not take then return out end

for r = 1, #KEYS do
  local k, s = KEYS[r], states[r]
  if not allowed then keepTTL(k, s.ttl) end
  if s.algo == 0 then
    if allowed then
      redis.call('HSET', k, 'n', s.count, 'e', s.fin)
      redis.call('PEXPIRE', k, s.fin - now)
    end
  elseif s.algo == 2 then
    if allowed then
      redis.call('HSET', k, 'd', s.debt, 't', now)
      redis.call('PEXPIRE', k, math.max(ceildiv(s.debt, s.allowance), 1))
    end
  elseif s.len == 0 then
    if allowed then
      redis.call('RPUSH', k, s.used + s.cost, now .. ':' .. s.cost)
      redis.call('PEXPIRE', k, s.w)
    end
  else
    -- Drop the ended entries, keeping the last of them as the slot for the total. A
    -- denied call always leaves entries (cost <= allowance), so the list stays.
    if s.first > 2 then redis.call('LTRIM', k, s.first - 2, -1) end
    if allowed then
      if s.last == now then
        local _, c = entry(redis.call('LINDEX', k, -1))
        redis.call('LSET', k, -1, now .. ':' .. (c + s.cost))
      else
        redis.call('RPUSH', k, now .. ':' .. s.cost)
      end
      redis.call('PEXPIRE', k, s.w)
    end
    if allowed then
      redis.call('LSET', k, 0, s.used + s.cost)
    elseif s.first > 2 then
      redis.call('LSET', k, 0, s.used)
    end
  end
end
return out
`)

// fixedScript and gcraScript are decideScript's take under one fixed-window or one GCRA
// rule, the common call, written out for that case alone: fewer Lua steps, and a fixed
// window that is not new rewrites only its count (and renews its TTL to the window's end,
// so a key someone made persistent gets one back). They decide exactly as decideScript
// does, on the same keys; the conformance tables run every one-rule take through them.
// ARGV is the time in ms or "" for Redis's TIME, then window ms, allowance and cost; the
// reply is {allowed, remaining, retry ms, reset ms}.
var fixedScript = redis.NewScript(luaPrelude + `
local k = KEYS[1]
local w, allowance, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = clock(ARGV[1])
local count, fin = 0, 0
local v = redis.pcall('HMGET', k, 'n', 'e')
if v.err then redis.call('DEL', k) else count, fin = tonumber(v[1]) or 0, tonumber(v[2]) or 0 end
if fin <= now or fin > now + w then
  -- A new window (or one stored under a longer window or before the clock stepped back).
  if cost > allowance then return {0, allowance, w, 0} end
  redis.call('HSET', k, 'n', cost, 'e', now + w)
  redis.call('PEXPIRE', k, w)
  return {1, allowance - cost, 0, w}
end
if count + cost <= allowance then
  count = count + cost
  redis.call('HSET', k, 'n', count)
  redis.call('PEXPIRE', k, fin - now)
  return {1, allowance - count, 0, fin - now}
end
keepTTL(k, fin - now)
local reset = 0
if count > 0 then reset = fin - now end
return {0, allowance - count, fin - now, reset}
`)

var gcraScript = redis.NewScript(luaPrelude + `
local k = KEYS[1]
local w, allowance, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = clock(ARGV[1])
local debt, at = 0, 0
local v = redis.pcall('HMGET', k, 'd', 't')
if v.err then redis.call('DEL', k) else debt, at = tonumber(v[1]) or 0, tonumber(v[2]) or 0 end
local elapsed = now - at
if elapsed >= w or elapsed < 0 then debt = 0
else debt = math.max(debt - elapsed * allowance, 0) end
debt = math.min(debt, w * allowance)
local after, full = debt + cost * w, w * allowance
if after > full then
  local reset = 0
  if debt > 0 then reset = floordiv(debt - 1, allowance) + 1 end
  keepTTL(k, reset)
  return {0, floordiv(full - debt, w), floordiv(after - full - 1, allowance) + 1, reset}
end
-- after >= cost x w >= 1, so the state ends at least 1ms from now.
local reset = floordiv(after - 1, allowance) + 1
redis.call('HSET', k, 'd', after, 't', now)
redis.call('PEXPIRE', k, reset)
return {1, floordiv(full - after, w), 0, reset}
`)

// Take decides one call of identity under every rule with one script call, all or
// nothing. It fails for invalid rules (matching ErrInvalidRule) and when Redis does not
// answer.
func (s *RedisStore) Take(ctx context.Context, rules []*Rule, identity string) (Decision,
	error) {
	if err := checkRules(rules); err != nil {
		return Decision{}, err
	}
	if len(rules) == 1 && rules[0].Algorithm != SlidingWindow {
		o, err := s.takeOne(ctx, rules[0], identity)
		if err != nil {
			return Decision{}, err
		}
		return o.decision(rules[0]), nil
	}
	outs, err := s.run(ctx, "take", rules, identity)
	if err != nil {
		return Decision{}, err
	}
	best := 0
	for i := range outs {
		if better(outs[i], outs[best]) {
			best = i
		}
	}
	return outs[best].decision(rules[best]), nil
}

// Peek reports what a call under rule would get now, consuming nothing, with one script
// call that writes nothing.
func (s *RedisStore) Peek(ctx context.Context, rule *Rule, identity string) (Decision,
	error) {
	if err := rule.Validate(); err != nil {
		return Decision{}, err
	}
	outs, err := s.run(ctx, "peek", []*Rule{rule}, identity)
	if err != nil {
		return Decision{}, err
	}
	return outs[0].decision(rule), nil
}

// Reset deletes identity's keys in pool, of every algorithm, with one DEL (one slot).
func (s *RedisStore) Reset(ctx context.Context, pool, identity string) error {
	if err := checkPool(pool); err != nil {
		return err
	}
	tag := redisTag(identity)
	keys := make([]string, 0, 3)
	for _, a := range []Algorithm{FixedWindow, SlidingWindow, GCRA} {
		keys = append(keys, redisKeyOf(tag, pool, a))
	}
	if err := s.client.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("limitgen: redis reset of pool %q: %w", pool, err)
	}
	return nil
}

func (s *RedisStore) run(ctx context.Context, mode string, rules []*Rule,
	identity string) ([]outcome, error) {
	tag := redisTag(identity)
	keys := make([]string, len(rules))
	args := make([]any, 2, 2+4*len(rules))
	args[0], args[1] = mode, ""
	if s.clock != nil {
		args[1] = strconv.FormatInt(s.clock(), 10)
	}
	for i, r := range rules {
		keys[i] = redisKeyOf(tag, r.Pool, r.Algorithm)
		args = append(args, int(r.Algorithm), r.Window.Milliseconds(), r.Allowance, r.cost())
	}
	res, err := decideScript.Run(ctx, s.client, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("limitgen: redis %s in pool %q: %w", mode, rules[0].Pool, err)
	}
	if len(res) != 4*len(rules) {
		return nil, fmt.Errorf("limitgen: redis script returned %v, want %d numbers", res,
			4*len(rules))
	}
	outs := make([]outcome, len(rules))
	for i := range outs {
		o := res[4*i:]
		outs[i] = outcome{allowed: o[0] == 1, remaining: o[1], retry: o[2], resetD: o[3]}
	}
	return outs, nil
}

// takeOne is Take under one fixed-window or GCRA rule, with fixedScript or gcraScript.
func (s *RedisStore) takeOne(ctx context.Context, rule *Rule, identity string) (outcome,
	error) {
	script := fixedScript
	if rule.Algorithm == GCRA {
		script = gcraScript
	}
	var now any = ""
	if s.clock != nil {
		now = strconv.FormatInt(s.clock(), 10)
	}
	keys := []string{redisKeyFor(identity, rule.Pool, rule.Algorithm)}
	res, err := script.Run(ctx, s.client, keys, now, rule.Window.Milliseconds(),
		rule.Allowance, rule.cost()).Int64Slice()
	if err != nil {
		return outcome{}, fmt.Errorf("limitgen: redis take in pool %q: %w", rule.Pool, err)
	}
	if len(res) != 4 {
		return outcome{}, fmt.Errorf("limitgen: redis script returned %v, want 4 numbers", res)
	}
	return outcome{allowed: res[0] == 1, remaining: res[1], retry: res[2], resetD: res[3]}, nil
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

// redisTag is the hash-tagged prefix of identity's keys; see RedisStore.
func redisTag(identity string) string {
	sum := sha256.Sum256([]byte(identity))
	return "limitgen:{" + hex.EncodeToString(sum[:16]) + "}"
}

// redisKeyFor is redisKeyOf(redisTag(identity), pool, a), built with one allocation.
func redisKeyFor(identity, pool string, a Algorithm) string {
	const prefix = "limitgen:{"
	var buf [len(prefix) + 32 + 3 + MaxPoolLen]byte
	sum := sha256.Sum256([]byte(identity))
	b := append(buf[:0], prefix...)
	b = hex.AppendEncode(b, sum[:16])
	switch a {
	case SlidingWindow:
		b = append(b, "}s:"...)
	case GCRA:
		b = append(b, "}g:"...)
	default:
		b = append(b, "}:"...)
	}
	return string(append(b, pool...))
}

// redisKeyOf is the key of (pool, identity, algorithm) given identity's tag.
func redisKeyOf(tag, pool string, a Algorithm) string {
	switch a {
	case SlidingWindow:
		return tag + "s:" + pool
	case GCRA:
		return tag + "g:" + pool
	}
	return tag + ":" + pool
}

// redisKey is the fixed-window key of (pool, identity).
func redisKey(pool, identity string) string {
	return redisKeyOf(redisTag(identity), pool, FixedWindow)
}
