// Minimal wrapper over the sqlite3 C API (CSQLite). Single-threaded use (the master process only).
import CSQLite

/// An error from the store; `message` is human-readable and names the database path where useful.
public struct AdminStoreError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

final class SQLiteDB {
    private(set) var handle: OpaquePointer?
    let path: String

    init(path: String) throws(AdminStoreError) {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        if rc != SQLITE_OK {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let db { sqlite3_close_v2(db) }
            throw AdminStoreError("cannot open database '\(path)': \(msg)")
        }
        handle = db
        sqlite3_busy_timeout(db, 5000)
    }

    deinit { if let handle { sqlite3_close_v2(handle) } }

    var errorMessage: String { handle.map { String(cString: sqlite3_errmsg($0)) } ?? "closed" }

    func exec(_ sql: String) throws(AdminStoreError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? errorMessage
            sqlite3_free(err)
            throw AdminStoreError("database '\(path)': \(msg) (while executing: \(sql.prefix(80)))")
        }
    }

    func prepare(_ sql: String) throws(AdminStoreError) -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw AdminStoreError("database '\(path)': \(errorMessage)") }
        return Statement(stmt: stmt, db: self)
    }

    func scalarInt(_ sql: String) throws(AdminStoreError) -> Int64 {
        let st = try prepare(sql)
        guard try st.step() else { return 0 }
        return st.int(0)
    }
}

final class Statement {
    let stmt: OpaquePointer
    unowned let db: SQLiteDB
    init(stmt: OpaquePointer, db: SQLiteDB) { self.stmt = stmt; self.db = db }
    deinit { sqlite3_finalize(stmt) }

    func bind(_ i: Int32, _ s: String?) {
        if let s { sqlite3_bind_text(stmt, i, s, -1, CSQLite_transient()) } else { sqlite3_bind_null(stmt, i) }
    }
    func bind(_ i: Int32, _ v: Int64) { sqlite3_bind_int64(stmt, i, v) }
    func bind(_ i: Int32, _ v: Double) { sqlite3_bind_double(stmt, i, v) }

    /// Returns true when a row is available, false when done.
    func step() throws(AdminStoreError) -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw AdminStoreError("database '\(db.path)': \(db.errorMessage)")
    }
    func reset() { sqlite3_reset(stmt); sqlite3_clear_bindings(stmt) }

    func int(_ col: Int32) -> Int64 { sqlite3_column_int64(stmt, col) }
    func text(_ col: Int32) -> String? {
        guard let p = sqlite3_column_text(stmt, col) else { return nil }
        return String(cString: p)
    }
    func bytes(_ col: Int32) -> [UInt8] {
        guard let p = sqlite3_column_blob(stmt, col) else { return [] }
        let n = Int(sqlite3_column_bytes(stmt, col))
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}
