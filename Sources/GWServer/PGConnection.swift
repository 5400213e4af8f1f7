// One PostgreSQL connection on libpq (CPQ), in two modes:
// - blocking (`connectBlocking`, `exec`): the CLI (`gateway migrations`, `config db_import/db_export`) and
//   the master's start-up load, before its loop runs;
// - asynchronous on a libev loop (`startConnect`, `send`): PQconnectStart/PQconnectPoll, PQsendQuery,
//   PQconsumeInput and PQgetResult driven by an IOWatcher on the connection's socket, LISTEN
//   notifications read with PQnotifies. Nothing here blocks the loop, with one exception libpq imposes:
//   a pg_host that is a name (not an IP address) is resolved by getaddrinfo inside PQconnectStart.
// Invariants: at most one query is in flight (`busy`); a lost connection fails the query in flight once
// (`onLost` runs after its completion) and the object is then closed for good (a new one reconnects).
// Statements are sent as simple queries: literals are quoted with `PG.literal` (standard_conforming_strings
// is set on at connect), so one round trip can carry a whole transaction.
#if canImport(Glibc)
import Glibc
#endif
import CPQ
import GWConfig
import GWEvent

/// A PostgreSQL failure: `sqlState` (e.g. 23505 unique, 23503 foreign key) and the constraint name when
/// the server names one; `connection` when the connection itself failed (nothing known about the query).
struct PGError: Error, CustomStringConvertible {
    var message: String
    var sqlState: String = ""
    var constraint: String = ""
    var connection = false
    var description: String { message }
}

/// The rows of one statement's result (text format; nil = SQL NULL).
struct PGRows {
    var columns: [String] = []
    var rows: [[String?]] = []
    func int(_ r: Int, _ c: Int) -> Int64? { rows[r][c].flatMap { Int64($0) } }
}

enum PG {
    /// libpq's `key='value'` connection string for the settings (application_name = gateway).
    static func conninfo(_ s: PostgresSettings) -> String {
        func q(_ v: String) -> String {
            "'" + v.replacingAll("\\", "\\\\").replacingAll("'", "\\'") + "'"
        }
        var parts = ["host=\(q(s.host))", "port=\(s.port)", "user=\(q(s.user))", "dbname=\(q(s.database))",
                     "connect_timeout=\(max(1, (s.timeoutMs + 999) / 1000))", "application_name='gateway'"]
        if !s.password.isEmpty { parts.append("password=\(q(s.password))") }
        if s.ssl && s.sslVerify {
            parts.append("sslmode=verify-full")
            parts.append("sslrootcert=\(q(s.sslRootCert))")
        } else {
            parts.append(s.ssl ? "sslmode=prefer" : "sslmode=disable")
        }
        return parts.joined(separator: " ")
    }

    /// A string literal for a simple query (standard_conforming_strings on). NUL bytes cannot be stored
    /// in PostgreSQL text; the JSON serializer escapes them, so a document never holds one.
    static func literal(_ s: String?) -> String {
        guard let s else { return "NULL" }
        return "'" + s.replacingAll("'", "''") + "'"
    }

    /// A quoted identifier (schema names).
    static func identifier(_ s: String) -> String { "\"" + s.replacingAll("\"", "\"\"") + "\"" }

    /// The statements run on every new connection.
    static func sessionSetup(_ s: PostgresSettings) -> String {
        var sql = "SET standard_conforming_strings = on; SET client_encoding = 'UTF8'; "
        sql += "SET statement_timeout = \(s.timeoutMs); "
        if !s.schema.isEmpty { sql += "SET search_path TO \(identifier(s.schema)); " }
        return sql
    }
}

extension String {
    func replacingAll(_ a: String, _ b: String) -> String {
        guard contains(a) else { return self }
        return split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}

final class PGConnection {
    private(set) var conn: OpaquePointer?
    let settings: PostgresSettings

    init(conn: OpaquePointer?, settings: PostgresSettings) {
        self.conn = conn
        self.settings = settings
    }

    deinit { close() }

    func close() {
        io?.stop()
        io = nil
        timer?.stop()
        if let conn { PQfinish(conn) }
        conn = nil
    }

    var isOpen: Bool { conn.map { PQstatus($0) == CONNECTION_OK } ?? false }

    static func errorMessage(_ conn: OpaquePointer?) -> String {
        guard let conn, let p = PQerrorMessage(conn) else { return "out of memory" }
        return String(cString: p).trimmingWhitespace()
    }

