import ArgumentParser
import Foundation
import Models
import RPC
import RPCWire
import Synchronization
import TransportSecurity

/// `doorstep import accounts|payments FILE`: streams a JSON Lines or CSV file to
/// ImportAccounts / ImportPayments (docs/OPERATIONS.md "Bulk loading"), shows progress,
/// prints a summary and writes the rejected records, with why, to a file in the same format
/// that can be fixed and imported again. Exit 0 when no record was rejected, 1 otherwise.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Bulk-load accounts or payments from a JSON Lines or CSV file.",
        discussion: """
            KIND is accounts or payments. The file's format comes from its extension (.jsonl, .csv) or its first line; \
            a file that is not UTF-8, or a CSV without the required columns, is refused before any record is sent. \
            Records are keyed by the lender's external ids: importing the same file again changes nothing. \
            A broken connection is resumed after the last acknowledged record.
            """)

    enum Kind: String, ExpressibleByArgument { case accounts, payments }

    @Argument(help: "accounts or payments.") var kind: Kind
    @Argument(help: "The file (JSON Lines or CSV).") var file: String
    @Option(help: "The accounts service, HOST:PORT. Env DOORSTEP_ACCOUNTS_ADDRESS; default 127.0.0.1:50051.") var address: String?
    @Option(help: "Bearer token of a platform caller (`doorstep token`). Env DOORSTEP_TOKEN.") var token: String?
    @Option(help: "Names the import on timeline events (default: the file's name). Env DOORSTEP_IMPORT_ID.") var importId: String?
    @Option(help: "Where to write rejected records (default: FILE.rejects.jsonl / .csv). Env DOORSTEP_IMPORT_REJECTS.") var rejects: String?
    @Option(help: "jsonl or csv (default: from the extension or content).") var format: String?
    @OptionGroup(title: "TLS") var tls: ClientTLSOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let address = self.address ?? environment["DOORSTEP_ACCOUNTS_ADDRESS"] ?? "127.0.0.1:50051"
        guard let targets = GRPCClient.Target.list(address) else { throw ValidationError("'\(address)' is not HOST:PORT") }
        var explicit: ImportFormat?
        if let format {
            guard let parsed = ImportFormat(rawValue: format) else { throw ValidationError("--format must be jsonl or csv") }
            explicit = parsed
        }
        let payments = kind == .payments
        let importFile: ImportFile
        do {
            importFile = try ImportFile(path: file, format: explicit, payments: payments)
        } catch {
            throw Failure.report(["\(error)"])
        }
        let importID = importId ?? environment["DOORSTEP_IMPORT_ID"] ?? URL(fileURLWithPath: file).lastPathComponent
        let rejectsPath = rejects ?? environment["DOORSTEP_IMPORT_REJECTS"] ?? "\(file).rejects.\(importFile.format.rawValue)"
        var metadata = Metadata()
        if let token = token ?? environment["DOORSTEP_TOKEN"], !token.isEmpty { metadata.add("authorization", "Bearer \(token)") }
        let client = GRPCClient(targets: targets, configuration: .tool(targets: targets, tls: try tls.clientTLS()))
        defer { Task { await client.close() } }
        let summary: ImportSummary
        if payments {
            summary = try await ImportRun(file: importFile, importID: importID, rejectsPath: rejectsPath, method: AccountsV1.AccountsService.importPayments,
                                          parseCSV: ImportCSV.paymentRecord, stamp: { record, sequence, id in
                                              record.sequence = sequence
                                              if record.importId.isEmpty { record.importId = id }
                                          }).run(client: client, metadata: metadata)
        } else {
            summary = try await ImportRun(file: importFile, importID: importID, rejectsPath: rejectsPath, method: AccountsV1.AccountsService.importAccounts,
                                          parseCSV: ImportCSV.accountRecord, stamp: { record, sequence, id in
                                              record.sequence = sequence
                                              if record.importId.isEmpty { record.importId = id }
                                          }).run(client: client, metadata: metadata)
        }
        print(summary.line(file: file, rejectsPath: rejectsPath))
        if summary.rejected > 0 { throw ExitCode.failure }
    }
}

