// Consumers and their credentials as the worker looks them up on the request path: built once per
// configuration generation from the worker's snapshot (no database, no master round trip). Key
// lookups hash the request's bytes directly (ByteKeyIndex), so authenticating allocates nothing.
import Glibc
import GWStore

/// A consumer as plugins see it. Immutable; shared by every instance of one generation.
public final class ConsumerRecord: Sendable {
    public let id: String
    public let username: String?
    public let customID: String?
    /// The consumer's ACL groups (`acls` rows), in creation order.
    public let groups: [String]

    /// `X-Consumer-Groups`: the groups joined with ", " (built once).
    public let groupsHeader: String
    /// The values of the upstream headers authentication sets, as bytes (built once per generation).
    let idBytes: [UInt8], usernameBytes: [UInt8]?, customIDBytes: [UInt8]?
    /// Two independent hashes of the id (rate-limiting's `consumer` identifier), computed once.
    let idHash: (UInt64, UInt64)

    public init(id: String, username: String?, customID: String?, groups: [String] = []) {
        self.id = id; self.username = username; self.customID = customID; self.groups = groups
        groupsHeader = groups.joined(separator: ", ")
        idBytes = Array(id.utf8); usernameBytes = username.map { Array($0.utf8) }; customIDBytes = customID.map { Array($0.utf8) }
        idHash = identifierHashes(id.utf8)
    }
}

/// A credential that authenticated a consumer.
public final class CredentialRecord: Sendable {
    public let id: String
    /// What `X-Credential-Identifier` carries (key-auth: the credential id; basic-auth: the username).
    public let identifier: String
    public let consumer: ConsumerRecord
    /// Epoch seconds after which the credential no longer authenticates (key-auth `ttl`); nil: never.
    public let expiresAt: Int64?
    /// basic-auth: Kong's stored `sha1_hex(password .. consumer_id)`; empty for other kinds.
    public let secretHash: [UInt8]

    /// `X-Credential-Identifier` as bytes, and two hashes of the id (rate-limiting's `credential`).
    let identifierBytes: [UInt8]
    let idHash: (UInt64, UInt64)

    public init(id: String, identifier: String, consumer: ConsumerRecord, expiresAt: Int64? = nil, secretHash: [UInt8] = []) {
        self.id = id; self.identifier = identifier; self.consumer = consumer; self.expiresAt = expiresAt
        self.secretHash = secretHash
        identifierBytes = Array(identifier.utf8)
        idHash = identifierHashes(id.utf8)
    }

    public func isExpired(now: Int64) -> Bool { expiresAt.map { now >= $0 } ?? false }
}

/// Open-addressing hash index from byte strings to values. Built once, read per request without
/// allocating: the probe compares the request's bytes with the stored key bytes.
public struct ByteKeyIndex<Value>: @unchecked Sendable {
    private var keys: [[UInt8]] = []
    private var values: [Value] = []
    private var slots: [Int32]          // -1 empty, else index into keys/values
    private let mask: Int

    public init(_ entries: [([UInt8], Value)]) {
        var cap = 16
        while cap < entries.count * 2 { cap <<= 1 }
        mask = cap - 1
        slots = [Int32](repeating: -1, count: cap)
        for (k, v) in entries {
            var i = Int(truncatingIfNeeded: ByteKeyIndex.hash(k)) & mask
            var dup = false
            while slots[i] >= 0 {
                if keys[Int(slots[i])] == k { dup = true; break }
                i = (i + 1) & mask
            }
            if dup { continue }   // first one wins (unique keys are enforced by the store)
            slots[i] = Int32(keys.count)
            keys.append(k)
            values.append(v)
        }
    }

    public var count: Int { keys.count }

