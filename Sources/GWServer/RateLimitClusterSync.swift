// rate-limiting's `policy = cluster` on the master (database = postgres): the exchange between the node's
// ClusterCounterTable (shared memory, where the workers count and decide) and PostgreSQL's
// `ratelimiting_metrics` (Kong's table and primary key, migration 001_ratelimiting_metrics).
//
// Design (issue #15), and why it differs from Kong:
// - Kong's cluster policy runs a SELECT per period on every request and an UPSERT `value + 1` in a 0-delay
//   timer after it. Here workers never talk to the database (ARCHITECTURE.md): a request is checked and
//   counted in shared memory (usage = synced + inflight + pending, one atomic step for every window, so one
//   node's workers are exact between themselves), and every `interval` (100 ms) the master sends ONE
//   statement through the node's PostgreSQL connection (PostgresSync.query, after any Admin API write
//   queued before it): every row's pending count is added with `INSERT … ON CONFLICT DO UPDATE SET value =
//   value + EXCLUDED.value`, and the statement answers the cluster-wide value of every row it names, the
//   live rows without pending requests included (a refresh, so other nodes' counts are seen). At most
//   `maxRows` rows per statement: pending rows first, then live rows round robin.
// - Accuracy across nodes: a node decides from the value it read at its last sync plus its own requests
//   since, so N nodes together can pass at most (the requests the others counted during one sync interval)
//   over the limit: with requests paced more than one interval apart the total is exact. Within one node
//   it is always exact.
// - PostgreSQL down or a statement failing: the taken counts go back to pending (nothing is lost; they
//   reach the database once it answers again), the error is logged at most once per 10 s, and workers go
//   on deciding from shared memory (this node's requests and the last cluster value): that is
//   fault_tolerant here. With fault_tolerant = false an instance answers 500 once the master has not
//   completed an exchange for more than RateLimiting.clusterStaleAfter (3 s) — Kong answers 500 as soon
//   as its per-request query fails.
// - Rows are written with Kong's columns: identifier (the text; longer than 112 bytes or not printable
//   ASCII → "h:" + a 128-bit hash), period name, period_date = window start, the instance's service_id /
//   route_id (null → the zero uuid), value, ttl = the window's end (Kong: first increment + period
//   length); expired rows are deleted 5 s after start, then every 60 s, in batches of 10,000 (again after
//   1 s while a batch was full).
// - A full table (8191 rows per node, PluginState.clusterTableSize) answers .full: the request is decided by
//   fault_tolerant, counted in the table's `full`, logged here at most once per 10 s.
import GWEvent
import GWPluginState
import GWSystem

final class RateLimitClusterSync {
    static let interval = 0.1
    static let maxRows = 1000
    static let cleanupInterval = 60.0
    /// The first cleanup, soon after start (rows a stopped node left behind).
    static let firstCleanup = 5.0
    static let cleanupBatch = 10_000
    static let zeroUUID = "00000000-0000-0000-0000-000000000000"

    let table: ClusterCounterTable
    let pg: PostgresSync
    let log: ErrorLog
    private var timer: TimerWatcher!
    private var cleanupTimer: TimerWatcher!
    private var inFlight = false
    private var cursor = 0
    private var lastErrorLogged: Int64 = 0
    private var cleaning = false
    private var fullSeen: UInt64 = 0
    private var lastFullLogged: Int64 = 0

    init(loop: EventLoop, table: ClusterCounterTable, pg: PostgresSync, log: ErrorLog) {
        self.table = table
        self.pg = pg
        self.log = log
        timer = TimerWatcher(loop: loop) { [unowned self] in self.tick() }
        cleanupTimer = TimerWatcher(loop: loop) { [unowned self] in self.cleanup() }
    }

    func start() {
        timer.start(after: RateLimitClusterSync.interval, repeat: RateLimitClusterSync.interval)
        cleanupTimer.start(after: RateLimitClusterSync.firstCleanup)
    }

    private func logError(_ message: String) {
        let now = Int64(Clock.wallSeconds())
        guard now - lastErrorLogged >= 10 else { return }
        lastErrorLogged = now
        log.log(.error, message)
    }

    /// Requests the full table could not count, at most once per 10 s.
    private func logFull(now: Int64) {
        let full = table.stats.full
        guard full != fullSeen, now - lastFullLogged >= 10 else { return }
        lastFullLogged = now
        log.log(.warn, "rate-limiting cluster: the node's \(table.capacity) cluster counters are in use: \(full - fullSeen) "
                + "request(s) decided by fault_tolerant")
        fullSeen = full
    }

