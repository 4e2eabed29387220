#!/usr/bin/env bash
# What TLS costs Doorstep's gRPC server, beside what it costs grpc++, in one run: h2load on
# loopback against four peers serving the benchmark contract (collection.v1.Accounts/GetAccount,
# the same 10,000 accounts, the same 17-byte request and 93-byte response frames):
#
#   ext-h2c   rpc-bench-server, plaintext (HTTP/2 prior knowledge)     - the baseline
#   ext-tls   rpc-bench-server with --tls-cert-file/--tls-key-file     (swift-nio-ssl, ALPN h2)
#   cpp-tls   grpc++ 1.51 (the benchmark kit's server.cc, its InsecureServerCredentials()
#             replaced by SslServerCredentials with the same certificate and key)
#   cpp-h2c   grpc++ 1.51 as the kit builds it, plaintext
#
# Both ext peers run Doorstep's full server path (routing, bearer-token check, metrics) at
# log level notice, called with a platform token, like Scripts/bench-rpc.sh. The certificate
# is a `doorstep tls-dev` one (ECDSA P-256); h2load negotiates h2 by ALPN and does not verify
# it; a stock grpcio client that does verify it (against the dev CA) checks each peer field by
# field before anything is measured, and nghttp checks the grpc-status: 0 trailer.
#
# Shapes and accounting are the benchmark kit's (../shared/bench/run-anchors.sh, which this
# script reads from but does not run): throughput h2load -t 1 -c C -m M -n N, latency
# -c 1 -m 1 -n LAT_N (p50/p99 from h2load's per-request log), server CPU per request from
# /proc/PID/stat over the run, oth% = CPU used by anything else on the machine (>10: noisy).
# All peers are started once, checked and warmed up; then every round runs each peer once,
# in an order that rotates between rounds, so all peers see the same noise. Before a round
# the script waits for the machine to be quiet (others' builds and tests make every figure
# noisy), and a round in which anything else used more than NOISY % of a core during one of
# its runs is measured again (its rows go to noisy-*.tsv), up to RETRIES times. Ratios are taken
# against peers measured in the same run: ext-tls/ext-h2c (Doorstep's TLS tax),
# cpp-tls/cpp-h2c (grpc++'s), ext-tls/cpp-tls (Doorstep against grpc++, both over TLS).
# Each run opens C connections (C handshakes for N requests): this measures TLS on long-lived
# connections, as gRPC uses them, not the handshake.
#
#   PIN=1 Scripts/bench-tls.sh          # figures to report: server on CPU 0, h2load on CPU 1
#
# Knobs (defaults in brackets): RUNS [3]  N [300000]  C [16]  M [32]  LAT_N [20000]
#   PEERS ["ext-h2c ext-tls cpp-tls cpp-h2c"]  PIN (unset: unpinned)
#   RUN_TIMEOUT [45]  seconds, hard cap on one h2load run
#   DEADLINE [300]    seconds of measuring; later rounds are skipped (the first round of each
#                     shape always runs). Quiet, the whole script takes about 2 minutes.
#   QUIET_MAX [15]    % of one core others may use (sampled over 1 s) before a round starts
#   WAIT_MAX [180]    seconds of waiting for quiet in all; then rounds start regardless
#   NOISY [25]  RETRIES [2]   re-measure a round whose runs saw others above NOISY % (oth%)
#   WORK [/tmp/anchors-tls]  builds and results;  ANCHORS_WORK [/tmp/anchors] run-anchors.sh's
#                     work dir, whose generated C++ and Python stubs are reused when current
#   BASE_PORT [47160] four ports from here
#   SKIP_BUILD=1      use .build/release/{rpc-bench-server,doorstep} as they are (no swift build)
# Needs the benchmark kit at ../shared/bench beside the repository (server.cc, the proto,
# check_client.py) and its tools: h2load, nghttp, g++, protoc, grpc_cpp_plugin, libgrpc++-dev,
# python3 grpcio + grpcio-tools (run-anchors.sh installs them).
# Results: a table of medians and ratios at the end, and $WORK/results/tls-runs-*.tsv
# (run-anchors.sh's columns and the negotiated TLS version and cipher).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kit="$root/../shared/bench"
[ -f "$kit/cpp-server/server.cc" ] || { echo "bench-tls: $kit not found (shared/ must sit beside the repository)" >&2; exit 2; }
kit=$(cd "$kit" && pwd)
cd "$root"

