import Foundation
import TestSupport
import Testing

/// deploy/prometheus (alert rules, their unit tests, an example configuration) and
/// deploy/grafana/doorstep.json: valid for the tools that load them, and every metric they
/// query one the services export (docs/OPERATIONS.md, "Metrics, dashboard and alerts"), so a
/// misspelt series fails here rather than as a silent empty panel or an alert that never fires.
@Suite("deploy/: Prometheus alerts and the Grafana dashboard")
struct MonitoringFilesTests {
    /// The series the services export, as documented; histograms by family name.
    static let counters = [
        "grpc_server_started_total", "grpc_server_handled_total", "grpc_client_started_total", "grpc_client_handled_total",
        "process_cpu_seconds_total", "doorstep_outbox_delivered_total", "doorstep_outbox_failed_total",
        "doorstep_outbox_retries_total", "doorstep_job_runs_total", "doorstep_complaints_sla_breached_total",
        "doorstep_reloads_total",
    ]
    static let gauges = [
        "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
        "process_start_time_seconds", "doorstep_build_info", "doorstep_outbox_pending",
        "doorstep_outbox_oldest_pending_age_seconds", "doorstep_db_pool_connections", "doorstep_db_pool_max", "doorstep_job_interval_seconds",
        "doorstep_job_last_run_timestamp_seconds", "doorstep_job_duration_seconds", "doorstep_job_items",
        "doorstep_tls_certificate_expiry_seconds",
    ]
    static let histograms = ["grpc_server_handling_seconds", "grpc_client_handling_seconds", "doorstep_db_transaction_seconds",
                             "doorstep_db_statement_seconds", "doorstep_db_point_read_batch_size"]

    /// Every series name a query may use: the documented ones, a histogram's `_bucket`,
    /// `_sum` and `_count`, and Prometheus's own `up`.
    static let queryable: Set<String> = Set(counters + gauges + ["up"])
        .union(histograms.flatMap { [$0 + "_bucket", $0 + "_sum", $0 + "_count"] })

    static let alertNames: Set<String> = [
        "OutboxBacklogGrowing", "OutboxDeliveriesFailing", "ComplaintSLABreached", "HighErrorRatio",
        "HighLatencyP99", "BackgroundJobStale", "ServiceDown", "TLSCertificateExpiringSoon", "TLSReloadRefused",
    ]

    // MARK: PromQL

