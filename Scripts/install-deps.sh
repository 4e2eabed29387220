#!/usr/bin/env bash
# Installs what building and testing Doorstep needs on a fresh Debian 12 machine with the
# Swift toolchain: the C libraries and code generators (apt), the Python reference
# implementation used by the contract tests and the Buf CLI used by the contract checks
# (pip). Skips what is already there.
set -euo pipefail

# docker-compose (the v1 client; no engine needed) checks docker-compose.yml against the
# Compose schema with `docker-compose config` (Tests/Integration/DeploymentTests).
# postgresql-15 is the server of the PostgreSQL runs (Scripts/with-postgres.sh: a throwaway
# cluster; the package's own cluster is not started by this script). prometheus brings
# promtool, which checks the alert rules in deploy/prometheus (Tests/Integration/DeploymentTests).
# nghttp2-client brings h2load, which loads a TLS listener while its certificate rotates
# (Tests/Integration/ServicesTests, TransportSecurityProcessTests).
apt_packages=(libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libnghttp2-dev libsqlite3-dev pkg-config docker-compose postgresql-15 prometheus nghttp2-client)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# grpc_status (grpcio-status) decodes the standard error details the way stock clients do;
# grpc_reflection (grpcio-reflection) is the stock server-reflection client.
python_modules=(google.protobuf grpc_tools grpc h2 yaml grpc_status grpc_reflection)
need_pip=0
for module in "${python_modules[@]}"; do
  python3 -c "import $module" >/dev/null 2>&1 || need_pip=1
done
if [ $need_pip -eq 1 ]; then
  echo "install-deps: pip install protobuf grpcio grpcio-tools grpcio-status grpcio-reflection h2 pyyaml"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore protobuf grpcio grpcio-tools grpcio-status grpcio-reflection h2 pyyaml
fi

# The Buf CLI for the contract checks (Scripts/check-contracts.sh), from PyPI, pinned: the
# committed descriptor set is its output byte for byte. Keep in step with Scripts/buf.sh.
buf_version=1.75.0
installed_buf=$(python3 -m pip show buf-bin 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$installed_buf" != "$buf_version" ]; then
  echo "install-deps: pip install buf-bin==$buf_version"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "buf-bin==$buf_version"
fi
