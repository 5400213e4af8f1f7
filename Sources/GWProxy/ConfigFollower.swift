// A worker's view of the master's publications (GWStore/PublishedConfig.swift): it holds the
// configuration of the last generation it applied and moves it forward to a newer one by applying
// the deltas in between, or, when it has nothing yet or a delta is gone, by reading the full
// document and the deltas after it. Deltas beyond the target generation are never read: a file of
// that name may be left from an earlier master run (the master deletes those, but not atomically
// with starting).
import GWJSON
import GWStore
import GWSystem

struct ConfigFollower {
    let fullPath: String
    private(set) var current: PublishedConfig?

    init(fullPath: String) { self.fullPath = fullPath }

    /// What `advance` did, for the log.
    struct Step {
        var deltas = 0
        var fullBytes = 0
        /// What the deltas did to the routes since the previous `current` (nil: unknown, compare everything).
        var routeChanges: RouteChanges? = nil
        /// The generation `routeChanges` is relative to.
        var fromGeneration: UInt64 = 0
    }

    /// Moves to `target` (or the newest generation reachable up to it). Nil when nothing newer could be read.
    mutating func advance(to target: UInt64, step: inout Step) throws(SnapshotError) -> PublishedConfig? {
        if var c = current, c.generation < target {
            current = nil        // `c` the only owner while deltas apply: arrays change in place, no copy
            step.routeChanges = RouteChanges(previousCount: c.snapshot.routes.count, positions: [])
            step.fromGeneration = c.generation
            if followDeltas(&c, to: target, step: &step), c.generation == target {
                current = c
                return c
            }
        }
        step = Step()
        // From the full document; tried twice in case the master replaced it and removed the deltas
        // this one needed while they were being read (that needs two compactions during one read).
        var lastError: SnapshotError? = nil
        for _ in 0..<2 {
            guard let bytes = ProcessControl.readFile(fullPath) else {
                lastError = SnapshotError("cannot read \(fullPath)")
                continue
            }
            step.fullBytes = bytes.count
            var c: PublishedConfig
            do { c = try PublishedConfig.decode(bytes: bytes) } catch { throw SnapshotError("\(fullPath): \(error)") }
            c.buildIndexes()
            if c.generation < target { _ = followDeltas(&c, to: target, step: &step) }
            step.routeChanges = nil
            // Short of the target only if a delta vanished; progress is still taken (the caller logs it).
            if c.generation >= target || c.generation > (current?.generation ?? 0) {
                current = c
                return c
            }
            lastError = SnapshotError("generation \(target) not reachable from the full document of generation \(c.generation)")
        }
        throw lastError ?? SnapshotError("generation \(target) not reachable")
    }

    /// Applies deltas generation+1 … target while they exist; false when one was missing or unusable.
    private func followDeltas(_ c: inout PublishedConfig, to target: UInt64, step: inout Step) -> Bool {
        while c.generation < target {
            let path = PublishedConfig.deltaPath(fullPath: fullPath, generation: c.generation + 1)
            guard let bytes = ProcessControl.readFile(path),
                  let json = try? JSON.parse(bytes),
                  let d = try? ConfigDelta.decode(json: json),
                  d.generation == c.generation + 1 else { return false }
            do {
                let ch = try c.apply(d)
                // Changes of consecutive deltas compose simply while nothing is removed (positions stay put);
                // a removal is only kept when it is the first and only delta applied.
                if let ch, let acc = step.routeChanges, acc.removed.isEmpty,
                   ch.removed.isEmpty || (step.deltas == 0 && acc.positions.isEmpty) {
                    step.routeChanges = RouteChanges(previousCount: acc.previousCount,
                                                     positions: acc.positions.union(ch.positions), removed: ch.removed)
                } else {
                    step.routeChanges = nil
                }
            } catch { return false }
            step.deltas += 1
        }
        return true
    }
}