/// The counts an import ends with.
struct ImportSummary {
    var created = 0
    var updated = 0
    var unchanged = 0
    var rejected = 0
    var seconds = 0.0

    var done: Int { created + updated + unchanged + rejected }

    func line(file: String, rejectsPath: String) -> String {
        let rate = seconds > 0 ? Int(Double(done) / seconds) : done
        return "\(file): \(done) records: \(created) created, \(updated) updated, \(unchanged) unchanged, \(rejected) rejected"
            + " in \(String(format: "%.1f", seconds)) s (\(rate) records/s)" + (rejected > 0 ? "; rejects in \(rejectsPath)" : "")
    }
}

/// One run of an import: reads the records, keeps at most `window` of them unacknowledged,
/// resumes after a broken stream from the first unacknowledged one.
struct ImportRun<Record: ProtoMessage & JSONMessage> {
    let file: ImportFile
    let importID: String
    let rejectsPath: String
    let method: MethodDescriptor<Record, AccountsV1.ImportResult>
    let parseCSV: ([String: String]) throws(RecordProblem) -> Record
    let stamp: (inout Record, Int64, String) -> Void
    /// Records sent and not yet acknowledged at most.
    var window = 8192
    /// Attempts to resume a stream that broke.
    var maxResumes = 5

    /// What is in flight, shared by the sending and the receiving task.
    final class Flight: Sendable {
        struct State {
            /// Sent and not yet acknowledged, oldest first, from `head` on (acknowledged
            /// entries are dropped in bulk, not one by one from the front).
            var sent: [(sequence: Int64, record: Record, line: String)] = []
            var head = 0
            /// The current call's responses ended.
            var closed = false
            var summary = ImportSummary()
            var waiter: CheckedContinuation<Void, Never>?

            var pendingCount: Int { sent.count - head }
            var pending: ArraySlice<(sequence: Int64, record: Record, line: String)> { sent[head...] }

            /// Drops the entries up to `sequence`; returns the one with exactly that sequence.
            mutating func acknowledge(through sequence: Int64) -> (sequence: Int64, record: Record, line: String)? {
                var found: (sequence: Int64, record: Record, line: String)?
                while head < sent.count, sent[head].sequence <= sequence {
                    if sent[head].sequence == sequence { found = sent[head] }
                    head += 1
                }
                if head > 1024, head * 2 > sent.count {
                    sent.removeFirst(head)
                    head = 0
                }
                return found
            }
        }

        let state = Mutex(State())
    }