    @inline(__always) static func hash<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
        if let h = bytes.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) { return h }
        var h: UInt64 = 0xcbf29ce484222325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return h
    }

    /// Eight bytes at a time (a multiply-xorshift step per word), then the tail: ~4× fewer steps than
    /// FNV-1a over a 32-byte key. Only the index's own probe uses it (built and read in one process).
    @inline(__always) static func hash(_ b: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0x9E3779B97F4A7C15 ^ UInt64(b.count)
        var i = 0
        while i + 8 <= b.count {
            h = (h ^ b.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xff51afd7ed558ccd
            h ^= h >> 32
            i += 8
        }
        while i < b.count { h = (h ^ UInt64(b[i])) &* 0x100000001b3; i += 1 }
        return h ^ (h >> 29)
    }

    public func lookup(_ bytes: UnsafeRawBufferPointer) -> Value? {
        var i = Int(truncatingIfNeeded: ByteKeyIndex.hash(bytes)) & mask
        while true {
            let s = slots[i]
            if s < 0 { return nil }
            let k = keys[Int(s)]
            if k.count == bytes.count && k.withUnsafeBytes({ memcmpEqual($0, bytes) }) { return values[Int(s)] }
            i = (i + 1) & mask
        }
    }

    public func lookup<C: Collection>(_ bytes: C) -> Value? where C.Element == UInt8 {
        if let v = bytes.withContiguousStorageIfAvailable({ lookup(UnsafeRawBufferPointer($0)) }) { return v }
        return Array(bytes).withUnsafeBytes { lookup($0) }
    }
}

/// Two independent 64-bit hashes of an identifier (FNV-1a with two offsets, each finished by a
/// splitmix64 round), combined with an instance's seed into a counter key by rate-limiting.
func identifierHashes<C: Sequence>(_ bytes: C) -> (UInt64, UInt64) where C.Element == UInt8 {
    var a: UInt64 = 0xcbf29ce484222325, b: UInt64 = 0x84222325cbf29ce4
    for x in bytes { a = (a ^ UInt64(x)) &* 0x100000001b3; b = (b ^ UInt64(x)) &* 0x1000193_01b3 }
    return (mix64(a), mix64(b))
}

@inline(__always) func mix64(_ v: UInt64) -> UInt64 {
    var z = v &+ 0x9E3779B97F4A7C15
    z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
    return z ^ (z >> 31)
}

@inline(__always) func memcmpEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    guard let pa = a.baseAddress, let pb = b.baseAddress else { return a.count == 0 }
    return memcmp(pa, pb, a.count) == 0
}

/// Every consumer and credential of one configuration generation.
public final class Credentials: @unchecked Sendable {
    public let consumersByID: [String: ConsumerRecord]
    public let consumersByUsername: [String: ConsumerRecord]
    /// key-auth: key bytes → credential.
    public let keys: ByteKeyIndex<CredentialRecord>
    /// basic-auth: username bytes → credential (secretHash = Kong's stored sha1 hex).
    public let basicAuth: ByteKeyIndex<CredentialRecord>

    public init(snapshot: ConfigSnapshot) {
        var groups: [String: [String]] = [:]
        for a in snapshot.acls { groups[a.consumerID, default: []].append(a.group) }
        var byID: [String: ConsumerRecord] = [:], byName: [String: ConsumerRecord] = [:]
        for c in snapshot.consumers {
            let r = ConsumerRecord(id: c.id, username: c.username, customID: c.customID, groups: groups[c.id] ?? [])
            byID[c.id] = r
            if let u = c.username { byName[u] = r }
        }
        consumersByID = byID
        consumersByUsername = byName
        var keyEntries: [([UInt8], CredentialRecord)] = []
        for k in snapshot.keyauthCredentials {
            guard let c = byID[k.consumerID] else { continue }
            keyEntries.append((Array(k.key.utf8), CredentialRecord(id: k.id, identifier: k.id, consumer: c,
                                                                    expiresAt: k.expiresAt.map(Int64.init))))
        }
        keys = ByteKeyIndex(keyEntries)
        var basicEntries: [([UInt8], CredentialRecord)] = []
        for b in snapshot.basicauthCredentials {
            guard let c = byID[b.consumerID] else { continue }
            basicEntries.append((Array(b.username.utf8), CredentialRecord(id: b.id, identifier: b.username, consumer: c,
                                                                          secretHash: Array(b.passwordHash.lowercased().utf8))))
        }
        basicAuth = ByteKeyIndex(basicEntries)
    }

    /// Kong's `anonymous` reference: a consumer id (when it is a UUID), else a username.
    public func consumer(reference: String) -> ConsumerRecord? {
        consumersByID[reference] ?? consumersByUsername[reference]
    }
}
