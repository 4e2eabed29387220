import Foundation
import Models
import RPC
import RPCWire
import TestSupport
import Testing

/// `doorstep import` as the real binary against the accounts service as a process, on real
/// files: JSON Lines and CSV (CRLF line endings), a file in the wrong encoding or without
/// the required CSV columns refused in one line before anything is sent, the rejects file
/// fixed and imported again, and an import killed mid-stream and run again creating nothing
/// twice.
@Suite("doorstep import: files, rejects, refusals, a killed import", .serialized, .timeLimit(.minutes(5)))
struct ImportCLITests {
    /// The accounts service, a platform token, and a directory for files.
    struct Setup {
        let cluster: ServiceCluster
        let token: String
        var directory: URL { cluster.directory }

        init() async throws {
            cluster = try await ServiceCluster(only: ["accounts"])
            token = try await cluster.token("platform")
        }

        /// Writes N generated accounts (Scripts/gen_import_file.py) to `name`.
        func generate(_ count: Int, _ name: String, _ options: [String] = []) async throws -> String {
            let path = directory.appendingPathComponent(name).path
            let result = try await runProcessDetached("python3", [
                repositoryRoot.appendingPathComponent("Scripts/gen_import_file.py").path, "\(count)", path,
            ] + options)
            try #require(result.status == 0, "\(result.output)")
            return path
        }

        func importFile(_ path: String, kind: String = "accounts", _ extra: [String] = []) async throws -> ProcessResult {
            try await runProduct("doorstep", ["import", kind, path, "--address", cluster.accounts.address, "--token", token] + extra)
        }
    }

    @Test("JSON Lines with 1 % broken: exactly those rejected and written with why; again: 0 changes; the fixed rejects load")
    func jsonLinesAndRejects() async throws {
        let setup = try await Setup()
        // Stopped at the end of the test (a Task started in a defer may not run before the test
        // process exits, leaving the service running); this stops it when the test throws.
        defer { Task { _ = await setup.cluster.stopAll() } }
        let file = try await setup.generate(300, "accounts.jsonl", ["--broken-every", "100"])
        let first = try await setup.importFile(file)
        #expect(first.status == 1, "\(first.output)")
        #expect(first.output.contains("300 records: 297 created, 0 updated, 0 unchanged, 3 rejected"), "\(first.output)")
        let rejectsPath = file + ".rejects.jsonl"
        let rejects = try String(contentsOfFile: rejectsPath, encoding: .utf8).split(separator: "\n")
        #expect(rejects.count == 3)
        let parsed = try rejects.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(parsed.map { ($0["debtor"] as? [String: Any])?["externalId"] as? String } == ["dbt-100", "dbt-200", "dbt-300"])
        #expect(parsed.allSatisfy { ($0["_reject"] as? [String: Any])?["field"] as? String == "debtor.national_id" })

        let again = try await setup.importFile(file)
        #expect(again.output.contains("300 records: 0 created, 0 updated, 297 unchanged, 3 rejected"), "\(again.output)")

        // Fix the national ids (the generator's valid ones) and import the rejects file as it is.
        let valid = try await setup.generate(300, "valid.jsonl")
        let validLines = try String(contentsOfFile: valid, encoding: .utf8).split(separator: "\n")
        var fixed = ""
        for (line, number) in zip(rejects, [100, 200, 300]) {
            let good = try #require(JSONSerialization.jsonObject(with: Data(validLines[number - 1].utf8)) as? [String: Any])
            let nationalID = try #require((good["debtor"] as? [String: Any])?["nationalId"] as? String)
            let broken = try #require((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["debtor"] as? [String: Any])
            fixed += line.replacingOccurrences(of: "\"\(broken["nationalId"] as? String ?? "")\"", with: "\"\(nationalID)\"") + "\n"
        }
        let fixedPath = setup.directory.appendingPathComponent("fixed.jsonl").path
        try fixed.write(toFile: fixedPath, atomically: true, encoding: .utf8)
        let reimported = try await setup.importFile(fixedPath)
        #expect(reimported.status == 0, "\(reimported.output)")
        #expect(reimported.output.contains("3 records: 3 created, 0 updated, 0 unchanged, 0 rejected"), "\(reimported.output)")
        _ = await setup.cluster.stopAll()
    }

