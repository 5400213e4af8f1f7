// How a worker process starts: the master forks, and the child execs the gateway binary again
// (`/proc/self/exe __worker FD`), handing it only what a worker needs: its listening sockets, its
// channel, the shared segment's memfd, and a spec read from a pipe (WorkerContext below).
//
// Deviation from nginx, whose workers run on in the forked copy of the master: nginx's workers use
// the configuration tree the master parsed, so sharing it copy-on-write is free. Ours never touch
// the master's state (the Admin store's documents, SQLite, c-ares, the publisher): they read the
// published configuration into structures of their own. A forked worker still carried the master's
// whole heap in its RSS (with 10 000 routes, 32 MiB of a 66 MiB worker) and copied pages of it on
// write; after exec a worker holds only its own memory, and a master bug can leave nothing behind
// in a worker. Forking still happens with no thread in the process (there are none anywhere).
//
// Spec format: NUL-terminated tokens, "gateway-worker-1", then key, value pairs: index, slot,
// snapshot, shm_fd, channel_fd, listen ("fd:port", repeated), tls_ticket_key (hex, when a listener
// terminates TLS: every worker seals session tickets with the same key), conf.<key> (every entry).
#if canImport(Glibc)
import Glibc
#endif
import CGWShims
import GWConfig
import GWPluginState
import GWSystem

/// Everything a worker starts with.
public struct WorkerContext {
    public let config: GatewayConfig
    public let shm: SharedMemory
    /// The plugins' shared tables (rate-limit counters, proxy cache) in `shm`, attached at start.
    public let pluginState: PluginState
    public let index: Int
    public let slot: Int
    public let listenSockets: [(fd: Int32, port: Int)]
    public let channelFD: Int32
    public let snapshotPath: String
    /// The session-ticket key shared by all workers (80 bytes), nil without TLS listeners.
    public let ticketKey: [UInt8]?
}

enum WorkerLaunch {
    /// The hidden CLI command an exec'd worker runs (not for people; not in `--help`).
    static let command = "__worker"
    static let magic = "gateway-worker-1"

    struct LaunchError: Error, CustomStringConvertible {
        let description: String
    }

