#!/usr/bin/env bash
# Instructions per request of one client, from callgrind: the marginal cost between a run of
# N and one of 2N requests, so start-up and warm-up cancel out. The server child is not traced.
#   crates/resil-bench/callgrind.sh target/release/tokio_loopback resil [5000]
# Extra environment (FLAKY=1, IN_FLIGHT=32) is passed through to the bench binary.
set -euo pipefail
bin=$1 only=$2 n=${3:-5000}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
total() {
  ONLY=$only taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$scratch/cg.$1" \
    "$bin" --requests "$1" > /dev/null 2>&1
  grep -E '^(summary|totals):' "$scratch/cg.$1" | head -1 | awk '{print $2}'
}
small=$(total "$n")
large=$(total $((2 * n)))
echo "$only: $(( (large - small) / n )) instructions per request ($n vs $((2 * n)) requests)"