    func run(client: GRPCClient, metadata: Metadata) async throws -> ImportSummary {
        let started = ContinuousClock.now
        let rejects = RejectsWriter(path: rejectsPath, format: file.format, columns: file.columns)
        let flight = Flight()
        let progress = Progress(total: file.recordCount)
        var reader = try LineReader(path: file.path)
        var lineNumber: Int64 = 0
        var headerSeen = file.format == .jsonl
        var resumes = 0
        var exhausted = false
        while true {
            let call: StreamingCall<Record, AccountsV1.ImportResult>
            do {
                call = try await client.streamingCall(method, metadata: metadata)
            } catch {
                guard error.code == .unavailable, resumes < maxResumes else { throw Failure.report(["\(error.code): \(error.message)"]) }
                resumes += 1
                try await Task.sleep(for: .seconds(resumes))
                continue
            }
            let window = self.window
            flight.state.withLock { $0.closed = false }
            let receiver = Task { () throws -> Void in
                // However the responses end, a sender waiting for room must not wait forever.
                defer {
                    flight.state.withLock { state in
                        state.closed = true
                        state.waiter?.resume()
                        state.waiter = nil
                    }
                }
                for try await result in call.responses {
                    let acknowledged = flight.state.withLock { state -> (sequence: Int64, record: Record, line: String)? in
                        let found = state.acknowledge(through: result.sequence)
                        switch result.outcome {
                        case .created: state.summary.created += 1
                        case .updated: state.summary.updated += 1
                        case .unchanged: state.summary.unchanged += 1
                        default: state.summary.rejected += 1
                        }
                        if let waiter = state.waiter, state.pendingCount < window / 2 {
                            state.waiter = nil
                            waiter.resume()
                        }
                        return found
                    }
                    if result.outcome == .rejected, let rejected = acknowledged {
                        let field = result.refusal?.violations.first.map { $0.field.isEmpty ? $0.ruleId : $0.field } ?? ""
                        rejects.write(line: rejected.line, field: field, reason: "\(StatusCode(rawValue: Int(result.code))): \(result.message)")
                    }
                    progress.update(flight.state.withLock { $0.summary.done })
                }
            }
            do {
                // Resend what was not acknowledged, then go on reading.
                let unacknowledged = flight.state.withLock { $0.pending.map(\.record) }
                for record in unacknowledged { try await call.send(record) }
                while !exhausted {
                    guard let line = reader.next() else { exhausted = true; break }
                    lineNumber += 1
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                    var text = String(decoding: line, as: UTF8.self)
                    if !headerSeen { headerSeen = true; continue }
                    if lineNumber == 1, text.hasPrefix("\u{FEFF}") { text.removeFirst() }
                    let parsed = parse(text)
                    guard case .success(var record) = parsed else {
                        if case .failure(let problem) = parsed {
                            rejects.write(line: text, field: problem.field, reason: problem.reason)
                            flight.state.withLock { $0.summary.rejected += 1 }
                        }
                        continue
                    }
                    stamp(&record, lineNumber, importID)
                    let full = flight.state.withLock { state -> Bool in
                        state.sent.append((lineNumber, record, text))
                        return state.pendingCount >= window
                    }
                    try await call.send(record)
                    if full {
                        await withCheckedContinuation { continuation in
                            let ready = flight.state.withLock { state -> Bool in
                                if state.pendingCount < window / 2 || state.closed { return true }
                                state.waiter = continuation
                                return false
                            }
                            if ready { continuation.resume() }
                        }
                        if flight.state.withLock({ $0.closed }) {
                            try await receiver.value
                            throw RPCError(code: .unavailable, message: "the server ended the import before every record was answered")
                        }
                    }
                }
                call.finish()
                try await receiver.value
                break
            } catch {
                call.cancel()
                // The responses' error says why the call ended; a failed send only that it did.
                var failure = RPCError(from: error)
                if case .failure(let ended) = await receiver.result { failure = RPCError(from: ended) }
                guard failure.code == .unavailable || failure.code == .cancelled || failure.code == .deadlineExceeded,
                      resumes < maxResumes else {
                    progress.finish()
                    throw Failure.report(["\(failure.code): \(failure.message)"])
                }
                resumes += 1
                FileHandle.standardError.write(Data("import: stream broke (\(failure.code): \(failure.message)); resuming after the last acknowledged record\n".utf8))
                try await Task.sleep(for: .seconds(resumes))
            }
        }
        progress.finish()
        rejects.close()
        var summary = flight.state.withLock { $0.summary }
        let elapsed = ContinuousClock.now - started
        summary.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return summary
    }

    private func parse(_ text: String) -> Result<Record, RecordProblem> {
        switch file.format {
        case .jsonl:
            var json: JSONValue
            do {
                json = try ImportJSONParser.parse(text)
            } catch {
                return .failure(RecordProblem(field: "", reason: error.description))
            }
            if case .object(var fields) = json {
                fields.removeAll { $0.0 == ImportFile.rejectKey }
                json = .object(fields)
            }
            do {
                return .success(try Record(json: json, path: ""))
            } catch {
                return .failure(RecordProblem(field: error.path, reason: error.problem))
            }
        case .csv:
            let values = CSV.fields(text)
            guard values.count == file.columns.count else {
                return .failure(RecordProblem(field: "", reason: "\(values.count) fields, the header has \(file.columns.count)"))
            }
            var row: [String: String] = [:]
            for (name, value) in zip(file.columns, values) { row[name] = value }
            do {
                return .success(try parseCSV(row))
            } catch {
                return .failure(error)
            }
        }
    }
}

