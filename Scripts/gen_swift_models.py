#!/usr/bin/env python3
"""Generates Doorstep's Swift contract models from a protobuf descriptor set.

Input: a FileDescriptorSet written by
    protoc --include_imports --include_source_info --descriptor_set_out=SET ...
and the protoc-c output for the same files (to check that every C name this script
derives exists there).

Output, per .proto file, one Swift file with, for every message:
  * a public `Sendable`, `Hashable` value type with idiomatic names (nested types nested,
    enums as Swift enums that keep unknown values, oneofs as Swift enums);
  * its bridge to the protoc-c struct (`CMessageBridge`: fill a C struct in an arena,
    copy one back), which gives it `encode()` / `init(decoding:)`;
  * its wire schema for the structural check, and its proto3 JSON mapping;
and for every service a namespace of typed `MethodDescriptor`s. Plus `CContracts.h`, the
umbrella header of the C target, which also exposes each descriptor's address to Swift.

Run through Scripts/generate-contracts.sh; never edit the output by hand.
"""

import argparse
import os
import re
import sys

from google.protobuf import descriptor_pb2

FD = descriptor_pb2.FieldDescriptorProto

SWIFT_KEYWORDS = {
    "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import",
    "init", "inout", "internal", "let", "open", "operator", "private", "precedencegroup",
    "protocol", "public", "rethrows", "static", "struct", "subscript", "typealias", "var",
    "break", "case", "catch", "continue", "default", "defer", "do", "else", "fallthrough",
    "for", "guard", "if", "in", "repeat", "return", "throw", "switch", "where", "while",
    "Any", "as", "await", "false", "is", "nil", "self", "Self", "super", "throws", "true",
    "try", "Type", "Protocol", "some", "any",
}
# Member names that would collide with what the generated types declare themselves.
RESERVED_MEMBERS = {"init", "jsonValue", "jsonText", "encode", "hashValue", "description",
                    "protoMessageName", "wireSchema", "rawValue", "protoName", "fill",
                    "cDescriptor", "cInit", "unrecognized"}
# Type names the generated code uses unqualified.
RESERVED_TYPES = {"String", "Int32", "Int64", "UInt32", "UInt64", "Double", "Float", "Bool",
                  "Array", "Optional", "Error", "Type", "Protocol", "Self", "JSONValue",
                  "WireSchema", "WireError", "Arena", "MethodDescriptor"}
C_KEYWORDS = {"auto", "break", "case", "char", "const", "continue", "default", "do", "double",
              "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long",
              "register", "restrict", "return", "short", "signed", "sizeof", "static", "struct",
              "switch", "typedef", "union", "unsigned", "void", "volatile", "while"}

SCALARS = {
    # type: (swift type, default literal, wire kind, json writer, json reader)
    FD.TYPE_DOUBLE: ("Double", "0", "fixed64", ".number({v})", "double"),
    FD.TYPE_FLOAT: ("Float", "0", "fixed32", ".number(Double({v}))", "float"),
    FD.TYPE_INT64: ("Int64", "0", "varint", ".int64({v})", "int64"),
    FD.TYPE_UINT64: ("UInt64", "0", "varint", ".uint64({v})", "uint64"),
    FD.TYPE_INT32: ("Int32", "0", "varint", ".integer(Int64({v}))", "int32"),
    FD.TYPE_FIXED64: ("UInt64", "0", "fixed64", ".uint64({v})", "uint64"),
    FD.TYPE_FIXED32: ("UInt32", "0", "fixed32", ".integer(Int64({v}))", "uint32"),
    FD.TYPE_BOOL: ("Bool", "false", "varint", ".bool({v})", "bool"),
    FD.TYPE_STRING: ("String", '""', "string", ".string({v})", "string"),
    FD.TYPE_BYTES: ("[UInt8]", "[]", "bytes", ".bytes({v})", "bytes"),
    FD.TYPE_UINT32: ("UInt32", "0", "varint", ".integer(Int64({v}))", "uint32"),
    FD.TYPE_SFIXED32: ("Int32", "0", "fixed32", ".integer(Int64({v}))", "int32"),
    FD.TYPE_SFIXED64: ("Int64", "0", "fixed64", ".int64({v})", "int64"),
    FD.TYPE_SINT32: ("Int32", "0", "varint", ".integer(Int64({v}))", "int32"),
    FD.TYPE_SINT64: ("Int64", "0", "varint", ".int64({v})", "int64"),
}


def fail(message):
    sys.stderr.write(f"gen_swift_models: {message}\n")
    sys.exit(1)


