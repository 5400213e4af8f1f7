// GWProxy: the worker's data path. ProxyServer owns the accept watchers, the live configuration
// (router + balancers, swapped whole on each generation), the keep-alive pool, the buffer and
// parser free lists and the access log. One per worker process; loop-confined.
//
// Request flow: accept → ClientConnection parses (llhttp) → RuntimeConfig.route (GWRouter) →
// ServicePlan.pick (GWBalancer, shared-memory state) → UpstreamPool or connect → stream request →
// parse response → stream back → pool the upstream connection → next request.
#if canImport(Glibc)
import Glibc
#endif
import CGWShims
import GWConfig
import GWEvent
import GWPlugins
import GWRedis
import GWHTTP
import GWStore
import GWSystem
import GWTLS

/// The settings the data path reads per request, copied out of GatewayConfig once.
public struct ProxySettings: Sendable {
    public var keepaliveTimeout: Int
    public var keepaliveRequests: Int
    public var clientHeaderTimeout: Int
    public var clientBodyTimeout: Int
    public var clientMaxBodySize: Int
    /// client_body_buffer_size: a buffered request body stays in memory up to this size.
    public var clientBodyBufferSize: Int
    /// Where larger buffered bodies go (<prefix>/client_body_temp).
    public var bodyTempDirectory: String
    /// response_transformer_max_body_size: the bound of a held response body.
    public var responseHoldLimit: Int
    public var errorDefaultType: String
    public var serverTokens: Bool
    public var latencyTokens: Bool
    /// proxy_access_log_format = json: the access log writes the serializer's entry of every exchange.
    public var jsonAccessLog: Bool
    public var limits: HTTPParserLimits
    /// trusted_ips / real_ip_header (lowercase) / real_ip_recursive (MessageBuilder+Forwarded.swift).
    public var trustedIPs: TrustedIPs
    public var realIPHeader: [UInt8]
    public var realIPRecursive: Bool

    public init(_ c: GatewayConfig) {
        keepaliveTimeout = c.keepaliveTimeout
        keepaliveRequests = c.keepaliveRequests
        clientHeaderTimeout = c.clientHeaderTimeout
        clientBodyTimeout = c.clientBodyTimeout
        clientMaxBodySize = c.clientMaxBodySize
        clientBodyBufferSize = c.clientBodyBufferSize
        bodyTempDirectory = c.resolve("client_body_temp")
        responseHoldLimit = c.responseTransformerMaxBodySize
        errorDefaultType = c.errorDefaultType
        serverTokens = c.serverTokens
        latencyTokens = c.latencyTokens
        jsonAccessLog = c.proxyAccessLogFormat == "json" && c.proxyAccessLog != "off"
        limits = HTTPParserLimits(largeClientHeaderBuffers: c.largeClientHeaderBuffers.count,
                                  size: c.largeClientHeaderBuffers.size, clientMaxBodySize: c.clientMaxBodySize)
        limits.dropUnderscoreNames = !c.underscoresInHeaders
        trustedIPs = c.trustedIPs
        realIPHeader = Array(c.realIPHeader.lowercased().utf8)
        realIPRecursive = c.realIPRecursive
    }
}

public final class ProxyServer {
    /// Above this many unsent bytes towards one side, reading from the other side pauses.
    static let maxPendingOutput = 256 * 1024

    let loop: EventLoop
    let settings: ProxySettings
    let shm: SharedMemory
    let slot: UnsafeMutablePointer<gw_worker_slot>
    let slotIndex: Int
    let log: ErrorLog
    let bufferPool = BufferPool(bufferSize: 16 * 1024)
    /// Upstream read buffers: 32 KiB, so that a response head plus a 16 KiB body arrives in one read
    /// (with 16 KiB it took two). Held by upstream connections only (fewer than clients).
    let upstreamBufferPool = BufferPool(bufferSize: 32 * 1024, maxFree: 256)
    /// Where request and response heads are assembled before one copy into the output buffer.
    let headScratch = HeadScratch(capacity: 128 * 1024)
    let pool: UpstreamPool
    /// TLS on the listeners flagged `ssl` (nil when there is none).
    let tlsContext: TLSServerContext?
    /// Listener ports flagged `ssl`.
    let sslPorts: Set<Int>
    /// Server contexts of the certificates chosen per SNI (CertificateSelection.swift).
    let certificateContexts = CertificateContexts()
    /// https upstreams: one client context per trust setting, made on first use.
    private var tlsClients: [UpstreamTLS: TLSClientContext] = [:]

