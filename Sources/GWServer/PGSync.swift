// The master's link to PostgreSQL (database = postgres): Admin API writes, and the change feed that keeps
// this node's mirror (and so its workers) in step with every other node.
//
// Design (decided for issue #15):
// - Reads are served from the node's in-memory mirror (AdminStore), as with SQLite; they never wait on
//   PostgreSQL and keep working while it is down.
// - A write is asynchronous. The Admin API validates against the mirror and hands its ops to
//   `AdminStore.writeSink`, which collects them here (nothing changes yet); the HTTP answer is held. The
//   ops go to PostgreSQL as one simple query, i.e. one transaction in one round trip: advisory lock
//   `PGSchema.writeLock` (so commit order = change-log order), the upserts/deletes, one `gw_changes` row
//   per entity (seq, node id, kind, id, op, document) and `NOTIFY gateway_changes`. Once committed, the
//   node reads the change log after its last applied seq (its own write included), applies it to the
//   mirror, publishes a delta to its workers, and only then answers: a 201 means this node's workers
//   serve the change. A unique or foreign-key violation (another node won a race the mirror could not
//   see) is answered as Kong does (409 / 400), after the same catch-up so the clash can be named; any
//   other failure is Kong's 500 `An unexpected error occurred`. Deferred foreign keys make the database,
//   not the mirror, the judge across nodes.
// - Every node LISTENs on the same connection; a notification (from another backend), the periodic check
//   every db_update_frequency seconds, and every reconnection read the log after the last applied seq
//   (pages of 1000). When the log was trimmed past that seq (`gw_state.trimmed_through`), the node reloads
//   every entity in one REPEATABLE READ snapshot and publishes a full document. The log keeps an hour of
//   changes (Kong's cluster_events TTL), the newest row always.
// - Manual healthy/unhealthy overrides are applied locally, then written to the log as op `h`; other nodes
//   apply them to their own shared health table (probes stay per node, as Kong).
// - One connection, one query at a time (so pg_max_concurrent_queries is always met). PostgreSQL down:
//   writes answer 500 at once, reads are served from the mirror, `/status` says database.reachable false,
//   `/status/ready` 503; the node reconnects with back-off (0.1 s doubling to 2 s) and catches up.
// - Blocking calls: only at start, before the master's loop runs (connect, migration check, full load);
//   reconnections use PQconnectStart/PQconnectPoll on the loop.
// Bounded: the job queue holds at most `maxJobs` (more writes answer 500), catch-up pages 1000 rows.
import GWAdmin
import GWConfig
import GWEvent
import GWJSON
import GWSystem

final class PostgresSync {
    let loop: EventLoop
    let log: ErrorLog
    let settings: PostgresSettings
    let api: AdminAPI
    /// The store's node id (GET / node_id): a new one at each start, as Kong's traditional nodes.
    let nodeID: String
    var publish: () -> Void = {}
    private var conn: PGConnection?
    private(set) var connected = false
    private(set) var lastApplied: Int64
    private var backoff = 0.1
    private var reconnectTimer: TimerWatcher!
    private var checkTimer: TimerWatcher!
    private var trimTimer: TimerWatcher!
    private var failuresLogged = 0
    private var backendPID: Int32 = 0

    static let maxJobs = 10_000
    static let pageSize = 1000
    static let retentionSeconds = 3600

    enum Outcome { case committed, refused(PGError), failed }
    private enum Job {
        case write(sql: String, ops: [StoreOp], done: (Outcome) -> Void)
        case catchUp
        case reload
        case trim
        /// Another part of the master's statement (rate-limiting's cluster counters), answered by `done`.
        case query(sql: String, done: (Result<[PGRows], PGError>) -> Void)
    }
    private var queue: [Job] = []
    private var catchUpQueued = false
    /// Answers held until the mirror has caught up past their commit (own ops kept for a lost connection).
    private var waiters: [(ops: [StoreOp], run: () -> Void)] = []

    /// The ops and log events of the request being handled (`hasPending` after `api.handle`).
    private var pendingOps: [StoreOp] = []
    private var pendingEvents: [(kind: String, id: String, op: String, doc: String?)] = []
    var hasPending: Bool { !pendingOps.isEmpty || !pendingEvents.isEmpty }

