import Testing
@testable import GWHTTP

/// FlatArray keeps Array's value semantics (a copy is independent of the original) while its clear only
/// resets the count: these cases pin both down.
@Suite struct FlatArrayTests {
    @Test func appendsReadsAndGrowsPastItsCapacity() {
        var a = FlatArray<UInt8>()
        #expect(a.isEmpty && a.capacity == 0, "an empty FlatArray holds no memory")
        for i in 0 ..< 1000 { a.append(UInt8(truncatingIfNeeded: i)) }
        #expect(a.count == 1000)
        #expect(a.capacity >= 1000)
        #expect(a.enumerated().allSatisfy { $0.element == UInt8(truncatingIfNeeded: $0.offset) })
        let bytes: [UInt8] = Array("hello".utf8)
        bytes.withUnsafeBufferPointer { a.append(contentsOf: $0) }
        #expect(Array(a[1000...]) == bytes)
    }

    @Test func clearKeepsTheMemory() {
        var a = FlatArray<UInt8>()
        a.reserveCapacity(64)
        let cap = a.capacity
        a.append(contentsOf: [1, 2, 3])
        a.removeAll()
        #expect(a.isEmpty)
        #expect(a.capacity == cap)
        a.append(9)
        #expect(Array(a) == [9])
    }

    @Test func aCopyIsIndependentOfTheOriginal() {
        var a = FlatArray<UInt8>([1, 2, 3])
        let b = a
        a.append(4)
        a[0] = 7
        #expect(Array(a) == [7, 2, 3, 4])
        #expect(Array(b) == [1, 2, 3], "the copy does not see the original's writes")
        var c = b
        c.removeAll()
        c.append(5)
        #expect(Array(b) == [1, 2, 3], "a cleared copy appending does not write over the shared memory")
        #expect(Array(c) == [5])
        var d = a
        d.removeLast()
        #expect(a.count == 4 && d.count == 3)
    }

    @Test func appendWrittenInPlace() {
        var a = FlatArray<UInt8>([1])
        let b = a
        a.append(upTo: 10) { p in
            for k in 0 ..< 4 { p[k] = UInt8(10 + k) }
            return 4
        }
        #expect(Array(a) == [1, 10, 11, 12, 13])
        #expect(a.capacity >= 11, "room for all that was asked")
        #expect(Array(b) == [1], "written in memory of its own")
        a.append(upTo: 0) { _ in 0 }
        #expect(a.count == 5)
    }

    @Test func structElementsAndEquality() {
        var f = FlatArray<HTTPHeaders.Field>()
        f.append(.init(nameStart: 0, nameLength: 4, valueStart: 6, valueLength: 9))
        f.append(.init(nameStart: 17, nameLength: 1, valueStart: 20, valueLength: 0))
        #expect(f.count == 2 && f[1].nameStart == 17)
        var g = f
        #expect(g == f)
        g[1] = .init(nameStart: 1, nameLength: 1, valueStart: 1, valueLength: 1)
        #expect(g != f)
        #expect(f[1].nameStart == 17)
    }

    @Test func sliceBytesInPlace() {
        let a = FlatArray<UInt8>(Array("Host: example.com".utf8))
        let value = a[6...]
        let s = value.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
        #expect(s == "example.com")
        #expect(value.withUnsafeBufferPointer { $0.count } == 11)
    }

    @Test func headersKeepTheirFieldsAcrossACopy() {
        var h = HTTPHeaders()
        h.append(name: "Host", value: "a.example")
        let saved = h
        h.removeAll()
        h.append(name: "X-Other", value: "longer value than before")
        #expect(saved.count == 1 && saved.name(at: 0) == "Host" && saved.value(at: 0) == "a.example")
        #expect(h.count == 1 && h.value(at: 0) == "longer value than before")
    }
}
