// The master process (nginx's ngx_master_process_cycle): owns the listening sockets, the shared
// segment, the Admin API and the configuration store; forks and respawns workers; turns signals
// into actions. Its libev loop runs the Admin API, the worker channels, the signal self-pipe and
// the active health checker. Confined to the master process; never runs in a worker.
#if canImport(Glibc)
import Glibc
#endif
import CGWShims
import GWConfig
import GWBalancer
import GWEvent
import GWPluginState
import GWSystem
import GWTLS

/// What the master knows about one worker process.
final class WorkerHandle {
    let pid: Int32
    let index: Int              // position among the workers of its generation (socket mapping)
    let count: Int              // worker count of its generation
    let slot: Int               // shared-memory worker slot
    let generation: Int         // reload generation (not the configuration generation)
    let channelFD: Int32
    var ready = false
    var draining = false
    let startedAt: UInt64
    var watcher: IOWatcher?

    init(pid: Int32, index: Int, count: Int, slot: Int, generation: Int, channelFD: Int32) {
        self.pid = pid; self.index = index; self.count = count; self.slot = slot
        self.generation = generation; self.channelFD = channelFD; self.startedAt = Clock.monotonicMillis()
    }
}

/// Hooks the master calls into the rest of the program (Admin API, publisher).
/// Workers are not among them: they are exec'd (WorkerLaunch.swift).
public struct MasterHooks {
    /// Called once in the master after the loop exists (start the Admin API and health checker).
    public var masterStarted: (_ master: Master) throws -> Void
    /// Called after a reload re-read the configuration (the Admin API may have to rebind).
    public var configReloaded: (_ master: Master) -> Void
    /// Called before the master exits.
    public var masterStopping: (_ master: Master) -> Void

    public init(masterStarted: @escaping (Master) throws -> Void,
                configReloaded: @escaping (Master) -> Void, masterStopping: @escaping (Master) -> Void) {
        self.masterStarted = masterStarted
        self.configReloaded = configReloaded; self.masterStopping = masterStopping
    }
}

public final class Master {
    public private(set) var config: GatewayConfig
    let configPath: String?
    let overrides: [String: String]
    public let shm: SharedMemory
    /// The plugins' shared tables (rate-limit counters, proxy cache), laid out in `shm` at start.
    public let pluginState: PluginState
    public let loop: EventLoop
    public let log: ErrorLog
    let hooks: MasterHooks
    let listeners = ListenerSet()
    /// The binary workers are exec'd from (WorkerLaunch.swift).
    let executable = WorkerLaunch.Executable()
    var retiredGroups: [ListenerSet.Group] = []
    /// Session-ticket key handed to every worker (kept across reloads: a resumed session survives one).
    let ticketKey = DefaultCertificates.newTicketKey()
    /// Publishes a new session-ticket key every ssl_session_timeout (TicketKeys, in the shared segment).
    var ticketRotation: TimerWatcher?
    var ticketRotationInterval: Double = 0
    var workers: [WorkerHandle] = []
    var generation = 0
    var stopping: StopMode? = nil
    var startupNotifyFD: Int32 = -1
    var announcedStart = false
    var signalPipe: (Int32, Int32) = (-1, -1)
    var signalWatcher: IOWatcher?
    var respawnTimer: TimerWatcher?
    var stopTimer: TimerWatcher?
    var crashTimes: [UInt64] = []
    var pendingRespawn: [Int] = []    // worker indexes waiting for back-off
    public var snapshotPath: String { config.resolve("run/config.json") }
    /// The configuration generation last published to workers.
    public private(set) var configGeneration: UInt64 = 0
    /// Wall clock (s) of the last publication (gateway_config_published_timestamp_seconds).
    public private(set) var configPublishedAt: Double = 0
    /// Counters of workers that exited (reload, crash): a worker's shared-memory slot is reused,
    /// so node-wide totals (GET /status total_requests, connections_accepted) must add these to
    /// the live slots to stay cumulative across reloads, as nginx's stub_status does.
    public private(set) var exitedWorkerRequests: UInt64 = 0
    public private(set) var exitedWorkerConnectionsAccepted: UInt64 = 0

