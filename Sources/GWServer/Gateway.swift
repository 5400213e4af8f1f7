// Wiring (nginx.c's role): which code runs in the master and which in a worker.
//  master: Admin API (GWAdmin over SQLite, or its mirror of PostgreSQL kept by PostgresSync) on
//          admin_listen, the dashboard on admin_gui_listen (DashboardServer.swift), ConfigPublisher,
//          ActiveHealthChecker.
//  worker: WorkerProcess → ProxyServer (GWProxy).
#if canImport(Glibc)
import Glibc
#endif
import CGWShims
import GWAdmin
import GWBalancer
import GWConfig
import GWJSON
import GWSystem

/// The master's parts. One per process; only the master's loop touches it.
final class MasterParts {
    var api: AdminAPI?
    var publisher: ConfigPublisher?
    var admin: AdminHTTPServer?
    /// The Status API listener (status_listen; nil when off).
    var status: AdminHTTPServer?
    var observability: NodeObservability?
    var gui: AdminHTTPServer?
    var checker: ActiveHealthChecker?
    var health: SharedHealthProvider?
    var resolver: DNSResolver?
    var postgres: PostgresSync?
    var rateLimitSync: RateLimitClusterSync?
}

// Deviation from "no mutable globals": the master is a single-threaded process and this is its
// one registry of parts, set once at start; nothing else can reach it.
nonisolated(unsafe) let masterParts = MasterParts()

extension Master {
    var healthChecker: ActiveHealthChecker? { masterParts.checker }
}

public enum Gateway {
    public static func hooks() -> MasterHooks {
        MasterHooks(
            masterStarted: { master in try startMaster(master) },
            configReloaded: { master in
                masterParts.checker?.trust = master.config.cosocketTLS
                do { try masterParts.admin?.listen(master.config.adminListen) } catch {
                    master.log.log(.error, "admin_listen: \(error)")
                }
                do { try masterParts.status?.listen(master.config.statusListen) } catch {
                    master.log.log(.error, "status_listen: \(error)")
                }
                do { try masterParts.gui?.listen(master.config.adminGuiListen) } catch {
                    master.log.log(.error, "admin_gui_listen: \(error)")
                }
            },
            masterStopping: { _ in masterParts.admin?.closeAll(); masterParts.status?.closeAll(); masterParts.gui?.closeAll() })
    }

