#!/usr/bin/env python3
"""The contract changelog (proto/CHANGELOG.md) against the published descriptor set.

The changelog lists every RPC, message field and enum value of the published contracts
under the version it first appeared in. Its entries are Markdown list items that this
script reads:

    ## <version>                       (or "## Unreleased")
    ### `doorstep.accounts.v1`         (a package)
    - service `Accounts`: `CreateDebtor`, `GetDebtor`
    - message `Account`: `id`, `debtor_id`
    - message `Account.Instalment`: `due_date`        (nested: names relative to the package)
    - enum `Stage`: `STAGE_UNSPECIFIED`, `STAGE_REMOTE`
    - message `Nothing` (no fields)

An item may continue on following lines indented by spaces. A service, message or enum may
have items in several versions (the members added in each); each member is listed once. A
removed element stays listed and gets an item starting "- removed", which the check does
not require to exist (its number and name are `reserved` in the proto).

Usage:
  contract_changelog.py check  --descriptor-set SET --changelog proto/CHANGELOG.md
      Fails (exit 1) if an RPC, field or enum value of SET is not listed, if the changelog
      lists one twice, or if it lists one SET does not have (outside "- removed" items),
      and prints the items to add under "## Unreleased".
  contract_changelog.py render --descriptor-set SET
      Prints every element of SET as changelog items (how the 1.0.0 section was written).
"""

import argparse
import re
import sys
from collections import OrderedDict

from google.protobuf import descriptor_pb2, descriptor_pool

WRAP = 96


class Element:
    """One container (service, message or enum) and its members in declaration order."""

    def __init__(self, kind, package, name, members):
        self.kind, self.package, self.name, self.members = kind, package, name, members

    def keys(self):
        return [(self.package, self.kind, self.name, member) for member in self.members] or [
            (self.package, self.kind, self.name, None)]