RUNS=${RUNS:-3}; N=${N:-300000}; C=${C:-16}; M=${M:-32}; LAT_N=${LAT_N:-20000}
WARM_N=${WARM_N:-20000}; RUN_TIMEOUT=${RUN_TIMEOUT:-45}; DEADLINE=${DEADLINE:-300}
QUIET_MAX=${QUIET_MAX:-15}; WAIT_MAX=${WAIT_MAX:-180}; NOISY=${NOISY:-25}; RETRIES=${RETRIES:-2}
PEERS=${PEERS:-"ext-h2c ext-tls cpp-tls cpp-h2c"}
WORK=${WORK:-/tmp/anchors-tls}; ANCHORS_WORK=${ANCHORS_WORK:-/tmp/anchors}
BASE_PORT=${BASE_PORT:-47160}
RPC_PATH=/collection.v1.Accounts/GetAccount
SRV=(); CLI=()
if [[ -n "${PIN:-}" ]]; then SRV=(taskset -c 0); CLI=(taskset -c 1); fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "bench-tls: $*" >&2; exit 2; }

missing=()
for tool in h2load nghttp g++ protoc grpc_cpp_plugin pkg-config python3 taskset; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
pkg-config --exists grpc++ protobuf 2>/dev/null || missing+=("libgrpc++-dev")
python3 -c 'import grpc, grpc_tools' 2>/dev/null || missing+=("python grpcio grpcio-tools")
((${#missing[@]} == 0)) || die "missing ${missing[*]} (bash ../shared/bench/run-anchors.sh installs them)"
for p in $PEERS; do
  case $p in ext-h2c|ext-tls|cpp-tls|cpp-h2c) ;; *) die "unknown peer $p (ext-h2c ext-tls cpp-tls cpp-h2c)" ;; esac
done

mkdir -p "$WORK/bin" "$WORK/results"
secrets=$(mktemp -d)
declare -A PID PORT
cleanup() {
  local p
  for p in "${!PID[@]}"; do
    if kill -0 "${PID[$p]}" 2>/dev/null; then kill "${PID[$p]}" 2>/dev/null || true; wait "${PID[$p]}" 2>/dev/null || true; fi
  done
  rm -rf "$secrets"
}
trap cleanup EXIT

# ------------------------------------------------------------------ builds
if [[ -z "${SKIP_BUILD:-}" ]]; then
  swift build -c release --product rpc-bench-server
  swift build -c release --product doorstep
fi
# Copies: a later build in this checkout must not swap the binary under a running measurement.
for b in rpc-bench-server doorstep; do
  [ -x ".build/release/$b" ] || die ".build/release/$b missing (run without SKIP_BUILD)"
  cp ".build/release/$b" "$WORK/bin/$b"
done
# The checkout's revision, and when the binaries were built (with SKIP_BUILD they may predate it).
revision="$(git --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)$(git --no-optional-locks diff --quiet HEAD -- Shared Tools 2>/dev/null || echo '+local changes')"
revision+=" (rpc-bench-server built $(date -r .build/release/rpc-bench-server '+%Y-%m-%d %H:%M'))"

newer() { # newer TARGET SRC... : TARGET missing or older than a SRC
  local t=$1; shift
  [[ -e "$t" ]] || return 0
  local s; for s in "$@"; do [[ "$s" -nt "$t" ]] && return 0; done
  return 1
}

# Generated stubs: run-anchors.sh's when current, else generated here the same way.
stubs="$ANCHORS_WORK/cpp"
if newer "$stubs/accounts.grpc.pb.cc" "$kit/proto/accounts.proto" || [ ! -f "$stubs/accounts.pb.cc" ]; then
  stubs="$WORK/cpp-stubs"; mkdir -p "$stubs"
  if newer "$stubs/accounts.grpc.pb.cc" "$kit/proto/accounts.proto"; then
    log "cpp: protoc"
    protoc -I "$kit/proto" --cpp_out="$stubs" --grpc_out="$stubs" \
      --plugin=protoc-gen-grpc="$(command -v grpc_cpp_plugin)" accounts.proto
  fi
fi
py="$ANCHORS_WORK/py"
if newer "$py/accounts_pb2_grpc.py" "$kit/proto/accounts.proto"; then
  py="$WORK/py"; mkdir -p "$py"
  if newer "$py/accounts_pb2_grpc.py" "$kit/proto/accounts.proto"; then
    python3 -m grpc_tools.protoc -I "$kit/proto" --python_out="$py" --grpc_python_out="$py" accounts.proto
  fi
fi

# The grpc++ TLS variant: the kit's server.cc with its one InsecureServerCredentials() replaced
# by SslServerCredentials over the certificate and key named by argv[2] and argv[3].
cpp="$WORK/cpp"; mkdir -p "$cpp"
python3 - "$kit/cpp-server/server.cc" "$cpp/server_tls.cc" <<'PY'
import sys
src = open(sys.argv[1]).read()
if src.count("grpc::InsecureServerCredentials()") != 1 or src.count("int main(") != 1:
    sys.exit("bench-tls: server.cc no longer has one InsecureServerCredentials() in one main(); update bench-tls.sh")
helper = r'''#include <fstream>
#include <sstream>

// bench-tls.sh: the listener's credentials from PEM files (argv[2] certificate chain, argv[3] key).
static std::string BenchReadFile(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) { std::fprintf(stderr, "cannot read %s\n", path); std::exit(2); }
  std::ostringstream s; s << in.rdbuf(); return s.str();
}
static std::shared_ptr<grpc::ServerCredentials> BenchTlsCredentials(int argc, char** argv) {
  if (argc < 4) { std::fprintf(stderr, "usage: %s PORT CERT_PEM KEY_PEM\n", argv[0]); std::exit(2); }
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({BenchReadFile(argv[3]), BenchReadFile(argv[2])});
  return grpc::SslServerCredentials(options);
}

'''
out = src.replace("grpc::InsecureServerCredentials()", "BenchTlsCredentials(argc, argv)").replace("int main(", helper + "int main(")
old = open(sys.argv[2]).read() if __import__("os").path.exists(sys.argv[2]) else None
if out != old:
    open(sys.argv[2], "w").write(out)
PY
cxxflags=(-O2 -std=c++17 -I"$stubs")
read -r -a grpcflags <<<"$(pkg-config --cflags --libs grpc++ protobuf)"
for o in accounts.pb accounts.grpc.pb; do
  if newer "$cpp/$o.o" "$stubs/$o.cc"; then log "cpp: g++ $o.cc"; g++ "${cxxflags[@]}" -c "$stubs/$o.cc" -o "$cpp/$o.o" $(pkg-config --cflags grpc++ protobuf); fi
done
if newer "$cpp/server_h2c" "$kit/cpp-server/server.cc" "$cpp/accounts.pb.o" "$cpp/accounts.grpc.pb.o"; then
  log "cpp: g++ -O2 server (plaintext)"
  g++ "${cxxflags[@]}" -o "$cpp/server_h2c" "$kit/cpp-server/server.cc" "$cpp/accounts.pb.o" "$cpp/accounts.grpc.pb.o" "${grpcflags[@]}" -lpthread
fi
if newer "$cpp/server_tls" "$cpp/server_tls.cc" "$cpp/accounts.pb.o" "$cpp/accounts.grpc.pb.o"; then
  log "cpp: g++ -O2 server (TLS)"
  g++ "${cxxflags[@]}" -o "$cpp/server_tls" "$cpp/server_tls.cc" "$cpp/accounts.pb.o" "$cpp/accounts.grpc.pb.o" "${grpcflags[@]}" -lpthread
fi

# ------------------------------------------------------------------ certificate, token, body
"$WORK/bin/doorstep" tls-dev "$secrets/tls" --name bench --days 2 >/dev/null
cert="$secrets/tls/bench.pem"; key="$secrets/tls/bench.key"; ca="$secrets/tls/ca.pem"
"$WORK/bin/doorstep" keygen --key-file "$secrets/bench.key" >/dev/null
token=$("$WORK/bin/doorstep" token --role platform --subject bench --lifetime-seconds 86400 --key-file "$secrets/bench.key")
PYTHONPATH="$py" python3 "$kit/python-server/check_client.py" --write-body "$WORK/body.bin" >/dev/null

# ------------------------------------------------------------------ servers
i=0
for p in ext-h2c ext-tls cpp-tls cpp-h2c; do PORT[$p]=$((BASE_PORT + i)); i=$((i + 1)); done
url() { case $1 in *-tls) echo "https://127.0.0.1:${PORT[$1]}$RPC_PATH" ;; *) echo "http://127.0.0.1:${PORT[$1]}$RPC_PATH" ;; esac; }
h2args() {
  H2ARGS=(-H 'content-type: application/grpc' -H 'te: trailers' -d "$WORK/body.bin")
  [[ $1 == ext-* ]] && H2ARGS+=(-H "authorization: Bearer $token")
  return 0
}
wait_port() {
  local i
  for i in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}
