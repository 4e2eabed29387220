import Logging
import ServiceKit
import ServiceLifecycle
import Storage

/// The stage engine, run by the accounts service itself: every `interval` (default 5 minutes)
/// one replica (job lease `nightly-evaluation`) evaluates every account that is due in its
/// debtor's zone — the streamed EvaluateStages run, with the debtor-local day starting at
/// `dayStartMs` after midnight (`--nightly-evaluation-time`, default 00:30). Each account thus
/// moves on within one interval of that local time, with no outside call; EvaluateStages
/// stays for operators and tests (the two skip what the other already did). Metrics
/// `doorstep_job_*{task="nightly-evaluation"}`; an info line when a pass evaluated anything.
public struct NightlyEvaluation: Service {
    let service: AccountsService
    let database: SQLDatabase
    let clock: ServiceClock
    let logger: Logger
    let dayStartMs: Int64
    let interval: Duration

    public init(service: AccountsService, database: SQLDatabase, clock: ServiceClock, logger: Logger, dayStartMs: Int64,
                interval: Duration) {
        self.service = service
        self.database = database
        self.clock = clock
        self.logger = logger
        self.dayStartMs = dayStartMs
        self.interval = interval
    }

    public func run() async throws {
        await runPeriodically(every: interval, exclusive: .init(database: database, job: "nightly-evaluation", clock: clock),
                              logger: logger, done: "accounts evaluated by the nightly run", failed: "nightly evaluation failed") {
            try await service.evaluateDue(nowMs: clock.nowMs(), dayStartMs: dayStartMs)
        }
    }
}

extension AccountsService {
    /// Evaluates every account due at `nowMs`, each as of its debtor-local day (which starts
    /// `dayStartMs` after local midnight), in passes of `maxEvaluationBatch`; returns how many
    /// accounts it evaluated.
    public func evaluateDue(nowMs: Int64, dayStartMs: Int64) async throws -> Int {
        var cursor = (day: Int.min, row: Int64(0))
        var evaluated = 0
        while true {
            let pass = try await evaluationPass(ids: [], asOf: nil, cursor: cursor, batch: Self.maxEvaluationBatch, nowMs: nowMs,
                                                dayStartMs: dayStartMs)
            evaluated += pass.tally.evaluated
            cursor = pass.cursor
            if pass.exhausted || pass.tally.read == 0 { return evaluated }
        }
    }
}
