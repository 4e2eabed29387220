#!/usr/bin/env bash
# Starts the whole Doorstep system locally on its embedded default (SQLite in ./data).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
Scripts/install-deps.sh
swift build
echo "run: the contracts and models are built; the accounts, scheduling and visits executables arrive with the RPC issue (#3)."
