#!/usr/bin/env bash
# Measures Doorstep's RPC stack beside reference servers, in one run of the benchmark kit's
# harness. The kit is not part of this repository: it is expected at ../shared/bench beside
# the repository (the path below), and its run-anchors.sh builds the reference peers, checks
# each with a real gRPC client, and measures every peer with h2load on loopback (throughput
# at -c 16 -m 32, latency at -c 1 -m 1), printing one table of medians with server CPU per
# request. Peers here: nghttpd-post (nghttp2's own server answering a same-sized POST: the
# HTTP/2 ceiling), cpp (grpc++ 1.51) and ext = rpc-bench-server (the benchmark contract's
# collection.v1.Accounts/GetAccount through Doorstep's full server path: routing,
# bearer-token check, metrics, logging at info), started by the harness with EXT_CMD and
# called with EXT_AUTH.
#
#   Scripts/bench-rpc.sh                 # PEERS, RUNS, N, C, M, PIN... pass through to run-anchors.sh
# Results: the table run-anchors.sh prints, and $WORK/results (default /tmp/anchors/results).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
anchors="$root/../shared/bench/run-anchors.sh"
[ -f "$anchors" ] || { echo "bench-rpc: $anchors not found (shared/ must sit beside the repository)" >&2; exit 2; }
cd "$root"

swift build -c release --product rpc-bench-server
swift build -c release --product doorstep

keys=$(mktemp -d)
trap 'rm -rf "$keys"' EXIT
.build/release/doorstep keygen --key-file "$keys/bench.key" >/dev/null
token=$(.build/release/doorstep token --role platform --subject bench --lifetime-seconds 86400 --key-file "$keys/bench.key")

export PEERS=${PEERS:-"nghttpd-post cpp ext"}
export EXT_CMD="$root/.build/release/rpc-bench-server --port \$PORT --auth-key-file $keys/bench.key --log-level notice"
export EXT_AUTH="Bearer $token"
bash "$anchors"