/// The rejects file: each rejected line as read, with what to fix (JSON Lines: a `_reject`
/// object with `field` and `reason`; CSV: the columns `reject_field`, `reject_reason`).
final class RejectsWriter: Sendable {
    private let handle: Mutex<FileHandle?>
    private let path: String
    private let format: ImportFormat
    private let columns: [String]

    init(path: String, format: ImportFormat, columns: [String]) {
        self.path = path
        self.format = format
        self.columns = columns
        self.handle = Mutex(nil)
    }

    func write(line: String, field: String, reason: String) {
        handle.withLock { handle in
            if handle == nil {
                _ = FileManager.default.createFile(atPath: path, contents: nil)
                handle = FileHandle(forWritingAtPath: path)
                if format == .csv {
                    let header = columns.filter { !ImportFile.rejectColumns.contains($0) } + ImportFile.rejectColumns
                    handle?.write(Data((header.map(CSV.escape).joined(separator: ",") + "\n").utf8))
                }
            }
            var out: String
            switch format {
            case .jsonl:
                var json = (try? ImportJSONParser.parse(line)) ?? .object([])
                if case .object(var fields) = json {
                    fields.removeAll { $0.0 == ImportFile.rejectKey }
                    fields.append((ImportFile.rejectKey, .object([("field", .string(field)), ("reason", .string(reason))])))
                    json = .object(fields)
                }
                out = json.text
            case .csv:
                var values = CSV.fields(line)
                var kept: [String] = []
                for (index, name) in columns.enumerated() where !ImportFile.rejectColumns.contains(name) && index < values.count {
                    kept.append(values[index])
                }
                values = kept + [field, reason]
                out = values.map(CSV.escape).joined(separator: ",")
            }
            handle?.write(Data((out + "\n").utf8))
        }
    }

    func close() {
        handle.withLock { handle in
            try? handle?.close()
            handle = nil
        }
    }
}

/// Progress on standard error: a bar redrawn in place on a terminal, a plain line every
/// few seconds otherwise.
final class Progress: Sendable {
    private struct State {
        var lastDraw = ContinuousClock.now
        var done = 0
    }

    private let total: Int
    private let started = ContinuousClock.now
    private let terminal = isatty(STDERR_FILENO) != 0
    private let state = Mutex(State())

    init(total: Int) { self.total = total }

    func update(_ done: Int) {
        let now = ContinuousClock.now
        let draw = state.withLock { state -> Bool in
            state.done = done
            guard now - state.lastDraw >= (terminal ? .milliseconds(200) : .seconds(5)) else { return false }
            state.lastDraw = now
            return true
        }
        if draw { emit(done, final: false) }
    }

    func finish() {
        emit(state.withLock { $0.done }, final: true)
    }

    private func emit(_ done: Int, final: Bool) {
        let elapsed = ContinuousClock.now - started
        let seconds = max(0.001, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        let rate = Double(done) / seconds
        let eta = rate > 0 ? Int(Double(max(0, total - done)) / rate) : 0
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let text: String
        if terminal {
            let width = 30
            let filled = Int(fraction * Double(width))
            text = "\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
                + String(format: "%5.1f%% %d/%d  %d records/s  ETA %dm%02ds", fraction * 100, done, total, Int(rate), eta / 60, eta % 60)
                + (final ? "\n" : "")
        } else {
            guard !final else { return }
            text = String(format: "import: %d/%d records (%.1f %%), %d records/s, ETA %d s\n", done, total, fraction * 100, Int(rate), eta)
        }
        FileHandle.standardError.write(Data(text.utf8))
    }
}
