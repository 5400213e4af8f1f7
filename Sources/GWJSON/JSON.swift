// JSON value type without Foundation: the value, objects in insertion order, literals and accessors
// (the parser is in JSONParser.swift, the serializer in JSONSerialization.swift).
// Invariants: integers that fit Int64 stay `.int`; object keys keep insertion order (JSONObject).
#if canImport(Glibc)
import Glibc
#endif


/// A JSON value.
public enum JSON: Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object(JSONObject)
}

/// A parse error with the byte offset where it was detected.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public init(_ message: String, offset: Int) { self.message = message; self.offset = offset }
    public var description: String { "\(message) at byte \(offset)" }
}

/// An insertion-ordered JSON object. Duplicate keys are not kept: setting an existing key replaces its value in place.
public struct JSONObject: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: JSON)
    public private(set) var pairs: [(key: String, value: JSON)]

    public init() { pairs = [] }
    public init(_ pairs: [(String, JSON)]) {
        self.pairs = []
        self.pairs.reserveCapacity(pairs.count)
        for (k, v) in pairs { self[k] = v }
    }
    public init(dictionaryLiteral elements: (String, JSON)...) { self.init(elements) }
    /// Internal fast path: caller guarantees keys are unique.
    init(uniquePairs: [(key: String, value: JSON)]) { pairs = uniquePairs }

    public var count: Int { pairs.count }
    public var isEmpty: Bool { pairs.isEmpty }
    public var keys: [String] { pairs.map(\.key) }
    public var values: [JSON] { pairs.map(\.value) }

    public func index(forKey key: String) -> Int? {
        for i in pairs.indices where pairs[i].key == key { return i }
        return nil
    }

    /// Value for `key`; setting `nil` removes the key.
    public subscript(key: String) -> JSON? {
        get {
            for p in pairs where p.key == key { return p.value }
            return nil
        }
        set {
            if let i = index(forKey: key) {
                if let v = newValue { pairs[i].value = v } else { pairs.remove(at: i) }
            } else if let v = newValue {
                pairs.append((key, v))
            }
        }
    }

    public mutating func removeValue(forKey key: String) -> JSON? {
        guard let i = index(forKey: key) else { return nil }
        return pairs.remove(at: i).value
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: JSON)]> { pairs.makeIterator() }

    /// Keys sorted; useful for deterministic output.
    public func sortedByKey() -> JSONObject {
        JSONObject(uniquePairs: pairs.sorted { $0.key < $1.key })
    }
}

extension JSONObject: Equatable {
    /// Order-insensitive comparison of key/value sets.
    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        guard a.count == b.count else { return false }
        for (k, v) in a.pairs {
            guard let w = b[k], w == v else { return false }
        }
        return true
    }
}

extension JSON: Equatable {
    /// Numbers compare by value across `.int` / `.double`.
    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.double(x), .double(y)): return x == y
        case let (.int(x), .double(y)), let (.double(y), .int(x)): return Double(x) == y && Int64(exactly: y) == x
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x == y
        default: return false
        }
    }
}

// MARK: - Literals
// (No ExpressibleByNilLiteral on purpose: `nil` must always mean Optional.none, never JSON null.)

extension JSON: ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) { self = .object(JSONObject(elements)) }
}

// MARK: - Accessors

extension JSON {
    public init(_ s: String?) { self = s.map { .string($0) } ?? .null }
    public init(_ i: Int) { self = .int(Int64(i)) }
    public init(_ i: Int?) { self = i.map { .int(Int64($0)) } ?? .null }
    public init(_ b: Bool) { self = .bool(b) }
    public init(_ d: Double) { self = .double(d) }
    public init(_ strings: [String]?) { self = strings.map { .array($0.map { .string($0) }) } ?? .null }
    public init(_ ints: [Int]) { self = .array(ints.map { .int(Int64($0)) }) }

    public var isNull: Bool { if case .null = self { return true } else { return false } }
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    /// Int for `.int`, or for an integral `.double`.
    public var intValue: Int? {
        switch self {
        case .int(let i): return Int(exactly: i)
        case .double(let d): return Int(exactly: d)
        default: return nil
        }
    }
    public var int64Value: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d): return Int64(exactly: d)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a } else { return nil } }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o } else { return nil } }
    public var isNumber: Bool {
        switch self { case .int, .double: return true; default: return false }
    }
    /// Array of strings, or nil if not an array of strings.
    public var stringArrayValue: [String]? {
        guard case .array(let a) = self else { return nil }
        var out: [String] = []
        out.reserveCapacity(a.count)
        for e in a { guard case .string(let s) = e else { return nil }; out.append(s) }
        return out
    }

    /// Object member (nil if not an object or key absent). Setting on a non-object turns it into an object.
    public subscript(key: String) -> JSON? {
        get { if case .object(let o) = self { return o[key] } else { return nil } }
        set {
            var o: JSONObject
            if case .object(let existing) = self { o = existing } else { o = JSONObject() }
            o[key] = newValue
            self = .object(o)
        }
    }
    /// Array element (nil if out of range or not an array).
    public subscript(index: Int) -> JSON? {
        if case .array(let a) = self, a.indices.contains(index) { return a[index] }
        return nil
    }

    /// The JSON type name as used in messages ("null", "boolean", "number", "string", "array", "object").
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int, .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}
