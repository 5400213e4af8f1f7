// Runs GWPluginStateProbe (built next to the test binary) as a separate process with the segment's
// memfd on fd 3: posix_spawn, not fork, since Swift Testing runs tests on several threads.
#if canImport(Glibc)
import Glibc
#endif
import GWSystem

struct Probe {
    let pid: pid_t
    let out: Int32

    static var path: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var dir = exe
        while let last = dir.last, last != "/" { dir.removeLast() }
        return dir + "GWPluginStateProbe"
    }

    /// Starts the probe with `args`; its stdout is readable from `out`.
    static func start(_ segment: SharedMemory, _ args: [String]) -> Probe {
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, segment.fd, 3)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        let argv = ([path] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        posix_spawn_file_actions_destroy(&actions)
        close(fds[1])
        precondition(rc == 0, "posix_spawn \(path): \(rc)")
        return Probe(pid: pid, out: fds[0])
    }

    /// Reads one line of output (blocks).
    func line() -> String {
        var bytes: [UInt8] = []
        var c: UInt8 = 0
        while read(out, &c, 1) == 1 {
            if c == 10 { break }
            bytes.append(c)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Waits for the exit; returns the exit status (or 128 + signal).
    @discardableResult
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        close(out)
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }

    /// Runs to the end and returns its first output line.
    static func run(_ segment: SharedMemory, _ args: [String]) -> String {
        let p = start(segment, args)
        let l = p.line()
        p.wait()
        return l
    }
}

/// A fresh segment with a plugin area: `countersSize` bytes of counters, `cacheSize` of cache.
func makeState(countersSize: Int = 64 << 10, cacheSize: Int = 256 << 10, maxEntrySize: Int = 64 << 10,
               clusterSize: Int = 0, now: Int64 = 0) throws -> PluginStateFixture {
    let shm = try SharedMemory(peerAreaSize: 4096,
                               pluginAreaSize: PluginState.areaSize(countersSize: countersSize, cacheSize: cacheSize,
                                                                    clusterSize: clusterSize))
    let st = try PluginState(formatting: shm, countersSize: countersSize, cacheSize: cacheSize, maxEntrySize: maxEntrySize,
                             clusterSize: clusterSize, now: now)
    return PluginStateFixture(shm: shm, state: st)
}

import GWPluginState

struct PluginStateFixture {
    let shm: SharedMemory
    let state: PluginState
}
