#!/bin/sh
# Reproduces the benchmark table of the README: runs every comparison (Redis ones need
# redis-server on PATH), keeps the raw output in results.txt and prints the ratios.
#   bench/run.sh                 # 5 runs of 1s each
#   COUNT=10 BENCHTIME=2s bench/run.sh
#   BENCH=Memory bench/run.sh    # only the benchmarks matching a pattern
set -eu
cd "$(dirname "$0")"
LIMITGEN_REQUIRE_SERVICES=${LIMITGEN_REQUIRE_SERVICES:-1} \
	go test -run '^$' -bench "${BENCH:-.}" -benchmem -count "${COUNT:-5}" \
	-benchtime "${BENCHTIME:-1s}" -timeout 60m . | tee results.txt
go run ./ratios < results.txt | tee ratios.md
