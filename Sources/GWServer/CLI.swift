// `gateway start|stop|quit|reload|restart|health|check|version|config`, Kong's verbs and flags.
// Errors print `Error: <reason>` on stderr and exit non-zero (as Kong's bin/kong).
#if canImport(Glibc)
import Glibc
#endif
import CGWShims
import GWConfig
import GWSystem

public let gatewayVersion = "0.1.0"

public enum CLI {
    static let usage = """
    Usage: gateway COMMAND [OPTIONS]

    The available commands are:
      start      Start the gateway (master + workers) in the background, or with --foreground.
      stop       Fast stop: SIGTERM to the master; in-flight requests are cut.
      quit       Graceful stop: SIGQUIT; in-flight requests finish (--timeout S, then SIGTERM).
      reload     Re-read the configuration: new workers, old workers drain (SIGHUP).
      restart    stop, then start.
      health     Exit 0 when the master and all workers are alive; lists them.
      check      Validate a configuration file.
      config     db_import FILE | db_export FILE | parse FILE (declarative configuration).
      migrations bootstrap | up | finish | list | reset (database = postgres).
      version    Print the version.

    Options:
      -c, --conf FILE      configuration file (default: conf/gateway.conf if present)
      -p, --prefix DIR     prefix directory (default: the `prefix` setting); stop, quit, reload,
                           health and config act on the running node's saved configuration
      --foreground         start: do not daemonize (also `daemon = off`)
      -t, --timeout S      quit: seconds to wait before forcing (default: quit_timeout, 10s)
      -h, --help           help for a command

    Every configuration key can be overridden with GATEWAY_<KEY> in the environment.
    A proxy_listen entry with `ssl` serves HTTPS (default 0.0.0.0:8443); without ssl_cert, self-signed
    certificates are generated in <prefix>/ssl at the first start.
    Other listeners: admin_listen (Admin API, 127.0.0.1:8001), admin_gui_listen (dashboard,
    127.0.0.1:8002) and status_listen (Status API and /metrics, 127.0.0.1:8007); each accepts `off`.
    database = postgres shares one PostgreSQL between nodes (run `gateway migrations bootstrap` first).
    """

    static let commandHelp: [String: String] = [
        "start": "Usage: gateway start [-c CONF] [-p PREFIX] [--foreground]\n\nValidates the configuration, creates the prefix (pids/, logs/, run/), binds the listeners,\nforks the workers and exits 0 once every worker accepts connections.",
        "stop": "Usage: gateway stop [-p PREFIX]\n\nFast shutdown (SIGTERM): the master and workers exit at once.",
        "quit": "Usage: gateway quit [-p PREFIX] [-t SECONDS]\n\nGraceful shutdown (SIGQUIT): workers stop accepting, finish in-flight requests and exit.\nAfter the timeout (default: quit_timeout, 10 s) the gateway is stopped with SIGTERM.",
        "reload": "Usage: gateway reload [-c CONF] [-p PREFIX]\n\nValidates the configuration, then SIGHUP: new workers start on the same sockets and the old\nones drain. The master pid does not change.",
        "restart": "Usage: gateway restart [-c CONF] [-p PREFIX] [--foreground]\n\nStops the running gateway (if any) and starts it again.",
        "health": "Usage: gateway health [-p PREFIX]\n\nExit 0 when the master and all workers are alive, and list them.",
        "check": "Usage: gateway check [CONF]\n\nValidates a configuration file and prints `configuration at CONF is valid`.",
        "config": "Usage: gateway config db_import FILE | db_export FILE | parse FILE [-c CONF] [-p PREFIX]\n\nImports a declarative (Kong _format_version 3.0) file into the database, exports the\ndatabase as a declarative file, or validates a declarative file.",
        "version": "Usage: gateway version\n\nPrints the version.",
        "migrations": "Usage: gateway migrations COMMAND [-c CONF] [--force] [--yes] [--lock-timeout S]\n\nManages the PostgreSQL schema (database = postgres), as Kong's `kong migrations`:\n  bootstrap  create the schema (--force: reset first)\n  up         run new migrations (--force: even with pending ones)\n  finish     finish pending migrations\n  list       list migrations (exit 3 not bootstrapped, 4 pending, 5 new)\n  reset      drop the schema (--yes without a terminal)",
    ]

