// FlatArray: the growable array of plain values (bytes, header field offsets) that a head is stored in,
// with Array's value semantics (copy on write) but without its generic paths on the per-request work.
//
// Why not [T]: clearing an Array while keeping its capacity (`removeAll(keepingCapacity:)`) runs the
// generic `replaceSubrange` (~75 instructions with its uniqueness check and a memmove of nothing), and
// `append(contentsOf:)` ~70 before its copy; a proxied request cleared 11 arrays and appended to them ~20
// times (tools/bench/callgrind.py). Here a clear is a store (of the count), an append a uniqueness
// check, a capacity check and a copy: nginx's ngx_array_t with Swift's ownership.
//
// Invariants: elements are BitwiseCopyable (never deinitialized: a clear only resets the count); the
// memory is allocated on the first append or reserve (an empty FlatArray costs nothing to create);
// a write to memory another value also owns copies it first (`isKnownUniquelyReferenced`), so copies
// of a head are independent values as with Array. A value never writes outside its own first `count`
// elements except to append, and appends only to memory it owns alone: two values sharing memory may
// have different counts and each reads only its own. Capacity only grows (doubling); a clear keeps it.

public struct FlatArray<Element: BitwiseCopyable>: @unchecked Sendable {
    // (@unchecked: the memory is written only through a FlatArray whose owner is uniquely referenced, as
    // Array's is.) The address, count and capacity are kept in the value itself, so that a read is a
    // bounds check and a load: no class reference is loaded (and retained around the access) on reads.
    @usableFromInline final class Owner {
        @usableFromInline let base: UnsafeMutablePointer<Element>
        @usableFromInline init(capacity: Int) { base = .allocate(capacity: capacity) }
        deinit { base.deallocate() }
    }

    @usableFromInline var base: UnsafeMutablePointer<Element>?
    @usableFromInline var used: Int
    @usableFromInline var room: Int
    @usableFromInline var owner: Owner?

    @inlinable public init() { base = nil; used = 0; room = 0; owner = nil }

    @inlinable public init(_ elements: some Sequence<Element>) {
        self.init()
        for e in elements { append(e) }
    }

    @inlinable public var count: Int { used }
    @inlinable public var isEmpty: Bool { used == 0 }
    @inlinable public var capacity: Int { room }

    @inlinable public subscript(i: Int) -> Element {
        get {
            precondition(i >= 0 && i < used, "FlatArray index out of range")
            return base.unsafelyUnwrapped[i]
        }
        set {
            precondition(i >= 0 && i < used, "FlatArray index out of range")
            makeUnique(adding: 0)
            base.unsafelyUnwrapped[i] = newValue
        }
    }

    /// Makes the memory this value's alone, with room for `k` more elements.
    @inlinable @inline(__always)
    mutating func makeUnique(adding k: Int) {
        if room &- used < k || !isKnownUniquelyReferenced(&owner) { grow(adding: k) }
    }

    /// New memory (never shared) holding the elements, with room for `k` more; the old owner is released.
    @usableFromInline @inline(never)
    mutating func grow(adding k: Int) {
        precondition(k >= 0 && used <= Int.max - k, "FlatArray too large")
        var cap = Swift.max(room, 8)
        while cap - used < k { cap = cap > Int.max / 2 ? used + k : cap * 2 }
        let o = Owner(capacity: cap)
        if let b = base, used > 0 { o.base.initialize(from: b, count: used) }
        owner = o
        base = o.base
        room = cap
    }

    @inlinable public mutating func reserveCapacity(_ n: Int) {
        if n > room || !isKnownUniquelyReferenced(&owner) { grow(adding: Swift.max(0, n - used)) }
    }

    @inlinable public mutating func append(_ e: Element) {
        makeUnique(adding: 1)
        (base.unsafelyUnwrapped + used).initialize(to: e)
        used &+= 1
    }

    @inlinable public mutating func append(contentsOf p: UnsafeBufferPointer<Element>) {
        guard let src = p.baseAddress, p.count > 0 else { return }
        makeUnique(adding: p.count)
        (base.unsafelyUnwrapped + used).initialize(from: src, count: p.count)
        used &+= p.count
    }

    @inlinable public mutating func append(contentsOf p: UnsafeRawBufferPointer) where Element == UInt8 {
        append(contentsOf: p.assumingMemoryBound(to: UInt8.self))
    }

    @_disfavoredOverload
    @inlinable public mutating func append(contentsOf elements: some Sequence<Element>) {
        // (an array, a slice, a buffer: one copy)
        if elements.withContiguousStorageIfAvailable({ append(contentsOf: $0) }) != nil { return }
        makeUnique(adding: elements.underestimatedCount)
        for e in elements { append(e) }
    }

    /// Appends up to `k` elements written by `body` straight into the memory (made this value's alone,
    /// with room for `k`); `body` returns how many it wrote (at most `k`).
    @inlinable public mutating func append(upTo k: Int, _ body: (UnsafeMutablePointer<Element>) -> Int) {
        makeUnique(adding: k)
        let n = body(base.unsafelyUnwrapped + used)
        precondition(n >= 0 && n <= k, "FlatArray.append(upTo:) wrote more than it asked for")
        used &+= n
    }

    /// Removes every element and keeps the memory (shared memory is left to its other owners). No
    /// uniqueness check is needed: only the count of this value changes.
    @inlinable public mutating func removeAll() { used = 0 }

    @inlinable public mutating func removeLast() {
        precondition(used > 0, "removeLast of an empty FlatArray")
        used &-= 1
    }

    @inlinable public mutating func removeLast(_ k: Int) {
        precondition(k >= 0 && k <= used, "removeLast of more than a FlatArray holds")
        used &-= k
    }

    @inlinable public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        // (self, and with it the owner of the memory, is borrowed for the whole call)
        try body(UnsafeBufferPointer(start: base, count: used))
    }

    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { try body(UnsafeRawBufferPointer($0)) }
    }
}

extension FlatArray: RandomAccessCollection {
    public typealias Index = Int
    public typealias Indices = Range<Int>
    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { count }
    @inlinable public func index(after i: Int) -> Int { i + 1 }
    @inlinable public func index(before i: Int) -> Int { i - 1 }

    @inlinable public func withContiguousStorageIfAvailable<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R? {
        try withUnsafeBufferPointer(body)
    }
}

extension FlatArray: Equatable where Element: Equatable {
    @inlinable public static func == (a: FlatArray, b: FlatArray) -> Bool { a.elementsEqual(b) }
}

extension FlatArray: ExpressibleByArrayLiteral {
    @inlinable public init(arrayLiteral elements: Element...) { self.init(elements) }
}

extension Slice {
    /// The slice's elements in place (no copy), as ArraySlice offers.
    @inlinable public func withUnsafeBufferPointer<R, E>(_ body: (UnsafeBufferPointer<E>) throws -> R) rethrows -> R
    where Base == FlatArray<E> {
        try base.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[startIndex ..< endIndex])) }
    }

    @inlinable public func withUnsafeBytes<R, E>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
    where Base == FlatArray<E> {
        try base.withUnsafeBufferPointer { try body(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: $0[startIndex ..< endIndex]))) }
    }
}