    /// Bound of `tlsClients`: when full, it is emptied (contexts in use stay alive with their connections).
    static let maxTLSClientContexts = 256

    func tlsClientContext(_ t: UpstreamTLS) -> TLSClientContext? {
        if let c = tlsClients[t] { return c }
        if tlsClients.count >= ProxyServer.maxTLSClientContexts { tlsClients.removeAll() }
        let pair = t.clientCertificate.map { (cert: $0.cert, key: $0.key) }
        do {
            let c = try TLSClientContext(verify: t.verify, depth: t.depth, caPEM: t.caPEM, clientPair: pair)
            tlsClients[t] = c
            return c
        } catch {
            log.log(.error, "could not make the upstream TLS context: \(error)")
            guard pair != nil else { return nil }
            // Kong: a client certificate that cannot be loaded is logged and the request goes on without one.
            guard let c = try? TLSClientContext(verify: t.verify, depth: t.depth, caPEM: t.caPEM, clientPair: nil) else { return nil }
            tlsClients[t] = c
            return c
        }
    }
    /// Buffers of request bodies read whole (RequestBodyBuffer.swift).
    let bodyBufferPool: RequestBodyBufferPool
    let serverToken = "kong/3.10.0"
    let viaValue: String
    private(set) var config: RuntimeConfig?
    /// PLUGIN SHARED STATE: what `PluginSet(snapshot:previous:shared:)` receives for every generation
    /// (`PluginEnvironment.shared`: shared-memory plugin state such as rate-limit counters). Nil until the
    /// worker wiring (GWServer/WorkerProcess) sets it, before the first configuration is loaded.
    public var pluginShared: AnyObject? = nil
    private var parsers: [HTTPRequestParser] = []
    private var acceptWatchers: [IOWatcher] = []
    private var listenSockets: [(fd: Int32, port: Int)]
    var connections: [ClientConnection] = []
    private(set) var draining = false
    private var drainDone: (() -> Void)?
    private var housekeeping: TimerWatcher!
    let accessLogFile: LogFile?
    let cachedTime = CachedTime()
    private var requestIDSeed: RequestID.Seed
    private var requestCounter: UInt64 = 0

    public init(loop: EventLoop, config: GatewayConfig, shm: SharedMemory, slotIndex: Int,
                log: ErrorLog, listenSockets: [(fd: Int32, port: Int)], snapshotPath: String,
                tls: TLSServerContext? = nil) throws {
        self.loop = loop
        self.tlsContext = tls
        self.sslPorts = tls == nil ? [] : Set(config.proxyListen.filter(\.ssl).map(\.port))
        self.settings = ProxySettings(config)
        self.shm = shm
        self.slotIndex = slotIndex
        self.slot = shm.workerSlot(slotIndex)
        self.log = log
        self.listenSockets = listenSockets
        self.follower = ConfigFollower(fullPath: snapshotPath)
        self.pool = UpstreamPool(maxPerPeer: config.upstreamKeepalivePoolSize,
                                 maxRequests: config.upstreamKeepaliveMaxRequests,
                                 idleTimeoutSeconds: config.upstreamKeepaliveIdleTimeout, loop: loop)
        self.viaValue = "1.1 kong/3.10.0"
        bodyBufferPool = RequestBodyBufferPool(memoryLimit: settings.clientBodyBufferSize,
                                               tempDirectory: settings.bodyTempDirectory)
        _ = mkdir(settings.bodyTempDirectory, 0o700)   // EEXIST is fine; a failure shows when a body needs it
        let path = config.resolve(config.proxyAccessLog)
        accessLogFile = path == "off" ? nil : try LogFile(path: path, bufferSize: 32 * 1024)
        var seed: UInt64 = 0
        withUnsafeMutableBytes(of: &seed) { _ = getentropy($0.baseAddress, 8) }
        requestIDSeed = RequestID.Seed(seed ^ UInt64(ProcessControl.pid))
        LogDocuments.always = settings.jsonAccessLog
        LogSinks.worker = LogSinks(loop: loop) { [unowned log] _, message in log.log(.error, message) }
        RedisClients.worker = RedisClients(loop: loop, trust: RedisTrust(caPEM: config.cosocketTLS.caPEM,
                                                                         depth: config.cosocketTLS.verifyDepth)) { [unowned log] message in log.log(.error, message) }
        housekeeping = TimerWatcher(loop: loop) { [unowned self] in self.tick() }
        housekeeping.start(after: 1, repeat: 1)
        installCertificateSelection()
    }

    // MARK: configuration

