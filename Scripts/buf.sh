#!/usr/bin/env bash
# Runs the pinned Buf CLI (PyPI `buf-bin`, installed by Scripts/install-deps.sh) in the
# repository root, with the repository's buf.yaml: `Scripts/buf.sh lint`, `Scripts/buf.sh
# breaking --against ...`, `Scripts/buf.sh build ...` (relative paths are relative to the
# root). `Scripts/buf.sh -C DIR ...` runs it in DIR instead (the self-test's copies).
# The contract scripts (check-contracts.sh, generate-descriptors.sh, release-artifacts.sh)
# call Buf only through this script.
#
# Finds buf in Python's script directories first (where pip puts `buf-bin`), then on PATH;
# BUF=/path/to/buf overrides. Refuses another version than the pinned one: the committed
# descriptor set is Buf's output byte for byte, and lint and breaking rules change between
# versions. buf.yaml declares no dependencies, so Buf needs no network and no BSR login; its
# cache goes to a temporary directory unless BUF_CACHE_DIR is set.
set -euo pipefail

# Keep in step with `buf-bin==` in Scripts/install-deps.sh.
buf_version=1.75.0

root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "-C" ]; then
  [ $# -ge 2 ] || { echo "usage: $0 [-C DIR] BUF-ARGUMENTS..." >&2; exit 2; }
  root=$(cd "$2" && pwd)
  shift 2
fi

find_buf() {
  if [ -n "${BUF:-}" ]; then
    echo "$BUF"
    return
  fi
  local dir
  while IFS= read -r dir; do
    if [ -n "$dir" ] && [ -x "$dir/buf" ]; then
      echo "$dir/buf"
      return
    fi
  done < <(python3 - 2>/dev/null <<'PY'
import os, sysconfig
print(sysconfig.get_path("scripts"))
try:
    print(sysconfig.get_path("scripts", f"{os.name}_user"))
except KeyError:
    pass
PY
)
  command -v buf || true
}

buf=$(find_buf)
if [ -z "$buf" ]; then
  echo "buf.sh: the Buf CLI is not installed: python3 -m pip install buf-bin==$buf_version (or Scripts/install-deps.sh)" >&2
  exit 2
fi
found=$("$buf" --version 2>/dev/null || echo unknown)
if [ "$found" != "$buf_version" ]; then
  echo "buf.sh: $buf is Buf $found; the contract checks pin $buf_version: python3 -m pip install buf-bin==$buf_version (or Scripts/install-deps.sh)" >&2
  exit 2
fi

cleanup=""
if [ -z "${BUF_CACHE_DIR:-}" ]; then
  BUF_CACHE_DIR=$(mktemp -d)
  export BUF_CACHE_DIR
  cleanup=$BUF_CACHE_DIR
fi

cd "$root"
status=0
"$buf" "$@" || status=$?
[ -z "$cleanup" ] || rm -rf "$cleanup"
exit $status
