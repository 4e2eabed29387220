import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Models

/// How `doorstep` prints messages (`--output`).
///
/// - `json`: one compact proto3 JSON line per message; the default when standard output is
///   not a terminal, so scripts (`Scripts/demo-walk.sh`, `jq` pipelines) keep reading lines.
/// - `pretty`: indented JSON; keys coloured only on a terminal, never when `NO_COLOR` is set
///   (to anything but the empty string) or `TERM` is `dumb`. The default on a terminal.
/// - `table`: for people: a message's scalars as aligned `key  value` lines (sub-messages
///   flattened to dotted keys), its repeated messages as aligned columns; several messages
///   (a stream) as the rows of one table.
enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    case json, pretty, table

    /// `explicit` when given, otherwise `pretty` on a terminal and `json` elsewhere.
    static func resolve(_ explicit: OutputFormat?) -> OutputFormat {
        explicit ?? (Terminal.standardOutputIsTerminal ? .pretty : .json)
    }
}

/// What the process's standard output is connected to.
enum Terminal {
    static var standardOutputIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }

    /// Colour only on a terminal, and never when the user asked for none (`NO_COLOR`, any
    /// non-empty value, as no-color.org defines it) or the terminal cannot show it.
    static var colourAllowed: Bool {
        let environment = ProcessInfo.processInfo.environment
        if let noColour = environment["NO_COLOR"], !noColour.isEmpty { return false }
        if environment["TERM"] == "dumb" { return false }
        return standardOutputIsTerminal
    }
}

/// Renders JSON values (the proto3 JSON mapping of messages) in the three output formats.
enum Render {
    /// The ANSI escape that starts a key's colour (bold blue) and the one that resets it.
    static let keyColour = "\u{1B}[1;34m"
    static let reset = "\u{1B}[0m"

    /// Every message in `format`, one after another, as the lines to print.
    static func messages(_ values: [JSONValue], as format: OutputFormat) -> [String] {
        switch format {
        case .json: return values.map(\.text)
        case .pretty:
            let colour = Terminal.colourAllowed
            return values.map { pretty($0, colour: colour) }
        case .table:
            if values.count == 1 { return [table(values[0])] }
            return values.isEmpty ? [] : [columns(of: values)]
        }
    }

    // MARK: pretty

    /// Indented JSON (two spaces), keys in their order; `colour` wraps each key in ANSI colour.
    static func pretty(_ value: JSONValue, colour: Bool) -> String {
        var out = ""
        writePretty(value, indent: 0, colour: colour, to: &out)
        return out
    }