def upper_camel(name):
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def lower_camel(name):
    camel = upper_camel(name)
    return camel[:1].lower() + camel[1:]


def enum_case_name(value_name, enum_name):
    """STAGE_FIELD of enum Stage -> field; M4_PLUS -> m4Plus; SERVING -> serving."""
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum_name).upper() + "_"
    name = value_name[len(prefix):] if value_name.startswith(prefix) and len(value_name) > len(prefix) else value_name
    camel = lower_camel(name.lower())
    if camel[:1].isdigit():
        camel = "_" + camel
    return camel


def escape(identifier):
    return f"`{identifier}`" if identifier in SWIFT_KEYWORDS else identifier


# protoc-c naming (protobuf-c/protoc-c/c_helpers.cc): ToCamel, CamelToLower, FullNameToC.
def c_to_camel(name):
    out, upper = [], True
    for ch in name:
        if ch == "_":
            upper = True
        elif upper:
            out.append(ch.upper())
            upper = False
        else:
            out.append(ch)
    return "".join(out)


def c_camel_to_lower(name):
    out = name[:1].lower()
    for ch in name[1:]:
        out += "_" + ch.lower() if ch.isupper() else ch
    return out


def c_struct_name(package, message_path):
    return "__".join([c_to_camel(p) for p in package.split(".")] + [c_to_camel(p) for p in message_path])


def c_lower_name(package, message_path):
    return "__".join(package.split(".") + [c_camel_to_lower(p) for p in message_path])


def namespace_for(package):
    parts = package.split(".")
    if parts and parts[0] in ("doorstep", "grpc"):
        parts = parts[1:]
    return "".join(upper_camel(p) for p in parts) or upper_camel(package)


class Comments:
    def __init__(self, file_proto):
        self.by_path = {}
        for loc in file_proto.source_code_info.location:
            text = loc.leading_comments or loc.trailing_comments
            if text:
                self.by_path[tuple(loc.path)] = text

    def doc(self, path, indent):
        text = self.by_path.get(tuple(path))
        if not text:
            return ""
        lines = text.rstrip().split("\n")
        # Drop the common leading space protoc keeps after "//".
        lines = [l[1:] if l.startswith(" ") else l for l in lines]
        return "".join(f"{indent}///{(' ' + l) if l.strip() else ''}\n" for l in lines)


class Registry:
    """Every message and enum of the descriptor set, by full name."""

    def __init__(self, fds):
        self.messages = {}
        self.enums = {}
        for f in fds.file:
            for i, m in enumerate(f.message_type):
                self._add_message(f, m, [m.name], [4, i])
            for i, e in enumerate(f.enum_type):
                self._add_enum(f, e, [e.name], [5, i])

    def _add_message(self, f, m, path, source_path):
        full = ".".join([f.package] + path)
        self.messages[full] = {"file": f, "proto": m, "path": path, "source_path": source_path,
                               "package": f.package}
        for i, nested in enumerate(m.nested_type):
            if nested.options.map_entry:
                fail(f"{full}: map fields are not supported")
            self._add_message(f, nested, path + [nested.name], source_path + [3, i])
        for i, e in enumerate(m.enum_type):
            self._add_enum(f, e, path + [e.name], source_path + [4, i])

    def _add_enum(self, f, e, path, source_path):
        full = ".".join([f.package] + path)
        self.enums[full] = {"file": f, "proto": e, "path": path, "source_path": source_path,
                            "package": f.package}

    def swift_type(self, full_name):
        entry = self.messages.get(full_name) or self.enums.get(full_name)
        if entry is None:
            fail(f"unknown type {full_name}")
        return namespace_for(entry["package"]) + "." + ".".join(entry["path"])

    def c_struct(self, full_name):
        entry = self.messages[full_name]
        return c_struct_name(entry["package"], entry["path"])