    enum StopMode { case fast, graceful }

    /// Creates the master: listening sockets are made here (so "address in use" is reported before
    /// any fork or daemonization), the shared segment is mapped, nothing is forked yet.
    public init(config: GatewayConfig, configPath: String?, overrides: [String: String], log: ErrorLog,
                hooks: MasterHooks) throws {
        self.config = config
        self.configPath = configPath
        self.overrides = overrides
        self.log = log
        self.hooks = hooks
        // rate-limiting's cluster counters exist with database = postgres only (RateLimitClusterSync.swift).
        let clusterSize = config.database == "postgres" ? PluginState.clusterTableSize : 0
        self.shm = try SharedMemory(peerAreaSize: config.memCacheSize,
                                    pluginAreaSize: PluginState.areaSize(countersSize: config.rateLimitingCountersSize,
                                                                         cacheSize: config.proxyCacheSize,
                                                                         metricsSize: config.prometheusMetricsSize,
                                                                         clusterSize: clusterSize),
                                    tlsCacheSize: config.tls.sessionCacheSize)
        self.pluginState = try PluginState(formatting: shm, countersSize: config.rateLimitingCountersSize,
                                           cacheSize: config.proxyCacheSize, maxEntrySize: config.proxyCacheMaxEntrySize,
                                           metricsSize: config.prometheusMetricsSize, clusterSize: clusterSize,
                                           now: Int64(Clock.wallSeconds()))
        self.loop = EventLoop()
        try SessionCache.format(area: shm.tlsCacheArea, size: shm.tlsCacheSize)
        TicketKeys.publish(area: shm.tlsArea, key: ticketKey, first: true)
        try Master.prepareTLS(config)
        _ = try listeners.ensure(specs: config.proxyListen, count: config.workerProcesses)
    }

    /// With an ssl listener: Kong's default certificates are made in <prefix>/ssl when ssl_cert is not
    /// set (once; reused afterwards), and the certificates are loaded once here so that a bad file stops
    /// the start (or a reload) with OpenSSL's reason instead of failing in every worker.
    static func prepareTLS(_ c: GatewayConfig) throws {
        guard c.proxySSLEnabled else { return }
        if c.tls.certificates.isEmpty { try DefaultCertificates.ensure(c.defaultCertificates, directory: c.resolve("ssl")) }
        _ = try TLSServerContext(settings: c.tls, pairs: c.certificatePairs, ticketKey: nil)
    }

    /// The worker pids of the current generation (for GET / and `gateway health`).
    public var workerPids: [Int32] { workers.filter { !$0.draining }.map(\.pid) }

    /// Starts workers and runs the loop until the master exits. `notifyFD` (daemon start) gets
    /// "ok\n" once every worker accepts, or an error line.
    public func run(notifyFD: Int32) -> Never {
        startupNotifyFD = notifyFD
        shm.header.pointee.master_pid = Int64(ProcessControl.pid)   // after daemonizing
        do {
            signalPipe = try Socket.pipe()
            gw_signals_install(signalPipe.1)
            signalWatcher = IOWatcher(loop: loop, fd: signalPipe.0, events: .read) { [unowned self] _ in
                self.drainSignalPipe()
                self.handleSignals()
            }
            signalWatcher!.start()
            try ProcessControl.makeDirectory(config.resolve("run"))
            saveRunningConfig()
            try hooks.masterStarted(self)
        } catch {
            failStartup("\(error)")
        }
        generation = 1
        for i in 0..<config.workerProcesses { spawnWorker(index: i, count: config.workerProcesses) }
        let startTimeout = TimerWatcher(loop: loop) { [unowned self] in
            if self.startupNotifyFD >= 0 { self.failStartup("workers did not become ready within 30 s") }
        }
        startTimeout.start(after: 30)
        respawnTimer = TimerWatcher(loop: loop) { [unowned self] in self.respawnPending() }
        ticketRotation = TimerWatcher(loop: loop) { [unowned self] in self.rotateTicketKeys() }
        scheduleTicketRotation()
        writeWorkersFile()
        loop.run()
        exitMaster(0)
    }

