#!/usr/bin/env bash
# Regenerates the committed contract code from proto/:
#   Shared/Contracts/include/**.pb-c.h, Shared/Contracts/src/**.pb-c.c   (protoc-c)
#   Shared/Contracts/include/CContracts.h, Shared/Models/Generated/*.swift (Scripts/gen_swift_models.py)
#
# Usage: Scripts/generate-contracts.sh           regenerate in place
#        Scripts/generate-contracts.sh --check   regenerate into a temporary directory and
#                                                 fail (exit 1) if the committed files differ
# Needs: protoc-c (protobuf-c-compiler), protoc (protobuf-compiler), python3 with `protobuf`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-write}
for tool in protoc-c protoc python3; do
  command -v "$tool" >/dev/null || { echo "generate-contracts: $tool not found (apt-get install protobuf-c-compiler protobuf-compiler python3)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root/proto"
mapfile -t protos < <(find . -name '*.proto' -printf '%P\n' | LC_ALL=C sort)

mkdir -p "$work/c" "$work/swift"
protoc-c -I . --c_out="$work/c" "${protos[@]}"
protoc -I . --include_imports --include_source_info --descriptor_set_out="$work/set.pb" "${protos[@]}"
python3 "$root/Scripts/gen_swift_models.py" --descriptor-set "$work/set.pb" --c-dir "$work/c" \
  --swift-out "$work/swift" --c-header "$work/CContracts.h"

# Lay the output out as it is committed.
staged="$work/staged"
mkdir -p "$staged/include" "$staged/src" "$staged/Generated"
(cd "$work/c" && find . -name '*.h' -exec cp --parents {} "$staged/include/" \;)
(cd "$work/c" && find . -name '*.c' -exec cp --parents {} "$staged/src/" \;)
cp "$work/CContracts.h" "$staged/include/"
cp "$root/Shared/Contracts/include/module.modulemap" "$staged/include/"
cp "$work/swift/"*.swift "$staged/Generated/"

if [ "$mode" = "--check" ]; then
  status=0
  diff -r "$staged/include" "$root/Shared/Contracts/include" || status=1
  diff -r "$staged/src" "$root/Shared/Contracts/src" || status=1
  diff -r "$staged/Generated" "$root/Shared/Models/Generated" || status=1
  if [ $status -ne 0 ]; then
    echo "generate-contracts: committed contract code is out of date: run Scripts/generate-contracts.sh" >&2
  else
    echo "generate-contracts: committed contract code is in sync with proto/"
  fi
  exit $status
fi

rm -rf "$root/Shared/Contracts/include" "$root/Shared/Contracts/src" "$root/Shared/Models/Generated"
mkdir -p "$root/Shared/Contracts" "$root/Shared/Models"
cp -r "$staged/include" "$root/Shared/Contracts/include"
cp -r "$staged/src" "$root/Shared/Contracts/src"
cp -r "$staged/Generated" "$root/Shared/Models/Generated"
echo "generate-contracts: wrote ${#protos[@]} protos' C and Swift code"