    /// One exchange at most in flight; nothing is taken while PostgreSQL is unreachable.
    func tick() {
        guard !inFlight, pg.connected else { return }
        let now = Int64(Clock.wallSeconds())
        logFull(now: now)
        let (rows, next) = table.take(now: now, limit: RateLimitClusterSync.maxRows, cursor: cursor)
        cursor = next
        if rows.isEmpty {
            table.syncedAt = now
            return
        }
        inFlight = true
        pg.query(RateLimitClusterSync.statement(rows)) { [unowned self] r in
            self.inFlight = false
            switch r {
            case .success(let results):
                guard let res = results.last, res.columns.count == 2 else {
                    self.table.restore(rows)
                    self.logError("rate-limiting cluster: unexpected answer from PostgreSQL")
                    return
                }
                var settled: [(row: ClusterRow, value: Int64)] = []
                settled.reserveCapacity(rows.count)
                for i in 0..<res.rows.count {
                    guard let idx = res.int(i, 0), let v = res.int(i, 1), idx >= 0, Int(idx) < rows.count else { continue }
                    settled.append((rows[Int(idx)], v))
                }
                self.table.settle(settled)
                self.table.syncedAt = Int64(Clock.wallSeconds())
            case .failure(let e):
                self.table.restore(rows)
                self.logError("rate-limiting cluster: cannot sync counters with PostgreSQL: \(e.message) (kept in shared memory)")
            }
        }
    }

    /// A uuid as the column accepts it; anything else (not expected: ids are uuids) → the zero uuid.
    static func uuid(_ s: String) -> String {
        let b = Array(s.utf8)
        guard b.count == 36 else { return zeroUUID }
        for (i, c) in b.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 { if c != UInt8(ascii: "-") { return zeroUUID }; continue }
            let hex = (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
            if !hex { return zeroUUID }
        }
        return s
    }

    /// One statement: the pending counts added (one row per primary key: two instances of one scope and
    /// identifier share Kong's row), then every named row's value (the upsert's answer, else the table's).
    static func statement(_ rows: [ClusterRow]) -> String {
        var sql = "WITH v (i, identifier, period, period_date, service_id, route_id, value, ttl) AS (VALUES "
        for (i, r) in rows.enumerated() {
            if i > 0 { sql += ", " }
            sql += "(\(i), \(PG.literal(r.identifier)), '\(ClusterCounterTable.periodNames[r.period])', "
                + "to_timestamp(\(r.windowStart)), '\(uuid(r.serviceID))'::uuid, '\(uuid(r.routeID))'::uuid, "
                + "\(r.increment), to_timestamp(\(r.windowEnd)))"
        }
        let pk = "identifier, period, period_date, service_id, route_id"
        sql += "), u AS (INSERT INTO ratelimiting_metrics AS m (\(pk), value, ttl) "
            + "SELECT \(pk), sum(value)::integer, max(ttl) FROM v WHERE value > 0 GROUP BY \(pk) "
            + "ON CONFLICT (\(pk)) DO UPDATE SET value = m.value + EXCLUDED.value RETURNING \(pk), value) "
            + "SELECT v.i, COALESCE(u.value, m.value, 0) FROM v LEFT JOIN u USING (\(pk)) "
            + "LEFT JOIN ratelimiting_metrics m USING (\(pk))"
        return sql
    }

    /// Deletes expired rows (Kong deletes rows past their ttl on a timer), one bounded batch at a time.
    private func cleanup() {
        guard pg.connected, !cleaning else {
            cleanupTimer.start(after: RateLimitClusterSync.cleanupInterval)
            return
        }
        cleaning = true
        let sql = "WITH d AS (DELETE FROM ratelimiting_metrics WHERE ctid = ANY(ARRAY(SELECT ctid FROM ratelimiting_metrics "
            + "WHERE ttl < now() LIMIT \(RateLimitClusterSync.cleanupBatch))) RETURNING 1) SELECT count(*) FROM d"
        pg.query(sql) { [unowned self] r in
            self.cleaning = false
            var again = RateLimitClusterSync.cleanupInterval
            switch r {
            case .success(let res):
                if let n = res.last?.int(0, 0), n >= Int64(RateLimitClusterSync.cleanupBatch) { again = 1 }
            case .failure(let e):
                self.logError("rate-limiting cluster: cannot delete expired ratelimiting_metrics rows: \(e.message)")
            }
            self.cleanupTimer.start(after: again)
        }
    }
}