    struct Options {
        var command = ""
        var positional: [String] = []
        var conf: String?
        var prefix: String?
        var foreground = false
        var timeout: Int? = nil     // quit: nil = the configuration's quit_timeout
        var help = false
        /// --force, --yes (migrations).
        var flags: Set<String> = []
        var lockTimeout = 60
    }

    static func parse(_ args: [String]) throws(ConfigError) -> Options {
        var o = Options()
        var i = 0
        func value(_ flag: String) throws(ConfigError) -> String {
            i += 1
            guard i < args.count else { throw ConfigError("\(flag) needs a value") }
            return args[i]
        }
        while i < args.count {
            let a = args[i]
            switch a {
            case "-c", "--conf": o.conf = try value(a)
            case "-p", "--prefix": o.prefix = try value(a)
            case "--foreground", "-f": o.foreground = true
            case "-t", "--timeout":
                let v = try value(a)
                guard let t = Int(v), t >= 0 else { throw ConfigError("invalid timeout '\(v)'") }
                o.timeout = t
            case "-h", "--help", "help": o.help = true
            case "--v", "--vv": break
            case "--force", "--yes", "-y": o.flags.insert(a == "-y" ? "--yes" : a)
            case "--lock-timeout":
                let v = try value(a)
                guard let t = Int(v), t >= 0 else { throw ConfigError("invalid lock timeout '\(v)'") }
                o.lockTimeout = t
            default:
                if a.hasPrefix("-") { throw ConfigError("unknown option '\(a)'") }
                if o.command.isEmpty { o.command = a } else { o.positional.append(a) }
            }
            i += 1
        }
        return o
    }

    public static func main(arguments: [String], argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
        if arguments.first == WorkerLaunch.command {
            WorkerLaunch.run(arguments: arguments, argc: argc, argv: argv)
        }
        let o: Options
        do { o = try parse(arguments) } catch { return fail("\(error)") }
        if o.command.isEmpty {
            print(usage)
            return o.help ? 0 : 1
        }
        if o.help {
            guard let h = commandHelp[o.command] else { return fail("unknown command '\(o.command)'") }
            print(h)
            return 0
        }
        switch o.command {
        case "version": print("gateway \(gatewayVersion) (Kong Admin API 3.10 compatible)"); return 0
        case "check": return check(o)
        case "start": return start(o, argc: argc, argv: argv)
        case "stop": return stop(o, graceful: false)
        case "quit": return stop(o, graceful: true)
        case "reload": return reload(o)
        case "restart":
            if let cfg = try? loadConfig(o), let pid = ProcessControl.readPid(cfg.pidFile), ProcessControl.isAlive(pid) {
                let rc = stop(o, graceful: false)
                if rc != 0 { return rc }
            }
            return start(o, argc: argc, argv: argv)
        case "health": return health(o)
        case "config":
            // The running node's file leaves pg_password out: the one given here (file or environment) is used.
            var cfg = try? runningConfig(o)
            if let local = try? loadConfig(o), cfg?.postgres.password.isEmpty == true { cfg?.postgres.password = local.postgres.password }
            return ConfigCommand.run(o.positional, config: cfg)
        case "migrations":
            let cfg: GatewayConfig
            do { cfg = try loadConfig(o) } catch { return fail("\(error)") }
            return MigrationsCommand.run(o.positional, flags: o.flags, lockTimeout: o.lockTimeout, config: cfg)
        default: return fail("unknown command '\(o.command)'; see `gateway --help`")
        }
    }

    static func fail(_ message: String) -> Int32 {
        var s = "Error: \(message)\n"
        s.withUTF8 { p in _ = write(2, p.baseAddress, p.count) }
        return 1
    }

