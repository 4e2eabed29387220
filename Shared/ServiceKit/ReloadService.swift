import Foundation
import Logging
import Metrics
import ServiceLifecycle
import UnixSignals

/// Re-reads what a running service loads from files — TLS certificates and keys, the
/// token keys — on SIGHUP and when one of their files changes (checked every
/// `checkInterval`; zero = SIGHUP only). A reload that fails is logged and counted, and the
/// previous material stays in use; nothing established (connections, calls) is dropped.
public struct ReloadService: Service {
    let reloadables: [any Reloadable]
    let checkInterval: Duration
    let logger: Logger

    public init(reloadables: [any Reloadable], checkInterval: Duration, logger: Logger) {
        self.reloadables = reloadables
        self.checkInterval = checkInterval
        self.logger = logger
    }

    public func run() async throws {
        guard !reloadables.isEmpty else {
            try? await gracefulShutdown()
            return
        }
        let signals = await UnixSignalsSequence(trapping: .sighup)
        let reloadables = self.reloadables
        let logger = self.logger
        let interval = checkInterval
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in signals.cancelOnGracefulShutdown() {
                    logger.notice("SIGHUP: reloading certificates and keys")
                    for reloadable in reloadables { Self.reload(reloadable, why: "SIGHUP", logger: logger) }
                }
            }
            if interval > .zero {
                group.addTask {
                    var seen = reloadables.map { FileFingerprint.of($0.watchedFiles) }
                    while !Task.isShuttingDownGracefully && !Task.isCancelled {
                        do {
                            try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                        } catch {
                            break
                        }
                        for (index, reloadable) in reloadables.enumerated() {
                            let now = FileFingerprint.of(reloadable.watchedFiles)
                            guard now != seen[index] else { continue }
                            seen[index] = now
                            Self.reload(reloadable, why: "file changed", logger: logger)
                        }
                    }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// Reloads one thing, logging and counting the outcome (`doorstep_reloads_total`).
    static func reload(_ reloadable: any Reloadable, why: String, logger: Logger) {
        do {
            try reloadable.reload()
            Counter(label: "doorstep_reloads_total", dimensions: [("what", reloadable.reloadName), ("result", "ok")]).increment()
            logger.notice("reloaded", metadata: ["what": "\(reloadable.reloadName)", "trigger": "\(why)"])
        } catch {
            Counter(label: "doorstep_reloads_total", dimensions: [("what", reloadable.reloadName), ("result", "refused")]).increment()
            logger.error("reload refused; the previous one stays in use", metadata: [
                "what": "\(reloadable.reloadName)", "trigger": "\(why)", "error": "\(error.description)",
            ])
        }
    }
}

/// What a file looked like when last checked (device, inode, size, modification time), read
/// with `stat`, which follows symbolic links: a rename over the file, a rewrite in place, and a
/// Kubernetes secret volume's swap of its `..data` link (the file itself stays a link that
/// never changes) all change it.
struct FileFingerprint: Equatable {
    let entries: [String?]

    static func of(_ paths: [String]) -> FileFingerprint {
        FileFingerprint(entries: paths.map { path in
            var status = stat()
            guard stat(path, &status) == 0 else { return nil }
            return "\(status.st_dev)/\(status.st_ino)/\(status.st_size)/\(status.st_mtim.tv_sec).\(status.st_mtim.tv_nsec)"
        })
    }
}
