import Foundation

/// Leases on named jobs, so that a background sweep runs once across the replicas of a
/// service instead of once per replica: before a pass, a replica takes the job's lease
/// until about the next pass; the others find it held and skip. A replica that dies
/// holding a lease loses it when it runs out, and another takes the job over.
public enum JobLease {
    static var migrations: SQLDatabase.Migrations {
        var migrations = SQLDatabase.Migrations()
        migrations.add("doorstep-job-leases-v1", sql: """
            CREATE TABLE doorstep_job_leases (
                name TEXT PRIMARY KEY NOT NULL,
                holder TEXT NOT NULL,
                until_ms INTEGER NOT NULL
            )
            """)
        return migrations
    }

    /// In a write transaction: takes the lease on `name` for `holder` until `untilMs` when it
    /// is free (never taken, or run out by `nowMs`) or already `holder`'s. Returns whether
    /// `holder` holds it now.
    public static func acquire(_ db: SQLSession, name: String, holder: String, nowMs: Int64, untilMs: Int64) throws -> Bool {
        try db.execute(sql: """
            INSERT INTO doorstep_job_leases (name, holder, until_ms) VALUES (?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
            WHERE doorstep_job_leases.until_ms <= ? OR doorstep_job_leases.holder = excluded.holder
            """, arguments: [name, holder, untilMs, nowMs]) > 0
    }

    /// The current holder of `name` and until when, or nil if never taken.
    public static func holder(_ db: SQLSession, name: String) throws -> (holder: String, untilMs: Int64)? {
        try db.fetchOne(sql: "SELECT holder, until_ms FROM doorstep_job_leases WHERE name = ?", arguments: [name])
            .map { ($0["holder"], $0["until_ms"]) }
    }
}

/// This process among the replicas of its service: the holder name of its leases (job
/// leases, outbox claims). Host name, process id and a random part, so a restarted process
/// never inherits what its predecessor held.
public enum ReplicaIdentity {
    public static let current: String = {
        let host = ProcessInfo.processInfo.hostName
        return "\(host)/\(ProcessInfo.processInfo.processIdentifier)/\(UInt32.random(in: 0...UInt32.max))"
    }()
}
