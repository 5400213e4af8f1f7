// `gateway migrations bootstrap|up|finish|list|reset` (Kong's kong/cmd/migrations.lua: messages, exit
// codes; KONG-TLS-CLUSTER.md C.2), and the PostgreSQL side of `gateway config db_import|db_export`.
// CLI only: blocking libpq calls are fine here. Every schema change runs under the advisory lock
// `PGSchema.migrationLock` (Kong's `migrations` mutex), waited for up to --lock-timeout (60 s).
#if canImport(Glibc)
import Glibc
#endif
import GWAdmin
import GWConfig
import GWSystem

enum MigrationsCommand {
    static func say(_ s: String) { print(s) }

    static func run(_ args: [String], flags: Set<String>, lockTimeout: Int, config: GatewayConfig) -> Int32 {
        guard let sub = args.first else {
            return CLI.fail("usage: gateway migrations bootstrap|up|finish|list|reset [--force] [--yes]")
        }
        guard config.database == "postgres" else {
            return CLI.fail("migrations need database = postgres (the embedded SQLite migrates itself at start)")
        }
        let c: PGConnection
        do { c = try PGConnection.connectBlocking(config.postgres) } catch {
            return CLI.fail("[PostgreSQL error] failed to retrieve PostgreSQL server_version_num: \(error.message)")
        }
        defer { c.close() }
        do {
            switch sub {
            case "list": return try list(c)
            case "bootstrap":
                return try locked(c, lockTimeout) { () throws(PGError) -> Int32 in try bootstrap(c, config, force: flags.contains("--force")) }
            case "up":
                return try locked(c, lockTimeout) { () throws(PGError) -> Int32 in try up(c, config, force: flags.contains("--force")) }
            case "finish":
                return try locked(c, lockTimeout) { () throws(PGError) -> Int32 in try finish(c, config) }
            case "reset":
                if !flags.contains("--yes") {
                    if isatty(0) == 0 { return CLI.fail("not a tty: invoke 'reset' non-interactively with the --yes flag") }
                    print("Are you sure? This operation is irreversible. [Y/n] ", terminator: "")
                    let answer = readLine() ?? ""
                    if !(answer.isEmpty || answer.lowercased() == "y") { say("Canceled"); return 0 }
                }
                return try locked(c, lockTimeout) { () throws(PGError) -> Int32 in try reset(c, config) }
            default:
                return CLI.fail("unknown migrations command '\(sub)'")
            }
        } catch {
            return CLI.fail("[PostgreSQL error] \(error.message)")
        }
    }

    static func locked(_ c: PGConnection, _ timeout: Int, _ body: () throws(PGError) -> Int32) throws(PGError) -> Int32 {
        let deadline = Clock.monotonicMillis() + UInt64(timeout) * 1000
        while try c.exec("SELECT pg_try_advisory_lock(\(PGSchema.migrationLock))").first?.rows.first?[0] != "t" {
            if Clock.monotonicMillis() > deadline { return CLI.fail("aborted: another node is performing database changes") }
            ProcessControl.sleepMillis(200)
        }
        defer { _ = try? c.exec("SELECT pg_advisory_unlock(\(PGSchema.migrationLock))") }
        return try body()
    }

    static func list(_ c: PGConnection) throws(PGError) -> Int32 {
        let s = try PGSchema.state(c)
        if !s.bootstrapped {
            var m = PGSchema.needsBootstrapMessage
            m.withUTF8 { p in _ = write(2, p.baseAddress, p.count) }
            return 3
        }
        if !s.executed.isEmpty { say("Executed migrations:\ncore: \(s.executed.joined(separator: ", "))") }
        if !s.pending.isEmpty {
            say("Pending migrations:\ncore: \(s.pending.joined(separator: ", "))")
            say("Run 'kong migrations finish' when ready")
            return 4
        }
        if !s.new.isEmpty {
            say("New migrations available:\ncore: \(s.new.map(\.name).joined(separator: ", "))")
            say("Run 'kong migrations up' to proceed")
            return 5
        }
        return 0
    }

    static func schemaName(_ config: GatewayConfig, _ c: PGConnection) throws(PGError) -> String {
        if !config.postgres.schema.isEmpty { return config.postgres.schema }
        return try c.exec("SELECT current_schema()").first?.rows.first?[0].flatMap { $0 } ?? "public"
    }

    /// Runs the up (and with `teardown`, the teardown) of `ms` and records them; prints Kong's lines.
    static func runMigrations(_ c: PGConnection, _ config: GatewayConfig, _ ms: [PGSchema.Migration], state: PGSchema.State,
                              teardown: Bool) throws(PGError) {
        var s = state
        say("migrating core on database '\(config.postgres.database)'...")
        for m in ms {
            var sql = "BEGIN; " + m.up
            if teardown, let t = m.teardown { sql += t }
            if teardown || m.teardown == nil { s.executed.append(m.name) } else { s.pending.append(m.name) }
            sql += PGSchema.recordSQL(s) + " COMMIT;"
            _ = try c.exec(sql)
            say("core migrated up to: \(m.name) (\(teardown || m.teardown == nil ? "executed" : "pending"))")
        }
        say("\(ms.count) migration\(ms.count == 1 ? "" : "s") processed")
        let executed = ms.filter { teardown || $0.teardown == nil }.count
        say("\(executed) executed")
        if ms.count > executed { say("\(ms.count - executed) pending") }
    }