    /// The series names a PromQL expression selects: identifiers left once strings, label
    /// matchers, ranges and grouping clauses are removed, other than function names (followed
    /// by `(`), keywords and numbers.
    static func metricNames(in expression: String) -> Set<String> {
        var text = expression
        for (pattern, replacement) in [
            (#""(?:[^"\\]|\\.)*""#, "\"\""), (#"'(?:[^'\\]|\\.)*'"#, "''"), (#"`[^`]*`"#, "``"),
            (#"\{[^}]*\}"#, " "), (#"\[[^\]]*\]"#, " "),
            (#"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"#, " "),
        ] {
            text = text.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
        }
        let keywords: Set<String> = ["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                                     "group_left", "group_right", "inf", "nan", "Inf", "NaN", "atan2"]
        let identifier = try! NSRegularExpression(pattern: #"(?<![0-9.A-Za-z_:$])[A-Za-z_:][A-Za-z0-9_:]*"#)
        let whole = text as NSString
        var names: Set<String> = []
        for match in identifier.matches(in: text, range: NSRange(location: 0, length: whole.length)) {
            let name = whole.substring(with: match.range)
            let rest = whole.substring(from: match.range.location + match.range.length)
            if rest.drop(while: \.isWhitespace).first == "(" || keywords.contains(name) { continue }
            names.insert(name)
        }
        return names
    }

    @Test("the metric-name check finds a misspelt series, and nothing else", arguments: [(String, [String])]([
        (#"sum by (job, grpc_service) (rate(grpc_server_handeld_total{grpc_code=~"Internal|Unknown"}[5m])) > 0.05"#,
         ["grpc_server_handeld_total"]),
        (#"histogram_quantile(0.99, sum by (le) (rate(grpc_server_handling_seconds_bucket{job=~"$job"}[$__rate_interval]))) > 1e3"#,
         ["grpc_server_handling_seconds_bucket"]),
        (#"time() - max by (job, task) (doorstep_job_last_run_timestamp_seconds offset 5m) > 180 and on (job) up == 0"#,
         ["doorstep_job_last_run_timestamp_seconds", "up"]),
        (#"process_open_fds / process_max_fd"#, ["process_open_fds", "process_max_fd"]),
    ]))
    func extraction(_ expression: String, _ expected: [String]) {
        #expect(Self.metricNames(in: expression) == Set(expected))
    }

    // MARK: alerts

    /// deploy/prometheus/alerts.yml as JSON (through Python's yaml, as the compose tests read YAML).
    static func loadAlerts() throws -> [[String: Any]] {
        let result = try runProcess("python3", [
            "-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
            repositoryRoot.appendingPathComponent("deploy/prometheus/alerts.yml").path,
        ])
        try #require(result.status == 0, "\(result.output)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        let groups = try #require(document["groups"] as? [[String: Any]])
        return groups.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }
    }

    /// promtool comes with the Debian package `prometheus` (Scripts/install-deps.sh installs
    /// it); where it is missing, the rules are still parsed and checked by `alerts()`.
    static let promtoolInstalled = toolExists("promtool")

    @Test("promtool accepts the rules, passes their unit tests and the example configuration", .enabled(if: promtoolInstalled))
    func promtool() async throws {
        let check = try await runProcessDetached("promtool", ["check", "rules", "deploy/prometheus/alerts.yml"])
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("SUCCESS: \(Self.alertNames.count) rules found"), "\(check.output)")
        let unit = try await runProcessDetached("promtool", ["test", "rules", "deploy/prometheus/alerts_test.yml"])
        #expect(unit.status == 0, "\(unit.output)")
        let config = try await runProcessDetached("promtool", ["check", "config", "deploy/prometheus/prometheus.yml"])
        #expect(config.status == 0, "\(config.output)")

        // The check can fail: a broken expression is refused.
        let directory = try makeTemporaryDirectory()
        let broken = directory.appendingPathComponent("broken.yml")
        let text = String(decoding: try readFile(repositoryRoot.appendingPathComponent("deploy/prometheus/alerts.yml")), as: UTF8.self)
        try text.replacingOccurrences(of: "expr: up{job=~\"accounts|scheduling|visits\"} == 0", with: "expr: up{job=~\"accounts\" == 0")
            .write(to: broken, atomically: true, encoding: .utf8)
        let refused = try await runProcessDetached("promtool", ["check", "rules", broken.path])
        #expect(refused.status != 0, "\(refused.output)")
    }

    @Test("every alert the runbook names exists, with a severity, a summary and a description, querying documented series only")
    func alerts() throws {
        let rules = try Self.loadAlerts()
        var seen: Set<String> = []
        for rule in rules {
            let name = try #require(rule["alert"] as? String, "only alerting rules: \(rule)")
            #expect(seen.insert(name).inserted, "\(name) twice")
            let expression = try #require(rule["expr"] as? String)
            let labels = rule["labels"] as? [String: String] ?? [:]
            #expect(["critical", "warning"].contains(labels["severity"] ?? ""), "\(name): severity \(labels["severity"] ?? "none")")
            let annotations = rule["annotations"] as? [String: String] ?? [:]
            #expect(!(annotations["summary"] ?? "").isEmpty, "\(name) has no summary")
            #expect((annotations["description"] ?? "").count > 40, "\(name) has no description")
            let used = Self.metricNames(in: expression)
            #expect(!used.isEmpty, "\(name) queries no series")
            #expect(used.isSubset(of: Self.queryable), "\(name) queries undocumented series \(used.subtracting(Self.queryable).sorted())")
        }
        #expect(seen == Self.alertNames)
        let byName = Dictionary(uniqueKeysWithValues: rules.map { ($0["alert"] as? String ?? "", $0["expr"] as? String ?? "") })
        #expect(byName["ServiceDown"]?.contains("== 0") == true && Self.metricNames(in: byName["ServiceDown"] ?? "") == ["up"])
        #expect(Self.metricNames(in: byName["OutboxDeliveriesFailing"] ?? "") == ["doorstep_outbox_failed_total"])
        #expect(Self.metricNames(in: byName["ComplaintSLABreached"] ?? "") == ["doorstep_complaints_sla_breached_total"])
    }

    // MARK: dashboard

    /// Every query of the dashboard: panel targets (rows' nested panels too) and the
    /// template variables' `label_values(SELECTOR, label)` selectors.
    static func dashboardQueries() throws -> (panels: [(title: String, expression: String)], variables: [String]) {
        let data = Data(try readFile(repositoryRoot.appendingPathComponent("deploy/grafana/doorstep.json")))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var panels: [(String, String)] = []
        func collect(_ list: [[String: Any]]) {
            for panel in list {
                for target in panel["targets"] as? [[String: Any]] ?? [] {
                    panels.append((panel["title"] as? String ?? "", target["expr"] as? String ?? ""))
                }
                collect(panel["panels"] as? [[String: Any]] ?? [])
            }
        }
        collect(try #require(dashboard["panels"] as? [[String: Any]]))
        var variables: [String] = []
        for variable in (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? [] where variable["type"] as? String == "query" {
            let query = (variable["query"] as? [String: Any])?["query"] as? String ?? variable["query"] as? String ?? ""
            guard let open = query.range(of: "label_values("), let comma = query.range(of: ", ", options: .backwards) else {
                variables.append(query)
                continue
            }
            variables.append(String(query[open.upperBound..<comma.lowerBound]))
        }
        return (panels, variables)
    }

    @Test("the dashboard parses, each panel has an id and a query, and every query uses documented series")
    func dashboard() throws {
        let data = Data(try readFile(repositoryRoot.appendingPathComponent("deploy/grafana/doorstep.json")))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(dashboard["uid"] as? String == "doorstep")
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let ids = panels.compactMap { $0["id"] as? Int }
        #expect(ids.count == panels.count && Set(ids).count == ids.count, "unique panel ids")
        for panel in panels where panel["type"] as? String != "row" {
            #expect(!(panel["targets"] as? [[String: Any]] ?? []).isEmpty, "\(panel["title"] ?? "?") has no query")
            #expect((panel["datasource"] as? [String: Any])?["uid"] as? String == "${datasource}", "\(panel["title"] ?? "?")")
        }

        let (queries, variables) = try Self.dashboardQueries()
        var used: Set<String> = []
        for (title, expression) in queries {
            let names = Self.metricNames(in: expression)
            #expect(!names.isEmpty, "\(title): \(expression)")
            #expect(names.isSubset(of: Self.queryable), "\(title) queries undocumented series \(names.subtracting(Self.queryable).sorted())")
            used.formUnion(names)
        }
        for selector in variables {
            #expect(Self.metricNames(in: selector).isSubset(of: Self.queryable), "template variable over \(selector)")
        }
        // What the dashboard is for: each of these is on it.
        let required: Set<String> = [
            "grpc_server_handled_total", "grpc_server_handling_seconds_bucket", "doorstep_outbox_pending",
            "doorstep_outbox_oldest_pending_age_seconds", "doorstep_outbox_failed_total", "doorstep_db_transaction_seconds_bucket",
            "doorstep_db_pool_connections", "doorstep_db_pool_max", "doorstep_job_last_run_timestamp_seconds",
            "doorstep_job_duration_seconds", "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
        ]
        #expect(required.isSubset(of: used), "missing from the dashboard: \(required.subtracting(used).sorted())")
    }

    @Test("every dashboard query is valid PromQL (promtool, the queries as recording rules)", .enabled(if: promtoolInstalled))
    func dashboardPromQL() async throws {
        let (queries, _) = try Self.dashboardQueries()
        var rules = "groups:\n  - name: dashboard\n    rules:\n"
        for (index, query) in queries.enumerated() {
            let expression = query.expression
                .replacingOccurrences(of: "$__rate_interval", with: "5m")
                .replacingOccurrences(of: "$job", with: ".*")
                .replacingOccurrences(of: "$instance", with: ".*")
            let quoted = String(data: try JSONSerialization.data(withJSONObject: [expression], options: [.withoutEscapingSlashes]), encoding: .utf8)!.dropFirst().dropLast()
            rules += "      - record: dashboard:query_\(index)\n        expr: \(quoted)\n"
        }
        let directory = try makeTemporaryDirectory()
        let file = directory.appendingPathComponent("dashboard-rules.yml")
        try rules.write(to: file, atomically: true, encoding: .utf8)
        let check = try await runProcessDetached("promtool", ["check", "rules", file.path])
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("SUCCESS: \(queries.count) rules found"), "\(check.output)")
    }

    @Test("docs/OPERATIONS.md documents every series, the dashboard and the alerts")
    func documented() throws {
        let text = String(decoding: try readFile(repositoryRoot.appendingPathComponent("docs/OPERATIONS.md")), as: UTF8.self)
        let start = try #require(text.range(of: "## Metrics, dashboard and alerts"))
        let section = text[start.upperBound...].components(separatedBy: "\n## ").first ?? ""
        for name in Self.counters + Self.gauges + Self.histograms {
            #expect(section.contains("`\(name)"), "\(name) is not in the section")
        }
        for name in Self.alertNames { #expect(section.contains(name), "\(name) is not in the section") }
        for path in ["deploy/grafana/doorstep.json", "deploy/prometheus/alerts.yml", "deploy/prometheus/alerts_test.yml"] {
            #expect(section.contains(path))
        }
    }
}