    static func startMaster(_ master: Master) throws {
        let config = master.config
        let table = PeerStateTable(base: master.shm.peerArea, size: master.shm.peerAreaSize)
        table.format(alreadyZeroed: true)   // SharedMemory is a fresh MAP_ANONYMOUS mapping
        let health = SharedHealthProvider(table: table, log: master.log)
        let store: AdminStore
        var loadedSeq: Int64 = 0
        do {
            if config.database == "off" || config.database == "postgres" {
                store = try AdminStore(path: ":memory:")
            } else {
                store = try AdminStore(path: config.databaseFile)
            }
        } catch {
            throw ConfigError("cannot open the database: \(error)")
        }
        if config.database == "postgres" {
            // Blocking, before the loop runs (PostgresSync's comment): Kong's start checks, then every entity.
            do { loadedSeq = try PostgresSync.loadAtStart(config.postgres, into: store) } catch {
                throw ConfigError(error.message)
            }
        }
        final class Box { var publisher: ConfigPublisher? }
        let box = Box()
        let started = Clock.wallSeconds()
        var context = AdminContext(
            nodeInfo: {
                var o = JSONObject()
                o["hostname"] = .string(ProcessControl.hostname())
                o["gateway_version"] = .string(gatewayVersion)
                var pids = JSONObject()
                pids["master"] = .int(Int64(ProcessControl.pid))
                pids["workers"] = .array(master.workerPids.map { .int(Int64($0)) })
                o["pids"] = .object(pids)
                var conf = JSONObject()
                for (k, v) in master.config.entries { conf[k] = .string(v) }
                conf["worker_processes"] = .int(Int64(master.config.workerProcesses))
                o["configuration"] = .object(conf)
                return .object(o)
            },
            serverStatus: {
                var total: UInt64 = 0, active: UInt64 = 0, accepted: UInt64 = 0
                var workers: [JSON] = []
                for i in 0..<Int(GW_MAX_WORKERS) {
                    let s = master.shm.workerSlot(i).pointee
                    guard s.pid != 0 else { continue }
                    total += s.requests; active += s.connections_active; accepted += s.connections_accepted
                    var w = JSONObject()
                    w["pid"] = .int(s.pid)
                    w["requests"] = .int(Int64(s.requests))
                    w["connections_active"] = .int(Int64(s.connections_active))
                    w["connections_accepted"] = .int(Int64(s.connections_accepted))
                    w["config_generation"] = .int(Int64(s.config_generation))
                    // A worker that has not ticked yet (heartbeat 0) reports age 0, not the monotonic clock.
                    w["heartbeat_age_ms"] = .int(s.heartbeat == 0 ? 0 : Int64(Clock.monotonicMillis()) - Int64(s.heartbeat))
                    workers.append(.object(w))
                }
                var o = JSONObject()
                o["connections_active"] = .int(Int64(active))
                var writing: UInt64 = 0
                for i in 0..<Int(GW_MAX_WORKERS) {
                    let s = master.shm.workerSlot(i).pointee
                    if s.pid != 0 { writing += min(s.connections_writing, s.connections_active) }
                }
                writing = min(writing, active)
                o["connections_reading"] = .int(0)
                o["connections_writing"] = .int(Int64(writing))
                o["connections_waiting"] = .int(Int64(active - writing))
                // Node totals stay cumulative across reloads and respawns (counters of exited workers
                // are kept by the master).
                accepted &+= master.exitedWorkerConnectionsAccepted
                total &+= master.exitedWorkerRequests
                o["connections_accepted"] = .int(Int64(accepted))
                o["connections_handled"] = .int(Int64(accepted))
                o["total_requests"] = .int(Int64(total))
                o["workers"] = .array(workers)
                o["config_generation"] = .int(Int64(master.configGeneration))
                o["uptime_seconds"] = .int(Int64(Clock.wallSeconds() - started))
                return .object(o)
            },
            health: health,
            adminToken: config.adminToken,
            databaseOff: config.database == "off",
            onChange: { box.publisher?.publish() })
        context.proxyCache = master.pluginState.cache   // /proxy-cache purges what every worker reads
        context.sharedDatabase = config.database == "postgres"
        let api = AdminAPI(store: store, context: context)
        if config.database == "off", let file = config.declarativeConfig {
            let path = file.hasPrefix("/") ? file : config.resolve(file)
            do { try api.loadDeclarative(path: path) } catch {
                throw ConfigError("declarative_config \(path): \(error)")
            }
        }
        let accessPath = config.resolve(config.adminAccessLog)
        let adminLog = accessPath == "off" ? nil : try LogFile(path: accessPath)
        let observability = NodeObservability(master: master, api: api, peers: table)
        api.context.memory = { [unowned observability] in observability.memory() }
        api.context.readiness = { [unowned observability] in observability.readiness() }
        let token = config.adminToken
        let admin = AdminHTTPServer(loop: master.loop, log: master.log, accessLog: adminLog) { req, respond in
            // GET /metrics (the prometheus plugin's Admin API route): text, after the same token check.
            if req.method == "GET" || req.method == "HEAD", NodeObservability.path(req.target) == "/metrics",
               token == nil || req.headers.first(where: { $0.name.lowercased() == "kong-admin-token" })?.value == token {
                respond(observability.metricsResponse())
                return
            }
            let r = api.handle(AdminRequest(method: req.method, target: req.target, headers: req.headers, body: req.body))
            if let pg = masterParts.postgres, pg.hasPending {
                // PostgreSQL: the answer waits for the commit (PostgresSync); a failed request writes nothing.
                if r.status >= 400 { pg.discardPending() } else {
                    pg.submit(base: r) { out in respond(AdminHTTPResponse(status: out.status, headers: out.headers, body: out.body)) }
                    return
                }
            }
            respond(AdminHTTPResponse(status: r.status, headers: r.headers, body: r.body))
        }
        try admin.listen(config.adminListen)
        // status_listen (Kong 3.10: 127.0.0.1:8007 by default): no access log (Kong's status_access_log is off).
        let status = AdminHTTPServer(loop: master.loop, log: master.log, accessLog: nil) { req, respond in
            respond(observability.statusHandler(req))
        }
        do { try status.listen(config.statusListen) } catch {
            throw ConfigError("status_listen: \(error)")
        }
        // The dashboard: its /api/ goes to the Admin API listener's handler (whatever it serves).
        let guiPath = config.resolve(config.adminGuiAccessLog)
        let gui = AdminHTTPServer(loop: master.loop, log: master.log, accessLog: guiPath == "off" ? nil : try LogFile(path: guiPath),
                                  handler: Dashboard.handler(admin: admin.handler))
        do { try gui.listen(config.adminGuiListen) } catch { throw ConfigError("admin_gui_listen: \(error)") }
        let parts = masterParts
        parts.api = api
        parts.admin = admin
        parts.status = status
        parts.observability = observability
        parts.gui = gui
        parts.health = health
        parts.checker = ActiveHealthChecker(loop: master.loop, table: table, log: master.log)
        parts.checker?.trust = config.cosocketTLS
        let resolver = DNSResolver(loop: master.loop, log: master.log, servers: config.dnsResolver)
        parts.resolver = resolver
        let publisher = ConfigPublisher(master: master, api: api, table: table, health: health, resolver: resolver)
        parts.publisher = publisher
        box.publisher = publisher
        resolver.onChange = { [unowned publisher] in publisher.publish() }
        publisher.publish()
        if config.database == "postgres" {
            let pg = PostgresSync(loop: master.loop, log: master.log, settings: config.postgres, api: api, loadedSeq: loadedSeq)
            pg.publish = { [unowned publisher] in publisher.publish() }
            parts.postgres = pg
            pg.start()
            if let cluster = master.pluginState.cluster {
                let sync = RateLimitClusterSync(loop: master.loop, table: cluster, pg: pg, log: master.log)
                parts.rateLimitSync = sync
                sync.start()
            }
        }
    }
}