    static func bootstrap(_ c: PGConnection, _ config: GatewayConfig, force: Bool) throws(PGError) -> Int32 {
        var s = try PGSchema.state(c)
        if s.bootstrapped && force {
            _ = try reset(c, config)
            s = PGSchema.State()
        }
        if s.bootstrapped {
            say("Database already bootstrapped")
            return 0
        }
        say("Bootstrapping database...")
        if !config.postgres.schema.isEmpty {
            _ = try c.exec("CREATE SCHEMA IF NOT EXISTS \(PG.identifier(config.postgres.schema))")
        }
        _ = try c.exec(PGSchema.schemaMetaSQL)
        try runMigrations(c, config, PGSchema.migrations, state: PGSchema.State(bootstrapped: true), teardown: true)
        say("Database is up-to-date")
        return 0
    }

    static func up(_ c: PGConnection, _ config: GatewayConfig, force: Bool) throws(PGError) -> Int32 {
        let s = try PGSchema.state(c)
        if !s.bootstrapped { return CLI.fail("Cannot run migrations: \(PGSchema.needsBootstrapMessage)") }
        if !s.pending.isEmpty && !force {
            return CLI.fail("Database has pending migrations; run 'kong migrations finish'")
        }
        if s.new.isEmpty {
            say("Database is already up-to-date")
            return 0
        }
        try runMigrations(c, config, s.new, state: s, teardown: false)
        if s.new.contains(where: { $0.teardown != nil }) {
            say("Database has pending migrations; run 'kong migrations finish' when ready")
        }
        return 0
    }

    static func finish(_ c: PGConnection, _ config: GatewayConfig) throws(PGError) -> Int32 {
        var s = try PGSchema.state(c)
        if !s.bootstrapped { return CLI.fail("Cannot run migrations: \(PGSchema.needsBootstrapMessage)") }
        if s.pending.isEmpty {
            say(s.new.isEmpty ? "No pending migrations to finish" : PGSchema.newMigrationsMessage)
            return 0
        }
        say("migrating core on database '\(config.postgres.database)'...")
        for name in s.pending {
            let t = PGSchema.migrations.first { $0.name == name }?.teardown ?? ""
            s.pending.removeAll { $0 == name }
            s.executed.append(name)
            _ = try c.exec("BEGIN; " + t + PGSchema.recordSQL(s) + " COMMIT;")
            say("core migrated up to: \(name) (executed)")
        }
        say("Database is up-to-date")
        return 0
    }

    static func reset(_ c: PGConnection, _ config: GatewayConfig) throws(PGError) -> Int32 {
        let s = try PGSchema.state(c)
        if !s.bootstrapped {
            say("Database not bootstrapped, nothing to reset")
            return 1
        }
        let schema = PG.identifier(try schemaName(config, c))
        _ = try c.exec("BEGIN; DROP SCHEMA IF EXISTS \(schema) CASCADE; CREATE SCHEMA IF NOT EXISTS \(schema); "
            + "GRANT ALL ON SCHEMA \(schema) TO \(PG.identifier(config.postgres.user)); COMMIT;")
        say("Database cleared")
        return 0
    }

    // MARK: config db_import / db_export on PostgreSQL

    /// Loads the database into an in-memory store; with `collect`, the store's writes are gathered in `sink`.
    static func openStore(_ config: GatewayConfig) throws(PGError) -> (PGConnection, AdminStore) {
        let c: PGConnection
        do { c = try PGConnection.connectBlocking(config.postgres) } catch {
            throw PGError(message: "[PostgreSQL error] failed to retrieve PostgreSQL server_version_num: \(error.message)")
        }
        let s = try PGSchema.state(c)
        if !s.bootstrapped { c.close(); throw PGError(message: PGSchema.needsBootstrapMessage) }
        let store: AdminStore
        do { store = try AdminStore(path: ":memory:") } catch { c.close(); throw PGError(message: error.message) }
        guard let (ops, _) = PGSchema.decodeLoad(try c.exec(PGSchema.loadSQL)) else {
            c.close()
            throw PGError(message: "[PostgreSQL error] unexpected answer to the configuration load")
        }
        store.replaceMirror(with: ops)
        _ = store.takeChanges()
        return (c, store)
    }

    static func dbImport(path: String, config: GatewayConfig) throws -> Void {
        let (c, store) = try openStore(config)
        defer { c.close() }
        final class Sink { var ops: [StoreOp] = [] }
        let sink = Sink()
        store.writeSink = { (ops: [StoreOp]) throws(AdminStoreError) in sink.ops += ops }
        try Declarative.importFile(path: path, into: store, sharedDatabase: true)
        if !sink.ops.isEmpty {
            // Running nodes get the NOTIFY and apply the import like any write.
            _ = try c.exec(PostgresSync.writeSQL(sink.ops, [], nodeID: "cli"))
        }
    }

    static func dbExport(path: String, config: GatewayConfig) throws -> Void {
        let (c, store) = try openStore(config)
        c.close()
        try Declarative.exportFile(path: path, from: store)
    }
}