class Field:
    def __init__(self, registry, message_full, f, oneof_names):
        self.proto = f
        self.name = f.name
        self.number = f.number
        self.swift_name = lower_camel(f.name)
        self.json_name = f.json_name or lower_camel(f.name)
        self.repeated = f.label == FD.LABEL_REPEATED
        self.type = f.type
        self.type_name = f.type_name.lstrip(".")
        self.oneof = oneof_names[f.oneof_index] if f.HasField("oneof_index") else None
        if f.proto3_optional:
            fail(f"{message_full}.{f.name}: proto3 optional is not supported by protoc-c 1.4.1")
        if f.type == FD.TYPE_GROUP:
            fail(f"{message_full}.{f.name}: groups are not supported")
        if f.name in C_KEYWORDS or f.name.startswith("n_") or f.name.endswith("_case"):
            fail(f"{message_full}.{f.name}: the name collides with protoc-c's generated names")
        if self.swift_name in RESERVED_MEMBERS:
            fail(f"{message_full}.{f.name}: the Swift name {self.swift_name} is reserved")
        if f.type == FD.TYPE_MESSAGE:
            self.swift_type = registry.swift_type(self.type_name)
            self.c_type = registry.c_struct(self.type_name)
            self.kind = "message"
        elif f.type == FD.TYPE_ENUM:
            self.swift_type = registry.swift_type(self.type_name)
            self.kind = "enum"
        else:
            self.swift_type = SCALARS[f.type][0]
            self.kind = {FD.TYPE_STRING: "string", FD.TYPE_BYTES: "bytes", FD.TYPE_BOOL: "bool"}.get(f.type, "number")

    @property
    def wire_kind(self):
        if self.kind == "message":
            return f".message({{ {self.swift_type}.wireSchema }})"
        if self.kind == "enum":
            return ".varint"
        return "." + SCALARS[self.type][2]

    @property
    def declared_type(self):
        if self.repeated:
            return f"[{self.swift_type}]"
        if self.kind == "message":
            return f"{self.swift_type}?"
        return self.swift_type

    @property
    def default(self):
        if self.repeated:
            return "[]"
        if self.kind == "message":
            return "nil"
        if self.kind == "enum":
            return ".init()"
        return SCALARS[self.type][1]

    # --- C conversion snippets -------------------------------------------------------
    def c_value(self, v, path_expr):
        """Swift expression converting Swift value `v` (one element) to its C field value."""
        if self.kind == "string":
            return f"try arena.cString({v}, field: {path_expr})"
        if self.kind == "bytes":
            return f"arena.binary({v})"
        if self.kind == "bool":
            return f"({v} ? 1 : 0)"
        if self.kind == "enum":
            return f".init(rawValue: .init(truncatingIfNeeded: {v}.rawValue))"
        if self.kind == "message":
            return f"try {v}.makeCStruct(in: arena)"
        return v

    def swift_value(self, c):
        """Swift expression converting C value `c` (one element) to the Swift value."""
        if self.kind == "string":
            return f"swiftString({c})"
        if self.kind == "bytes":
            return f"swiftBytes({c})"
        if self.kind == "bool":
            return f"({c} != 0)"
        if self.kind == "enum":
            return f"{self.swift_type}(rawValue: Int32(truncatingIfNeeded: {c}.rawValue))"
        if self.kind == "message":
            return f"{self.swift_type}(copying: {c}!)"
        return c

    def c_element_type(self, registry):
        if self.kind == "string":
            return "UnsafeMutablePointer<CChar>?"
        if self.kind == "bytes":
            return "ProtobufCBinaryData"
        if self.kind == "bool":
            return "protobuf_c_boolean"
        if self.kind == "enum":
            entry = registry.enums[self.type_name]
            return c_struct_name(entry["package"], entry["path"])
        if self.kind == "message":
            return f"UnsafeMutablePointer<{self.c_type}>?"
        return self.swift_type

    # --- JSON snippets ----------------------------------------------------------------
    def json_write(self, v):
        if self.kind == "message":
            return f"{v}.jsonValue()"
        if self.kind == "enum":
            return f".enumValue({v})"
        return SCALARS[self.type][3].format(v=v)

    def json_read(self, value, path):
        if self.kind == "message":
            return f"try {self.swift_type}(json: {value}, path: {path})"
        if self.kind == "enum":
            return f"try {value}.enumValue({self.swift_type}.self, {path})"
        return f"try {value}.{SCALARS[self.type][4]}({path})"

    def is_default_check(self, v):
        """Swift condition true when `v` differs from the proto3 default (is serialized)."""
        if self.kind in ("string", "bytes"):
            return f"!{v}.isEmpty"
        if self.kind == "bool":
            return v
        if self.kind == "enum":
            return f"{v}.rawValue != 0"
        if self.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
            return f"({v} != 0 || {v}.sign == .minus)"
        return f"{v} != 0"


