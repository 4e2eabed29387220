import Models

/// The property every input must keep: decoding untrusted bytes as any contract message
/// either fails with a `WireError` or yields a value whose encoding is stable (decoding it and
/// encoding again gives the same bytes) and which survives the JSON mapping. Bytes are
/// compared rather than values so that NaN (which is not equal to itself) is covered too.
/// A crash, a sanitizer report or a broken round trip is a bug.
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
            let encoded = try value.encode()
            let reencoded = try M(decoding: encoded).encode()
            precondition(reencoded == encoded, "\(M.protoMessageName): encoding is not stable under decode/encode")
            let json = value.jsonText()
            // JSON writes every NaN as "NaN", dropping its sign and payload bits.
            if !json.contains("\"NaN\"") {
                let fromJSON = try M(jsonText: json)
                precondition(fromJSON == value, "\(M.protoMessageName): JSON round trip changed the value")
            }
        } catch {
            preconditionFailure("\(M.protoMessageName): a decoded value failed to round-trip: \(error)")
        }
    }
}

#if FUZZING
import CLibFuzzer

/// Entry point of the fuzzing build (Scripts/fuzz.sh): SwiftPM links an executable's `main`
/// to `<Module>_main`, so this hands control to libFuzzer's driver.
@_cdecl("FuzzContractDecode_main")
func fuzzContractDecodeMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        ContractDecodeProperty.check(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
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