    // MARK: Blocking

    /// Connects and runs the session set-up; throws with libpq's message (Kong prints it after
    /// `[PostgreSQL error] `).
    static func connectBlocking(_ s: PostgresSettings) throws(PGError) -> PGConnection {
        let c = PQconnectdb(PG.conninfo(s))
        guard let c, PQstatus(c) == CONNECTION_OK else {
            let m = errorMessage(c)
            if let c { PQfinish(c) }
            throw PGError(message: m, connection: true)
        }
        let pc = PGConnection(conn: c, settings: s)
        _ = try pc.exec(PG.sessionSetup(s))
        return pc
    }

    /// Runs `sql` (one or more statements) and returns each statement's rows; the first error throws
    /// (the statements of one simple query are one transaction unless they say otherwise).
    func exec(_ sql: String) throws(PGError) -> [PGRows] {
        guard let conn else { throw PGError(message: "connection closed", connection: true) }
        guard PQsendQuery(conn, sql) == 1 else {
            throw PGError(message: PGConnection.errorMessage(conn), connection: true)
        }
        var out: [PGRows] = []
        var failure: PGError?
        while let r = PQgetResult(conn) {
            if let e = PGConnection.error(of: r) { failure = failure ?? e } else { out.append(PGConnection.rows(of: r)) }
            PQclear(r)
        }
        if PQstatus(conn) != CONNECTION_OK {
            throw PGError(message: PGConnection.errorMessage(conn), connection: true)
        }
        if let failure { throw failure }
        return out
    }

    static func error(of r: OpaquePointer) -> PGError? {
        let st = PQresultStatus(r)
        guard st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR else { return nil }
        func field(_ c: UInt8) -> String {
            guard let p = PQresultErrorField(r, Int32(c)) else { return "" }
            return String(cString: p)
        }
        var msg = field(UInt8(ascii: "M"))
        if msg.isEmpty, let p = PQresultErrorMessage(r) { msg = String(cString: p).trimmingWhitespace() }
        return PGError(message: msg, sqlState: field(UInt8(ascii: "C")), constraint: field(UInt8(ascii: "n")))
    }

    static func rows(of r: OpaquePointer) -> PGRows {
        var out = PGRows()
        let nf = PQnfields(r), nt = PQntuples(r)
        for c in 0..<nf { out.columns.append(PQfname(r, c).map { String(cString: $0) } ?? "") }
        out.rows.reserveCapacity(Int(nt))
        for t in 0..<nt {
            var row: [String?] = []
            row.reserveCapacity(Int(nf))
            for c in 0..<nf {
                if PQgetisnull(r, t, c) == 1 { row.append(nil); continue }
                let n = Int(PQgetlength(r, t, c))
                let p = PQgetvalue(r, t, c)!
                row.append(p.withMemoryRebound(to: UInt8.self, capacity: n) {
                    String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
                })
            }
            out.rows.append(row)
        }
        return out
    }

    // MARK: Asynchronous (master loop)

    private var io: IOWatcher?
    private var timer: TimerWatcher?
    private var loop: EventLoop?
    private var connecting = false
    private var onConnect: ((PGError?) -> Void)?
    private var completion: ((Result<[PGRows], PGError>) -> Void)?
    private var results: [PGRows] = []
    private var failure: PGError?
    /// A query is in flight.
    var busy: Bool { completion != nil }
    /// NOTIFY channel name and the notifying backend's pid, as they arrive.
    var onNotify: ((String, Int32) -> Void)?
    /// This connection's backend pid (to recognise its own notifications).
    var backendPID: Int32 { conn.map { PQbackendPID($0) } ?? 0 }
    /// The connection broke (after any query in flight got its error). Runs once.
    var onLost: ((PGError) -> Void)?
    private var lost = false

    /// Starts a non-blocking connect; `done` gets nil once connected (session set-up included) or the error.
    static func startConnect(loop: EventLoop, settings s: PostgresSettings, done: @escaping (PGError?) -> Void) -> PGConnection {
        let c = PQconnectStart(PG.conninfo(s))
        let pc = PGConnection(conn: c, settings: s)
        pc.loop = loop
        pc.onConnect = done
        pc.connecting = true
        pc.timer = TimerWatcher(loop: loop) { [unowned pc] in pc.timedOut() }
        pc.timer!.start(after: Double(s.timeoutMs) / 1000)
        guard let c, PQstatus(c) != CONNECTION_BAD else {
            let e = PGError(message: errorMessage(c), connection: true)
            pc.timer!.handler = { [unowned pc] in pc.finishConnect(e) }
            pc.timer!.start(after: 0)
            return pc
        }
        pc.watch(.write)   // libpq: behave as if PQconnectPoll had answered PGRES_POLLING_WRITING
        return pc
    }