    /// Reads the published snapshot and swaps router + balancers. Requests in flight keep the
    /// RuntimeConfig they started with (they hold a strong reference).
    /// A request must never be routed on a configuration older than the one published before it
    /// arrived: the channel wake-up may still be queued behind this connection's read event in the
    /// same loop pass, so the shared generation is checked (one atomic load) before routing.
    @inline(__always)
    func refreshConfigurationIfStale() {
        let g = shm.configGeneration
        if g != attemptedGeneration && g > (config?.generation ?? 0) { loadConfiguration() }
    }

    private var attemptedGeneration: UInt64 = 0
    /// The published configuration as of the last generation applied (deltas are applied to it).
    private var follower: ConfigFollower

    /// Fast-path route decisions of the current configuration (rebuilt lazily after a swap).
    private var routeCacheStorage: RouteCache?

    @inline(__always)
    func routeCache(for cfg: RuntimeConfig) -> RouteCache {
        if let c = routeCacheStorage, c.config === cfg { return c }
        let c = RouteCache(config: cfg)
        routeCacheStorage = c
        return c
    }

    public func loadConfiguration() {
        let generation = shm.configGeneration
        attemptedGeneration = generation
        guard generation > 0 else { return }
        let t0 = Clock.monotonicMicros(), c0 = Clock.processCPUMicros()
        var step = ConfigFollower.Step()
        do {
            guard let published = try follower.advance(to: generation, step: &step) else { return }
            if let old = config, old.generation >= published.generation { return }
            let tRead = Clock.monotonicMicros()
            let changes = config?.generation == step.fromGeneration ? step.routeChanges : nil
            let rc = RuntimeConfig(config: published, previous: config, routeChanges: changes, shm: shm,
                                   workerSlot: slotIndex, log: log, pluginShared: pluginShared)
            config = rc
            slot.pointee.config_applied_at_ms = UInt64(Clock.wallSecondsFraction() * 1000)
            slot.pointee.config_generation = rc.generation
            let how = step.fullBytes > 0 ? "full document (\(step.fullBytes) bytes) + \(step.deltas) deltas" : "\(step.deltas) deltas"
            log.log(.info, "configuration generation \(rc.generation) applied in \((Clock.monotonicMicros() - t0) / 1000) ms, \((Clock.processCPUMicros() - c0) / 1000) ms of CPU (read \(how) in \((tRead - t0) / 1000) ms)")
            if rc.generation < generation {
                log.log(.error, "configuration generation \(generation) not reachable; running generation \(rc.generation)")
            }
        } catch {
            log.log(.error, "configuration generation \(generation) rejected: \(error)")
        }
        loop.updateNow()
    }

    // MARK: accept

    public func startAccepting() {
        for (fd, port) in listenSockets {
            let w = IOWatcher(loop: loop, fd: fd, events: .read) { [unowned self] _ in self.accept(fd, port) }
            w.start()
            acceptWatchers.append(w)
        }
    }

    /// Connections taken per readiness event of a listener: up to 64 on a plain listener (Kong's
    /// `multi_accept on`), one on a TLS listener (nginx's default, `multi_accept off`). Every new TLS
    /// connection costs a handshake (~0.3 ms resumed, ~1 ms full); taking a burst of them at once put
    /// that many handshakes ahead of the requests of connections already open: wrk's resumed-TLS scenario
    /// measured p50 4.1–4.2 ms (nginx 1.1–1.2) with 64, 0.9–1.0 ms with one, at the same requests/s; plain
    /// new connections per request were 0.84–1.02× nginx with one against 1.00–1.08× with 64.
    static func acceptBatch(tls: Bool) -> Int { tls ? 1 : 64 }

    private func accept(_ lfd: Int32, _ port: Int) {
        var peer = SocketAddress(storage: sockaddr_storage(), length: 0)
        for _ in 0..<ProxyServer.acceptBatch(tls: sslPorts.contains(port)) {
            guard let fd = Socket.accept(lfd, peer: &peer) else { return }
            Socket.setNoDelay(fd)
            let c = ClientConnection(server: self, fd: fd, peer: peer, listenPort: port, tlsPort: sslPorts.contains(port))
            c.index = Int32(connections.count)
            connections.append(c)
            slot.pointee.connections_accepted &+= 1
            slot.pointee.connections_active = UInt64(connections.count)
        }
    }

    func connectionClosed(_ c: ClientConnection) {
        let i = Int(c.index)
        guard i >= 0, i < connections.count, connections[i] === c else { return }
        let last = connections.removeLast()
        if last !== c {
            connections[i] = last
            last.index = Int32(i)
        }
        c.index = -1
        slot.pointee.connections_active = UInt64(connections.count)
        if draining && connections.isEmpty { finishDrain() }
    }