start() {
  local p=$1 port=${PORT[$1]} out="$WORK/server-$1.log"
  case $p in
    ext-h2c) "${SRV[@]}" "$WORK/bin/rpc-bench-server" --port "$port" --auth-key-file "$secrets/bench.key" --log-level notice >"$out" 2>&1 & ;;
    ext-tls) "${SRV[@]}" "$WORK/bin/rpc-bench-server" --port "$port" --auth-key-file "$secrets/bench.key" --log-level notice \
               --tls-cert-file "$cert" --tls-key-file "$key" >"$out" 2>&1 & ;;
    cpp-h2c) "${SRV[@]}" "$cpp/server_h2c" "$port" >"$out" 2>&1 & ;;
    cpp-tls) "${SRV[@]}" "$cpp/server_tls" "$port" "$cert" "$key" >"$out" 2>&1 & ;;
  esac
  PID[$p]=$!
  wait_port "$port" || { log "$p: port $port did not open: $(tail -n 3 "$out")"; return 1; }
  sleep 0.3
}
verify() { # a stock grpcio client (verifying the certificate against the dev CA) + the trailer via nghttp
  local p=$1
  PYTHONPATH="$py:$kit/python-server" python3 - "${PORT[$p]}" "$([[ $p == *-tls ]] && echo "$ca")" \
    "$([[ $p == ext-* ]] && echo "Bearer $token")" <<'PY' >&2 || return 1
import sys, grpc, accounts_pb2, accounts_pb2_grpc
from check_client import expected
port, ca, auth = sys.argv[1], sys.argv[2], sys.argv[3]
md = [("authorization", auth)] if auth else []
target = "127.0.0.1:%s" % port
channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(open(ca, "rb").read())) if ca else grpc.insecure_channel(target)
with channel:
    stub = accounts_pb2_grpc.AccountsStub(channel)
    for i in (4242, 0, 9999):
        got = stub.GetAccount(accounts_pb2.GetAccountRequest(account_id="acc-%06d" % i), timeout=5, metadata=md)
        if got != expected(i):
            sys.exit("    MISMATCH for acc-%06d: %r" % (i, got))
    try:
        stub.GetAccount(accounts_pb2.GetAccountRequest(account_id="nope"), timeout=5, metadata=md)
        sys.exit("    missing id did not fail")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            sys.exit("    missing id -> %s" % e.code())