    init(loop: EventLoop, log: ErrorLog, settings: PostgresSettings, api: AdminAPI, loadedSeq: Int64) {
        self.loop = loop
        self.log = log
        self.settings = settings
        self.api = api
        nodeID = api.store.nodeID
        lastApplied = loadedSeq
        reconnectTimer = TimerWatcher(loop: loop) { [unowned self] in self.connect() }
        checkTimer = TimerWatcher(loop: loop) { [unowned self] in self.requestCatchUp() }
        trimTimer = TimerWatcher(loop: loop) { [unowned self] in self.enqueue(.trim) }
        api.store.writeSink = { [unowned self] (ops: [StoreOp]) throws(AdminStoreError) in
            guard self.connected else { throw AdminStoreError("database unreachable") }
            self.pendingOps += ops
        }
        api.context.onTargetHealth = { [unowned self] up, target, address, healthy in
            var o = JSONObject()
            o["upstream"] = .string(up)
            o["target"] = .string(target)
            o["address"] = address.map { .string($0) } ?? .null
            o["healthy"] = .bool(healthy)
            self.pendingEvents.append(("health", up, "h", JSON.object(o).serializedString))
        }
        api.context.databaseReachable = { [unowned self] in self.connected }
        api.context.readiness = { [unowned self] in self.connected ? nil : "failed to connect to database" }
    }

    // MARK: Start-up (blocking, before the loop runs)

    /// Connects, checks the migrations (Kong's messages) and loads every entity into `store`; the change
    /// log's seq the load is at.
    static func loadAtStart(_ s: PostgresSettings, into store: AdminStore) throws(PGError) -> Int64 {
        let c: PGConnection
        do { c = try PGConnection.connectBlocking(s) } catch {
            throw PGError(message: "[PostgreSQL error] failed to retrieve PostgreSQL server_version_num: \(error.message)")
        }
        defer { c.close() }
        try PGSchema.checkStartable(c)
        guard let (ops, seq) = PGSchema.decodeLoad(try c.exec(PGSchema.loadSQL)) else {
            throw PGError(message: "[PostgreSQL error] unexpected answer to the configuration load")
        }
        store.replaceMirror(with: ops)
        return seq
    }

    func start() {
        checkTimer.start(after: settings.updateFrequency, repeat: settings.updateFrequency)
        trimTimer.start(after: 60, repeat: 60)
        connect()
    }

    // MARK: Connection

    private func connect() {
        conn = PGConnection.startConnect(loop: loop, settings: settings) { [unowned self] err in
            if let err { self.connectFailed(err); return }
            guard let c = self.conn else { return }
            c.send("LISTEN \(PGSchema.notifyChannel)") { [unowned self] r in
                if case .failure(let e) = r { self.connectFailed(e); return }
                self.connected(c)
            }
        }
    }

    private func connected(_ c: PGConnection) {
        backendPID = c.backendPID
        // Our own NOTIFY needs nothing: the write that sent it reads the log itself.
        c.onNotify = { [unowned self] _, pid in if pid != self.backendPID { self.requestCatchUp() } }
        c.onLost = { [unowned self] e in self.lost(e) }
        connected = true
        backoff = 0.1
        if failuresLogged > 0 { log.log(.notice, "database connection restored (PostgreSQL \(settings.host):\(settings.port))") }
        failuresLogged = 0
        requestCatchUp()
    }

    private func connectFailed(_ e: PGError) {
        conn?.close()
        conn = nil
        if failuresLogged == 0 || failuresLogged % 30 == 0 {
            log.log(.error, "cannot connect to PostgreSQL \(settings.host):\(settings.port): \(e.message); retrying")
        }
        failuresLogged += 1
        reconnectTimer.start(after: backoff)
        backoff = min(backoff * 2, 2)
    }

    private func lost(_ e: PGError) {
        guard connected else { return }
        connected = false
        conn = nil
        log.log(.error, "database connection lost: \(e.message); reconnecting")
        failuresLogged = 1
        let jobs = queue
        queue = []
        catchUpQueued = false
        for case .write(_, _, let done) in jobs { done(.failed) }
        for case .query(_, let done) in jobs { done(.failure(e)) }
        releaseWaiters(applyOwn: true)
        reconnectTimer.start(after: backoff)
    }

    // MARK: Writes

    /// Forgets the ops of a request that failed after collecting them.
    func discardPending() { pendingOps = []; pendingEvents = [] }

