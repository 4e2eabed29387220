import Foundation
import NIOConcurrencyHelpers

/// The service clock, injectable so tests and the stage engine can run "as of" a time.
public struct ServiceClock: Sendable {
    public let nowMs: @Sendable () -> Int64

    public init(nowMs: @escaping @Sendable () -> Int64) { self.nowMs = nowMs }

    public static let system = ServiceClock { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    /// Test only (dev mode, `--test-clock-offset-file`): the wall clock plus the integer
    /// number of milliseconds in `file`, re-read at most every 50 ms; a missing or
    /// unreadable file counts as offset 0, a malformed one keeps the last good offset.
    public static func offset(file: String) -> ServiceClock {
        let cache = OffsetFileCache(path: file)
        return ServiceClock { system.nowMs() + cache.offset() }
    }
}

/// The last offset read from a test-clock file and when it was read.
final class OffsetFileCache: Sendable {
    private let path: String
    private let state = NIOLockedValueBox<(offset: Int64, readAt: ContinuousClock.Instant?)>((0, nil))

    init(path: String) { self.path = path }

    func offset() -> Int64 {
        let now = ContinuousClock.now
        return state.withLockedValue { state in
            if let readAt = state.readAt, now - readAt < .milliseconds(50) { return state.offset }
            state.readAt = now
            guard let data = FileManager.default.contents(atPath: path) else {
                state.offset = 0
                return 0
            }
            if let value = Int64(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) {
                state.offset = value
            }
            return state.offset
        }
    }
}