class Generator:
    def __init__(self, fds, c_headers_text):
        self.fds = fds
        self.registry = Registry(fds)
        self.c_text = c_headers_text
        self.descriptor_accessors = []

    def check_c_name(self, pattern, what):
        if pattern not in self.c_text:
            fail(f"protoc-c output has no {what} '{pattern}': the C naming rules here are out of date")

    # --- enums --------------------------------------------------------------------------
    def gen_enum(self, full, entry, comments, indent):
        e = entry["proto"]
        name = e.name
        if name in RESERVED_TYPES:
            fail(f"{full}: the type name {name} is reserved")
        if not e.value or e.value[0].number != 0:
            fail(f"{full}: the first value must be 0")
        cases = []
        seen_numbers = set()
        for i, v in enumerate(e.value):
            if v.number in seen_numbers:
                fail(f"{full}: aliases are not supported")
            seen_numbers.add(v.number)
            cases.append((enum_case_name(v.name, name), v, entry["source_path"] + [2, i]))
        ind, ind2, ind3 = indent, indent + "    ", indent + "        "
        out = comments.doc(entry["source_path"], ind)
        out += f"{ind}public enum {name}: ProtoEnum, CaseIterable {{\n"
        for case, v, sp in cases:
            out += comments.doc(sp, ind2)
            out += f"{ind2}/// `{v.name}` = {v.number}\n" if not comments.doc(sp, ind2) else ""
            out += f"{ind2}case {escape(case)}\n"
        out += f"{ind2}/// A number this build does not know (proto3 enums are open); kept and encoded unchanged.\n"
        out += f"{ind2}case unrecognized(Int32)\n\n"
        out += f"{ind2}/// The known values.\n"
        out += f"{ind2}public static let allCases: [{name}] = [{', '.join('.' + escape(c) for c, _, _ in cases)}]\n\n"
        out += f"{ind2}public init() {{ self = .{escape(cases[0][0])} }}\n\n"
        out += f"{ind2}public init(rawValue: Int32) {{\n{ind3}switch rawValue {{\n"
        for case, v, _ in cases:
            out += f"{ind3}case {v.number}: self = .{escape(case)}\n"
        out += f"{ind3}default: self = .unrecognized(rawValue)\n{ind3}}}\n{ind2}}}\n\n"
        out += f"{ind2}public var rawValue: Int32 {{\n{ind3}switch self {{\n"
        for case, v, _ in cases:
            out += f"{ind3}case .{escape(case)}: return {v.number}\n"
        out += f"{ind3}case .unrecognized(let value): return value\n{ind3}}}\n{ind2}}}\n\n"
        out += f"{ind2}public var protoName: String? {{\n{ind3}switch self {{\n"
        for case, v, _ in cases:
            out += f'{ind3}case .{escape(case)}: return "{v.name}"\n'
        out += f"{ind3}case .unrecognized: return nil\n{ind3}}}\n{ind2}}}\n\n"
        out += f"{ind2}public init?(protoName: String) {{\n{ind3}switch protoName {{\n"
        for case, v, _ in cases:
            out += f'{ind3}case "{v.name}": self = .{escape(case)}\n'
        out += f"{ind3}default: return nil\n{ind3}}}\n{ind2}}}\n"
        out += f"{ind}}}\n"
        return out

    # --- messages -----------------------------------------------------------------------
    def fields_of(self, full, m):
        oneof_names = [o.name for o in m.oneof_decl]
        return [Field(self.registry, full, f, oneof_names) for f in m.field]

    def check_recursion(self, full, seen=()):
        m = self.registry.messages[full]["proto"]
        for f in m.field:
            if f.type == FD.TYPE_MESSAGE and f.label != FD.LABEL_REPEATED:
                target = f.type_name.lstrip(".")
                if target in seen or target == full:
                    fail(f"{full}.{f.name}: recursive singular message fields are not supported")
                self.check_recursion(target, seen + (full,))

    def gen_message_decl(self, full, entry, comments, indent):
        m = entry["proto"]
        if m.name in RESERVED_TYPES:
            fail(f"{full}: the type name {m.name} is reserved")
        self.check_recursion(full)
        fields = self.fields_of(full, m)
        ind, ind2, ind3 = indent, indent + "    ", indent + "        "
        oneofs = self.oneofs(m, fields)
        nested_names = {n.name for n in m.nested_type} | {e.name for e in m.enum_type}
        out = comments.doc(entry["source_path"], ind)
        # A request with a `request_id` string (the idempotency key) says so to the server,
        # which logs it with the call (RequestIdentified).
        identified = any(f.name == "request_id" and f.type == FD.TYPE_STRING and not f.repeated and not f.oneof
                         for f in fields)
        conformances = "ProtoMessage, RequestIdentified" if identified else "ProtoMessage"
        out += f"{ind}public struct {m.name}: {conformances} {{\n"
        for i, f in enumerate(fields):
            if f.oneof:
                continue
            out += comments.doc(entry["source_path"] + [2, i], ind2)
            out += f"{ind2}public var {escape(f.swift_name)}: {f.declared_type} = {f.default}\n"
        for oneof_name, (type_name, members, index) in oneofs.items():
            if type_name in nested_names:
                fail(f"{full}: oneof {oneof_name} collides with a nested type")
            out += comments.doc(entry["source_path"] + [8, index], ind2)
            out += f"{ind2}public var {escape(lower_camel(oneof_name))}: {type_name}? = nil\n"
        # Oneof enums.
        for oneof_name, (type_name, members, index) in oneofs.items():
            out += f"\n{ind2}/// The members of oneof `{oneof_name}`: at most one is set.\n"
            out += f"{ind2}public enum {type_name}: Sendable, Hashable {{\n"
            for f in members:
                idx = list(m.field).index(f.proto)
                out += comments.doc(entry["source_path"] + [2, idx], ind3)
                out += f"{ind3}case {escape(f.swift_name)}({f.swift_type})\n"
            out += f"{ind2}}}\n"
        # Memberwise init.
        params = [f"{escape(f.swift_name)}: {f.declared_type} = {f.default}" for f in fields if not f.oneof]
        params += [f"{escape(lower_camel(o))}: {t}? = nil" for o, (t, _, _) in oneofs.items()]
        assigns = [f.swift_name for f in fields if not f.oneof] + [lower_camel(o) for o in oneofs]
        out += f"\n{ind2}/// The default instance: every field at its proto3 default.\n{ind2}public init() {{}}\n"
        if params:
            out += f"\n{ind2}/// An instance with the given fields; the others at their proto3 defaults.\n{ind2}public init(\n"
            out += ",\n".join(f"{ind3}{p}" for p in params)
            out += f"\n{ind2}) {{\n"
            for a in assigns:
                out += f"{ind3}self.{a} = {escape(a)}\n"
            out += f"{ind2}}}\n"
        # Nested types.
        for i, nested in enumerate(m.nested_type):
            nfull = f"{full}.{nested.name}"
            out += "\n" + self.gen_message_decl(nfull, self.registry.messages[nfull], comments, ind2)
        for i, e in enumerate(m.enum_type):
            efull = f"{full}.{e.name}"
            out += "\n" + self.gen_enum(efull, self.registry.enums[efull], comments, ind2)
        out += f"{ind}}}\n"
        return out

    def oneofs(self, m, fields):
        result = {}
        for index, o in enumerate(m.oneof_decl):
            members = [f for f in fields if f.oneof == o.name]
            result[o.name] = (upper_camel(o.name), members, index)
        return result

    def gen_message_impl(self, full, entry):
        """Conformances: bridge, schema, JSON. Emitted at file scope."""
        m = entry["proto"]
        fields = self.fields_of(full, m)
        oneofs = self.oneofs(m, fields)
        swift = self.registry.swift_type(full)
        cstruct = c_struct_name(entry["package"], entry["path"])
        clower = c_lower_name(entry["package"], entry["path"])
        self.check_c_name(f"struct  {cstruct}\n", "struct")
        self.check_c_name(f"{clower}__init\n", "init function")
        self.check_c_name(f"{clower}__descriptor;", "descriptor")
        accessor = f"doorstep_contracts_descriptor__{clower}"
        self.descriptor_accessors.append((accessor, clower))

        out = f"// MARK: - {full}\n\n"
        out += f"extension {swift} {{\n"
        out += f'    public static let protoMessageName = "{full}"\n\n'
        # Wire schema.
        if fields:
            out += "    public static let wireSchema = WireSchema([\n"
            for f in fields:
                out += f'        {f.number}: .init(name: "{f.name}", kind: {f.wire_kind}, repeated: {"true" if f.repeated else "false"}),\n'
            out += "    ])\n"
        else:
            out += "    public static let wireSchema = WireSchema([:])\n"
        out += "}\n\n"

        # C bridge.
        out += f"extension {swift}: CMessageBridge {{\n"
        out += f"    typealias CStruct = {cstruct}\n\n"
        out += f"    static var cDescriptor: UnsafePointer<ProtobufCMessageDescriptor> {{ {accessor}() }}\n\n"
        out += f"    static func cInit(_ message: UnsafeMutablePointer<{cstruct}>) {{ {clower}__init(message) }}\n\n"
        # fill
        has_throwing = any(f.kind in ("string", "message") for f in fields)
        out += f"    func fill(_ c: UnsafeMutablePointer<{cstruct}>, arena: Arena) throws(WireError) {{\n"
        if not fields:
            out += "        _ = c\n        _ = arena\n"
        for f in fields:
            if f.oneof:
                continue
            v = f"self.{escape(f.swift_name)}"
            path = f'"{f.name}"'
            cf = f"c.pointee.{f.name}"
            if f.repeated:
                elem = f.c_element_type(self.registry)
                conv = f.c_value("$0", path)
                if f.kind in ("number",):
                    out += f"        if !{v}.isEmpty {{ c.pointee.n_{f.name} = {v}.count; {cf} = arena.array({v}) }}\n"
                else:
                    thr = "throws(WireError) " if f.kind in ("string", "message") else ""
                    tryk = "try "
                    out += (f"        if !{v}.isEmpty {{\n"
                            f"            c.pointee.n_{f.name} = {v}.count\n"
                            f"            {cf} = {tryk}arena.array({v}) {{ (element) {thr}-> {elem} in {f.c_value('element', path)} }}\n"
                            f"        }}\n")
            elif f.kind == "message":
                out += f"        if let value = {v} {{ {cf} = try value.makeCStruct(in: arena) }}\n"
            elif f.kind in ("string", "bytes", "enum", "bool"):
                out += f"        if {f.is_default_check(v)} {{ {cf} = {f.c_value(v, path)} }}\n"
            else:
                out += f"        {cf} = {v}\n"
        for oneof_name, (type_name, members, _) in oneofs.items():
            ov = f"self.{escape(lower_camel(oneof_name))}"
            out += f"        switch {ov} {{\n        case nil: break\n"
            for f in members:
                out += (f"        case .{escape(f.swift_name)}(let value)?:\n"
                        f"            c.pointee.{oneof_name}_case = .init(rawValue: {f.number})\n"
                        f"            c.pointee.{f.name} = {f.c_value('value', repr(f.name).replace(chr(39), chr(34)))}\n")
            out += "        }\n"
        out += "    }\n\n"
        # copy
        out += f"    init(copying c: UnsafePointer<{cstruct}>) {{\n"
        if not fields:
            out += "        _ = c\n        self.init()\n"
        else:
            out += "        self.init()\n"
        for f in fields:
            if f.oneof:
                continue
            target = f"self.{escape(f.swift_name)}"
            cf = f"c.pointee.{f.name}"
            if f.repeated:
                out += f"        {target} = swiftArray({cf}, c.pointee.n_{f.name}) {{ {f.swift_value('$0')} }}\n"
            elif f.kind == "message":
                out += f"        {target} = {cf}.map {{ {f.swift_type}(copying: $0) }}\n"
            else:
                out += f"        {target} = {f.swift_value(cf)}\n"
        for oneof_name, (type_name, members, _) in oneofs.items():
            ov = f"self.{escape(lower_camel(oneof_name))}"
            out += f"        switch c.pointee.{oneof_name}_case.rawValue {{\n"
            for f in members:
                if f.kind == "message":
                    out += f"        case {f.number}: {ov} = c.pointee.{f.name}.map {{ .{escape(f.swift_name)}({f.swift_type}(copying: $0)) }}\n"
                else:
                    out += f"        case {f.number}: {ov} = .{escape(f.swift_name)}({f.swift_value('c.pointee.' + f.name)})\n"
            out += f"        default: {ov} = nil\n        }}\n"
        out += "    }\n}\n\n"

        # JSON.
        out += f"extension {swift} {{\n"
        out += "    public func jsonValue() -> JSONValue {\n"
        if not fields:
            out += "        .object([])\n    }\n\n"
        else:
            out += "        var members: [(String, JSONValue)] = []\n"
            for f in fields:
                if f.oneof:
                    continue
                v = f"self.{escape(f.swift_name)}"
                if f.repeated:
                    out += f'        if !{v}.isEmpty {{ members.append(("{f.json_name}", .array({v}.map {{ {f.json_write("$0")} }}))) }}\n'
                elif f.kind == "message":
                    out += f'        if let value = {v} {{ members.append(("{f.json_name}", value.jsonValue())) }}\n'
                else:
                    out += f'        if {f.is_default_check(v)} {{ members.append(("{f.json_name}", {f.json_write(v)})) }}\n'
            for oneof_name, (type_name, members, _) in oneofs.items():
                ov = f"self.{escape(lower_camel(oneof_name))}"
                out += f"        switch {ov} {{\n        case nil: break\n"
                for f in members:
                    out += f'        case .{escape(f.swift_name)}(let value)?: members.append(("{f.json_name}", {f.json_write("value")}))\n'
                out += "        }\n"
            out += "        return .object(members)\n    }\n\n"
        out += "    public init(json: JSONValue, path: String) throws(JSONMappingError) {\n"
        out += "        self.init()\n"
        out += "        for (key, value) in try json.objectMembers(path) {\n"
        out += '            let fieldPath = path.isEmpty ? key : "\\(path).\\(key)"\n'
        out += "            if case .null = value { continue }\n"
        if fields:
            out += "            switch key {\n"
            for f in fields:
                keys = [f.json_name] + ([f.name] if f.name != f.json_name else [])
                label = ", ".join(f'"{k}"' for k in keys)
                if f.oneof:
                    target = f"self.{escape(lower_camel(f.oneof))}"
                    out += f"            case {label}: {target} = .{escape(f.swift_name)}({f.json_read('value', 'fieldPath')})\n"
                elif f.repeated:
                    element_path = '"\\(fieldPath)[\\(index)]"'
                    out += (f"            case {label}:\n"
                            f"                {f'self.{escape(f.swift_name)}'} = try value.arrayElements(fieldPath).enumerated().map {{ (index, element) throws(JSONMappingError) in\n"
                            f'                    {f.json_read("element", element_path)}\n'
                            f"                }}\n")
                else:
                    out += f"            case {label}: self.{escape(f.swift_name)} = {f.json_read('value', 'fieldPath')}\n"
            out += f'            default: throw JSONMappingError(path: fieldPath, problem: "is not a field of {full}")\n'
            out += "            }\n"
        else:
            out += f'            throw JSONMappingError(path: fieldPath, problem: "is not a field of {full}")\n'
        out += "        }\n    }\n}\n\n"
        return out

    # --- services -----------------------------------------------------------------------
    def gen_service(self, f, si, s, comments):
        ns = namespace_for(f.package)
        full = f"{f.package}.{s.name}"
        name = s.name if s.name.endswith("Service") else f"{s.name}Service"
        out = comments.doc([6, si], "    ")
        out += f"    public enum {name} {{\n"
        out += f'        /// `{full}`\n        public static let name = "{full}"\n\n'
        for mi, method in enumerate(s.method):
            req = self.registry.swift_type(method.input_type.lstrip("."))
            resp = self.registry.swift_type(method.output_type.lstrip("."))
            # isClientStreaming is spelled out only when true (its default is false).
            client = ", isClientStreaming: true" if method.client_streaming else ""
            out += comments.doc([6, si, 2, mi], "        ")
            out += (f"        public static let {escape(lower_camel(re.sub(r'(?<!^)(?=[A-Z])', '_', method.name).lower()))} = "
                    f"MethodDescriptor<{req}, {resp}>(\n"
                    f'            service: name, method: "{method.name}", isServerStreaming: {"true" if method.server_streaming else "false"}{client})\n\n')
        paths = ", ".join(f'"/{full}/{mm.name}"' for mm in s.method)
        out += f"        /// The `:path` of every method of the service.\n"
        out += f"        public static let methodPaths: [String] = [{paths}]\n"
        out += "    }\n"
        return f"extension {ns} {{\n{out}}}\n\n"

    # --- files --------------------------------------------------------------------------
    def gen_file(self, f):
        comments = Comments(f)
        ns = namespace_for(f.package)
        out = ("// DO NOT EDIT. Generated by Scripts/gen_swift_models.py from " + f.name + ".\n"
               "// Regenerate with Scripts/generate-contracts.sh.\n\n"
               "internal import CContracts\ninternal import CProtobufC\n\n")
        decls = ""
        for i, e in enumerate(f.enum_type):
            full = f"{f.package}.{e.name}"
            decls += "\n" + self.gen_enum(full, self.registry.enums[full], comments, "    ")
        for i, m in enumerate(f.message_type):
            full = f"{f.package}.{m.name}"
            decls += "\n" + self.gen_message_decl(full, self.registry.messages[full], comments, "    ")
        if decls:
            out += f"extension {ns} {{{decls}}}\n\n"
        for si, s in enumerate(f.service):
            out += self.gen_service(f, si, s, comments)
        for full, entry in self.registry.messages.items():
            if entry["file"] is f:
                out += self.gen_message_impl(full, entry)
        return out.rstrip() + "\n"

    def gen_namespaces(self, files):
        out = ("// DO NOT EDIT. Generated by Scripts/gen_swift_models.py.\n\n"
               "// One namespace per protobuf package.\n")
        for package in sorted({f.package for f in files}):
            out += f"\n/// Types of the protobuf package `{package}`.\npublic enum {namespace_for(package)} {{}}\n"
        out += ("\n/// Every message type of the contracts, by full protobuf name, for tools that pick a\n"
                "/// type at run time (the golden-vector tests, the `doorstep call` command).\n"
                "public enum ContractRegistry {\n"
                "    public static let messageTypes: [String: any ProtoMessage.Type] = [\n")
        for full in sorted(self.registry.messages):
            out += f'        "{full}": {self.registry.swift_type(full)}.self,\n'
        out += "    ]\n\n"
        out += ("    /// One RPC of the contracts: its request and response types and which sides stream.\n"
                "    public struct Method: Sendable {\n"
                "        public let request: any ProtoMessage.Type\n"
                "        public let response: any ProtoMessage.Type\n"
                "        public let isServerStreaming: Bool\n"
                "        public let isClientStreaming: Bool\n\n"
                "        init(request: any ProtoMessage.Type, response: any ProtoMessage.Type, isServerStreaming: Bool,\n"
                "             isClientStreaming: Bool = false) {\n"
                "            self.request = request\n"
                "            self.response = response\n"
                "            self.isServerStreaming = isServerStreaming\n"
                "            self.isClientStreaming = isClientStreaming\n"
                "        }\n"
                "    }\n\n"
                "    /// Every RPC of the contracts, by `:path` (\"/package.Service/Method\").\n"
                "    public static let methods: [String: Method] = [\n")
        rows = []
        for f in files:
            for s in f.service:
                for m in s.method:
                    rows.append((f"/{f.package}.{s.name}/{m.name}",
                                 self.registry.swift_type(m.input_type.lstrip(".")),
                                 self.registry.swift_type(m.output_type.lstrip(".")),
                                 m.server_streaming, m.client_streaming))
        for path, req, resp, streaming, client_streaming in sorted(rows):
            client = ", isClientStreaming: true" if client_streaming else ""
            out += (f'        "{path}": Method(request: {req}.self, response: {resp}.self, '
                    f'isServerStreaming: {"true" if streaming else "false"}{client}),\n')
        out += "    ]\n}\n"
        return out

    def gen_c_header(self, files):
        out = ("/* DO NOT EDIT. Generated by Scripts/gen_swift_models.py. */\n"
               "#ifndef DOORSTEP_CCONTRACTS_H\n#define DOORSTEP_CCONTRACTS_H\n\n")
        for f in files:
            out += f'#include "{f.name[:-len(".proto")]}.pb-c.h"\n'
        out += ("\n/* Swift imports an `extern const` struct as a value and cannot take its address,\n"
                " * but protobuf-c identifies a message type by its descriptor's address: these\n"
                " * return it. */\n")
        for accessor, clower in self.descriptor_accessors:
            out += (f"static inline const ProtobufCMessageDescriptor *{accessor}(void) "
                    f"{{ return &{clower}__descriptor; }}\n")
        out += "\n#endif\n"
        return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--descriptor-set", required=True)
    parser.add_argument("--c-dir", required=True, help="protoc-c output directory (headers are checked)")
    parser.add_argument("--swift-out", required=True)
    parser.add_argument("--c-header", required=True, help="path of the umbrella header to write")
    args = parser.parse_args()

    fds = descriptor_pb2.FileDescriptorSet()
    with open(args.descriptor_set, "rb") as fh:
        fds.ParseFromString(fh.read())
    files = sorted(fds.file, key=lambda f: f.name)
    for f in files:
        if f.syntax != "proto3":
            fail(f"{f.name}: only proto3 is supported")
    c_text = ""
    for f in files:
        with open(os.path.join(args.c_dir, f.name[:-len(".proto")] + ".pb-c.h")) as fh:
            c_text += fh.read()

    gen = Generator(fds, c_text)
    os.makedirs(args.swift_out, exist_ok=True)
    for f in files:
        path = os.path.join(args.swift_out, f.name[:-len(".proto")].replace("/", "_") + ".pb.swift")
        with open(path, "w") as fh:
            fh.write(gen.gen_file(f))
    with open(os.path.join(args.swift_out, "Namespaces.swift"), "w") as fh:
        fh.write(gen.gen_namespaces(files))
    with open(args.c_header, "w") as fh:
        fh.write(gen.gen_c_header(files))


if __name__ == "__main__":
    main()
