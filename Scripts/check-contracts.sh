#!/usr/bin/env bash
# The contract checks (docs/CONTRACTS.md), run by Scripts/test.sh before the Swift build:
#
#   lint         `buf lint` with buf.yaml (STANDARD minus the AIP differences, and COMMENTS)
#   breaking     `buf breaking` against the baseline in proto/BASELINE (WIRE_JSON, and no
#                deleted RPC, service or package): a change that breaks a caller fails
#                with Buf's message
#   descriptors  proto/descriptors/doorstep.binpb is in sync with proto/
#                (Scripts/generate-descriptors.sh)
#   changelog    proto/CHANGELOG.md lists every RPC, field and enum value
#                (Scripts/contract_changelog.py)
#
# Usage: Scripts/check-contracts.sh              run the checks on proto/
#        Scripts/check-contracts.sh --self-test  show that the checks catch what they are for:
#                                                edited copies of proto/ (a renumbered field,
#                                                a changed type, ...) must fail with Buf's
#                                                message, the unedited copy must pass
# Exit status: 0 when every check passes, 1 when one fails, 2 when a tool is missing.
# Needs: the pinned Buf CLI (Scripts/buf.sh), git (the baseline), python3 with `protobuf`.
set -euo pipefail

scripts=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$scripts/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The baseline's proto/, extracted from git history into $work/baseline/proto.
baseline_ref=""
extract_baseline() {
  baseline_ref=$(awk '!/^[[:space:]]*(#|$)/ { print $1; exit }' "$root/proto/BASELINE")
  if [ -z "$baseline_ref" ]; then
    echo "check-contracts: proto/BASELINE names no revision" >&2
    exit 2
  fi
  if ! git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "check-contracts: $root is not a git checkout; the breaking check reads the baseline ($baseline_ref) from git history" >&2
    exit 2
  fi
  if ! git -C "$root" rev-parse --verify --quiet "$baseline_ref^{commit}" >/dev/null; then
    echo "check-contracts: the baseline $baseline_ref (proto/BASELINE) is not in this clone; a shallow clone? (git fetch --unshallow, or git fetch --tags)" >&2
    exit 2
  fi
  mkdir -p "$work/baseline"
  git -C "$root" archive --format=tar "$baseline_ref" proto | tar -x -C "$work/baseline"
}

# run_check NAME TREE: runs one check on TREE (a directory with buf.yaml and proto/),
# printing its output; returns its status.
run_check() {
  local name=$1 tree=$2 out=$work/out.$name
  local status=0
  case "$name" in
    lint)
      "$scripts/buf.sh" -C "$tree" lint >"$out" 2>&1 || status=$?
      ;;
    breaking)
      "$scripts/buf.sh" -C "$tree" breaking --against "$work/baseline/proto" >"$out" 2>&1 || status=$?
      ;;
    descriptors)
      "$scripts/generate-descriptors.sh" --root "$tree" --check >"$out" 2>&1 || status=$?
      ;;
    changelog)
      { "$scripts/generate-descriptors.sh" --root "$tree" --out "$work/set.binpb" &&
        python3 "$scripts/contract_changelog.py" check --descriptor-set "$work/set.binpb" \
          --changelog "$tree/proto/CHANGELOG.md"; } >"$out" 2>&1 || status=$?
      ;;
  esac
  last_output=$(cat "$out")
  return $status
}

checks=(lint breaking descriptors changelog)