    // MARK: workers

    private func freeSlot() -> Int? {
        for i in 0..<Int(GW_MAX_WORKERS) where shm.workerSlot(i).pointee.pid == 0 {
            if !workers.contains(where: { $0.slot == i }) { return i }
        }
        return nil
    }

    @discardableResult
    func spawnWorker(index: Int, count: Int) -> Bool {
        guard let slot = freeSlot() else {
            log.log(.alert, "no free worker slot in shared memory")
            return false
        }
        let pair: (Int32, Int32)
        do { pair = try Socket.socketPair() } catch {
            log.log(.alert, "\(error)")
            return false
        }
        let sockets = listeners.sockets(forWorker: index, of: count)
        let specFD: Int32
        do {
            specFD = try WorkerLaunch.specPipe(WorkerLaunch.encode(
                config: config, index: index, slot: slot, snapshotPath: snapshotPath, shmFD: shm.fd,
                channelFD: pair.1, listen: sockets, ticketKey: config.proxySSLEnabled ? ticketKey : nil))
        } catch {
            log.log(.alert, "\(error)")
            Socket.close(pair.0); Socket.close(pair.1)
            return false
        }
        // Everything the child needs is made before fork: between fork and exec it only closes
        // descriptors, resets signals and calls execv.
        var keep = Set(sockets.map(\.fd))
        keep.insert(pair.1); keep.insert(shm.fd); keep.insert(specFD)
        let argv = WorkerLaunch.makeArgv(specFD: specFD)
        let path = strdup(executable.execPath)!
        defer { WorkerLaunch.freeArgv(argv); free(path) }
        let sp = shm.workerSlot(slot)
        sp.pointee = gw_worker_slot()
        let forked: ProcessControl.ForkResult
        do { forked = try ProcessControl.fork() } catch {
            log.log(.alert, "\(error)")
            Socket.close(pair.0); Socket.close(pair.1); Socket.close(specFD)
            return false
        }
        switch forked {
        case .child:
            WorkerLaunch.exec(path: path, keep: keep, argv: argv)
        case .parent(let pid):
            Socket.close(pair.1)
            Socket.close(specFD)
            sp.pointee.pid = Int64(pid)
            let h = WorkerHandle(pid: pid, index: index, count: count, slot: slot, generation: generation,
                                 channelFD: pair.0)
            h.watcher = IOWatcher(loop: loop, fd: pair.0, events: .read) { [unowned self, unowned h] _ in
                self.readChannel(h)
            }
            h.watcher!.start()
            workers.append(h)
            log.log(.notice, "start worker process \(pid)")
            return true
        }
    }

    private func readChannel(_ h: WorkerHandle) {
        var buf = [UInt8](repeating: 0, count: 64)
        while true {
            let r = buf.withUnsafeMutableBytes { Socket.read(h.channelFD, into: $0.baseAddress!, count: 64) }
            switch r {
            case .bytes(let n):
                for b in buf[0..<n] where b == ChannelCommand.ready.rawValue {
                    h.ready = true
                    workerBecameReady()
                }
            case .wouldBlock:
                return
            case .eof, .error:
                h.watcher?.stop()
                return
            }
        }
    }