    @Test("CSV with CRLF line endings loads; the same accounts as JSON Lines are unchanged; a bad row is rejected in the CSV rejects file")
    func csvWithCRLF() async throws {
        let setup = try await Setup()
        // Stopped at the end of the test (a Task started in a defer may not run before the test
        // process exits, leaving the service running); this stops it when the test throws.
        defer { Task { _ = await setup.cluster.stopAll() } }
        let csv = try await setup.generate(120, "accounts.csv", ["--crlf", "--broken-every", "60"])
        let loaded = try await setup.importFile(csv)
        #expect(loaded.output.contains("120 records: 118 created, 0 updated, 0 unchanged, 2 rejected"), "\(loaded.output)")
        let rejects = try String(contentsOfFile: csv + ".rejects.csv", encoding: .utf8).split(separator: "\n")
        #expect(rejects.first?.hasSuffix("reject_field,reject_reason") == true)
        #expect(rejects.dropFirst().map { $0.hasPrefix("dbt-60,") || $0.hasPrefix("dbt-120,") } == [true, true])
        #expect(rejects.dropFirst().allSatisfy { $0.contains(",debtor.national_id,") })
        let jsonl = try await setup.generate(120, "same.jsonl", ["--broken-every", "60"])
        let same = try await setup.importFile(jsonl)
        #expect(same.output.contains("120 records: 0 created, 0 updated, 118 unchanged, 2 rejected"), "\(same.output)")
        _ = await setup.cluster.stopAll()
    }

    @Test("a file in UTF-16 (with or without BOM), not UTF-8, or a CSV without required columns is refused in one line; nothing sent")
    func refusedFiles() async throws {
        let setup = try await Setup()
        // Stopped at the end of the test (a Task started in a defer may not run before the test
        // process exits, leaving the service running); this stops it when the test throws.
        defer { Task { _ = await setup.cluster.stopAll() } }
        let file = try await setup.generate(5, "accounts.jsonl")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let withBOM = setup.directory.appendingPathComponent("bom16.jsonl").path
        try (Data([0xFF, 0xFE]) + Data(text.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })).write(to: URL(fileURLWithPath: withBOM))
        let withoutBOM = setup.directory.appendingPathComponent("plain16.jsonl").path
        try Data(text.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }).write(to: URL(fileURLWithPath: withoutBOM))
        let latin1 = setup.directory.appendingPathComponent("latin1.jsonl").path
        try (Data(text.utf8) + Data([0x7B, 0xE9, 0x7D, 0x0A])).write(to: URL(fileURLWithPath: latin1))
        let csv = setup.directory.appendingPathComponent("short.csv").path
        try "debtor_external_id,full_name\ndbt-1,Debtor 1\n".write(toFile: csv, atomically: true, encoding: .utf8)
        for (path, expected) in [(withBOM, "UTF-16"), (withoutBOM, "not UTF-8"), (latin1, "line 6 is not valid UTF-8"),
                                 (csv, "lacks the column(s) national_id")] {
            let result = try await setup.importFile(path)
            #expect(result.status == 1, "\(path): \(result.output)")
            let lines = result.output.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].contains(expected), "\(path): \(result.output)")
        }
        // Nothing of the refused files was sent: all five records are new now.
        let loaded = try await setup.importFile(file)
        #expect(loaded.output.contains("5 records: 5 created"), "\(loaded.output)")
        _ = await setup.cluster.stopAll()
    }

    @Test("an import killed mid-stream and run again: every record created once, a third run changes nothing")
    func killedAndRerun() async throws {
        let setup = try await Setup()
        // Stopped at the end of the test (a Task started in a defer may not run before the test
        // process exits, leaving the service running); this stops it when the test throws.
        defer { Task { _ = await setup.cluster.stopAll() } }
        let file = try await setup.generate(4000, "big.jsonl")
        // Killed (SIGKILL) as soon as the service has committed some of its records, however
        // fast this machine is: a timer would kill it before anything committed on a busy one.
        let importer = Process()
        importer.executableURL = productsDirectory.appendingPathComponent("doorstep")
        importer.arguments = ["import", "accounts", file, "--address", setup.cluster.accounts.address, "--token", setup.token]
        importer.standardOutput = FileHandle.nullDevice
        importer.standardError = FileHandle.nullDevice
        try importer.run()
        let client = GRPCClient(targets: [GRPCClient.Target(setup.cluster.accounts.address)!])
        let metadata: Metadata = ["authorization": "Bearer \(setup.token)"]
        var committed = false
        for _ in 0..<3_000 where importer.isRunning {
            let page = try await client.unary(AccountsV1.AccountsService.listAccounts, AccountsV1.ListAccountsRequest(pageSize: 1),
                                              metadata: metadata)
            if !page.accounts.isEmpty { committed = true; break }
            try await Task.sleep(for: .milliseconds(10))
        }
        kill(importer.processIdentifier, SIGKILL)
        while importer.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        await client.close()
        #expect(committed && importer.terminationReason == .uncaughtSignal, "the import finished before it was killed")
        let rerun = try await setup.importFile(file)
        #expect(rerun.status == 0, "\(rerun.output)")
        let counts = try #require(rerun.output.firstMatch(of: /(\d+) created, 0 updated, (\d+) unchanged, 0 rejected/))
        #expect(Int(counts.1)! + Int(counts.2)! == 4000 && Int(counts.2)! > 0, "\(rerun.output)")
        let third = try await setup.importFile(file)
        #expect(third.output.contains("4000 records: 0 created, 0 updated, 4000 unchanged, 0 rejected"), "\(third.output)")
        _ = await setup.cluster.stopAll()
    }
}
