"""Shared code for the golden-vector contract tests.

The reference side of the contract is the official Python protobuf runtime.
This module

* compiles the project's .proto files with grpc_tools.protoc and imports the
  generated modules (``load_messages``), and
* builds deterministic test instances of every message type
  (``build_instance``), so that ``make_golden.py`` (which writes the vectors)
  and ``verify_ours.py`` (which checks the Swift/libprotobuf-c encodings) agree
  on what each vector contains without having to read one another's files.

Nothing in here may depend on randomness, the clock, dict/set iteration order
of unordered containers or the environment: the same protos must always
produce the same bytes.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, json_format, message_factory
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

# Repository root: Tests/Shared/ContractTests/Golden/golden_lib.py -> four levels up.
REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_PROTO_ROOT = REPO_ROOT / "proto"

# Instance kinds. "alt" only exists for message types that have a (real) oneof.
KIND_RICH = "rich"
KIND_EMPTY = "empty"
KIND_ALT = "alt"

# Sub-messages are filled down to this depth; the top-level message is depth 0.
# A sub-message field that would sit deeper is left unset, which bounds the
# size of recursive types (e.g. trees) without affecting ordinary ones.
MAX_DEPTH = 4

# Number of elements put into repeated message fields (repeated scalar fields
# always get exactly three, see _repeated_scalar_values).
REPEATED_MESSAGE_COUNT = 2

# Value that rich instances put into the first singular enum field: proto3
# enums are open, so an undefined number must survive decode/encode unchanged.
UNKNOWN_ENUM_NUMBER = 99

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1

# Singular doubles and floats alternate between these (all finite, so that
# message equality is well defined; the floats are exactly representable in
# IEEE binary32 so they survive a float32 round trip bit-for-bit).
DOUBLE_VALUES = (31.230416, -121.473701)
FLOAT_VALUES = (1.5, -0.25)

# Bytes that every singular bytes field starts with: NUL, 0xFF and a lone
# continuation byte (0x80) -- all invalid as UTF-8, catching accidental string
# handling of bytes fields. Each singular bytes field also ends with all 256
# byte values in order.
BYTES_PREFIX = b"\x00\xff\x80"
ALL_BYTE_VALUES = bytes(range(256))

_SIGNED32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32}
_SIGNED64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64}
_UNSIGNED32 = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32}
_UNSIGNED64 = {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64}


class GoldenError(Exception):
    """A problem with the inputs (protos, file names) rather than a bug."""


# --------------------------------------------------------------------------
# Compiling and loading the protos
# --------------------------------------------------------------------------


def load_messages(proto_root: Path) -> dict[str, type[Message]]:
    """Compiles every .proto under ``proto_root`` and returns the message classes.

    The result maps full message names (``doorstep.accounts.v1.Account``,
    ``doorstep.accounts.v1.Account.Instalment``) to generated classes, for
    every message type defined in those files including nested ones. Synthetic
    map-entry types are not included.

    Call this once per process: the generated modules register their files in
    the protobuf runtime's default descriptor pool and stay imported.
    """
    proto_root = proto_root.resolve()
    if not proto_root.is_dir():
        raise GoldenError(f"proto root {proto_root} is not a directory")
    proto_files = sorted(p.relative_to(proto_root).as_posix() for p in proto_root.rglob("*.proto"))
    if not proto_files:
        raise GoldenError(f"no .proto files under {proto_root}")

    with tempfile.TemporaryDirectory(prefix="golden_pb2_") as tmp:
        out_dir = Path(tmp)
        # grpc_tools.protoc adds its bundled well-known-type protos to the
        # include path itself.
        cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_root}",
               f"--python_out={out_dir}", *proto_files]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise GoldenError(f"protoc failed ({result.returncode}):\n{result.stderr}")

        modules = _import_generated(out_dir, proto_files)

    classes: dict[str, type[Message]] = {}
    for module in modules:
        for desc in module.DESCRIPTOR.message_types_by_name.values():
            _collect_messages(desc, classes)
    return dict(sorted(classes.items()))


def _import_generated(out_dir: Path, proto_files: list[str]) -> list:
    """Imports the ``*_pb2`` modules that protoc wrote into ``out_dir``."""
    # Turn the generated directories into regular packages and put out_dir
    # first on sys.path. Without this a proto package whose first component is
    # also an installed regular package -- grpc.health.v1 vs. grpcio's "grpc"
    # -- would resolve to the installed package and fail to import. Top-level
    # names that are already imported (notably the "google" namespace that
    # holds google.protobuf) are left alone.
    for directory in sorted(p for p in out_dir.rglob("*") if p.is_dir()):
        top_level = directory.relative_to(out_dir).parts[0]
        if top_level not in sys.modules:
            (directory / "__init__.py").touch()
    sys.path.insert(0, str(out_dir))
    importlib.invalidate_caches()
    try:
        modules = []
        for proto_file in proto_files:
            # Same naming rule as protoc's Python generator.
            name = proto_file[: -len(".proto")].replace("-", "_").replace("/", ".") + "_pb2"
            module = importlib.import_module(name)
            origin = Path(getattr(module, "__file__", "") or "").resolve()
            if out_dir.resolve() not in origin.parents:
                raise GoldenError(f"module {name} was imported from {origin}, not from the "
                                  "freshly generated code (name clash with an installed package?)")
            modules.append(module)
        return modules
    finally:
        sys.path.remove(str(out_dir))


def _collect_messages(desc: Descriptor, out: dict[str, type[Message]]) -> None:
    if desc.GetOptions().map_entry:
        return
    out[desc.full_name] = message_factory.GetMessageClass(desc)
    for nested in desc.nested_types:
        _collect_messages(nested, out)


# --------------------------------------------------------------------------
# Descriptor helpers
# --------------------------------------------------------------------------


def _is_repeated(field: FieldDescriptor) -> bool:
    # ``is_repeated`` replaced ``label`` in newer protobuf releases.
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == FieldDescriptor.LABEL_REPEATED


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def real_oneofs(desc: Descriptor) -> list:
    """The message's oneofs, without the synthetic ones of proto3 ``optional``."""
    proto = descriptor_pb2.DescriptorProto()
    desc.CopyToProto(proto)
    synthetic = {f.oneof_index for f in proto.field if f.proto3_optional}
    return [oneof for oneof in desc.oneofs if oneof.index not in synthetic]


