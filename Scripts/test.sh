#!/usr/bin/env bash
# Runs every test of Doorstep: the README's test command, and what CI runs.
# Installs what it needs first (Scripts/install-deps.sh), so it works on a fresh machine.
#
#   DOORSTEP_FUZZ_SECONDS   how long the fuzz stage runs (default 30; 0 skips it)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "install dependencies"
Scripts/install-deps.sh

step "contract checks: buf lint, buf breaking against proto/BASELINE, descriptor set, changelog"
Scripts/check-contracts.sh
Scripts/check-contracts.sh --self-test

step "unit, contract and integration tests"
swift build --build-tests
# The suites that start private PostgreSQL servers (and crash them) run on their own next, so
# that their load does not disturb the timing-sensitive transport tests running beside them.
private_servers="PostgresFaultTests|ReplicaTests|DatabaseProcessTests|PostgresComposeProcessTests"
swift test --skip-build --skip "$private_servers"

step "PostgreSQL faults and replicas, each test on a private server (initdb, crash, restart)"
swift test --skip-build --filter "$private_servers"

step "the service suites again over the in-process transport (the same interceptors and handlers, no sockets)"
DOORSTEP_TEST_TRANSPORT=inprocess swift test --skip-build --filter "AccountsServiceTests|SchedulingServiceTests|VisitsServiceTests"

step "the storage, outbox, service, workflow and process suites again on PostgreSQL (a throwaway server, Scripts/with-postgres.sh)"
# The suites with private servers of their own ran above; the compose file's suite is about
# the SQLite deployment.
Scripts/with-postgres.sh env DOORSTEP_TEST_DATABASE=postgres swift test --skip-build \
  --filter "StorageTests|OutboxTests|AccountsServiceTests|SchedulingServiceTests|VisitsServiceTests|ServicesTests" \
  --skip "$private_servers|ComposeClusterTests"

step "replay the fuzz regression corpus"
.build/debug/FuzzContractDecode FuzzTesting/Corpus/ContractDecode

step "AddressSanitizer + LeakSanitizer on every suite that runs in the test process (not the real-process suites)"
# Linked with lld: gold warns once per sanitizer symbol it cannot export (1,551 lines a build).
LSAN_OPTIONS="suppressions=$root/Tests/lsan-suppressions.txt:print_suppressions=0" \
  swift test --sanitize=address --scratch-path .build-asan -Xswiftc -use-ld=lld \
  --filter "ContractTests|RPCWireTests|HTTP2Tests|RPCTests|ReflectionTests|ServiceAuthTests|StorageTests|ServiceKitTests|ValidationTests|ComplianceTests|AccountsServiceTests|SchedulingServiceTests|OutboxTests|VisitsServiceTests"

fuzz_seconds=${DOORSTEP_FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" -gt 0 ]; then
  step "fuzz contract decoding for ${fuzz_seconds}s"
  Scripts/fuzz.sh "$fuzz_seconds"
fi

step "all tests passed"
