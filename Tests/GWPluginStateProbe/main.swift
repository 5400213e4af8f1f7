// GWPluginStateProbe: a child process for GWPluginStateTests. It attaches the test's shared segment
// (memfd on fd 3), does one job on the plugin tables and writes its answer to stdout.
//   consume N LIMIT WINDOW_END NOW    N consume() calls on one key; prints how many were allowed
//   hold-counters | hold-cache       takes the table's lock, prints "held", then waits to be killed
//   cache-get SEED                   prints the blob length and checksum stored under key SEED, or "miss"
//   cache-put SEED LEN               stores a LEN-byte blob derived from SEED under key SEED
//   cluster-consume N LIMIT START END NOW   the same on the cluster counter table (ClusterModes.swift)
//   bench                            (no fd 3) ns per consume()/lookup() on a fresh 12m + 128m area
#if canImport(Glibc)
import Glibc
#endif
import CGWShims
import GWPluginState
import GWSystem

func say(_ s: String) {
    var s = s + "\n"
    s.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
}

let args = CommandLine.arguments
let state: PluginState
do {
    if args.count > 1 && args[1] == "bench" {
        // Its own segment: `GWPluginStateProbe bench` measures ns per call (build with -c release).
        let shm = try SharedMemory(peerAreaSize: 4096, pluginAreaSize: PluginState.areaSize(countersSize: 12 << 20, cacheSize: 128 << 20))
        state = try PluginState(formatting: shm, countersSize: 12 << 20, cacheSize: 128 << 20, maxEntrySize: 1 << 20)
        bench(state)
        exit(0)
    }
    state = try PluginState(attaching: try SharedMemory(attaching: 3))
} catch {
    say("error \(error)")
    exit(2)
}
switch args.count > 1 ? args[1] : "" {
case "consume":
    let n = Int(args[2])!, limit = Int64(args[3])!, end = Int64(args[4])!, now = Int64(args[5])!
    var key = RateLimitKey(hi: 7, lo: 9), lim = limit, wend = end, usage: Int64 = 0
    var allowed = 0
    for _ in 0..<n {
        let r = withUnsafePointer(to: &key) { k in
            withUnsafePointer(to: &lim) { l in
                withUnsafePointer(to: &wend) { w in
                    withUnsafeMutablePointer(to: &usage) { u in
                        state.counters.consume(keys: UnsafeBufferPointer(start: k, count: 1),
                                               limits: UnsafeBufferPointer(start: l, count: 1),
                                               windowEnds: UnsafeBufferPointer(start: w, count: 1), now: now,
                                               usagesOut: UnsafeMutableBufferPointer(start: u, count: 1))
                    }
                }
            }
        }
        if r == .allowed { allowed += 1 }
    }
    say("\(allowed)")
case "hold-counters":
    state.counters._lockAndAbandon()
    say("held")
    while true { pause() }
default:
    guard cacheMode(args, state) || clusterMode(args, state) else {
        say("unknown mode")
        exit(2)
    }
}
exit(0)