    private func watch(_ events: IOEvents) {
        guard let conn, let loop else { return }
        let fd = PQsocket(conn)
        guard fd >= 0 else { return }
        if let io, io.fd == fd { io.set(events: events); io.start(); return }
        io?.stop()
        io = IOWatcher(loop: loop, fd: fd, events: events) { [unowned self] ev in self.ready(ev) }
        io!.start()
    }

    private func pollConnect() {
        guard let conn else { return }
        switch PQconnectPoll(conn) {
        case PGRES_POLLING_READING: watch(.read)
        case PGRES_POLLING_WRITING: watch(.write)
        case PGRES_POLLING_OK:
            PQsetnonblocking(conn, 1)
            connecting = false
            watch(.read)
            send(PG.sessionSetup(settings)) { [unowned self] r in
                if case .failure(let e) = r { self.finishConnect(e) } else { self.finishConnect(nil) }
            }
        default:
            finishConnect(PGError(message: PGConnection.errorMessage(conn), connection: true))
        }
    }

    private func finishConnect(_ e: PGError?) {
        timer?.stop()
        guard let done = onConnect else { return }
        onConnect = nil
        if e != nil { connecting = false; close() }
        done(e)
    }

    private func timedOut() {
        let e = PGError(message: "timeout", connection: true)
        if onConnect != nil { finishConnect(e) } else { fail(e) }
    }

    private func ready(_ ev: IOEvents) {
        if connecting { pollConnect(); return }
        guard let conn else { return }
        if ev.contains(.write) {
            let f = PQflush(conn)
            if f < 0 { fail(PGError(message: PGConnection.errorMessage(conn), connection: true)); return }
            if f == 0 { io?.set(events: .read) }
        }
        guard ev.contains(.read) else { return }
        if PQconsumeInput(conn) == 0 {
            fail(PGError(message: PGConnection.errorMessage(conn), connection: true))
            return
        }
        drainResults()
        while let n = PQnotifies(conn) {
            let ch = String(cString: n.pointee.relname)
            let pid = n.pointee.be_pid
            PQfreemem(n)
            onNotify?(ch, pid)
        }
        if self.conn != nil, PQstatus(conn) == CONNECTION_BAD {
            fail(PGError(message: PGConnection.errorMessage(conn), connection: true))
        }
    }

    private func drainResults() {
        guard let conn, completion != nil else { return }
        while PQisBusy(conn) == 0 {
            guard let r = PQgetResult(conn) else {
                let done = completion!
                completion = nil
                timer?.stop()
                let res = results, f = failure
                results = []
                failure = nil
                if let f { done(.failure(f)) } else { done(.success(res)) }
                return
            }
            if let e = PGConnection.error(of: r) { failure = failure ?? e } else { results.append(PGConnection.rows(of: r)) }
            PQclear(r)
        }
    }

    /// Sends `sql`; `done` runs from the loop with every statement's rows, or the first error. Needs an
    /// open, idle connection (else `done` gets a connection error at once).
    func send(_ sql: String, done: @escaping (Result<[PGRows], PGError>) -> Void) {
        guard let conn, !lost, completion == nil, PQsendQuery(conn, sql) == 1 else {
            done(.failure(PGError(message: conn.map { PGConnection.errorMessage($0) } ?? "not connected", connection: true)))
            return
        }
        completion = done
        results = []
        failure = nil
        timer?.handler = { [unowned self] in self.timedOut() }
        timer?.start(after: Double(settings.timeoutMs) / 1000 + 0.5)   // statement_timeout answers first
        let f = PQflush(conn)
        watch(f == 1 ? [.read, .write] : .read)
    }

    /// The connection is unusable: the query in flight fails, then `onLost` runs once.
    private func fail(_ e: PGError) {
        guard !lost else { return }
        lost = true
        let done = completion
        completion = nil
        close()
        done?(.failure(e))
        onLost?(e)
    }
}