def load_set(path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as handle:
        fds.ParseFromString(handle.read())
    # The set must be self-contained (imports included) and valid: load it into a pool.
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    for file in fds.file:
        pool.FindFileByName(file.name)
    return fds


def contract_elements(fds):
    """Every service, message and enum of the set, grouped by package in file order."""
    packages = OrderedDict()
    for file in fds.file:
        line_of = {}
        for location in file.source_code_info.location:
            if len(location.path) >= 2 and location.span:
                line_of.setdefault(tuple(location.path), location.span[0])
        elements = packages.setdefault(file.package, [])
        for service in file.service:
            elements.append(Element("service", file.package, service.name, [m.name for m in service.method]))
        top = []
        for index, message in enumerate(file.message_type):
            top.append((line_of.get((4, index), 0), 0, index, "message", message))
        for index, enum in enumerate(file.enum_type):
            top.append((line_of.get((5, index), 0), 1, index, "enum", enum))
        for _, _, _, kind, descriptor in sorted(top, key=lambda entry: entry[:3]):
            if kind == "enum":
                elements.append(enum_element(file.package, "", descriptor))
            else:
                elements.extend(message_elements(file.package, "", descriptor))
    return packages


def enum_element(package, prefix, enum):
    return Element("enum", package, prefix + enum.name, [value.name for value in enum.value])


def message_elements(package, prefix, message):
    if message.options.map_entry:
        return []
    name = prefix + message.name
    elements = [Element("message", package, name, [field.name for field in message.field])]
    for nested in message.nested_type:
        elements.extend(message_elements(package, name + ".", nested))
    for enum in message.enum_type:
        elements.append(enum_element(package, name + ".", enum))
    return elements


def render_item(element):
    head = f"- {element.kind} `{element.name}`"
    if not element.members:
        return head + " (no fields)"
    words = [f"`{member}`," for member in element.members]
    words[-1] = words[-1][:-1]
    lines, line = [], head + ":"
    for word in words:
        if len(line) + 1 + len(word) > WRAP and line.strip() != "":
            lines.append(line)
            line = "  " + word
        else:
            line += " " + word
    lines.append(line)
    return "\n".join(lines)


def render(packages):
    out = []
    for package, elements in packages.items():
        out.append(f"### `{package}`\n")
        out.extend(render_item(element) for element in elements)
        out.append("")
    return "\n".join(out)


ITEM = re.compile(r"^- (removed )?(service|message|enum) `([A-Za-z0-9_.]+)`(.*)$", re.S)
NAME = re.compile(r"`([A-Za-z0-9_]+)`")


def parse_changelog(text):
    """(key -> [version, ...]) for the listed members, and the keys of "removed" items."""
    listed, removed, problems = {}, set(), []
    version, package, item = None, None, None

    def finish(item):
        if item is None:
            return
        number, body = item
        match = ITEM.match(body)
        if version is None or (package is None and not match):
            return  # prose: the preamble, or a version's notes before its first package
        if not match:
            problems.append(f"line {number}: not a changelog item: {body[:80]}")
            return
        if package is None:
            problems.append(f"line {number}: item outside a '### `package`' section")
            return
        is_removed, kind, name, rest = match.groups()
        rest = rest.strip()
        if rest.startswith(":"):
            members = NAME.findall(rest)
        elif rest in ("", "(no fields)") or rest.startswith("("):
            members = []
        else:
            problems.append(f"line {number}: expected ': `member`, ...' after `{name}`")
            return
        keys = [(package, kind, name, member) for member in members] or [(package, kind, name, None)]
        for key in keys:
            if is_removed:
                removed.add(key)
            else:
                listed.setdefault(key, []).append(version)

    in_fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if line.startswith("- "):
            finish(item)
            item = (number, line)
        elif item is not None and line.startswith("  ") and line.strip():
            item = (item[0], item[1] + " " + line.strip())
        else:
            finish(item)
            item = None
            if line.startswith("## "):
                version, package = line[3:].strip().split(" ")[0], None
            elif line.startswith("### "):
                package = line[4:].strip().strip("`")
            elif line.startswith("# "):
                version, package = None, None
    finish(item)
    return listed, removed, problems


def check(fds, changelog_path):
    with open(changelog_path, encoding="utf-8") as handle:
        listed, removed, problems = parse_changelog(handle.read())
    packages = contract_elements(fds)
    expected = OrderedDict()
    for elements in packages.values():
        for element in elements:
            for key in element.keys():
                expected[key] = element

    for key, versions in listed.items():
        if len(versions) > 1:
            problems.append(f"{describe(key)} is listed under {len(versions)} versions ({', '.join(versions)})")
        known = key in expected or (key[3] is None and any(other[:3] == key[:3] for other in expected))
        if not known:
            problems.append(f"{describe(key)} is listed but is not in the contract "
                            "(a removed element belongs in a '- removed' item)")

    missing = OrderedDict()
    for key, element in expected.items():
        if key in listed:
            continue
        container = missing.setdefault((element.package, element.kind, element.name), [])
        if key[3] is not None:
            container.append(key[3])
    if missing:
        count = sum(max(1, len(members)) for members in missing.values())
        problems.append(f"{count} RPC(s), field(s) or enum value(s) of the contract are not in the changelog")

    if problems:
        print(f"contract changelog: {changelog_path} is incomplete:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        if missing:
            grouped = OrderedDict()
            for (package, kind, name), members in missing.items():
                grouped.setdefault(package, []).append(Element(kind, package, name, members))
            print("Add under \"## Unreleased\" (the version the next release gets):\n", file=sys.stderr)
            print(render(grouped), file=sys.stderr)
        return 1
    counts = {"service": 0, "message": 0, "enum": 0}
    for key in expected:
        if key[3] is not None:
            counts[key[1]] += 1
    print(f"contract changelog: lists all {counts['service']} RPCs, {counts['message']} fields and "
          f"{counts['enum']} enum values of the published contracts")
    return 0


def describe(key):
    package, kind, name, member = key
    what = {"service": "RPC", "message": "field", "enum": "enum value"}[kind]
    if member is None:
        return f"{kind} {package}.{name}"
    return f"{what} {package}.{name}.{member}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["check", "render"])
    parser.add_argument("--descriptor-set", required=True)
    parser.add_argument("--changelog")
    args = parser.parse_args()
    fds = load_set(args.descriptor_set)
    if args.command == "render":
        sys.stdout.write(render(contract_elements(fds)))
        return 0
    if not args.changelog:
        parser.error("check needs --changelog")
    return check(fds, args.changelog)


if __name__ == "__main__":
    sys.exit(main())