    /// Sends the request's ops; `respond` gets `base` once committed and applied, Kong's 409/400 for a
    /// constraint the database enforced, or Kong's 500.
    func submit(base: AdminResponse, respond: @escaping (AdminResponse) -> Void) {
        let ops = pendingOps, events = pendingEvents
        discardPending()
        let error500 = AdminResponse(status: 500, headers: base.headers, body: Array("{\"message\":\"An unexpected error occurred\"}".utf8))
        guard connected, queue.count < PostgresSync.maxJobs else { respond(error500); return }
        let sql = PostgresSync.writeSQL(ops, events, nodeID: nodeID)
        enqueue(.write(sql: sql, ops: ops, done: { [unowned self] outcome in
            switch outcome {
            case .committed:
                self.waitCatchUp(ops) { respond(base) }
            case .refused(let e) where e.sqlState == "23505" || e.sqlState == "23503":
                self.waitCatchUp([]) {
                    respond(self.api.constraintFailure(sqlState: e.sqlState, constraint: e.constraint, ops: ops, base: base))
                }
            case .refused(let e):
                self.log.log(.error, "database write failed: \(e.message)")
                respond(error500)
            case .failed:
                respond(error500)
            }
        }))
    }

    /// One transaction as one simple query: the write lock, the rows, their change-log rows, NOTIFY.
    static func writeSQL(_ ops: [StoreOp], _ events: [(kind: String, id: String, op: String, doc: String?)],
                         nodeID: String) -> String {
        var sql = "SELECT pg_advisory_xact_lock(\(PGSchema.writeLock));\n"
        let node = PG.literal(nodeID)
        for op in ops {
            switch op {
            case .put(let kind, let doc):
                let id = doc["id"]?.stringValue ?? ""
                let text = doc.serializedString
                let cols = kind.keyColumns.map(\.0)
                let values = kind.keyValues(doc).map(PG.literal)
                let created = doc["created_at"]?.doubleValue ?? 0
                sql += "INSERT INTO \(kind.rawValue) (id, created_at, \(cols.joined(separator: ", ")), doc) VALUES ("
                    + "\(PG.literal(id)), \(created), \(values.joined(separator: ", ")), \(PG.literal(text))) ON CONFLICT (id) DO UPDATE SET "
                    + (["created_at"] + cols + ["doc"]).map { "\($0) = excluded.\($0)" }.joined(separator: ", ") + ";\n"
                sql += "INSERT INTO gw_changes (node_id, kind, id, op, doc) VALUES (\(node), '\(kind.rawValue)', \(PG.literal(id)), 'p', \(PG.literal(text)));\n"
            case .delete(let kind, let id):
                sql += "DELETE FROM \(kind.rawValue) WHERE id = \(PG.literal(id));\n"
                sql += "INSERT INTO gw_changes (node_id, kind, id, op, doc) VALUES (\(node), '\(kind.rawValue)', \(PG.literal(id)), 'd', NULL);\n"
            }
        }
        for e in events {
            sql += "INSERT INTO gw_changes (node_id, kind, id, op, doc) VALUES (\(node), \(PG.literal(e.kind)), \(PG.literal(e.id)), \(PG.literal(e.op)), \(PG.literal(e.doc)));\n"
        }
        return sql + "NOTIFY \(PGSchema.notifyChannel);"
    }

    // MARK: Jobs

    /// Runs `sql` on the node's connection after the jobs queued before it; `done` gets its rows or the
    /// error (at once when PostgreSQL is unreachable or the queue is full).
    func query(_ sql: String, done: @escaping (Result<[PGRows], PGError>) -> Void) {
        guard connected, queue.count < PostgresSync.maxJobs else {
            done(.failure(PGError(message: "database unreachable", connection: true)))
            return
        }
        enqueue(.query(sql: sql, done: done))
    }

    private func enqueue(_ job: Job, first: Bool = false) {
        guard connected else { return }
        if first { queue.insert(job, at: 0) } else { queue.append(job) }
        runNext()
    }

    func requestCatchUp() {
        guard connected, !catchUpQueued else { return }
        catchUpQueued = true
        enqueue(.catchUp)
    }

    /// Runs `run` once the mirror holds every change committed so far (this write's included).
    private func waitCatchUp(_ ops: [StoreOp], _ run: @escaping () -> Void) {
        waiters.append((ops, run))
        catchUpQueued = true
        enqueue(.catchUp, first: true)
    }

    private func releaseWaiters(applyOwn: Bool) {
        guard !waiters.isEmpty else { return }
        let w = waiters
        waiters = []
        if applyOwn {
            // The connection went after the commit: the node's own changes go in now (the next catch-up
            // applies the log in order again, so the end state is the database's).
            for x in w { api.store.applyReplicated(x.ops) }
            publish()
        }
        for x in w { x.run() }
    }