    /// The spec of one worker, as the bytes written into its pipe.
    static func encode(config: GatewayConfig, index: Int, slot: Int, snapshotPath: String, shmFD: Int32,
                       channelFD: Int32, listen: [(fd: Int32, port: Int)], ticketKey: [UInt8]? = nil) -> [UInt8] {
        var out: [UInt8] = []
        func put(_ s: String) { out.append(contentsOf: s.utf8); out.append(0) }
        put(magic)
        put("index"); put(String(index))
        put("slot"); put(String(slot))
        put("snapshot"); put(snapshotPath)
        put("shm_fd"); put(String(shmFD))
        put("channel_fd"); put(String(channelFD))
        for l in listen { put("listen"); put("\(l.fd):\(l.port)") }
        if let k = ticketKey {
            let hex: [Character] = Array("0123456789abcdef")
            put("tls_ticket_key"); put(String(k.flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] }))
        }
        for (k, v) in config.entries { put("conf." + k); put(v) }
        return out
    }

    /// Reads a spec back (in the exec'd worker) and attaches the shared segment.
    static func decode(_ bytes: [UInt8]) throws -> WorkerContext {
        var tokens = bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if tokens.last == "" { tokens.removeLast() }
        guard tokens.first == magic, tokens.count % 2 == 1 else { throw LaunchError(description: "malformed worker spec") }
        var index: Int?, slot: Int?, snapshot: String?, shmFD: Int32?, channelFD: Int32?, ticketKey: [UInt8]?
        var listen: [(fd: Int32, port: Int)] = []
        var entries: [String: String] = [:]
        var i = 1
        while i < tokens.count {
            let k = tokens[i], v = tokens[i + 1]
            switch k {
            case "index": index = Int(v)
            case "slot": slot = Int(v)
            case "snapshot": snapshot = v
            case "shm_fd": shmFD = Int32(v)
            case "channel_fd": channelFD = Int32(v)
            case "tls_ticket_key":
                let b = Array(v.utf8)
                guard b.count == 160 else { throw LaunchError(description: "malformed tls_ticket_key in worker spec") }
                func nib(_ c: UInt8) -> UInt8 { c <= 0x39 ? c - 0x30 : c - 0x61 + 10 }
                ticketKey = stride(from: 0, to: 160, by: 2).map { nib(b[$0]) << 4 | nib(b[$0 + 1]) }
            case "listen":
                let parts = v.split(separator: ":")
                guard parts.count == 2, let fd = Int32(parts[0]), let port = Int(parts[1]) else {
                    throw LaunchError(description: "malformed listen entry '\(v)' in worker spec")
                }
                listen.append((fd, port))
            default:
                guard k.hasPrefix("conf.") else { throw LaunchError(description: "unknown key '\(k)' in worker spec") }
                entries[String(k.dropFirst(5))] = v
            }
            i += 2
        }
        guard let index, let slot, let snapshot, let shmFD, let channelFD else {
            throw LaunchError(description: "incomplete worker spec")
        }
        // The master's effective settings, exactly: no file, no environment.
        let config = try ConfigLoader.load(path: nil, overrides: entries, environment: [:])
        let shm = try SharedMemory(attaching: shmFD)
        let pluginState = try PluginState(attaching: shm)
        return WorkerContext(config: config, shm: shm, pluginState: pluginState, index: index, slot: slot, listenSockets: listen,
                             channelFD: channelFD, snapshotPath: snapshot, ticketKey: ticketKey)
    }

    /// In the master: a pipe holding `spec`, closed for writing. Returns its read end (close-on-exec).
    static func specPipe(_ spec: [UInt8]) throws -> Int32 {
        let (r, w) = try Socket.pipe()
        defer { Socket.close(w) }
        // A spec is a few KiB, far below a pipe's 64 KiB buffer: one nonblocking write never waits.
        let written = spec.withUnsafeBytes { Glibc.write(w, $0.baseAddress!, $0.count) }
        guard written == spec.count else {
            Socket.close(r)
            throw LaunchError(description: "worker spec of \(spec.count) bytes did not fit into its pipe")
        }
        return r
    }

    /// The binary the master runs, resolved once when the master starts.
    struct Executable {
        let path: String
        let device: UInt64
        let inode: UInt64

        init() {
            path = ProcessControl.readLink("/proc/self/exe") ?? "/proc/self/exe"
            (device, inode) = Executable.identity(path) ?? (0, 0)
        }

        static func identity(_ path: String) -> (UInt64, UInt64)? {
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }
            return (UInt64(st.st_dev), UInt64(st.st_ino))
        }

        /// What to exec: the file the master started from. When that path now names another file (the
        /// package was upgraded in place), "/proc/self/exe", which still names the master's own binary:
        /// a worker always runs the master's code. The resolved path is preferred otherwise because
        /// tools that follow exec (valgrind --trace-children) read /proc/self/exe as their own binary.
        var execPath: String {
            guard let id = Executable.identity(path), id == (device, inode) else { return "/proc/self/exe" }
            return path
        }
    }

    /// In the forked child: keep only `keep` (made inheritable), reset signals, exec the worker.
    /// Never returns; exit status 127 when the exec fails (the master logs it and respawns with back-off).
    static func exec(path: UnsafePointer<CChar>, keep: Set<Int32>, argv: [UnsafeMutablePointer<CChar>?]) -> Never {
        gw_signals_reset_to_default()
        gw_unblock_all_signals()
        ProcessControl.closeAllDescriptors(except: keep)
        for fd in keep { _ = gw_clear_cloexec(fd) }
        var args = argv
        _ = execv(path, &args)
        ProcessControl.immediateExit(127)
    }

    /// argv for the exec'd worker, made in the master before fork (strdup'd; freed by the parent after fork).
    static func makeArgv(specFD: Int32) -> [UnsafeMutablePointer<CChar>?] {
        [strdup("gateway"), strdup(command), strdup(String(specFD)), nil]
    }

    static func freeArgv(_ argv: [UnsafeMutablePointer<CChar>?]) {
        for p in argv { free(p) }
    }

    /// The exec'd worker's entry (`gateway __worker FD`): reads the spec and becomes the worker.
    static func run(arguments: [String], argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Never {
        // Only the master starts this, with a pipe it filled and closed; anything else (a person typing
        // the command, a descriptor that is a terminal) is refused rather than read from.
        var st = stat()
        guard arguments.count == 2, let fd = Int32(arguments[1]), fd > 2, fstat(fd, &st) == 0,
              st.st_mode & S_IFMT == S_IFIFO else {
            _ = CLI.fail("\(command) is started by the master process only")
            ProcessControl.immediateExit(2)
        }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let r = buf.withUnsafeMutableBytes { Socket.read(fd, into: $0.baseAddress!, count: $0.count) }
            guard case .bytes(let n) = r, n > 0 else { break }
            bytes.append(contentsOf: buf[0..<n])
        }
        Socket.close(fd)
        let ctx: WorkerContext
        do { ctx = try decode(bytes) } catch {
            _ = CLI.fail("worker: \(error)")
            ProcessControl.immediateExit(2)
        }
        WorkerProcess.run(ctx, argc: argc, argv: argv)
    }
}