check_real() {
  extract_baseline
  local failed=0 name status
  for name in "${checks[@]}"; do
    status=0
    run_check "$name" "$root" || status=$?
    if [ $status -eq 0 ]; then
      case "$name" in
        lint) echo "check-contracts: lint: clean (buf.yaml: STANDARD minus the AIP differences, and COMMENTS)" ;;
        breaking) echo "check-contracts: breaking: no wire or JSON breaking change against the baseline $baseline_ref" ;;
        *) echo "check-contracts: $name: $last_output" ;;
      esac
    else
      failed=1
      echo "check-contracts: $name FAILED:" >&2
      [ -z "$last_output" ] || printf '%s\n' "$last_output" >&2
      case "$name" in
        lint) echo "check-contracts: fix the proto, or (only if the fix would break callers) exclude the rule in buf.yaml with the reason" >&2 ;;
        breaking) echo "check-contracts: that change breaks callers built against the baseline $baseline_ref (proto/BASELINE): add, never renumber; reserve on removal; a new major version is a new package (docs/CONTRACTS.md)" >&2 ;;
      esac
    fi
  done
  if [ $failed -ne 0 ]; then
    echo "check-contracts: FAILED (docs/CONTRACTS.md)" >&2
    exit 1
  fi
  echo "check-contracts: all contract checks passed"
}

# --- self-test --------------------------------------------------------------------------

passed=0
failed_cases=0

# new_copy: a fresh copy of buf.yaml and proto/ in $work/copy; prints its path.
new_copy() {
  rm -rf "$work/copy"
  mkdir -p "$work/copy"
  cp "$root/buf.yaml" "$work/copy/"
  cp -r "$root/proto" "$work/copy/"
  echo "$work/copy"
}

# edit FILE SED-SCRIPT: edits a proto of the copy, and insists the edit changed it.
edit() {
  local file=$work/copy/proto/$1
  cp "$file" "$work/before"
  sed -i "$2" "$file"
  if cmp -s "$file" "$work/before"; then
    echo "check-contracts: self-test: the edit '$2' did not change $1 (the contract changed: update the self-test)" >&2
    exit 1
  fi
}

ok() { passed=$((passed + 1)); echo "check-contracts: self-test: ok    $1"; }
not_ok() {
  failed_cases=$((failed_cases + 1))
  echo "check-contracts: self-test: FAIL  $1" >&2
  [ -z "${last_output:-}" ] || printf '%s\n' "$last_output" | sed 's/^/    /' >&2
}

# expect_fail CHECK DESCRIPTION PATTERN...: the check fails on the copy, and its output
# (Buf's message) matches every grep pattern.
expect_fail() {
  local name=$1 description=$2
  shift 2
  local status=0 pattern
  run_check "$name" "$work/copy" || status=$?
  if [ $status -eq 0 ]; then
    last_output="(the $name check passed)"
    not_ok "$description"
    return
  fi
  for pattern in "$@"; do
    if ! grep -qF -- "$pattern" <<<"$last_output"; then
      last_output="(the output does not match '$pattern')
$last_output"
      not_ok "$description"
      return
    fi
  done
  ok "$description"
  printf '%s\n' "$last_output" | grep -F -- "$1" | head -n 1 | sed 's/^/        /'
}

# expect_pass CHECK... DESCRIPTION: every named check passes on the copy.
expect_pass() {
  local description=${*: -1}
  local name
  for name in "${@:1:$#-1}"; do
    if ! run_check "$name" "$work/copy"; then
      last_output="(the $name check failed)
$last_output"
      not_ok "$description"
      return
    fi
  done
  last_output=""
  ok "$description"
}

