#!/usr/bin/env bash
# Regenerates the published descriptor set, proto/descriptors/doorstep.binpb: one
# google.protobuf.FileDescriptorSet of every contract a Doorstep server serves (the
# doorstep.accounts.v1, doorstep.scheduling.v1 and doorstep.visits.v1 services, what they
# import, and grpc.health.v1), with source info (the proto comments) and imports included,
# so a client can be generated, or a call built, without the .proto sources. Committed,
# like the rest of the generated contract code; Scripts/check-contracts.sh checks it is in
# sync with proto/, and Scripts/release-artifacts.sh ships it.
#
# Every file under proto/ is published except the unpublished paths below, so a new
# package (doorstep.accounts.v2, a vendored grpc.reflection.v1) is published when added.
#
# Usage: Scripts/generate-descriptors.sh             regenerate in place
#        Scripts/generate-descriptors.sh --check     fail (exit 1) if the committed set differs
#        Scripts/generate-descriptors.sh --out FILE  write the set to FILE instead
#        --root DIR (first) works on DIR (a buf.yaml and proto/) instead of this repository
# Needs: the pinned Buf CLI (Scripts/buf.sh).
set -euo pipefail

scripts=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$scripts/.." && pwd)
if [ "${1:-}" = "--root" ]; then
  [ $# -ge 2 ] || { echo "usage: $0 [--root DIR] [--check | --out FILE]" >&2; exit 2; }
  root=$(cd "$2" && pwd)
  shift 2
fi
committed="$root/proto/descriptors/doorstep.binpb"

# Not published: the contract tests' fixtures and the benchmark contract (neither is served
# by a Doorstep service). Paths as buf.yaml names them (relative to the repository root).
unpublished=(proto/doorstep/testing proto/collection)

build() {
  local args=(build --output "$1")
  local path
  for path in "${unpublished[@]}"; do args+=(--exclude-path "$path"); done
  "$scripts/buf.sh" -C "$root" "${args[@]}"
}

case "${1:-write}" in
  write)
    mkdir -p "$(dirname "$committed")"
    build "$committed"
    echo "generate-descriptors: wrote ${committed#"$root"/}"
    ;;
  --out)
    [ $# -eq 2 ] || { echo "usage: $0 --out FILE" >&2; exit 2; }
    out=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
    build "$out"
    ;;
  --check)
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    build "$work/doorstep.binpb"
    if ! cmp -s "$work/doorstep.binpb" "$committed"; then
      echo "generate-descriptors: ${committed#"$root"/} is out of date with proto/: run Scripts/generate-descriptors.sh" >&2
      exit 1
    fi
    echo "generate-descriptors: ${committed#"$root"/} is in sync with proto/"
    ;;
  *)
    echo "usage: $0 [--root DIR] [--check | --out FILE]" >&2
    exit 2
    ;;
esac
