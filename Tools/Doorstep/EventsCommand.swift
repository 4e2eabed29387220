import ArgumentParser
import Events
import Foundation
import Models
import RPC
import RPCWire
import TransportSecurity

/// `doorstep events tail ADDR [--type T]… [--from CURSOR | --from-now]`: prints a service's
/// domain events as they are committed, one per line (CloudEvents JSON, or a short text line),
/// and reconnects after its last printed cursor when the connection breaks, so nothing is
/// missed or printed twice.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Read a service's domain events.", subcommands: [Tail.self])

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a service's domain events as they happen.",
            discussion: """
                Prints one event per line: by default the CloudEvents JSON form (specversion, id, source, type, \
                subject, time, datacontenttype, dataschema, data, and the extension `cursor`); with -o text, \
                "CURSOR TIME TYPE SUBJECT". A broken connection is retried after the last printed cursor, so no \
                event is missed or printed twice; the service (accounts, scheduling, visits) is found by asking \
                its WatchEvents unless --service names it. Stops after --limit events, or on Ctrl-C.
                Example: doorstep events tail 127.0.0.1:50051 --type 'doorstep.accounts.account.*' --token "$TOKEN"
                """)

        enum Service: String, ExpressibleByArgument, CaseIterable {
            case accounts, scheduling, visits

            var method: MethodDescriptor<TypeV1.WatchEventsRequest, TypeV1.Event> {
                switch self {
                case .accounts: AccountsV1.AccountsService.watchEvents
                case .scheduling: SchedulingV1.SchedulingService.watchEvents
                case .visits: VisitsV1.VisitsService.watchEvents
                }
            }
        }

        enum Format: String, ExpressibleByArgument { case json, text }

        @Argument(help: "The service, HOST:PORT[,HOST:PORT…].") var address: String
        @Option(name: .customLong("type"), parsing: .singleValue,
                help: "Only this event type, or a prefix ending in .* (repeatable; default: all).")
        var types: [String] = []
        @Option(name: .customLong("from"), help: "Start after this cursor (an event's `cursor`; default: the oldest event).")
        var from: String?
        @Flag(help: "Start at the end: only events committed from now on.") var fromNow = false
        @Option(help: "accounts, scheduling or visits (default: found by asking).") var service: Service?
        @Option(help: "Stop after this many events.") var limit: Int?
        @Option(name: [.customShort("o"), .long], help: "json (CloudEvents, default) or text.") var output: Format = .json
        @Option(help: "Bearer token of a platform, compliance or service caller. Env DOORSTEP_TOKEN.") var token: String?
        @OptionGroup(title: "TLS") var tls: ClientTLSOptions

        func validate() throws {
            if fromNow, from != nil { throw ValidationError("--from and --from-now exclude each other") }
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            guard let targets = GRPCClient.Target.list(address) else { throw ValidationError("'\(address)' is not HOST:PORT") }
            var metadata = Metadata()
            if let token = token ?? ProcessInfo.processInfo.environment["DOORSTEP_TOKEN"], !token.isEmpty {
                metadata.add("authorization", "Bearer \(token)")
            }
            var configuration = GRPCClient.Configuration.tool(targets: targets, tls: try tls.clientTLS())
            configuration.maxAttempts = 1
            let client = GRPCClient(targets: targets, configuration: configuration)
            defer { Task { await client.close() } }
            var request = TypeV1.WatchEventsRequest(afterCursor: from ?? "", types: types, fromNow: fromNow)
            var candidates = service.map { [$0] } ?? Service.allCases
            var printed = 0
            var failures = 0
            while true {
                let current = candidates[0]
                do {
                    let call = try await client.serverStreamingCall(current.method, request, metadata: metadata)
                    for try await event in call.responses {
                        // Found: the service answered with an event or keeps the stream open.
                        candidates = [current]
                        failures = 0
                        print(line(event))
                        fflush(nil)
                        request = TypeV1.WatchEventsRequest(afterCursor: event.cursor, types: types)
                        printed += 1
                        if let limit, printed >= limit {
                            call.cancel()
                            return
                        }
                    }
                    // The server ended the stream (it is shutting down): resume.
                } catch let error as RPCError {
                    if error.code == .unimplemented, candidates.count > 1 {
                        candidates.removeFirst()
                        continue
                    }
                    guard [.unavailable, .internal, .cancelled, .deadlineExceeded, .resourceExhausted].contains(error.code) else {
                        throw Failure.report(["\(current.rawValue) WatchEvents: \(error.code): \(error.message)"])
                    }
                    failures += 1
                    FileHandle.standardError.write(Data("doorstep events: \(error.code): \(error.message); reconnecting\n".utf8))
                }
                // Back off (0.2 s doubling to 5 s) before reconnecting after the last cursor.
                try await Task.sleep(for: .milliseconds(min(5_000, 200 << min(failures, 5))))
            }
        }

        /// One output line for `event`.
        func line(_ event: TypeV1.Event) -> String {
            switch output {
            case .text:
                return "\(event.cursor) \(event.time) \(event.type) \(event.subject)"
            case .json:
                return event.cloudEventJSON
            }
        }
    }
}