print("    grpcio over %s: 3 accounts field by field, missing id NOT_FOUND" % ("TLS (certificate verified)" if ca else "plaintext"))
PY
  h2args "$p"
  local v
  v=$(nghttp -v "${H2ARGS[@]}" "$(url "$p")" 2>&1 | tr -d '\000' || true)
  grep -aq 'grpc-status: 0' <<<"$v" || { log "$p: no grpc-status: 0 trailer via nghttp"; return 1; }
  if [[ $p == *-tls ]]; then
    grep -aq 'h2 protocol.*negotiated\|The negotiated protocol: h2' <<<"$v" || { log "$p: h2 not negotiated by ALPN"; return 1; }
  fi
}

# ------------------------------------------------------------------ measurement (run-anchors.sh's)
STAMP=$(date +%Y%m%d-%H%M%S)
TSV="$WORK/results/tls-runs-$STAMP.tsv"; NOISY_TSV="$WORK/results/noisy-$STAMP.tsv"
printf 'peer\tshape\trun\tn\treqps\tsucceeded\tfailed\terrored\tnon2xx\tmean_us\tp50_us\tp99_us\tmax_us\tsrv_cpu_s\twall_s\th2load_cpu_s\tdata_per_req\tother_cpu_pct\tsteal_pct\ttls\n' >"$TSV"
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
sys_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8, $9}' /proc/stat; }
measure() { # measure PEER SHAPE RUN N h2load-args...
  local p=$1 shape=$2 run=$3 n=$4; shift 4
  local out="$WORK/results/$p-$shape-$run.txt" lf="$WORK/h2load-requests.log" s0 s1 c0 c1 t0 t1
  h2args "$p"; rm -f "$lf"
  s0=$(sys_ticks); c0=$(cpu_ticks "${PID[$p]}"); t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$WORK/h2time" \
    timeout "$RUN_TIMEOUT" "${CLI[@]}" h2load -t 1 -n "$n" "$@" "${H2ARGS[@]}" --log-file="$lf" "$(url "$p")" >"$out" 2>&1 || true
  t1=$(date +%s.%N); c1=$(cpu_ticks "${PID[$p]}"); s1=$(sys_ticks)
  python3 - "$p" "$shape" "$run" "$n" "$out" "$lf" "$c0" "$c1" "$t0" "$t1" "$WORK/h2time" "$s0" "$s1" >>"$TSV" <<'PY'
import re, sys
peer, shape, run, n, out, lf, c0, c1, t0, t1, h2t, s0, s1 = sys.argv[1:]
txt = open(out, errors="replace").read()
def num(pat, default="nan"):
    m = re.search(pat, txt)
    return m.group(1) if m else default
unit = {"us": 1.0, "ms": 1e3, "s": 1e6}
def dur(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    return float(m.group(1)) * unit[m.group(2)] if m else float("nan")
reqps = num(r"finished in [^,]+, ([\d.]+) req/s")
succ = num(r"(\d+) succeeded"); failed = num(r"(\d+) failed"); errd = num(r"(\d+) errored")
s2 = int(num(r"status codes: (\d+) 2xx", "0"))
m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", txt)
mean_us = dur(m.group(3)) if m else float("nan"); max_us = dur(m.group(2)) if m else float("nan")
lat = []
try:
    with open(lf) as f:
        for line in f:
            p = line.split("\t")
            if len(p) >= 3:
                lat.append(int(p[2]))
except FileNotFoundError:
    pass
lat.sort()
def pct(q):
    return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
srv_cpu = (int(c1) - int(c0)) / 100.0
wall = float(t1) - float(t0)
try:
    u, s = open(h2t).read().split()[-2:]; h2cpu = float(u) + float(s)
except Exception:
    h2cpu = float("nan")
non2xx = (int(succ) - s2) if succ.isdigit() else -1
data = int(num(r"traffic: .*?\((\d+)\) data", "0"))
data_per_req = round(data / int(succ), 2) if succ.isdigit() and int(succ) else 0
b0, st0 = (int(x) for x in s0.split()); b1, st1 = (int(x) for x in s1.split())
other_pct = round(100 * ((b1 - b0) / 100.0 - srv_cpu - h2cpu) / wall, 1)
steal_pct = round(100 * (st1 - st0) / 100.0 / wall, 1)
tls = "-"
t = re.search(r"TLS Protocol: (\S+)\s+Cipher: (\S+)", txt)
if t:
    tls = t.group(1) + " " + t.group(2)
print("\t".join(str(x) for x in [peer, shape, run, n, reqps, succ, failed, errd, non2xx,
      round(mean_us, 1), pct(0.50), pct(0.99), round(max_us, 1), srv_cpu, round(wall, 3), h2cpu,
      data_per_req, other_pct, steal_pct, tls]))
PY
  tail -n 1 "$TSV" | awk -F'\t' '{printf "    %-8s %-4s run %s: %9s req/s  ok=%s fail=%s err=%s non2xx=%s  p50=%sus p99=%sus srvCPU=%ss oth=%s%%\n",$1,$2,$3,$5,$6,$7,$8,$9,$11,$12,$14,$18}' >&2
}

log "work dir: $WORK; results: $TSV; $([[ -n "${PIN:-}" ]] && echo "pinned: servers on CPU 0, h2load on CPU 1" || echo "unpinned")"
log "load average before start: $(cut -d' ' -f1-3 /proc/loadavg) (near 0 = quiet machine)"
ok=()
for p in $PEERS; do
  log "== $p: start and check"
  if start "$p" && verify "$p"; then ok+=("$p"); else log "$p: FAILED, not measured"; fi
done
((${#ok[@]})) || die "no peer answered"
for p in "${ok[@]}"; do
  h2args "$p"
  timeout "$RUN_TIMEOUT" "${CLI[@]}" h2load -t 1 -n "$WARM_N" -c "$C" -m "$M" "${H2ARGS[@]}" "$(url "$p")" >/dev/null 2>&1 || true
done
started=$SECONDS; waited=0
late() { ((SECONDS - started - waited > DEADLINE)); }
wait_quiet() { # until others use at most QUIET_MAX % of a core over 1 s (the peers are idle then)
  local a b busy t0=$SECONDS
  while :; do
    a=$(sys_ticks); sleep 1; b=$(sys_ticks)
    busy=$(( ${b%% *} - ${a%% *} ))   # clock ticks in one second = % of one core
    ((busy <= QUIET_MAX)) && break
    if ((waited + SECONDS - t0 > WAIT_MAX)); then log "machine still busy ($busy % of a core) after WAIT_MAX: measuring anyway"; break; fi
    log "machine busy ($busy % of a core used by others): waiting"; sleep 9
  done
  waited=$((waited + SECONDS - t0))
}
rotate() { local k=$1; shift; local a=("$@"); local n=${#a[@]}; local j; for j in $(seq 0 $((n - 1))); do printf '%s ' "${a[$(((j + k) % n))]}"; done; }
noisy_rounds=0
for shape in tput lat; do
  for r in $(seq 1 "$RUNS"); do
    if ((r > 1)) && late; then log "DEADLINE ($DEADLINE s) passed: $shape round $r and later skipped"; break; fi
    for attempt in $(seq 0 "$RETRIES"); do
      wait_quiet
      log "-- $shape round $r$( ((attempt)) && echo " (again: attempt $((attempt + 1)))")"
      before=$(wc -l <"$TSV")
      for p in $(rotate $((r - 1)) "${ok[@]}"); do
        if [[ $shape == tput ]]; then measure "$p" tput "$r" "$N" -c "$C" -m "$M"; else measure "$p" lat "$r" "$LAT_N" -c 1 -m 1; fi
      done
      worst=$(tail -n +"$((before + 1))" "$TSV" | awk -F'\t' 'BEGIN{m=0} {if ($18+0 > m) m=$18+0} END{printf "%d", m}')
      ((worst <= NOISY)) && break
      if ((attempt == RETRIES)) || late; then log "round noisy (others used up to $worst % of a core): kept"; break; fi
      log "round noisy (others used up to $worst % of a core): moved to $NOISY_TSV, measuring again"
      tail -n +"$((before + 1))" "$TSV" >>"$NOISY_TSV"; head -n "$before" "$TSV" >"$TSV.tmp"; mv "$TSV.tmp" "$TSV"
      noisy_rounds=$((noisy_rounds + 1))
    done
  done
done
((noisy_rounds == 0)) || log "$noisy_rounds noisy round(s) measured again; their rows: $NOISY_TSV"

# ------------------------------------------------------------------ report
PIN=${PIN:-} C=$C M=$M NOISY=$NOISY REVISION="$revision" python3 - "$TSV" <<'PY'
import csv, os, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
E = os.environ
def f(x):
    try: return float(x)
    except ValueError: return float("nan")
def rows_of(peer, shape): return [r for r in rows if r["peer"] == peer and r["shape"] == shape]
peers = list(dict.fromkeys(r["peer"] for r in rows))
S = {}
for p in peers:
    t, l = rows_of(p, "tput"), rows_of(p, "lat")
    d = {}
    if t:
        rq = [f(r["reqps"]) for r in t]
        d.update(reqps=st.median(rq), lo=min(rq), hi=max(rq), runs=len(t),
                 cpu=st.median(f(r["srv_cpu_s"]) * 1e6 / max(1, int(f(r["succeeded"]) if r["succeeded"].isdigit() else 1)) for r in t),
                 srvp=st.median(100 * f(r["srv_cpu_s"]) / f(r["wall_s"]) for r in t),
                 h2p=st.median(100 * f(r["h2load_cpu_s"]) / f(r["wall_s"]) for r in t))
    if l:
        d.update(p50=st.median(f(r["p50_us"]) for r in l), p99=st.median(f(r["p99_us"]) for r in l),
                 mean=st.median(f(r["mean_us"]) for r in l))
    allr = t + l
    bad = sum(int(r[k]) if r[k].lstrip("-").isdigit() else 1 for r in allr for k in ("failed", "errored", "non2xx"))
    short = sum(1 for r in allr if not r["succeeded"].isdigit() or int(r["succeeded"]) != int(r["n"]))
    dpr = sorted({r["data_per_req"] for r in allr} - {"93.0"})
    err = "none" if bad == 0 and short == 0 else f"{bad} bad, {short} short runs"
    if dpr: err += f"; data/req {dpr} (expected 93)"
    d.update(oth=max(f(r["other_cpu_pct"]) for r in allr), err=err,
             tls=", ".join(sorted({r["tls"] for r in allr} - {"-"})) or "-")
    S[p] = d
pin = "server on CPU 0, h2load on CPU 1 (PIN=1)" if E.get("PIN") else "unpinned: client and server share the cores"
runs = max(d.get("runs", 0) for d in S.values())
print()
print(f"TLS vs plaintext, Doorstep {E['REVISION']} and grpc++ 1.51 - median of {runs} interleaved runs; {pin}")
print(f"tput = h2load -t 1 -c {E['C']} -m {E['M']}; lat = -c 1 -m 1; srvCPU = server CPU-us per request (tput);")
print("srv% / h2% = CPU use of server / h2load over a tput run (100 = one core); oth% = highest CPU use by anything else (>10: noisy)")
hdr = f"{'peer':<9}{'req/s':>9}{'(min-max)':>17}{'srvCPU/req':>12}{'srv%':>6}{'h2%':>6}{'p50 c1':>9}{'p99 c1':>9}{'oth%':>6}  errors"
print(hdr); print("-" * len(hdr))
def g(d, k): return d.get(k, float("nan"))
for p, d in S.items():
    print(f"{p:<9}{g(d,'reqps'):>9.0f}{'(%.0f-%.0f)' % (g(d,'lo'), g(d,'hi')):>17}{g(d,'cpu'):>10.1f}us{g(d,'srvp'):>6.0f}{g(d,'h2p'):>6.0f}"
          f"{g(d,'p50'):>7.0f}us{g(d,'p99'):>7.0f}us{g(d,'oth'):>6.0f}  {d['err']}")
for p, d in S.items():
    if d["tls"] != "-": print(f"{p}: {d['tls']}")
print()
print(f"{'ratio':<20}{'req/s':>8}{'srvCPU/req':>12}{'p50 c1':>9}{'p99 c1':>9}")
for a, b in (("ext-tls", "ext-h2c"), ("cpp-tls", "cpp-h2c"), ("ext-tls", "cpp-tls"), ("ext-h2c", "cpp-h2c")):
    if a in S and b in S:
        A, B = S[a], S[b]
        r = lambda k: g(A, k) / g(B, k) if g(B, k) else float("nan")
        print(f"{a + ' / ' + b:<20}{r('reqps'):>7.2f}x{r('cpu'):>11.2f}x{r('p50'):>8.2f}x{r('p99'):>8.2f}x")
noisy = [r for r in rows if f(r["other_cpu_pct"]) > float(E["NOISY"])]
if noisy:
    print(f"\nNOISY: {len(noisy)} of {len(rows)} runs had others above {E['NOISY']} % of a core "
          f"({', '.join(sorted({r['peer'] + ' ' + r['shape'] for r in noisy}))}); do not quote this run")
print(f"\nper-run rows: {sys.argv[1]}")
PY
