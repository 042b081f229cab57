// Package bench compares limitgen's runtime with the best-known Go rate limiters, in a
// module of its own so that the main module does not depend on them.
//
// Run ./run.sh (or `go test -run '^$' -bench . -benchmem -count 5`, then
// `go run ./ratios < results.txt`) from this directory. Redis benchmarks start a private
// redis-server on a unix socket (internal/redistest) and are skipped without one.
//
// Groups, each at 1, 16 and 64 concurrent callers:
//   - Redis, allowed calls: limitgen (fixed, gcra, sliding) vs github.com/go-redis/redis_rate
//     (GCRA) and github.com/ulule/limiter (fixed window), all on one go-redis client over a
//     unix socket, configured as runtime.FromEnv configures its own: ContextTimeoutEnabled,
//     so limitgen calls Redis directly with its 50ms deadline instead of on a goroutine of
//     its own (PoolSize 128, so that 64 callers never wait for a connection). The peers are
//     called with context.Background(), as their documentation does: no deadline, no timer.
//   - Redis, a flood of denied calls: the same, limitgen with and without its denial cache.
//   - Memory, allowed and denied: limitgen's MemoryStore through a Limiter vs a map of
//     golang.org/x/time/rate limiters behind a mutex and github.com/sethvargo/go-limiter's
//     memorystore.
//   - The generated wrapper vs calling the handler directly vs a reflection-based wrapper.
package bench
