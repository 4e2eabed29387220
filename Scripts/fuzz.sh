#!/usr/bin/env bash
# Fuzzes contract decoding with libFuzzer + AddressSanitizer.
#   Scripts/fuzz.sh [SECONDS]   (default 60)
# Builds FuzzContractDecode with -sanitize=fuzzer,address into .build-fuzz (linked with lld:
# gold crashes on the sanitizer runtime's debug info), seeds it with the
# committed corpus (FuzzTesting/Corpus/ContractDecode) and the golden vectors, and runs it
# for SECONDS. A crash leaves crash-* in the repo root: minimize it with
#   .build-fuzz/release/FuzzContractDecode -minimize_crash=1 -runs=10000 crash-…
# and commit the result under FuzzTesting/Corpus/ContractDecode as a regression input.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
cd "$root"

swift build -c release --scratch-path .build-fuzz --product FuzzContractDecode \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING -Xswiftc -use-ld=lld

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/seeds"
cp FuzzTesting/Corpus/ContractDecode/* "$work/seeds/" 2>/dev/null || true
# Seed with the golden vectors: one file per message type, prefixed with its selector byte.
python3 Tests/Shared/ContractTests/Golden/make_golden.py --out "$work/golden" >/dev/null
python3 - "$work/golden" "$work/seeds" <<'PY'
import json, os, sys
golden, seeds = sys.argv[1], sys.argv[2]
manifest = json.load(open(os.path.join(golden, "manifest.json")))
names = sorted({entry["message"] for entry in manifest})
for entry in manifest:
    selector = names.index(entry["message"])
    data = open(os.path.join(golden, entry["bin"]), "rb").read()
    open(os.path.join(seeds, f"{entry['message']}.{entry['kind']}"), "wb").write(bytes([selector % 256]) + data)
PY
echo "fuzz: running for ${seconds}s"
# libFuzzer reports every new input; keep its log and show the end (all of it on failure).
if ! .build-fuzz/release/FuzzContractDecode -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 \
  "$work/corpus" "$work/seeds" > "$work/fuzz.log" 2>&1; then
  tail -n 120 "$work/fuzz.log"
  echo "fuzz: FAILED (a crash-* file with the input is in $root)" >&2
  exit 1
fi
grep -E "^(Done|stat::)" "$work/fuzz.log"
