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
        /// Superseded by a later set/remove of the same name: ignored (kept in place so that replacing
        /// an edit never moves or copies the buffers).
        case dead

        /// The entry writes a header line.
        @inline(__always) public var writes: Bool { self == .set || self == .add }
        /// The entry hides the original headers of its name.
        @inline(__always) public var hides: Bool { self == .set || self == .remove }
    }
    /// Entries in order; `ops[i]` is the operation of `list` field i (a remove has an empty value).
    public private(set) var list = HTTPHeaders()
    public private(set) var ops: [Op] = []

    public init() { ops.reserveCapacity(16) }

    /// One bit per hiding entry's name (length and first/last letters, case-folded, '_' as '-'): a name
    /// whose bit is clear has no set/remove entry, so `drops` and replacing edits skip the scan.
    public private(set) var hiddenNames: UInt64 = 0

    public var isEmpty: Bool { ops.isEmpty }
    public var count: Int { ops.count }

    public mutating func removeAll() {
        list.removeAll()
        if !ops.isEmpty { ops.removeAll(keepingCapacity: true) }
        hiddenNames = 0
    }

    @inline(__always) static func bit(_ name: UnsafeRawBufferPointer) -> UInt64 {
        let n = name.count
        guard n > 0 else { return 1 }
        let h = n &* 31 &+ Int(headerNameByte(name[0])) &* 7 &+ Int(headerNameByte(name[n - 1]))
        return 1 << UInt64(h & 63)
    }

    /// The bit of "host" (a plugin setting the upstream Host: the request writer puts it in its Host line).
    public static let hostBit: UInt64 = { var h: StaticString = "host"; return withBytes(h) { bit($0) } }()

    /// True when a set or remove entry names `name` (case-insensitive).
    public func hides(_ name: UnsafeRawBufferPointer) -> Bool {
        let nb = UnsafeBufferPointer(start: name.baseAddress?.assumingMemoryBound(to: UInt8.self), count: name.count)
        for k in 0 ..< ops.count where ops[k].hides && Int(list.fields[k].nameLength) == nb.count && list.nameEquals(at: k, nb) {
            return true
        }
        return false
    }

    @inline(__always) public func mayHide(_ name: UnsafeRawBufferPointer) -> Bool { hiddenNames & HeaderEdits.bit(name) != 0 }

    // MARK: the one core every entry point goes through (raw bytes: no String, no generics)

    private mutating func edit(_ op: Op, _ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        if op.hides {
            let b = HeaderEdits.bit(name)
            if hiddenNames & b != 0 { dropEdits(name) }
            hiddenNames |= b
        }
        list.append(rawName: name, rawValue: value)
        ops.append(op)
    }

    /// Marks earlier set/remove entries for `name` dead (add entries stay: they accumulate). In place.
    private mutating func dropEdits(_ name: UnsafeRawBufferPointer) {
        let nb = UnsafeBufferPointer(start: name.baseAddress?.assumingMemoryBound(to: UInt8.self), count: name.count)
        for k in 0 ..< ops.count where ops[k].hides && Int(list.fields[k].nameLength) == nb.count && list.nameEquals(at: k, nb) {
            ops[k] = .dead
        }
    }

    @inline(__always) private static func withBytes<R>(_ s: StaticString, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        body(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Formats `value` in decimal and calls `body` with its digits (no allocation).
    @inline(__always) private static func withDecimal<R>(_ value: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes ≥ 20 digits and a sign
        return withUnsafeMutableBytes(of: &digits) { raw -> R in
            var v = value.magnitude, i = raw.count
            repeat { i -= 1; raw[i] = UInt8(48 + v % 10); v /= 10 } while v > 0
            if value < 0 { i -= 1; raw[i] = 45 }
            return body(UnsafeRawBufferPointer(rebasing: raw[i...]))
        }
    }

    private static let empty: StaticString = ""

    // MARK: entry points

    /// Replaces an earlier edit of the same name, so the last word on a name wins (as with Kong's PDK).
    @_disfavoredOverload
    public mutating func set(_ name: String, _ value: String) {
        var n = name, v = value
        n.withUTF8 { nb in v.withUTF8 { vb in edit(.set, UnsafeRawBufferPointer(nb), UnsafeRawBufferPointer(vb)) } }
    }
    public mutating func add(_ name: String, _ value: String) {
        var n = name, v = value
        n.withUTF8 { nb in v.withUTF8 { vb in edit(.add, UnsafeRawBufferPointer(nb), UnsafeRawBufferPointer(vb)) } }
    }
    @_disfavoredOverload
    public mutating func remove(_ name: String) {
        var n = name
        n.withUTF8 { nb in HeaderEdits.withBytes(HeaderEdits.empty) { edit(.remove, UnsafeRawBufferPointer(nb), $0) } }
    }
    @_disfavoredOverload
    public mutating func set(_ name: String, _ value: Int) {
        var n = name
        n.withUTF8 { nb in HeaderEdits.withDecimal(value) { edit(.set, UnsafeRawBufferPointer(nb), $0) } }
    }
    /// `set` / `add` with a value given as bytes (no String made per request).
    @_disfavoredOverload
    public mutating func set<V: Collection>(_ name: String, bytes value: V) where V.Element == UInt8 {
        var n = name
        n.withUTF8 { nb in withContiguous(value) { edit(.set, UnsafeRawBufferPointer(nb), $0) } }
    }
    public mutating func add<V: Collection>(_ name: String, bytes value: V) where V.Element == UInt8 {
        var n = name
        n.withUTF8 { nb in withContiguous(value) { edit(.add, UnsafeRawBufferPointer(nb), $0) } }
    }

    // Literal names (the headers the gateway's own plugins write): no String at all.
    public mutating func set(_ name: StaticString, _ value: Int) {
        HeaderEdits.withBytes(name) { nb in HeaderEdits.withDecimal(value) { edit(.set, nb, $0) } }
    }
    public mutating func set(_ name: StaticString, bytes value: [UInt8]) {
        HeaderEdits.withBytes(name) { nb in value.withUnsafeBytes { edit(.set, nb, $0) } }
    }
    public mutating func set(_ name: StaticString, _ value: StaticString) {
        HeaderEdits.withBytes(name) { nb in HeaderEdits.withBytes(value) { edit(.set, nb, $0) } }
    }
    public mutating func remove(_ name: StaticString) {
        HeaderEdits.withBytes(name) { nb in HeaderEdits.withBytes(HeaderEdits.empty) { edit(.remove, nb, $0) } }
    }
    /// A raw name with a decimal value.
    public mutating func set(rawName name: UnsafeRawBufferPointer, _ value: Int) {
        HeaderEdits.withDecimal(value) { edit(.set, name, $0) }
    }
    /// Raw name and value (stored headers replayed as edits).
    public mutating func set(rawName name: UnsafeRawBufferPointer, rawValue value: UnsafeRawBufferPointer) { edit(.set, name, value) }
    public mutating func add(rawName name: UnsafeRawBufferPointer, rawValue value: UnsafeRawBufferPointer) { edit(.add, name, value) }

    private func withContiguous<V: Collection, R>(_ value: V, _ body: (UnsafeRawBufferPointer) -> R) -> R where V.Element == UInt8 {
        if let r = value.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return r }
        return Array(value).withUnsafeBytes(body)
    }

    /// True when a header named like field `i` of `headers` must be left out of the written head
    /// (a set or remove entry has its name). Case-insensitive, no allocation.
    public func drops(_ headers: borrowing HTTPHeaders, _ i: Int) -> Bool {
        let f = headers.fields[i]
        let b = headers.storage.withUnsafeBytes { st in
            HeaderEdits.bit(UnsafeRawBufferPointer(rebasing: st[Int(f.nameStart) ..< Int(f.nameStart + f.nameLength)]))
        }
        if hiddenNames & b == 0 { return false }
        var k = 0
        while k < ops.count {
            if ops[k].hides && list.fields[k].nameLength == f.nameLength {
                let lf = list.fields[k]
                let match = list.storage.withUnsafeBufferPointer { ls in
                    headers.nameEquals(at: i, UnsafeBufferPointer(rebasing: ls[Int(lf.nameStart) ..< Int(lf.nameStart + lf.nameLength)]))
                }
                if match { return true }
            }
            k += 1
        }
        return false
    }

    /// The last value set or added for `name`, if any (tests, and plugins reading their own edits).
    public func value(of name: String) -> String? {
        var r: String? = nil
        for i in 0 ..< ops.count where ops[i].writes && list.nameEquals(at: i, name) { r = list.value(at: i) }
        return r
    }

    /// True when `name` is removed (and not set again).
    public func removes(_ name: String) -> Bool {
        var removed = false
        for i in 0 ..< ops.count where ops[i] != .dead && list.nameEquals(at: i, name) { removed = ops[i] == .remove }
        return removed
    }

    /// The values the written head will carry for `name` (names compared as nginx does: case-insensitive,
    /// '_' ≡ '-'): those of `original` unless an edit set or removed the name, with the edits applied in
    /// order (set: only this value, remove: none, add: one more). Calls `body` per value, in order, until
    /// it returns false; returns how many values were visited. No allocation.
    @discardableResult
    public func forEachValue<N: Collection>(of name: N, original: borrowing HTTPHeaders,
                                            _ body: (HeaderBytes) -> Bool) -> Int where N.Element == UInt8 {
        var last = -1
        for k in 0 ..< ops.count where ops[k].hides && headerNameMatches(list.nameBytes(at: k), name) { last = k }
        var n = 0
        if last < 0 {
            for i in 0 ..< original.count where headerNameMatches(original.nameBytes(at: i), name) {
                n += 1
                if !body(original.valueBytes(at: i)) { return n }
            }
        }
        var k = max(last, 0)
        while k < ops.count {
            if ops[k].writes && headerNameMatches(list.nameBytes(at: k), name) {
                n += 1
                if !body(list.valueBytes(at: k)) { return n }
            }
            k += 1
        }
        return n
    }
}