    private func runNext() {
        guard connected, let conn, !conn.busy, !queue.isEmpty else { return }
        let job = queue.removeFirst()
        switch job {
        case .write(let sql, _, let done):
            conn.send(sql) { [unowned self] r in
                switch r {
                case .success: done(.committed)
                case .failure(let e):
                    done(e.connection ? .failed : .refused(e))
                    if e.connection { return }    // `lost` answers every write still queued
                }
                self.runNext()
            }
        case .catchUp:
            catchUpQueued = false
            let sql = "SELECT value FROM gw_state WHERE key = 'trimmed_through'; "
                + "SELECT seq, node_id, kind, id, op, doc FROM gw_changes WHERE seq > \(lastApplied) ORDER BY seq LIMIT \(PostgresSync.pageSize)"
            conn.send(sql) { [unowned self] r in
                guard case .success(let res) = r, res.count == 2 else {
                    if case .failure(let e) = r, e.connection { return }   // `lost` releases the waiters
                    // Not expected (the schema is ours): the held answers go out with their own changes
                    // applied, and the next check tries again.
                    self.log.log(.error, "change log read failed: \(r)")
                    self.releaseWaiters(applyOwn: true)
                    self.runNext()
                    return
                }
                self.applyChanges(trimmed: res[0].int(0, 0) ?? 0, rows: res[1])
                self.runNext()
            }
        case .reload:
            conn.send(PGSchema.loadSQL) { [unowned self] r in
                guard case .success(let res) = r, let (ops, seq) = PGSchema.decodeLoad(res) else {
                    if case .failure(let e) = r, e.connection { return }
                    self.log.log(.error, "configuration reload failed: \(r)")
                    self.releaseWaiters(applyOwn: true)
                    self.runNext()
                    return
                }
                self.api.store.replaceMirror(with: ops)
                self.lastApplied = seq
                self.log.log(.notice, "the change log was trimmed past this node's position: reloaded every entity (seq \(seq))")
                self.publish()
                self.releaseWaiters(applyOwn: false)
                self.runNext()
            }
        case .query(let sql, let done):
            conn.send(sql) { [unowned self] r in
                done(r)
                if case .failure(let e) = r, e.connection { return }   // `lost` fails the queued ones
                self.runNext()
            }
        case .trim:
            let sql = "SELECT pg_advisory_xact_lock(\(PGSchema.writeLock)); WITH d AS (DELETE FROM gw_changes WHERE at < now() - interval '\(PostgresSync.retentionSeconds) seconds' "
                + "AND seq < (SELECT max(seq) FROM gw_changes) RETURNING seq) UPDATE gw_state SET value = GREATEST(value, COALESCE((SELECT max(seq) FROM d), 0)) "
                + "WHERE key = 'trimmed_through'"
            conn.send(sql) { [unowned self] r in
                if case .failure(let e) = r, !e.connection { self.log.log(.warn, "change log trim failed: \(e.message)") }
                if case .failure(let e) = r, e.connection { return }
                self.runNext()
            }
        }
    }

    /// Applies one page of the change log (or asks for a full reload when it was trimmed past us).
    private func applyChanges(trimmed: Int64, rows: PGRows) {
        if trimmed > lastApplied {
            enqueue(.reload, first: true)
            return
        }
        var ops: [StoreOp] = []
        var changed = false
        func flush() {
            guard !ops.isEmpty else { return }
            api.store.applyReplicated(ops)
            ops = []
            changed = true
        }
        for row in rows.rows {
            guard let seq = row[0].flatMap({ Int64($0) }), let kindName = row[2], let id = row[3], let op = row[4] else { continue }
            lastApplied = seq
            if op == "h" {
                guard row[1] != nodeID, let text = row[5], let doc = try? JSON.parse(text),
                      let up = doc["upstream"]?.stringValue, let t = doc["target"]?.stringValue else { continue }
                flush()
                api.applyReplicatedHealth(upstreamID: up, targetID: t, address: doc["address"]?.stringValue,
                                          healthy: doc["healthy"]?.boolValue ?? true)
                continue
            }
            guard let kind = EntityKind(rawValue: kindName) else { continue }
            if op == "d" {
                ops.append(.delete(kind, id))
            } else if let text = row[5], let doc = try? JSON.parse(text) {
                ops.append(.put(kind, doc))
            }
        }
        flush()
        if changed { publish() }
        if rows.rows.count >= PostgresSync.pageSize {
            catchUpQueued = true
            enqueue(.catchUp, first: true)
        } else {
            releaseWaiters(applyOwn: false)
        }
    }
}
