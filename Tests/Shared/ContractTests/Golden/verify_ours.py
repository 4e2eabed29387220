#!/usr/bin/env python3
"""Checks our (Swift / libprotobuf-c) encodings and JSON against the Python reference.

The Swift contract test decodes golden vectors, re-encodes them and writes the
result as DIR/<full.name>.<kind>.ours.bin, and its proto3 JSON of the same
value as DIR/<full.name>.<kind>.ours.json. For each such file this script
parses it with the reference runtime (``ParseFromString``, or
``json_format.Parse`` for JSON, which refuses unknown fields), rebuilds the
expected instance with the same builder that make_golden.py uses, and compares
the two messages. Whether our bytes (or the reference encoding of what our
JSON parsed to) are byte-identical to the reference encoding is reported for
information only: protobuf encodings need not be canonical.

Prints one line per file, then
    verified N, mismatched M, byte-identical K
where N counts all *.ours.bin and *.ours.json files checked. Exits 1 if M > 0
or if DIR holds no *.ours.bin or no *.ours.json file, 2 on usage or proto
errors.

Usage:
    verify_ours.py [--proto-root PROTO_DIR] --dir DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.message import DecodeError

# Keep the test folder free of __pycache__ when importing the shared module.
sys.dont_write_bytecode = True
import golden_lib  # noqa: E402

OURS_SUFFIX = ".ours.bin"
OURS_JSON_SUFFIX = ".ours.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proto-root", type=Path, default=golden_lib.DEFAULT_PROTO_ROOT,
                        metavar="PROTO_DIR",
                        help="directory holding the .proto files (default: %(default)s)")
    parser.add_argument("--dir", type=Path, required=True, metavar="DIR",
                        help="directory holding the *.ours.bin files written by the Swift test")
    args = parser.parse_args(argv)

    if not args.dir.is_dir():
        print(f"error: {args.dir} is not a directory", file=sys.stderr)
        return 2
    try:
        messages = golden_lib.load_messages(args.proto_root)
    except golden_lib.GoldenError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    ours_files = sorted(p for p in args.dir.iterdir()
                        if p.is_file() and (p.name.endswith(OURS_SUFFIX) or p.name.endswith(OURS_JSON_SUFFIX)))
    mismatched = identical = 0
    for path in ours_files:
        problem, same_bytes = check_file(path, messages)
        if problem is not None:
            mismatched += 1
            print(f"{path.name}: MISMATCH: {problem}")
        elif same_bytes:
            identical += 1
            print(f"{path.name}: ok")
        else:
            print(f"{path.name}: ok (bytes differ)")

    print(f"verified {len(ours_files)}, mismatched {mismatched}, byte-identical {identical}")
    for suffix in (OURS_SUFFIX, OURS_JSON_SUFFIX):
        if not any(p.name.endswith(suffix) for p in ours_files):
            print(f"error: no *{suffix} files in {args.dir}", file=sys.stderr)
            return 1
    return 1 if mismatched else 0


def check_file(path: Path, messages: dict) -> tuple[str | None, bool]:
    """Returns (problem description or None, whether the bytes are identical)."""
    # <full.name>.<kind>.ours.bin (or .ours.json) -- message full names contain dots, kinds do not.
    is_json = path.name.endswith(OURS_JSON_SUFFIX)
    stem = path.name[: -len(OURS_JSON_SUFFIX if is_json else OURS_SUFFIX)]
    full_name, _, kind = stem.rpartition(".")
    if full_name not in messages:
        return f"unknown message type {full_name!r}", False
    cls = messages[full_name]
    if kind not in golden_lib.kinds_for(cls.DESCRIPTOR):
        return f"no {kind!r} vector exists for {full_name}", False

    ours = path.read_bytes()
    actual = cls()
    if is_json:
        try:
            json_format.Parse(ours.decode("utf-8"), actual)
        except (json_format.ParseError, UnicodeDecodeError) as error:
            return f"reference JSON parser rejected our JSON: {error}", False
        ours = golden_lib.to_binary(actual)
    else:
        try:
            actual.ParseFromString(ours)
        except DecodeError as error:
            return f"reference parser rejected our bytes: {error}", False

    expected = golden_lib.build_instance(cls, kind)
    same_bytes = ours == golden_lib.to_binary(expected)
    # Message equality also covers unknown fields, i.e. fields we emitted that
    # the schema does not define.
    if actual != expected:
        return golden_lib.first_difference(expected, actual), same_bytes
    return None, same_bytes


if __name__ == "__main__":
    sys.exit(main())
