// Candidate lists of one host bucket of the router: a byte trie over prefix paths whose nodes list the
// ranks (router positions) of the entries whose prefix ends there, plus the regex-path and path-less
// entries as plain lists. Every list is in ascending rank order, so a scan can stop at the first match.
//
// Layout: flat arrays in compressed-row form (a node's edges and ranks are contiguous ranges of shared
// arrays), built in two passes by `PathIndex.Builder`. No per-node allocation: building the index of
// 10 000 routes is a few hundred thousand integer writes, and freeing it is a handful of frees.
// Invariant: immutable once built; node 0 is the root (the empty prefix).

import Synchronization

struct PathIndex {
    /// Node n's edges are `edgeKeys[edgeStart[n] ..< edgeStart[n + 1]]` (same range of `edgeTargets`).
    let edgeStart: [Int32]
    let edgeKeys: [UInt8]
    let edgeTargets: [Int32]
    /// Node n's ranks are `ranks[rankStart[n] ..< rankStart[n + 1]]`, ascending.
    let rankStart: [Int32]
    let ranks: [Int32]
    let regexRanks: [Int32]
    let pathlessRanks: [Int32]

    /// True when no entry is indexed at all.
    var isEmpty: Bool { ranks.isEmpty && regexRanks.isEmpty && pathlessRanks.isEmpty }

    private init(edgeStart: [Int32], edgeKeys: [UInt8], edgeTargets: [Int32], rankStart: [Int32], ranks: [Int32],
                 regexRanks: [Int32], pathlessRanks: [Int32]) {
        self.edgeStart = edgeStart; self.edgeKeys = edgeKeys; self.edgeTargets = edgeTargets
        self.rankStart = rankStart; self.ranks = ranks; self.regexRanks = regexRanks; self.pathlessRanks = pathlessRanks
    }

    /// The child of node `n` along byte `b` (small fan-out: a linear scan of contiguous keys beats hashing).
    @inline(__always) func child(_ n: Int, _ b: UInt8) -> Int? {
        var i = Int(edgeStart[n])
        let end = Int(edgeStart[n + 1])
        while i < end {
            if edgeKeys[i] == b { return Int(edgeTargets[i]) }
            i += 1
        }
        return nil
    }

    /// Collects insertions (rank lists per node, as linked lists in flat arrays) over a `TrieShape`,
    /// then lays them out contiguously.
    struct Builder {
        let shape: TrieShape
        private var rankHead: [Int32]
        private var rankTail: [Int32]
        private var rankValue: [Int32] = []
        private var rankNext: [Int32] = []
        private var regex: [Int32] = []
        private var pathless: [Int32] = []

        /// A builder over `shape` (carried over from the previous generation's router, or new).
        init(shape: TrieShape = TrieShape()) {
            self.shape = shape
            rankHead = [Int32](repeating: -1, count: shape.nodeCount)
            rankTail = rankHead
        }

        /// Adds `entry` at `rank`; ranks must be inserted in ascending order.
        mutating func insert(rank: Int32, entry e: Entry) {
            switch e.pathKind {
            case 0: pathless.append(rank)
            case 2: regex.append(rank)
            default: append(rank, node: Int(shape.node(for: e)))
            }
        }

        /// Adds a prefix entry at `rank` whose node in `shape` is known (`TrieShape.node(for:)`).
        mutating func append(_ rank: Int32, node n: Int) {
            if rankHead.count < shape.nodeCount {
                let more = shape.nodeCount - rankHead.count
                rankHead.append(contentsOf: repeatElement(-1, count: more))
                rankTail.append(contentsOf: repeatElement(-1, count: more))
            }
            let k = Int32(rankValue.count)
            rankValue.append(rank)
            rankNext.append(-1)
            if rankTail[n] >= 0 { rankNext[Int(rankTail[n])] = k } else { rankHead[n] = k }
            rankTail[n] = k
        }

        mutating func appendPathless(_ rank: Int32) { pathless.append(rank) }
        mutating func appendRegex(_ rank: Int32) { regex.append(rank) }

        func build() -> PathIndex {
            let nodes = shape.nodeCount
            var edgeStart = [Int32](repeating: 0, count: nodes + 1)
            var edgeKeys = [UInt8](repeating: 0, count: shape.edgeCount)
            var edgeTargets = [Int32](repeating: 0, count: shape.edgeCount)
            var rankStart = [Int32](repeating: 0, count: nodes + 1)
            var ranks = [Int32](repeating: 0, count: rankValue.count)
            var e = 0, r = 0
            for n in 0..<nodes {
                edgeStart[n] = Int32(e)
                var c = shape.firstChild[n]
                while c >= 0 {
                    edgeKeys[e] = shape.key[Int(c)]
                    edgeTargets[e] = c
                    e += 1
                    c = shape.nextSibling[Int(c)]
                }
                rankStart[n] = Int32(r)
                if n < rankHead.count {
                    var k = rankHead[n]
                    while k >= 0 {
                        ranks[r] = rankValue[Int(k)]
                        r += 1
                        k = rankNext[Int(k)]
                    }
                }
            }
            edgeStart[nodes] = Int32(e)
            rankStart[nodes] = Int32(r)
            return PathIndex(edgeStart: edgeStart, edgeKeys: edgeKeys, edgeTargets: edgeTargets, rankStart: rankStart,
                             ranks: ranks, regexRanks: regex, pathlessRanks: pathless)
        }
    }
}

/// The nodes and edges of one bucket's prefix trie, without ranks. Carried from one generation's router
/// build to the next (a route path that stays keeps its node, remembered in its `Entry`), so an unchanged
/// entry costs one rank append instead of a byte-by-byte walk. Nodes are only added: a path that left
/// the configuration leaves a node with no ranks, which matching walks through harmlessly.
/// Only router builds use it (one at a time, on the worker's thread); matching uses `PathIndex`.
final class TrieShape {
    /// Distinguishes shapes in `Entry.trieNodes` (never reused: ids only grow).
    let id: Int
    private(set) var firstChild: [Int32] = [-1]
    private(set) var nextSibling: [Int32] = [-1]
    private(set) var key: [UInt8] = [0]
    private(set) var edgeCount = 0
    var nodeCount: Int { key.count }

    private static let lastID = Atomic<Int>(0)

    init() {
        id = TrieShape.lastID.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// The node where `e`'s prefix ends, created if needed, remembered in `e` for the next build.
    func node(for e: Entry) -> Int32 {
        for c in e.trieNodes where c.shape == id { return c.node }
        var n = 0
        for b in e.prefixBytes {
            var c = firstChild[n]
            while c >= 0 && key[Int(c)] != b { c = nextSibling[Int(c)] }
            if c < 0 {
                c = Int32(key.count)
                key.append(b)
                firstChild.append(-1)
                nextSibling.append(firstChild[n])
                firstChild[n] = c
                edgeCount += 1
            }
            n = Int(c)
        }
        if e.trieNodes.count >= 4 { e.trieNodes.removeFirst() }
        e.trieNodes.append((id, Int32(n)))
        return Int32(n)
    }
}
