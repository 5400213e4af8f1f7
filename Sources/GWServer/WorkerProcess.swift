// A worker process (nginx's ngx_worker_process_cycle): one libev loop that accepts on its share
// of the SO_REUSEPORT sockets and runs the proxy. Commands come over the channel from the master;
// EOF on the channel means the master is gone and the worker exits by itself.
import CGWShims
import GWConfig
import GWEvent
import GWPlugins
import GWProxy
import GWSystem
import GWTLS

public enum WorkerProcess {
    public static func run(_ ctx: WorkerContext, argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Never {
        gw_set_process_title(argc, argv, "gateway: worker process \(ctx.index)")
        // The master's death drains this worker like `quit` (bounded by quit_timeout below).
        gw_set_pdeathsig(SIGQUIT)
        if ProcessControl.parentPid != Int32(ctx.shm.header.pointee.master_pid) { ProcessControl.immediateExit(0) }
        let log: ErrorLog
        do {
            log = try ErrorLog(path: ctx.config.resolve(ctx.config.proxyErrorLog), level: ctx.config.logLevel)
        } catch {
            ProcessControl.immediateExit(2)
        }
        log.workerIndex = ctx.index
        let loop = EventLoop()
        let sigPipe: (Int32, Int32)
        do { sigPipe = try Socket.pipe() } catch { log.log(.emerg, "\(error)"); ProcessControl.immediateExit(2) }
        gw_signals_install(sigPipe.1)

        let slot = ctx.shm.workerSlot(ctx.slot)
        slot.pointee.pid = Int64(ProcessControl.pid)
        let server: ProxyServer
        do {
            // TLS: the master made the default certificates and the session-ticket keys before the fork;
            // the keys it rotates and the session cache every worker shares live in the shared segment.
            if ctx.config.proxySSLEnabled {
                TicketKeys.attach(area: ctx.shm.tlsArea)
                SessionCache.attach(area: ctx.shm.tlsCacheArea)
            }
            let tls = ctx.config.proxySSLEnabled
                ? try TLSServerContext(settings: ctx.config.tls, pairs: ctx.config.certificatePairs, ticketKey: ctx.ticketKey)
                : nil
            server = try ProxyServer(loop: loop, config: ctx.config, shm: ctx.shm, slotIndex: ctx.slot, log: log,
                                     listenSockets: ctx.listenSockets, snapshotPath: ctx.snapshotPath, tls: tls)
        } catch {
            log.log(.emerg, "worker init failed: \(error)")
            ProcessControl.immediateExit(2)
        }
        // The node's shared plugin state (exact rate-limit counters, proxy-cache store), before the
        // first configuration is compiled: every PluginSet of this worker uses it.
        server.pluginShared = SharedPluginStore(state: ctx.pluginState)
        server.loadConfiguration()

        var exiting = false
        // A graceful drain (reload, quit, master gone) is bounded by quit_timeout, as nginx's
        // worker_shutdown_timeout: an exchange that outlives it (a hung upstream) is cut, so that an
        // old worker never lingers forever after a reload.
        let drainTimer = TimerWatcher(loop: loop) {
            log.log(.warn, "quit_timeout (\(ctx.config.quitTimeout) s) expired; closing the remaining connections")
            server.closeAll()
            loop.stop()
        }
        func quit(graceful: Bool) {
            if graceful {
                if exiting { return }
                exiting = true
                log.log(.notice, "gracefully shutting down")
                drainTimer.start(after: Double(max(ctx.config.quitTimeout, 1)))
                server.drain { loop.stop() }
            } else {
                log.log(.notice, "exiting")
                server.closeAll()
                loop.stop()
            }
        }

        let sigWatcher = IOWatcher(loop: loop, fd: sigPipe.0, events: .read) { _ in
            var b = [UInt8](repeating: 0, count: 64)
            while case .bytes = b.withUnsafeMutableBytes({ Socket.read(sigPipe.0, into: $0.baseAddress!, count: 64) }) {}
            let set = gw_signals_take()
            func has(_ s: Int32) -> Bool { set & (UInt64(1) << UInt64(s)) != 0 }
            if has(SIGTERM) || has(SIGINT) { quit(graceful: false) }
            else if has(SIGQUIT) { quit(graceful: true) }
            if has(SIGUSR1) { log.reopen(); server.reopenLogs() }
        }
        sigWatcher.start()

        let channel = ctx.channelFD
        var chanRef: IOWatcher? = nil
        let chanWatcher = IOWatcher(loop: loop, fd: channel, events: .read) { _ in
            var b = [UInt8](repeating: 0, count: 64)
            while true {
                let r = b.withUnsafeMutableBytes { Socket.read(channel, into: $0.baseAddress!, count: 64) }
                switch r {
                case .bytes(let n):
                    var config = false
                    for c in b[0..<n] {
                        switch ChannelCommand(rawValue: c) {
                        case .configChanged: config = true
                        case .quit: quit(graceful: true)
                        case .terminate: quit(graceful: false)
                        case .reopenLogs: log.reopen(); server.reopenLogs()
                        default: break
                        }
                    }
                    if config { server.loadConfiguration() }
                case .wouldBlock:
                    return
                case .eof, .error:
                    // The master is gone: finish what is in flight and exit.
                    log.log(.alert, "master process exited; worker exiting")
                    chanRef?.stop()
                    quit(graceful: true)
                    return
                }
            }
        }
        chanRef = chanWatcher
        chanWatcher.start()

        server.startAccepting()
        slot.pointee.heap_bytes = gw_heap_bytes()   // refreshed by the 1 Hz tick
        slot.pointee.ready = 1
        var r = ChannelCommand.ready.rawValue
        _ = Socket.write(channel, from: &r, count: 1)
        loop.run()
        server.closeAll()
        log.file.close()
        ProcessControl.immediateExit(0)
    }
}
