// Candidate lists of one host bucket of the router: a byte trie over prefix paths whose nodes list the
// ranks (router positions) of the entries whose prefix ends there, plus the regex-path and path-less
// entries as plain lists. Every list is in ascending rank order, so a scan can stop at the first match.
//
// Layout: flat arrays in compressed-row form (a node's edges and ranks are contiguous ranges of shared
// arrays), built in two passes by `PathIndex.Builder`. No per-node allocation: building the index of
// 10 000 routes is a few hundred thousand integer writes, and freeing it is a handful of frees.
// Invariant: immutable once built; node 0 is the root (the empty prefix).

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

    init() { self = Builder().build() }

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

    /// Collects insertions as linked lists in flat arrays, then lays them out contiguously.
    struct Builder {
        private var firstChild: [Int32] = [-1]
        private var nextSibling: [Int32] = [-1]
        private var key: [UInt8] = [0]
        private var rankHead: [Int32] = [-1]
        private var rankTail: [Int32] = [-1]
        private var rankValue: [Int32] = []
        private var rankNext: [Int32] = []
        private var edges = 0
        private var regex: [Int32] = []
        private var pathless: [Int32] = []

        /// Adds `entry` at `rank`; ranks must be inserted in ascending order.
        mutating func insert(rank: Int32, entry e: Entry) {
            switch e.pathKind {
            case 0: pathless.append(rank)
            case 2: regex.append(rank)
            default:
                var n = 0
                for b in e.prefixBytes {
                    var c = firstChild[n]
                    while c >= 0 && key[Int(c)] != b { c = nextSibling[Int(c)] }
                    if c < 0 {
                        c = Int32(key.count)
                        key.append(b)
                        firstChild.append(-1)
                        nextSibling.append(firstChild[n])
                        rankHead.append(-1)
                        rankTail.append(-1)
                        firstChild[n] = c
                        edges += 1
                    }
                    n = Int(c)
                }
                let k = Int32(rankValue.count)
                rankValue.append(rank)
                rankNext.append(-1)
                if rankTail[n] >= 0 { rankNext[Int(rankTail[n])] = k } else { rankHead[n] = k }
                rankTail[n] = k
            }
        }

        func build() -> PathIndex {
            let nodes = key.count
            var edgeStart = [Int32](repeating: 0, count: nodes + 1)
            var edgeKeys = [UInt8](repeating: 0, count: edges)
            var edgeTargets = [Int32](repeating: 0, count: edges)
            var rankStart = [Int32](repeating: 0, count: nodes + 1)
            var ranks = [Int32](repeating: 0, count: rankValue.count)
            var e = 0, r = 0
            for n in 0..<nodes {
                edgeStart[n] = Int32(e)
                var c = firstChild[n]
                while c >= 0 {
                    edgeKeys[e] = key[Int(c)]
                    edgeTargets[e] = c
                    e += 1
                    c = nextSibling[Int(c)]
                }
                rankStart[n] = Int32(r)
                var k = rankHead[n]
                while k >= 0 {
                    ranks[r] = rankValue[Int(k)]
                    r += 1
                    k = rankNext[Int(k)]
                }
            }
            edgeStart[nodes] = Int32(e)
            rankStart[nodes] = Int32(r)
            return PathIndex(edgeStart: edgeStart, edgeKeys: edgeKeys, edgeTargets: edgeTargets, rankStart: rankStart,
                             ranks: ranks, regexRanks: regex, pathlessRanks: pathless)
        }
    }
}
