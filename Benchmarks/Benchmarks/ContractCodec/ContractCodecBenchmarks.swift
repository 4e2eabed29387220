import Benchmark
import Models
import SwiftProtobuf

/// Encode and decode of a typical `Account` through Doorstep's contract codec
/// (Swift value ⇄ protoc-c struct ⇄ libprotobuf-c) against swift-protobuf 1.39.0 (the
/// baseline) on the same proto and the same bytes.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .instructions, .mallocCountTotal, .throughput],
        warmupIterations: 1000,
        scalingFactor: .kilo,
        maxDuration: .seconds(5),
        maxIterations: 100
    )

    let account = TypicalAccount.make()
    let bytes: [UInt8]
    let baseline: Doorstep_Accounts_V1_Account
    do {
        bytes = try account.encode()
        baseline = try Doorstep_Accounts_V1_Account(serializedBytes: bytes)
        // Both sides must describe the same message, or the comparison is meaningless.
        let baselineBytes: [UInt8] = try baseline.serializedBytes()
        let roundTripped = try AccountsV1.Account(decoding: baselineBytes)
        precondition(roundTripped == account, "baseline and Doorstep disagree")
    } catch {
        fatalError("cannot prepare the benchmark input: \(error)")
    }

    Benchmark("Account encode (Doorstep, libprotobuf-c)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try account.encode())
        }
    }
    Benchmark("Account encode (baseline: swift-protobuf)") { benchmark in
        for _ in benchmark.scaledIterations {
            let encoded: [UInt8] = try baseline.serializedBytes()
            blackHole(encoded)
        }
    }
    Benchmark("Account decode (Doorstep, libprotobuf-c)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try AccountsV1.Account(decoding: bytes))
        }
    }
    Benchmark("Account decode (baseline: swift-protobuf)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try Doorstep_Accounts_V1_Account(serializedBytes: bytes))
        }
    }
}