    /// `-c` if given, else conf/gateway.conf when it exists in the current directory.
    static func configPath(_ o: Options) -> String? {
        if let c = o.conf { return c.hasPrefix("/") ? c : ProcessControl.currentDirectory() + "/" + c }
        let def = ProcessControl.currentDirectory() + "/conf/gateway.conf"
        return ProcessControl.fileExists(def) ? def : nil
    }

    static func loadConfig(_ o: Options) throws(ConfigError) -> GatewayConfig {
        var overrides: [String: String] = [:]
        if let p = o.prefix { overrides["prefix"] = p }
        if o.foreground { overrides["daemon"] = "off" }
        return try ConfigLoader.load(path: configPath(o), overrides: overrides)
    }

    /// The configuration of the node running in the prefix (`-p`, else the one `-c`, conf/gateway.conf or the
    /// defaults name), as its master saved it at start or reload (Kong reads `<prefix>/.kong_env`); when no
    /// node runs there, the configuration `loadConfig` finds.
    static func runningConfig(_ o: Options) throws(ConfigError) -> GatewayConfig {
        let base = try loadConfig(o)
        guard let pid = ProcessControl.readPid(base.pidFile), ProcessControl.isAlive(pid),
              ProcessControl.fileExists(base.runningConfigFile) else { return base }
        // A file this binary cannot read (written by another version): the configuration found here.
        return (try? ConfigLoader.load(path: base.runningConfigFile, overrides: ["prefix": base.prefix],
                                       environment: [:])) ?? base
    }

    static func check(_ o: Options) -> Int32 {
        let path = o.positional.first ?? configPath(o)
        do {
            _ = try ConfigLoader.load(path: path)
            print("configuration at \(path ?? "(defaults)") is valid")
            return 0
        } catch {
            return fail("\(error)")
        }
    }

    static func start(_ o: Options, argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
        let config: GatewayConfig
        do { config = try loadConfig(o) } catch { return fail("\(error)") }
        if let pid = ProcessControl.readPid(config.pidFile), ProcessControl.isAlive(pid) {
            return fail("Gateway is already running in \(config.prefix)")
        }
        do {
            try ProcessControl.makeDirectory(config.prefix)
            for d in ["pids", "logs", "run"] { try ProcessControl.makeDirectory(config.resolve(d)) }
        } catch {
            return fail("prefix \(config.prefix) is not usable: \(error)")
        }
        if let p = configPath(o) {
            try? ProcessControl.writeFileAtomically(config.resolve("run/conf_path"), Array(p.utf8))
        } else {
            ProcessControl.remove(config.resolve("run/conf_path"))
        }
        let log: ErrorLog
        do { log = try ErrorLog(path: config.resolve(config.adminErrorLog), level: config.logLevel) } catch {
            return fail("cannot open error log: \(error)")
        }
        log.alsoStderr = !config.daemon
        let master: Master
        do {
            master = try Master(config: config, configPath: configPath(o), overrides: o.prefix.map { ["prefix": $0] } ?? [:],
                                log: log, hooks: Gateway.hooks())
        } catch {
            return fail("\(error)")
        }
        var notify: Int32 = -1
        if config.daemon {
            let pipe: (Int32, Int32)
            do { pipe = try Socket.pipe() } catch { return fail("\(error)") }
            // The read end must block: the parent waits for the master's verdict.
            _ = fcntl(pipe.0, F_SETFL, 0)
            let forked: ProcessControl.ForkResult
            do { forked = try ProcessControl.fork() } catch { return fail("\(error)") }
            if case .parent = forked {
                Socket.close(pipe.1)
                var out: [UInt8] = []
                var buf = [UInt8](repeating: 0, count: 512)
                while true {
                    let n = buf.withUnsafeMutableBytes { read(pipe.0, $0.baseAddress, 512) }
                    if n > 0 { out += buf[0..<n] } else if n == 0 || gw_errno() != EINTR { break }
                }
                let msg = String(decoding: out, as: UTF8.self).trimmingWhitespace()
                if msg == "ok" {
                    print("Gateway started")
                    return 0
                }
                return fail(msg.hasPrefix("error: ") ? String(msg.dropFirst(7)) : "gateway failed to start (see \(config.resolve(config.adminErrorLog)))")
            }
            Socket.close(pipe.0)
            ProcessControl.newSession()
            ProcessControl.redirectStandardStreams(stderrPath: nil)
            notify = pipe.1
        }
        do {
            try ProcessControl.writeFileAtomically(config.pidFile, Array("\(ProcessControl.pid)\n".utf8))
        } catch {
            return fail("cannot write pid file: \(error)")
        }
        gw_set_process_title(argc, argv, "gateway: master process")
        master.run(notifyFD: notify)
    }

