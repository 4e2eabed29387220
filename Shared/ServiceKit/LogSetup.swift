import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Models
import NIOConcurrencyHelpers

/// How log lines are written to stderr.
public enum LogFormat: String, Sendable, CaseIterable {
    /// swift-log's `StreamLogHandler` line: time, level, label, metadata, message.
    case text
    /// One JSON object per line (`ts`, `level`, `logger`, `msg`, then the metadata as
    /// string fields), what log collectors (Loki, Elasticsearch, Cloud Logging) parse
    /// without a pattern.
    case json
}

/// Structured logging to stderr at `level` (trace, debug, info, notice, warning, error, critical).
public enum LogSetup {
    public static func bootstrap(level: Logger.Level, format: LogFormat = .text) {
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}

/// Writes each event as one JSON object on one line of stderr. Lines of concurrent events
/// never interleave (one `write` per line under a process-wide lock).
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let write: @Sendable (String) -> Void

    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let own = event.metadata { fields.merge(own) { _, new in new } }
        var object: [(String, JSONValue)] = [
            ("ts", .string(Self.timestamp())), ("level", .string(event.level.rawValue)), ("logger", .string(label)),
            ("msg", .string(event.message.description)),
        ]
        for key in fields.keys.sorted() where !["ts", "level", "logger", "msg"].contains(key) {
            object.append((key, .string(fields[key]!.description)))
        }
        let line = JSONValue.object(object).text + "\n"
        write(line)
    }

    /// The default sink: stderr, one write per line.
    public static let standardError: @Sendable (String) -> Void = { line in
        lock.withLock {
            var line = line
            line.withUTF8 { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                    if written > 0 { offset += written } else if errno != EINTR { return }
                }
            }
        }
    }

    private static let lock = NIOLock()

    /// RFC 3339 UTC with milliseconds, e.g. 2026-12-06T19:01:02.345Z.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let milliseconds = now.tv_nsec / 1_000_000
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let fraction = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }
}
