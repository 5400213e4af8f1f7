import GWConfig
import GWSystem

/// The proxy listening sockets, made by the master and kept open for its whole life: per listen
/// address a group of SO_REUSEPORT sockets, at least one per worker. Worker i of M accepts on the
/// sockets j with j % M == i. The group only grows (a reload to fewer workers reassigns sockets
/// instead of closing them), so no connection waiting in an accept queue is ever reset by a
/// reload; sockets are closed only when their address leaves the configuration (after the old
/// workers drained) or at exit.
final class ListenerSet {
    struct Group {
        var spec: ListenSpec
        var fds: [Int32]
    }
    private(set) var groups: [Group] = []

    /// Makes sure every address of `specs` has at least `count` sockets. Returns the groups that
    /// are no longer configured (the caller closes them once no worker uses them).
    func ensure(specs: [ListenSpec], count: Int) throws -> [Group] {
        var next: [Group] = []
        var made: [Int32] = []
        for spec in specs {
            var g = groups.first(where: { $0.spec.address == spec.address }) ?? Group(spec: spec, fds: [])
            while g.fds.count < count {
                do {
                    let fd = try Socket.listen(on: spec.address, reusePort: true, backlog: spec.backlog)
                    g.fds.append(fd)
                    made.append(fd)
                } catch {
                    // Roll back every socket made by this call (new groups and growth of existing
                    // ones); the running groups stay as they were.
                    made.forEach(Socket.close)
                    throw error
                }
            }
            next.append(g)
        }
        let removed = groups.filter { g in !next.contains(where: { $0.spec.address == g.spec.address }) }
        groups = next
        return removed
    }

    /// The sockets worker `index` of `count` accepts on, with their listen port.
    func sockets(forWorker index: Int, of count: Int) -> [(fd: Int32, port: Int)] {
        var out: [(Int32, Int)] = []
        for g in groups {
            for (j, fd) in g.fds.enumerated() where j % count == index { out.append((fd, g.spec.port)) }
        }
        return out
    }

    var allFDs: [Int32] { groups.flatMap(\.fds) }

    func closeAll() {
        for g in groups { g.fds.forEach(Socket.close) }
        groups = []
    }
}
