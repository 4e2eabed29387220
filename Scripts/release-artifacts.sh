#!/usr/bin/env bash
# Builds the contract artefacts a release attaches, so platform teams can generate clients
# without cloning the repository (docs/CONTRACTS.md, "Release artefacts"):
#
#   doorstep-contracts-VERSION.binpb    the published FileDescriptorSet (every service a
#                                       Doorstep server serves, with imports and comments):
#                                       protoc --descriptor_set_in, buf, grpcurl -protoset
#   doorstep-contracts-VERSION.tar.gz   the published .proto sources under
#                                       doorstep-contracts-VERSION/ (import paths as in
#                                       proto/), with CHANGELOG.md
#   CHANGELOG.md                        the contract changelog (proto/CHANGELOG.md)
#   SHA256SUMS                          checksums of the above
#
# Runs the contract checks first (Scripts/check-contracts.sh): nothing is built from a
# contract that fails them or from a descriptor set out of sync with proto/.
#
# Usage: Scripts/release-artifacts.sh OUT_DIR [VERSION]
#        VERSION defaults to `git describe --tags --always --dirty` (e.g. v1.1.0, or a
#        commit id until the first release tag).
set -euo pipefail

scripts=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$scripts/.." && pwd)
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 OUT_DIR [VERSION]" >&2
  exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
version=${2:-$(git -C "$root" describe --tags --always --dirty)}
name="doorstep-contracts-$version"

"$scripts/check-contracts.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
set_file="$root/proto/descriptors/doorstep.binpb"

# The published files are the ones in the descriptor set (Scripts/generate-descriptors.sh
# decides which).
mapfile -t files < <(python3 - "$set_file" <<'PY'
import sys
from google.protobuf import descriptor_pb2
fds = descriptor_pb2.FileDescriptorSet()
fds.ParseFromString(open(sys.argv[1], "rb").read())
for file in fds.file:
    print(file.name)
PY
)
mkdir -p "$work/$name"
for file in "${files[@]}"; do
  mkdir -p "$work/$name/$(dirname "$file")"
  cp "$root/proto/$file" "$work/$name/$file"
done
cp "$root/proto/CHANGELOG.md" "$work/$name/"

# Reproducible: same contract, same bytes.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf - "$name" |
  gzip -n -9 >"$out/$name.tar.gz"
cp "$set_file" "$out/$name.binpb"
cp "$root/proto/CHANGELOG.md" "$out/CHANGELOG.md"
(cd "$out" && sha256sum "$name.binpb" "$name.tar.gz" CHANGELOG.md >SHA256SUMS)

echo "release-artifacts: wrote $out:"
(cd "$out" && ls -l "$name.binpb" "$name.tar.gz" CHANGELOG.md SHA256SUMS | awk '{print "  " $5 "\t" $9}')
echo "release-artifacts: ${#files[@]} proto files: ${files[*]}"
