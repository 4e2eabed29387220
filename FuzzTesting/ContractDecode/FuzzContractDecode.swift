import Models

/// The property every input must keep: decoding untrusted bytes as any contract message
/// either fails with a `WireError` or yields a value that encodes, decodes back to itself,
/// and survives the JSON mapping. A crash, a sanitizer report or a broken round trip is a bug.
///
/// The first input byte picks the message type; the rest are the bytes to decode.
enum ContractDecodeProperty {
    static let types: [any ProtoMessage.Type] = ContractRegistry.messageTypes
        .sorted { $0.key < $1.key }.map(\.value)

    static func check(_ input: UnsafeRawBufferPointer) {
        guard let selector = input.first else { return }
        let type = types[Int(selector) % types.count]
        roundTrip(type, UnsafeRawBufferPointer(rebasing: input.dropFirst()))
    }

    static func roundTrip<M: ProtoMessage>(_: M.Type, _ bytes: UnsafeRawBufferPointer) {
        guard let value = try? M(decoding: bytes, limits: .defaults) else { return }
        do {
            let again = try M(decoding: value.encode())
            precondition(again == value, "\(M.protoMessageName): encode/decode round trip changed the value")
            let viaJSON = try M(jsonText: value.jsonText())
            precondition(viaJSON == value || hasNaN(value), "\(M.protoMessageName): JSON round trip changed the value")
        } catch {
            preconditionFailure("\(M.protoMessageName): a decoded value failed to round-trip: \(error)")
        }
    }

    /// NaN != NaN, so a value holding a NaN double cannot compare equal to its copy.
    static func hasNaN<M: ProtoMessage>(_ value: M) -> Bool {
        value.jsonText().contains("\"NaN\"")
    }
}

#if FUZZING
/// libFuzzer entry point (built with `-sanitize=fuzzer`, see Scripts/fuzz.sh).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzContractDecode(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    ContractDecodeProperty.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Without the fuzzer: replays the files or directories given as arguments (the corpus and
/// minimized crashers), so every regression input is re-checked by the test suite.
@main
struct ReplayContractDecode {
    static func main() throws {
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            let url = URL(fileURLWithPath: path)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: path))
                .map { $0.sorted().map { url.appendingPathComponent($0) } } ?? [url]
            for file in files {
                let data = try Data(contentsOf: file)
                data.withUnsafeBytes { ContractDecodeProperty.check($0) }
                count += 1
            }
        }
        print("replayed \(count) inputs: no failure")
    }
}
#endif