    private func workerBecameReady() {
        let current = workers.filter { $0.generation == generation }
        guard current.count >= config.workerProcesses, current.allSatisfy(\.ready) else { return }
        if !announcedStart {   // daemon or foreground: logged once, when the first generation accepts
            announcedStart = true
            notifyStartup("ok\n")
            log.log(.notice, "gateway started: \(current.count) worker processes")
        }
        // A reload finished starting its workers: the previous generation stops accepting and drains.
        for old in workers where old.generation < generation && !old.draining {
            old.draining = true
            send(.quit, to: old)
        }
        writeWorkersFile()
    }

    func send(_ c: ChannelCommand, to h: WorkerHandle) {
        var b = c.rawValue
        _ = Socket.write(h.channelFD, from: &b, count: 1)
    }

    /// Tells every worker that a new configuration generation is published.
    public func publish(generation g: UInt64) {
        configPublishedAt = Clock.wallSecondsFraction()
        configGeneration = g
        shm.publishGeneration(g)
        for w in workers where !w.draining { send(.configChanged, to: w) }
    }

    private func reap() {
        while let (pid, status) = ProcessControl.reapOne() {
            guard let i = workers.firstIndex(where: { $0.pid == pid }) else { continue }
            let h = workers.remove(at: i)
            h.watcher?.stop()
            h.watcher = nil
            Socket.close(h.channelFD)
            let slot = shm.workerSlot(h.slot)
            exitedWorkerRequests &+= slot.pointee.requests
            exitedWorkerConnectionsAccepted &+= slot.pointee.connections_accepted
            slot.pointee.pid = 0
            // In-flight counts (least-connections) the dead worker held are given back.
            let reclaimed = PeerStateTable(base: shm.peerArea, size: shm.peerAreaSize).reclaimWorker(h.slot)
            if reclaimed > 0 { log.log(.info, "reclaimed \(reclaimed) in-flight peer counts of worker \(pid)") }
            let expected = h.draining || stopping != nil
            log.log(expected ? .notice : .alert, "worker process \(pid) \(ProcessControl.describe(status: status))")
            if !expected && h.generation == generation {
                if startupNotifyFD >= 0 {
                    failStartup("worker process \(pid) \(ProcessControl.describe(status: status)) during start")
                }
                scheduleRespawn(index: h.index)
            }
        }
        if stopping != nil && workers.isEmpty { loop.stop() }
        // Listener groups that left the configuration are closed once no old worker can use them.
        if !retiredGroups.isEmpty && !workers.contains(where: { $0.draining }) {
            for g in retiredGroups { g.fds.forEach(Socket.close) }
            retiredGroups = []
        }
        writeWorkersFile()
    }

    /// Respawns at once, unless workers crash in a loop: more than 5 crashes in 10 s back off
    /// (1 s, doubling, at most 30 s), so a worker that dies at start does not fork-bomb the host.
    private func scheduleRespawn(index: Int) {
        let now = Clock.monotonicMillis()
        crashTimes = crashTimes.filter { now - $0 < 10_000 } + [now]
        pendingRespawn.append(index)
        if crashTimes.count <= 5 {
            respawnPending()
        } else {
            let delay = min(30.0, Double(1 << min(crashTimes.count - 6, 5)))
            log.log(.alert, "workers crash in a loop; respawning in \(Int(delay)) s")
            if respawnTimer?.isActive != true { respawnTimer?.start(after: delay) }
        }
    }

    private func respawnPending() {
        guard stopping == nil else { pendingRespawn = []; return }
        let pending = pendingRespawn
        pendingRespawn = []
        for index in pending where !workers.contains(where: { $0.generation == generation && $0.index == index }) {
            spawnWorker(index: index, count: config.workerProcesses)
        }
    }

    // MARK: signals

    private func drainSignalPipe() {
        var buf = [UInt8](repeating: 0, count: 64)
        while case .bytes = buf.withUnsafeMutableBytes({ Socket.read(signalPipe.0, into: $0.baseAddress!, count: 64) }) {}
    }

