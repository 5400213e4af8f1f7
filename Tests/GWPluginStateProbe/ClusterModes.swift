// GWPluginStateProbe's modes on the cluster counter table (rate-limiting policy cluster):
//   cluster-consume N LIMIT START END NOW   N consume() calls on one key; prints how many were allowed
//   hold-cluster                            takes the table's lock, prints "held", waits to be killed
#if canImport(Glibc)
import Glibc
#endif
import GWPluginState

func clusterMode(_ args: [String], _ state: PluginState) -> Bool {
    guard args.count > 1, let t = state.cluster else { return false }
    if args[1] == "hold-cluster" {
        t._lockAndAbandon()
        say("held")
        while true { pause() }
    }
    guard args[1] == "cluster-consume" else { return false }
    let n = Int(args[2])!, limit = Int64(args[3])!, start = Int64(args[4])!, end = Int64(args[5])!, now = Int64(args[6])!
    let keys = [Hash128(hi: 7, lo: 9)], limits = [limit], starts = [start], ends = [end]
    let service = Array("00000000-0000-0000-0000-000000000000".utf8), ident = Array("probe".utf8)
    var usage: [Int64] = [0]
    var allowed = 0
    for _ in 0..<n {
        let r = keys.withUnsafeBufferPointer { k in
            limits.withUnsafeBufferPointer { l in
                starts.withUnsafeBufferPointer { s in
                    ends.withUnsafeBufferPointer { e in
                        service.withUnsafeBufferPointer { sv in
                            ident.withUnsafeBufferPointer { id in
                                usage.withUnsafeMutableBufferPointer { u in
                                    t.consume(keys: k, limits: l, windowStarts: s, windowEnds: e, service: sv, route: sv,
                                              identifier: id, identifierHash: (1, 2), now: now, usagesOut: u)
                                }
                            }
                        }
                    }
                }
            }
        }
        if r == .allowed { allowed += 1 }
    }
    say("\(allowed)")
    return true
}
