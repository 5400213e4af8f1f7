// Consumer credentials as the data path sees them, in the worker document under "keyauth_credentials",
// "basicauth_credentials" and "acls" (Kong's JSON shape, as the Admin API stores them).
//
// Key-auth expiry: Kong's `ttl` is relative (seconds left at read time), which a document written once and
// read later cannot carry. The stored and published document therefore holds `expires_at`, the absolute
// expiry in epoch seconds (absent or null: never expires); the Admin API turns it back into Kong's remaining
// `ttl` on reads. A worker refuses a key with `isExpired(now:)` without asking anyone.
import GWJSON

/// A key-auth credential (`keyauth_credentials`).
public struct KeyAuthCredential: Sendable, Equatable {
    public var id: String
    public var consumerID: String
    public var key: String
    /// Absolute expiry, epoch seconds; nil = never.
    public var expiresAt: Int?
    public init(id: String, consumerID: String, key: String, expiresAt: Int? = nil) {
        self.id = id; self.consumerID = consumerID; self.key = key; self.expiresAt = expiresAt
    }

    /// True once `now` (epoch seconds) has reached the expiry.
    public func isExpired(now: Int) -> Bool { expiresAt.map { now >= $0 } ?? false }

    public static func decode(json v: JSON) throws(SnapshotError) -> KeyAuthCredential {
        let f = try Fields(v, entity: "keyauth_credential")
        guard let c = try f.foreignID("consumer") else { throw SnapshotError("keyauth_credential.consumer: required field missing") }
        var exp: Int? = nil
        if f.present("expires_at") != nil { exp = try f.int("expires_at", default: 0) }
        return KeyAuthCredential(id: try f.string("id"), consumerID: c, key: try f.string("key"), expiresAt: exp)
    }
    public var json: JSON {
        var o: JSONObject = ["id": .string(id), "consumer": ["id": .string(consumerID)], "key": .string(key)]
        if let expiresAt { o["expires_at"] = JSON(expiresAt) }
        return .object(o)
    }
}

/// A basic-auth credential (`basicauth_credentials`): `passwordHash` is Kong's
/// `sha1_hex(password .. consumer_id)` (the Admin API never stores the password itself).
public struct BasicAuthCredential: Sendable, Equatable {
    public var id: String
    public var consumerID: String
    public var username: String
    public var passwordHash: String
    public init(id: String, consumerID: String, username: String, passwordHash: String) {
        self.id = id; self.consumerID = consumerID; self.username = username; self.passwordHash = passwordHash
    }

    public static func decode(json v: JSON) throws(SnapshotError) -> BasicAuthCredential {
        let f = try Fields(v, entity: "basicauth_credential")
        guard let c = try f.foreignID("consumer") else { throw SnapshotError("basicauth_credential.consumer: required field missing") }
        return BasicAuthCredential(id: try f.string("id"), consumerID: c, username: try f.string("username"),
                                   passwordHash: try f.string("password"))
    }
    public var json: JSON {
        ["id": .string(id), "consumer": ["id": .string(consumerID)], "username": .string(username),
         "password": .string(passwordHash)]
    }
}

/// A consumer's ACL group membership (`acls`).
public struct ACLGroup: Sendable, Equatable {
    public var id: String
    public var consumerID: String
    public var group: String
    public init(id: String, consumerID: String, group: String) { self.id = id; self.consumerID = consumerID; self.group = group }

    public static func decode(json v: JSON) throws(SnapshotError) -> ACLGroup {
        let f = try Fields(v, entity: "acl")
        guard let c = try f.foreignID("consumer") else { throw SnapshotError("acl.consumer: required field missing") }
        return ACLGroup(id: try f.string("id"), consumerID: c, group: try f.string("group"))
    }
    public var json: JSON { ["id": .string(id), "consumer": ["id": .string(consumerID)], "group": .string(group)] }
}