def kinds_for(desc: Descriptor) -> list[str]:
    """The instance kinds generated for a message type, in a fixed order."""
    kinds = [KIND_RICH, KIND_EMPTY]
    if real_oneofs(desc):
        kinds.append(KIND_ALT)
    return kinds


def _enum_numbers(enum: EnumDescriptor) -> list[int]:
    return sorted({value.number for value in enum.values})


def _unknown_enum_number(enum: EnumDescriptor) -> int:
    """An enum number that the enum does not define (99 unless 99 is taken)."""
    defined = set(_enum_numbers(enum))
    number = UNKNOWN_ENUM_NUMBER
    while number in defined:
        number += 1
    return number


def _enum_is_open(enum: EnumDescriptor) -> bool:
    return not getattr(enum, "is_closed", False)


# --------------------------------------------------------------------------
# Building instances
# --------------------------------------------------------------------------


@dataclass
class _Counters:
    """Per-message state for the alternating fill rules.

    Each message (top-level or nested) starts with fresh counters; they
    advance over the singular fields that are actually set, in declaration
    order.
    """

    signed64: int = 0
    signed32: int = 0
    float64: int = 0
    float32: int = 0
    unknown_enum_used: bool = False

    def next(self, name: str, values: tuple):
        index = getattr(self, name)
        setattr(self, name, index + 1)
        return values[index % len(values)]


def rich_string(path: str) -> str:
    """CJK + Latin + a non-BMP emoji, tagged with the field path. Never U+0000."""
    return f"上門催收·張三·{path}·🙂·é"


