#!/usr/bin/env bash
# Measures Doorstep's RPC stack beside the reference servers, in one run of
# ../shared/bench/run-anchors.sh: peers nghttpd-post (HTTP/2 ceiling), cpp (grpc++ 1.51) and
# ext = rpc-bench-server (collection.v1.Accounts/GetAccount through Doorstep's full server
# path: routing, bearer-token check, metrics, logging at info).
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
export EXT_CMD="$root/.build/release/rpc-bench-server --port \$PORT --auth-key-file $keys/bench.key --log-level info"
export EXT_AUTH="Bearer $token"
bash "$anchors"