    // MARK: lifecycle

    /// Graceful stop: stop accepting (the master keeps the sockets open for the next workers),
    /// close idle keep-alive connections, let in-flight exchanges finish, then call `done`.
    public func drain(done: @escaping () -> Void) {
        draining = true
        drainDone = done
        for w in acceptWatchers { w.stop() }
        acceptWatchers = []
        for (fd, _) in listenSockets { Socket.close(fd) }
        listenSockets = []
        for c in connections { _ = c.closeIfIdle() }
        if connections.isEmpty { finishDrain() }
    }

    private func finishDrain() {
        guard let d = drainDone else { return }
        drainDone = nil
        pool.closeAll()
        accessLogFile?.flush()
        LogSinks.worker?.shutdown()
        d()
    }

    public func closeAll() {
        for w in acceptWatchers { w.stop() }
        acceptWatchers = []
        for c in connections { c.close() }
        pool.closeAll()
        accessLogFile?.flush()
        LogSinks.worker?.shutdown()
    }

    public func reopenLogs() {
        accessLogFile?.reopen()
        LogSinks.worker?.reopen()
    }

    private func tick() {
        slot.pointee.heartbeat = Clock.monotonicMillis()
        slot.pointee.heap_bytes = gw_heap_bytes()   // GET /status workers_lua_vms, 1 Hz
        // stub_status's writing (an exchange in progress) at 1 Hz; the others are waiting (keep-alive).
        var writing: UInt64 = 0
        for c in connections where c.reqPhase.isActive { writing += 1 }
        slot.pointee.connections_writing = writing
        pool.expire()
        accessLogFile?.flush()
        cachedTime.update()
    }

    // MARK: pools and counters

    func takeRequestParser() -> HTTPRequestParser {
        if let p = parsers.popLast() { return p }
        return HTTPRequestParser(limits: settings.limits)
    }

    func giveRequestParser(_ p: consuming HTTPRequestParser) {
        p.reset()
        if parsers.count < 1024 { parsers.append(p) }
    }

    /// Byte arrays lent to connections while an exchange is in flight (the client's output queue), so
    /// that an idle keep-alive connection holds none (issue #18: memory per idle connection) while a busy
    /// one still appends without allocating. Bounded: at most `maxSpareArrays` are kept, and an array
    /// that grew past `maxSpareCapacity` is freed instead.
    private var spareArrays: [FlatArray<UInt8>] = []
    static let maxSpareArrays = 1024
    static let maxSpareCapacity = 16 * 1024

    /// Gives `a` an array with capacity from the pool when it has none (an empty array holds no storage).
    @inline(__always) func lendArray(_ a: inout FlatArray<UInt8>) {
        if a.capacity == 0, let x = spareArrays.popLast() { a = x }
    }

    /// Takes `a`'s storage back into the pool (or frees it), leaving `a` empty without storage.
    @inline(__always) func reclaimArray(_ a: inout FlatArray<UInt8>) {
        guard a.capacity > 0 else { return }
        if a.capacity <= ProxyServer.maxSpareCapacity && spareArrays.count < ProxyServer.maxSpareArrays {
            a.removeAll()
            spareArrays.append(a)
        }
        a = FlatArray()
    }

    @inline(__always) func countRequest() { slot.pointee.requests &+= 1 }

    /// IMF-fixdate for the Date header (nginx sends one on every response), formatted once per
    /// second by the same cached clock as the log timestamps.
    func httpDate() -> [UInt8] {
        cachedTime.update()
        return cachedTime.httpDate
    }

    /// A serial number for a connection of this worker (nginx's $connection, for correlation-id's tracker).
    func nextConnectionSerial() -> Int {
        connectionSerial &+= 1
        return connectionSerial
    }
    private var connectionSerial = 0

    /// A 32-hex-digit request id (Kong's X-Kong-Request-Id), from a per-worker random seed and counter.
    @inline(__always) func newRequestID() -> RequestID {
        requestCounter &+= 1
        return RequestID(seed: requestIDSeed, counter: requestCounter)
    }

    /// `id` as bytes in a per-worker array (for the log serializer, which takes an array; no allocation
    /// once warm). Valid until the next call.
    func requestIDBytes(_ id: RequestID) -> [UInt8] {
        id.copy(into: &requestIDScratch)
        return requestIDScratch
    }
    private var requestIDScratch: [UInt8] = []
}