self_test() {
  extract_baseline
  local accounts=doorstep/accounts/v1/accounts.proto
  local get_account='/^message GetAccountRequest {/,/^}/'

  new_copy >/dev/null
  expect_pass "${checks[@]}" "the contract as it is passes lint, breaking, descriptors and changelog"

  new_copy >/dev/null
  edit "$accounts" "$get_account s/string account_id = 1;/string account_id = 3;/"
  expect_fail breaking "a renumbered field (GetAccountRequest.account_id 1 -> 3) fails breaking" \
    'Previously present field "1" with name "account_id" on message "GetAccountRequest" was deleted'

  new_copy >/dev/null
  edit "$accounts" "$get_account s/AccountView view = 2;/string view = 2;/"
  expect_fail breaking "a changed type (GetAccountRequest.view enum -> string) fails breaking" \
    'Field "2" with name "view" on message "GetAccountRequest" changed type from "enum" to "string"'

  new_copy >/dev/null
  edit "$accounts" "s/^  STAGE_FIELD = 4;/  STAGE_FIELD_VISIT = 4;/"
  expect_fail breaking "a renamed enum value (Stage.STAGE_FIELD, same number: JSON breaks) fails breaking" \
    'Enum value "4" on enum "Stage" changed name from "STAGE_FIELD" to "STAGE_FIELD_VISIT"'

  new_copy >/dev/null
  edit "$accounts" "$get_account { /AccountView view = 2;/d }"
  expect_fail breaking "a deleted field that is not reserved (GetAccountRequest.view) fails breaking" \
    'without reserving the number "2"' 'without reserving the name "view"'

  new_copy >/dev/null
  edit "$accounts" "$get_account s/AccountView view = 2;/reserved 2;\n  reserved \"view\";/"
  expect_pass breaking lint "a deleted field reserved by number and name passes breaking and lint"

  new_copy >/dev/null
  edit "$accounts" "/^  rpc WriteOff(WriteOffRequest) returns (Account);/d"
  expect_fail breaking "a deleted RPC (Accounts.WriteOff) fails breaking" \
    'Previously present RPC "WriteOff" on service "Accounts" was deleted'

  new_copy >/dev/null
  edit "doorstep/visits/v1/visits.proto" "s/^service Visits {/service FieldVisits {/"
  expect_fail breaking "a renamed service (the call path changes) fails breaking" \
    'Previously present service "Visits" was deleted from package "doorstep.visits.v1"'

  new_copy >/dev/null
  edit "$accounts" "$get_account s/AccountView view = 2;/AccountView view = 2;\n  string accountView = 3;/"
  expect_fail lint "a camelCase field name fails lint" 'Field name "accountView" should be lower_snake_case'

  new_copy >/dev/null
  edit "$accounts" "$get_account s/AccountView view = 2;/AccountView view = 2;\n  string account_view = 3;/"
  expect_fail lint "a field without a comment fails lint" 'Field "account_view" should have a non-empty comment'

  # An added RPC: fine for breaking and lint; the changelog must name it, and the descriptor
  # set must be regenerated.
  new_copy >/dev/null
  edit "$accounts" "s/^  rpc WriteOff(WriteOffRequest) returns (Account);/&\n\n  \/\/ Self-test.\n  rpc PingAccount(PingAccountRequest) returns (Account);/"
  printf '\n// Self-test.\nmessage PingAccountRequest {\n  // Self-test.\n  string account_id = 1;\n}\n' >>"$work/copy/proto/$accounts"
  expect_fail changelog "an added RPC missing from the changelog fails the changelog check" \
    'RPC(s), field(s) or enum value(s) of the contract are not in the changelog' \
    '- service `Accounts`: `PingAccount`'
  expect_fail descriptors "an added RPC without regenerating the descriptor set fails the descriptors check" \
    'is out of date with proto/'
  "$scripts/generate-descriptors.sh" --root "$work/copy" >/dev/null
  # The entry goes first under "## Unreleased", whatever that section already lists.
  sed -i '/^## Unreleased$/a\\n### `doorstep.accounts.v1`\n\n- service `Accounts`: `PingAccount`\n- message `PingAccountRequest`: `account_id`' \
    "$work/copy/proto/CHANGELOG.md"
  expect_pass "${checks[@]}" "an added RPC with its changelog entry and descriptors passes every check"

  echo "check-contracts: self-test: $passed passed, $failed_cases failed"
  [ $failed_cases -eq 0 ] || exit 1
}

case "${1:-}" in
  "") check_real ;;
  --self-test) self_test ;;
  *) echo "usage: $0 [--self-test]" >&2; exit 2 ;;
esac
