#!/usr/bin/env bash
# Regenerates the swift-protobuf 1.39.0 code of the baseline (Benchmarks/ContractCodec/Baseline)
# from ../proto. Builds protoc-gen-swift from the swift-protobuf package this benchmark
# package resolves (run `swift package resolve` first), once, into .build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
swift package resolve
checkout=.build/checkouts/swift-protobuf
[ -d "$checkout" ] || { echo "regenerate-baseline: $checkout not found" >&2; exit 1; }
swift build -c release --package-path "$checkout" --product protoc-gen-swift
plugin="$checkout/.build/release/protoc-gen-swift"
out=Benchmarks/ContractCodec/Baseline
rm -rf "$out" && mkdir -p "$out"
(cd ../proto && protoc -I . --plugin=protoc-gen-swift="$here/$plugin" --swift_out="$here/$out" \
  --swift_opt=FileNaming=PathToUnderscores doorstep/type/v1/types.proto doorstep/accounts/v1/accounts.proto)
echo "regenerate-baseline: wrote $out"