    private static func writePretty(_ value: JSONValue, indent: Int, colour: Bool, to out: inout String) {
        let inner = String(repeating: " ", count: indent + 2)
        switch value {
        case .array(let elements) where !elements.isEmpty:
            out += "[\n"
            for (index, element) in elements.enumerated() {
                out += inner
                writePretty(element, indent: indent + 2, colour: colour, to: &out)
                out += index == elements.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "]"
        case .object(let members) where !members.isEmpty:
            out += "{\n"
            for (index, (key, member)) in members.enumerated() {
                let quoted = JSONValue.string(key).text
                out += inner + (colour ? keyColour + quoted + reset : quoted) + ": "
                writePretty(member, indent: indent + 2, colour: colour, to: &out)
                out += index == members.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        default:
            out += value.text
        }
    }

    // MARK: table

    /// One message: its scalars (and sub-messages' scalars, as dotted keys) as aligned
    /// `key  value` lines, then each repeated message field as a titled table.
    static func table(_ value: JSONValue) -> String {
        guard case .object(let members) = value else { return cell(value) }
        var pairs: [(String, String)] = []
        var sections: [(String, [JSONValue])] = []
        func walk(_ members: [(String, JSONValue)], prefix: String) {
            for (key, member) in members {
                let path = prefix + key
                switch member {
                case .object(let nested) where !nested.isEmpty:
                    walk(nested, prefix: path + ".")
                case .array(let elements) where elements.contains(where: \.isObject):
                    sections.append((path, elements))
                default:
                    pairs.append((path, cell(member)))
                }
            }
        }
        walk(members, prefix: "")
        var blocks: [String] = []
        if !pairs.isEmpty { blocks.append(keyValueLines(pairs).joined(separator: "\n")) }
        for (path, elements) in sections {
            blocks.append("\(path) (\(elements.count)):\n" + columns(of: elements))
        }
        return blocks.isEmpty ? "(empty message)" : blocks.joined(separator: "\n\n")
    }

    /// Messages as the rows of one table: a column per flattened field (first-seen order),
    /// a field a message leaves unset (proto3 JSON omits defaults) as an empty cell.
    static func columns(of values: [JSONValue]) -> String {
        var names: [String] = []
        var known: Set<String> = []
        var rows: [[String: String]] = []
        for value in values {
            var row: [String: String] = [:]
            func walk(_ member: JSONValue, path: String) {
                if case .object(let nested) = member, !nested.isEmpty {
                    for (key, inner) in nested { walk(inner, path: path.isEmpty ? key : path + "." + key) }
                    return
                }
                let name = path.isEmpty ? "value" : path
                if known.insert(name).inserted { names.append(name) }
                row[name] = cell(member)
            }
            walk(value, path: "")
            rows.append(row)
        }
        return alignedColumns(header: names, rows: rows.map { row in names.map { row[$0] ?? "" } }).joined(separator: "\n")
    }

    /// A value as one table cell: strings unquoted with control characters escaped, lists of
    /// scalars joined by ", ", lists of messages counted.
    static func cell(_ value: JSONValue) -> String {
        switch value {
        case .string(let text):
            var out = ""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out
        case .array(let elements):
            if elements.contains(where: \.isObject) { return elements.count == 1 ? "1 item" : "\(elements.count) items" }
            return elements.map(cell).joined(separator: ", ")
        case .object(let members) where members.isEmpty:
            return "{}"
        default:
            return value.text
        }
    }

    /// `key  value` lines, the values aligned after the widest key.
    static func keyValueLines(_ pairs: [(String, String)]) -> [String] {
        let width = pairs.map { displayWidth($0.0) }.max() ?? 0
        return pairs.map { key, value in
            let line = key + String(repeating: " ", count: width - displayWidth(key) + 2) + value
            return trimTrailingSpaces(line)
        }
    }

    /// A header row and rows, each column padded to its widest cell (by terminal width:
    /// CJK characters take two columns), two spaces between columns.
    static func alignedColumns(header: [String], rows: [[String]]) -> [String] {
        var widths = header.map(displayWidth)
        for row in rows {
            for (index, value) in row.enumerated() { widths[index] = max(widths[index], displayWidth(value)) }
        }
        return ([header] + rows).map { row in
            var line = ""
            for (index, value) in row.enumerated() {
                line += value
                if index < row.count - 1 { line += String(repeating: " ", count: widths[index] - displayWidth(value) + 2) }
            }
            return trimTrailingSpaces(line)
        }
    }

    private static func trimTrailingSpaces(_ line: String) -> String {
        var line = line
        while line.last == " " { line.removeLast() }
        return line
    }

    /// Columns `text` takes on a terminal: East Asian wide and fullwidth characters (and
    /// emoji) two, combining marks and zero-width characters none, others one.
    static func displayWidth(_ text: String) -> Int {
        var width = 0
        for scalar in text.unicodeScalars {
            let value = scalar.value
            switch value {
            case 0x0300...0x036F, 0x200B...0x200F, 0xFE00...0xFE0F, 0x20D0...0x20FF:
                continue
            case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF,
                 0xA000...0xA4CF, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60,
                 0xFFE0...0xFFE6, 0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x3FFFD:
                width += 2
            default:
                width += 1
            }
        }
        return width
    }
}

extension JSONValue {
    var isObject: Bool {
        if case .object = self { return true }
        return false
    }
}
