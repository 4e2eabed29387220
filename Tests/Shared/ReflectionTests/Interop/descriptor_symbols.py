#!/usr/bin/env python3
"""Every symbol of a FileDescriptorSet and the file that declares it, as the reference
protobuf implementation (Python `protobuf`) reads the set.

Usage: descriptor_symbols.py SET
Prints one line per symbol, "SYMBOL<TAB>FILE", sorted: every service, method, message
(nested ones included), field, oneof, enum, enum value (scoped beside its enum, as protobuf
scopes them) and extension.
"""

import sys

from google.protobuf import descriptor_pb2, descriptor_pool


def main():
    fds = descriptor_pb2.FileDescriptorSet()
    with open(sys.argv[1], "rb") as handle:
        fds.ParseFromString(handle.read())
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    symbols = {}

    def enum(descriptor, scope, file):
        symbols[descriptor.full_name] = file
        for value in descriptor.values:
            symbols.setdefault(f"{scope}{value.name}", file)

    def message(descriptor, file):
        symbols[descriptor.full_name] = file
        for member in list(descriptor.fields) + list(descriptor.oneofs) + list(descriptor.extensions):
            symbols[member.full_name] = file
        for nested in descriptor.nested_types:
            message(nested, file)
        for nested in descriptor.enum_types:
            enum(nested, descriptor.full_name + ".", file)

    for proto in fds.file:
        file = pool.FindFileByName(proto.name)
        for descriptor in file.message_types_by_name.values():
            message(descriptor, file.name)
        for descriptor in file.enum_types_by_name.values():
            enum(descriptor, file.package + ".", file.name)
        for descriptor in file.extensions_by_name.values():
            symbols[descriptor.full_name] = file.name
        for descriptor in file.services_by_name.values():
            symbols[descriptor.full_name] = file.name
            for method in descriptor.methods:
                symbols[method.full_name] = file.name
    # What the pool itself resolves must agree (it does not resolve methods).
    for name, file in symbols.items():
        try:
            found = pool.FindFileContainingSymbol(name).name
        except KeyError:
            continue
        if found != file:
            sys.exit(f"{name}: declared in {file}, the pool says {found}")
    for name in sorted(symbols):
        print(f"{name}\t{symbols[name]}")


if __name__ == "__main__":
    main()
