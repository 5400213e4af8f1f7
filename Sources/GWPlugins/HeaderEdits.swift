// Header changes plugins ask for, applied by the data path when it writes a head (upstream request
// or client response). Names and values live in one reusable byte buffer (GWHTTP.HTTPHeaders), so a
// request that edits headers allocates nothing once the buffers have grown.
import GWHTTP

public struct HeaderEdits {
    /// What one entry does to the head being written.
    public enum Op: UInt8 {
        /// Drop every header of that name, then add this one (Kong's `set_header`).
        case set
        /// Add this one, keep the others (Kong's `add_header`).
        case add
        /// Drop every header of that name (Kong's `clear_header`).
        case remove
    }
    /// Entries in order; `ops[i]` is the operation of `list` field i (a remove has an empty value).
    public private(set) var list = HTTPHeaders()
    public private(set) var ops: [Op] = []

    public init() { ops.reserveCapacity(16) }

    public var isEmpty: Bool { ops.isEmpty }
    public var count: Int { ops.count }

    public mutating func removeAll() {
        list.removeAll()
        if !ops.isEmpty { ops.removeAll(keepingCapacity: true) }
    }

    /// Replaces an earlier edit of the same name, so the last word on a name wins (as with Kong's PDK).
    public mutating func set(_ name: String, _ value: String) { dropEdits(name); append(.set, name, value) }
    public mutating func add(_ name: String, _ value: String) { append(.add, name, value) }
    public mutating func remove(_ name: String) { dropEdits(name); append(.remove, name, "") }
    /// `set` / `add` with a value given as bytes (no String made per request).
    public mutating func set<V: Collection>(_ name: String, bytes value: V) where V.Element == UInt8 {
        dropEdits(name); list.append(nameBytes: name.utf8, valueBytes: value); ops.append(.set)
    }
    public mutating func add<V: Collection>(_ name: String, bytes value: V) where V.Element == UInt8 {
        list.append(nameBytes: name.utf8, valueBytes: value); ops.append(.add)
    }

    public mutating func set(_ name: String, _ value: Int) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let n = withUnsafeMutableBytes(of: &digits) { raw -> Int in
            var v = value.magnitude, i = raw.count
            repeat { i -= 1; raw[i] = UInt8(48 + v % 10); v /= 10 } while v > 0
            if value < 0 { i -= 1; raw[i] = 45 }
            let len = raw.count - i
            // move to the front so the caller's slice starts at 0
            for k in 0 ..< len { raw[k] = raw[i + k] }
            return len
        }
        dropEdits(name)
        withUnsafeBytes(of: &digits) { raw in
            list.append(name: name, valueBytes: UnsafeRawBufferPointer(rebasing: raw[0 ..< n]))
        }
        ops.append(.set)
    }

    private mutating func append(_ op: Op, _ name: String, _ value: String) {
        list.append(name: name, value: value)
        ops.append(op)
    }

    /// Removes earlier set/remove entries for `name` (add entries stay: they accumulate).
    private mutating func dropEdits(_ name: String) {
        guard !ops.isEmpty else { return }
        var keep = HTTPHeaders(), keptOps: [Op] = []
        var changed = false
        for i in 0 ..< ops.count {
            if ops[i] != .add && list.nameEquals(at: i, name) { changed = true; continue }
            keep.append(nameBytes: list.nameBytes(at: i), valueBytes: list.valueBytes(at: i))
            keptOps.append(ops[i])
        }
        if changed { list = keep; ops = keptOps }
    }

    /// True when a header named like field `i` of `headers` must be left out of the written head
    /// (a set or remove entry has its name). Case-insensitive, no allocation.
    public func drops(_ headers: borrowing HTTPHeaders, _ i: Int) -> Bool {
        var k = 0
        while k < ops.count {
            if ops[k] != .add && headers.nameBytes(at: i).count == list.nameBytes(at: k).count {
                let match = list.nameBytes(at: k).withUnsafeBufferPointer { headers.nameEquals(at: i, $0) }
                if match { return true }
            }
            k += 1
        }
        return false
    }

    /// The last value set or added for `name`, if any (tests, and plugins reading their own edits).
    public func value(of name: String) -> String? {
        var r: String? = nil
        for i in 0 ..< ops.count where ops[i] != .remove && list.nameEquals(at: i, name) { r = list.value(at: i) }
        return r
    }

    /// True when `name` is removed (and not set again).
    public func removes(_ name: String) -> Bool {
        for i in 0 ..< ops.count where list.nameEquals(at: i, name) { return ops[i] == .remove }
        return false
    }

    /// The values the written head will carry for `name` (names compared as nginx does: case-insensitive,
    /// '_' ≡ '-'): those of `original` unless an edit set or removed the name, with the edits applied in
    /// order (set: only this value, remove: none, add: one more). Calls `body` per value, in order, until
    /// it returns false; returns how many values were visited. No allocation.
    @discardableResult
    public func forEachValue<N: Collection>(of name: N, original: borrowing HTTPHeaders,
                                            _ body: (ArraySlice<UInt8>) -> Bool) -> Int where N.Element == UInt8 {
        var last = -1
        for k in 0 ..< ops.count where ops[k] != .add && headerNameMatches(list.nameBytes(at: k), name) { last = k }
        var n = 0
        if last < 0 {
            for i in 0 ..< original.count where headerNameMatches(original.nameBytes(at: i), name) {
                n += 1
                if !body(original.valueBytes(at: i)) { return n }
            }
        }
        var k = max(last, 0)
        while k < ops.count {
            if ops[k] != .remove && headerNameMatches(list.nameBytes(at: k), name) {
                n += 1
                if !body(list.valueBytes(at: k)) { return n }
            }
            k += 1
        }
        return n
    }
}