    private func handleSignals() {
        let set = gw_signals_take()
        func has(_ s: Int32) -> Bool { set & (UInt64(1) << UInt64(s)) != 0 }
        if has(SIGCHLD) { reap() }
        if has(SIGTERM) || has(SIGINT) { stop(.fast) }
        if has(SIGQUIT) { stop(.graceful) }
        if has(SIGHUP) && stopping == nil { reload() }
        if has(SIGUSR1) {
            log.log(.notice, "reopening logs")
            log.reopen()
            masterParts.admin?.reopenLogs()
            masterParts.gui?.reopenLogs()
            for w in workers { send(.reopenLogs, to: w) }
        }
    }

    /// SIGHUP: re-read the configuration; start new workers on the same sockets; once they accept,
    /// the old ones stop accepting and drain (see workerBecameReady).
    func reload() {
        log.log(.notice, "reconfiguring")
        let path = currentConfigPath()
        let newConfig: GatewayConfig
        do {
            newConfig = try ConfigLoader.load(path: path, overrides: overrides)
        } catch {
            log.log(.error, "reload failed, keeping the running configuration: \(error)")
            return
        }
        if newConfig.prefix != config.prefix {
            log.log(.warn, "prefix cannot change on reload; keeping \(config.prefix)")
        }
        var nc = newConfig
        nc.prefix = config.prefix
        // The shared segment outlives reloads (counters and cached responses survive); its sizes are
        // fixed at start. Workers read the sizes from the segment, so the running ones stay in force.
        if nc.rateLimitingCountersSize != pluginState.countersSize || nc.proxyCacheSize != pluginState.cacheSize ||
            nc.proxyCacheMaxEntrySize != pluginState.maxEntrySize || nc.memCacheSize != config.memCacheSize ||
            nc.prometheusMetricsSize != pluginState.metricsSize {
            log.log(.warn, "mem_cache_size, rate_limiting_counters_size, proxy_cache_size, proxy_cache_max_entry_size and prometheus_metrics_size " +
                    "cannot change on reload (shared memory); keeping the running sizes until a restart")
        }
        if nc.tls.sessionCacheSize != config.tls.sessionCacheSize {
            log.log(.warn, "ssl_session_cache_size cannot change on reload (shared memory); keeping \(config.tls.sessionCacheSize) bytes until a restart")
            nc.tls.sessionCacheSize = config.tls.sessionCacheSize
        }
        // The new generation needs its own shared-memory slots while the old one drains; refuse
        // rather than start half a generation that never becomes ready.
        let busy = Set(workers.map(\.slot))
        let free = (0..<Int(GW_MAX_WORKERS)).filter { !busy.contains($0) && shm.workerSlot($0).pointee.pid == 0 }.count
        if free < nc.workerProcesses {
            log.log(.error, "reload refused, keeping the running configuration: \(nc.workerProcesses) workers need " +
                    "\(nc.workerProcesses) free worker slots, \(free) are free (old workers still draining)")
            return
        }
        do {
            try Master.prepareTLS(nc)
            retiredGroups += try listeners.ensure(specs: nc.proxyListen, count: nc.workerProcesses)
        } catch {
            log.log(.error, "reload failed, keeping the running configuration: \(error)")
            return
        }
        config = nc
        saveRunningConfig()
        log.level = nc.logLevel
        scheduleTicketRotation()
        hooks.configReloaded(self)
        generation += 1
        for i in 0..<nc.workerProcesses { spawnWorker(index: i, count: nc.workerProcesses) }
    }

    /// Rotation every ssl_session_timeout while an ssl listener issues tickets (nginx rotates its shared
    /// keys at the same pace): a ticket sealed just before a rotation still opens for one more interval,
    /// at least as long as the session it carries is valid.
    private func scheduleTicketRotation() {
        let interval = config.proxySSLEnabled && config.tls.sessionTickets ? Double(max(1, config.tls.sessionTimeout)) : 0
        guard interval != ticketRotationInterval, let t = ticketRotation else { return }
        ticketRotationInterval = interval
        t.stop()
        if interval > 0 { t.start(after: interval, repeat: interval) }
    }

