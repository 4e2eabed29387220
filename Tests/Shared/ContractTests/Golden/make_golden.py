#!/usr/bin/env python3
"""Writes the golden vectors: reference encodings made by the Python protobuf runtime.

For every message type defined under the proto root (nested ones included)
and every instance kind (rich, empty and, for messages with a oneof, alt) this
writes

    OUT_DIR/<full.name>.<kind>.bin    deterministic binary encoding
    OUT_DIR/<full.name>.<kind>.json   proto3 JSON of the same instance (for humans)

plus OUT_DIR/manifest.json listing them. Stale *.bin / *.json files in OUT_DIR
that this run would not write are deleted. The output is byte-identical across
runs for the same protos and protobuf version.

Usage:
    make_golden.py [--proto-root PROTO_DIR] --out OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Keep the test folder free of __pycache__ when importing the shared module.
sys.dont_write_bytecode = True
import golden_lib  # noqa: E402

MANIFEST_NAME = "manifest.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proto-root", type=Path, default=golden_lib.DEFAULT_PROTO_ROOT,
                        metavar="PROTO_DIR",
                        help="directory holding the .proto files (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT_DIR", help="directory to write the vectors to")
    args = parser.parse_args(argv)

    try:
        messages = golden_lib.load_messages(args.proto_root)
    except golden_lib.GoldenError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    # Build everything in memory first so that a failure leaves OUT_DIR untouched.
    files: dict[str, bytes] = {}
    manifest = []
    for full_name, cls in messages.items():
        for kind in golden_lib.kinds_for(cls.DESCRIPTOR):
            msg = golden_lib.build_instance(cls, kind)
            stem = golden_lib.vector_stem(full_name, kind)
            files[f"{stem}.bin"] = golden_lib.to_binary(msg)
            files[f"{stem}.json"] = golden_lib.to_json(msg).encode("utf-8")
            manifest.append({"message": full_name, "kind": kind,
                             "bin": f"{stem}.bin", "json": f"{stem}.json"})
    manifest.sort(key=lambda entry: (entry["message"], entry["kind"]))
    files[MANIFEST_NAME] = (json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False)
                            + "\n").encode("utf-8")

    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    removed = _remove_stale(out_dir, keep=set(files))
    changed = 0
    for name, content in sorted(files.items()):
        path = out_dir / name
        # Skip unchanged files so that timestamps only move when content does.
        if not path.is_file() or path.read_bytes() != content:
            path.write_bytes(content)
            changed += 1

    print(f"{len(messages)} message types, {len(manifest)} vectors: {len(files)} files in "
          f"{out_dir} ({changed} new or changed, {removed} stale removed)")
    return 0


def _remove_stale(out_dir: Path, keep: set[str]) -> int:
    """Deletes *.bin / *.json files directly in out_dir that are not in ``keep``."""
    removed = 0
    for path in sorted(out_dir.iterdir()):
        if path.is_file() and path.suffix in (".bin", ".json") and path.name not in keep:
            path.unlink()
            removed += 1
    return removed


if __name__ == "__main__":
    sys.exit(main())