def build_instance(cls: type[Message], kind: str) -> Message:
    """Builds the deterministic instance of ``cls`` for the given kind.

    * empty: the default instance (encodes to zero bytes).
    * rich:  every field set, each oneof set to its LAST member.
    * alt:   like rich, but each oneof set to its FIRST member.

    Oneof selection applies at every nesting level. See README.md for the
    value rules.
    """
    msg = cls()
    if kind == KIND_EMPTY:
        return msg
    if kind not in (KIND_RICH, KIND_ALT):
        raise GoldenError(f"unknown instance kind {kind!r}")
    if kind == KIND_ALT and not real_oneofs(msg.DESCRIPTOR):
        raise GoldenError(f"{msg.DESCRIPTOR.full_name} has no oneof, so it has no 'alt' instance")
    _fill(msg, kind, depth=0, path="")
    return msg


def _fill(msg: Message, kind: str, depth: int, path: str) -> None:
    desc = msg.DESCRIPTOR
    # For each real oneof, the full name of the one member that this kind sets.
    chosen = {oneof.full_name: (oneof.fields[-1] if kind == KIND_RICH else oneof.fields[0]).full_name
              for oneof in real_oneofs(desc)}
    counters = _Counters()

    for field in desc.fields:  # declaration order
        oneof = field.containing_oneof
        if oneof is not None and chosen.get(oneof.full_name, field.full_name) != field.full_name:
            continue
        field_path = f"{path}.{field.name}" if path else field.name

        if _is_map(field):
            _fill_map(msg, field, kind, depth, field_path)
        elif _is_repeated(field):
            container = getattr(msg, field.name)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                if depth + 1 <= MAX_DEPTH:
                    for i in range(REPEATED_MESSAGE_COUNT):
                        _fill(container.add(), kind, depth + 1, f"{field_path}[{i}]")
            else:
                container.extend(_repeated_scalar_values(field, field_path))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth + 1 <= MAX_DEPTH:
                sub = getattr(msg, field.name)
                sub.SetInParent()  # present even if the sub-message has no fields
                _fill(sub, kind, depth + 1, field_path)
        else:
            setattr(msg, field.name, _singular_scalar_value(field, counters, field_path))


def _singular_scalar_value(field: FieldDescriptor, counters: _Counters, path: str):
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return rich_string(path)
    if t == FieldDescriptor.TYPE_BYTES:
        return BYTES_PREFIX + path.encode("utf-8") + ALL_BYTE_VALUES
    if t in _SIGNED64:
        return counters.next("signed64", (INT64_MIN, INT64_MAX))
    if t in _SIGNED32:
        return counters.next("signed32", (INT32_MIN, INT32_MAX))
    if t in _UNSIGNED64:
        return UINT64_MAX
    if t in _UNSIGNED32:
        return UINT32_MAX
    if t == FieldDescriptor.TYPE_BOOL:
        return True
    if t == FieldDescriptor.TYPE_DOUBLE:
        return counters.next("float64", DOUBLE_VALUES)
    if t == FieldDescriptor.TYPE_FLOAT:
        return counters.next("float32", FLOAT_VALUES)
    if t == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        highest = _enum_numbers(enum)[-1]
        if _enum_is_open(enum) and (not counters.unknown_enum_used or highest == 0):
            # The first singular enum field gets an undefined number. So does
            # an enum that defines only 0: 0 is the default and would not be
            # encoded at all.
            counters.unknown_enum_used = True
            return _unknown_enum_number(enum)
        return highest
    raise GoldenError(f"unsupported field type {t} for {field.full_name}")