    private func rotateTicketKeys() {
        TicketKeys.publish(area: shm.tlsArea, key: DefaultCertificates.newTicketKey(), first: false)
        log.log(.info, "TLS session ticket keys rotated (\(TicketKeys.rotations(area: shm.tlsArea)))")
    }

    /// Records the configuration in force for the CLI (`GatewayConfig.runningConfigFile`).
    private func saveRunningConfig() {
        do { try ProcessControl.writeFileAtomically(config.runningConfigFile, Array(config.savedText.utf8)) } catch {
            log.log(.warn, "cannot write \(config.runningConfigFile): \(error)")
        }
    }

    /// The configuration file of this prefix: `reload -c FILE` records a new one in run/conf_path.
    private func currentConfigPath() -> String? {
        if let b = ProcessControl.readFile(config.resolve("run/conf_path")) {
            let s = String(decoding: b, as: UTF8.self).trimmingWhitespace()
            if !s.isEmpty { return s }
        }
        return configPath
    }

    func stop(_ mode: StopMode) {
        if stopping == .fast { return }
        stopping = mode
        log.log(.notice, mode == .fast ? "stopping (fast)" : "stopping gracefully")
        hooks.masterStopping(self)
        for w in workers {
            if mode == .fast { ProcessControl.signal(w.pid, SIGTERM) } else { w.draining = true; send(.quit, to: w) }
        }
        // No worker will accept again: drop the master's references to the listening sockets, so
        // that the port is released as soon as the workers closed theirs (instead of new clients
        // queueing on a socket nobody accepts on until the master exits).
        listeners.closeAll()
        for g in retiredGroups { g.fds.forEach(Socket.close) }
        retiredGroups = []
        if workers.isEmpty { loop.stop(); return }
        // Fast stop: workers that did not exit in 5 s are killed.
        if mode == .fast {
            stopTimer = TimerWatcher(loop: loop) { [unowned self] in
                for w in self.workers { ProcessControl.signal(w.pid, SIGKILL) }
            }
            stopTimer!.start(after: 5)
        }
    }

    private func exitMaster(_ code: Int32) -> Never {
        listeners.closeAll()
        ProcessControl.remove(config.pidFile)
        ProcessControl.remove(config.resolve("pids/workers"))
        log.log(.notice, "exit")
        log.file.close()
        ProcessControl.exit(code)
    }

    // MARK: start-up notification (daemon mode)

    private func notifyStartup(_ s: String) {
        guard startupNotifyFD >= 0 else { return }
        ProcessControl.writeAll(startupNotifyFD, Array(s.utf8))
        Socket.close(startupNotifyFD)
        startupNotifyFD = -1
    }

    /// A failed start: the workers are killed and reaped first, and the starter's pipe is left open
    /// until this process exits (the kernel closes it), so that when `gateway start` reports the
    /// error no process of this gateway is left and the pid file is gone.
    private func failStartup(_ why: String) -> Never {
        log.log(.emerg, why)
        for w in workers { ProcessControl.signal(w.pid, SIGKILL) }
        while ProcessControl.reapOne() != nil || workers.contains(where: { ProcessControl.isAlive($0.pid) }) {
            ProcessControl.sleepMillis(10)
        }
        if startupNotifyFD >= 0 {
            ProcessControl.writeAll(startupNotifyFD, Array("error: \(why)\n".utf8))
        }
        exitMaster(1)
    }

    /// pids/workers: one pid per line, read by `gateway health`.
    private func writeWorkersFile() {
        let text = workers.filter { !$0.draining }.map { "\($0.pid)\n" }.joined()
        try? ProcessControl.writeFileAtomically(config.resolve("pids/workers"), Array(text.utf8))
    }
}