    static func runningPid(_ o: Options) -> (GatewayConfig, Int32)? {
        guard let cfg = try? runningConfig(o) else { return nil }
        guard let pid = ProcessControl.readPid(cfg.pidFile), ProcessControl.isAlive(pid) else { return nil }
        return (cfg, pid)
    }

    static func waitGone(_ pid: Int32, seconds: Int) -> Bool {
        let deadline = Clock.monotonicMillis() + UInt64(seconds) * 1000
        while ProcessControl.isAlive(pid) {
            if Clock.monotonicMillis() > deadline { return false }
            ProcessControl.sleepMillis(20)
        }
        return true
    }

    static func stop(_ o: Options, graceful: Bool) -> Int32 {
        let cfg: GatewayConfig
        do { cfg = try runningConfig(o) } catch { return fail("\(error)") }
        guard let pid = ProcessControl.readPid(cfg.pidFile), ProcessControl.isAlive(pid) else {
            return fail("Gateway is not running in \(cfg.prefix)")
        }
        if graceful {
            ProcessControl.signal(pid, SIGQUIT)
            // Workers bound their drain by quit_timeout themselves; one more second lets them exit
            // on their own before the forced stop.
            if waitGone(pid, seconds: o.timeout ?? (cfg.quitTimeout + 1)) { print("Gateway stopped (gracefully)"); return 0 }
            ProcessControl.signal(pid, SIGTERM)
            if waitGone(pid, seconds: 10) { print("Timeout, Gateway stopped forcefully"); return 0 }
            return fail("the gateway (pid \(pid)) did not stop")
        }
        ProcessControl.signal(pid, SIGTERM)
        if waitGone(pid, seconds: 10) { print("Gateway stopped"); return 0 }
        return fail("the gateway (pid \(pid)) did not stop within 10 s")
    }

    static func reload(_ o: Options) -> Int32 {
        let cfg: GatewayConfig
        do { cfg = try runningConfig(o) } catch { return fail("\(error)") }
        guard let pid = ProcessControl.readPid(cfg.pidFile), ProcessControl.isAlive(pid) else {
            return fail("Gateway is not running in \(cfg.prefix)")
        }
        // Only `-c` names a new file (validated by runningConfig's loadConfig); otherwise the master re-reads
        // the one it runs with, whatever the current directory holds.
        if o.conf != nil, let p = configPath(o) {
            try? ProcessControl.writeFileAtomically(cfg.resolve("run/conf_path"), Array(p.utf8))
        }
        ProcessControl.signal(pid, SIGHUP)
        print("Gateway reloaded")
        return 0
    }

    static func health(_ o: Options) -> Int32 {
        let cfg: GatewayConfig
        do { cfg = try runningConfig(o) } catch { return fail("\(error)") }
        guard let pid = ProcessControl.readPid(cfg.pidFile), ProcessControl.isAlive(pid) else {
            print("master.......not running")
            return fail("Gateway is not running at \(cfg.prefix)")
        }
        print("master.......running (pid \(pid))")
        let text = ProcessControl.readFile(cfg.resolve("pids/workers")).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let pids = text.split(separator: "\n").compactMap { Int32($0) }
        var ok = !pids.isEmpty
        for (i, w) in pids.enumerated() {
            let alive = ProcessControl.isAlive(w)
            ok = ok && alive
            print("worker \(i).....\(alive ? "running" : "not running") (pid \(w))")
        }
        if pids.count < cfg.workerProcesses { ok = false }
        if !ok { return fail("some workers are not running at \(cfg.prefix)") }
        print("Gateway is healthy at \(cfg.prefix)")
        return 0
    }
}