def _repeated_scalar_values(field: FieldDescriptor, path: str) -> list:
    """Three elements per repeated scalar field, mixing extremes and signs.

    Strings and bytes include an empty element in the middle: empty elements
    of repeated fields are still encoded and must not be dropped.
    """
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return [rich_string(f"{path}[0]"), "", rich_string(f"{path}[2]")]
    if t == FieldDescriptor.TYPE_BYTES:
        return [BYTES_PREFIX + f"{path}[0]".encode("utf-8"), b"", ALL_BYTE_VALUES]
    if t in _SIGNED64:
        return [INT64_MIN, -1, INT64_MAX]
    if t in _SIGNED32:
        return [INT32_MIN, -1, INT32_MAX]
    if t in _UNSIGNED64:
        return [UINT64_MAX, 0, 1]
    if t in _UNSIGNED32:
        return [UINT32_MAX, 0, 1]
    if t == FieldDescriptor.TYPE_BOOL:
        return [True, False, True]
    if t == FieldDescriptor.TYPE_DOUBLE:
        return [DOUBLE_VALUES[0], DOUBLE_VALUES[1], 1.7976931348623157e308]  # max double
    if t == FieldDescriptor.TYPE_FLOAT:
        return [FLOAT_VALUES[0], FLOAT_VALUES[1], 3.4028234663852886e38]  # max float32
    if t == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        numbers = _enum_numbers(enum)
        first = 1 if 1 in numbers else numbers[0]
        middle = _unknown_enum_number(enum) if _enum_is_open(enum) else numbers[0]
        return [first, middle, numbers[-1]]
    raise GoldenError(f"unsupported field type {t} for {field.full_name}")


def _fill_map(msg: Message, field: FieldDescriptor, kind: str, depth: int, path: str) -> None:
    """Two entries per map field. (The Doorstep protos use no maps today; this
    keeps the generator usable if one is added.)"""
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    if key_field.type == FieldDescriptor.TYPE_BOOL:
        keys = [False, True]
    else:
        # First and last of the repeated-field values: two distinct keys.
        candidates = _repeated_scalar_values(key_field, path)
        keys = [candidates[0], candidates[-1]]
    container = getattr(msg, field.name)
    if value_field.type == FieldDescriptor.TYPE_MESSAGE:
        if depth + 1 <= MAX_DEPTH:
            for key in keys:
                _fill(container[key], kind, depth + 1, f"{path}[{key!r}]")
    else:
        counters = _Counters(unknown_enum_used=True)  # map values get defined enum numbers
        for key in keys:
            container[key] = _singular_scalar_value(value_field, counters, f"{path}[{key!r}]")


# --------------------------------------------------------------------------
# Serialization and comparison
# --------------------------------------------------------------------------


def to_binary(msg: Message) -> bytes:
    return msg.SerializeToString(deterministic=True)


def to_json(msg: Message) -> str:
    """Stable, human-diffable JSON (proto3 JSON mapping, lowerCamelCase names)."""
    text = json_format.MessageToJson(msg, preserving_proto_field_name=False, indent=1,
                                     sort_keys=True, ensure_ascii=False)
    return text + "\n"


def vector_stem(full_name: str, kind: str) -> str:
    return f"{full_name}.{kind}"


def first_difference(expected: Message, actual: Message) -> str:
    """Describes the first difference between two messages of the same type."""
    exp = json_format.MessageToDict(expected, preserving_proto_field_name=True)
    act = json_format.MessageToDict(actual, preserving_proto_field_name=True)
    diff = _first_dict_difference(exp, act, "")
    if diff is not None:
        return diff
    # The known fields agree, so the difference is in the unknown fields
    # (fields our encoder wrote that the schema does not define).
    return "known fields are equal; the decoded message has unknown fields " \
           f"(re-encoded: {_short(to_binary(actual).hex())})"


def _first_dict_difference(exp, act, path: str) -> str | None:
    where = path or "<root>"
    if isinstance(exp, dict) and isinstance(act, dict):
        for key in sorted(set(exp) | set(act)):
            sub = f"{path}.{key}" if path else key
            if key not in act:
                return f"{sub}: missing in ours (expected {_short(exp[key])})"
            if key not in exp:
                return f"{sub}: unexpected in ours (got {_short(act[key])})"
            diff = _first_dict_difference(exp[key], act[key], sub)
            if diff is not None:
                return diff
        return None
    if isinstance(exp, list) and isinstance(act, list):
        for i, (e, a) in enumerate(zip(exp, act)):
            diff = _first_dict_difference(e, a, f"{path}[{i}]")
            if diff is not None:
                return diff
        if len(exp) != len(act):
            return f"{where}: expected {len(exp)} elements, got {len(act)}"
        return None
    if exp != act or type(exp) is not type(act):
        return f"{where}: expected {_short(exp)}, got {_short(act)}"
    return None


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
