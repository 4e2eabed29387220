import Foundation
import Logging
import ServiceKit
import Synchronization
import Testing

@Suite("The JSON log format")
struct LogFormatTests {
    @Test("one parseable object per event: time, level, logger, message and metadata, whatever characters they hold")
    func jsonLines() throws {
        let written = Mutex([String]())
        var handler = JSONLogHandler(label: "doorstep.test") { line in written.withLock { $0.append(line) } }
        handler.logLevel = .info
        handler[metadataKey: "replica"] = "r1"
        var logger = Logger(label: "doorstep.test") { _ in handler }
        logger.logLevel = .info
        let message = "quote \" backslash \\ newline \n tab \t bell \u{7} 上門催收"
        logger.info("\(message)", metadata: ["rpc": "/x.Y/Z", "count": "3", "level": "not the level"])
        logger.debug("below the level")
        let lines = written.withLock { $0 }
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        #expect(line.hasSuffix("}\n") && line.dropLast().contains("\n") == false)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["msg"] == message)
        #expect(object["level"] == "info" && object["logger"] == "doorstep.test")
        #expect(object["rpc"] == "/x.Y/Z" && object["count"] == "3" && object["replica"] == "r1")
        let time = try #require(object["ts"])
        #expect(time.count == 24 && time.hasSuffix("Z"), "\(time)")
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let parsed = try #require(formatter.date(from: time))
        #expect(abs(parsed.timeIntervalSinceNow) < 60)
    }
}
