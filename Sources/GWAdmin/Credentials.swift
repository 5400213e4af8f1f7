// Consumer credentials (Kong's key-auth, basic-auth and acl DAOs): schemas, key generation, key-auth ttl,
// basic-auth password hashing, ACL lookups by group, and how stored documents are shown.
//
// Key-auth ttl: the request's `ttl` (seconds, 0 = none) becomes `expires_at` (absolute epoch seconds) in the
// stored document, which is also what workers receive (GWStore.KeyAuthCredential.expiresAt). Reads show
// Kong's `ttl` (seconds left, null when none) instead; an expired credential is not found, not listed, not
// exported, and is deleted by the next key-auth write (as Kong's expired-rows trigger does on insert).
// As in Kong's DAO, a write without `ttl` (PATCH or PUT) leaves the credential without expiry.
import CCrypto
import GWJSON

extension Schemas {
    /// `kong/plugins/key-auth/daos.lua`: key unique, auto-generated when absent; `ttl = true`.
    static let keyauthCredential = EntitySchema(kind: .keyauthCredentials, fields: [
        idField, Field("created_at", .integer, auto: true),
        Field("consumer", .foreign(.consumers), required: true),
        Field("key", .string, required: true),
        tags,
    ], endpointKey: "key", foreign: [("consumer", .consumers)], msTimestamps: false)

    /// `kong/plugins/basic-auth/daos.lua`: username unique (endpoint key), password hashed on write.
    static let basicauthCredential = EntitySchema(kind: .basicauthCredentials, fields: [
        idField, Field("created_at", .integer, auto: true),
        Field("consumer", .foreign(.consumers), required: true),
        Field("username", .string, required: true),
        Field("password", .string, required: true),
        tags,
    ], endpointKey: "username", foreign: [("consumer", .consumers)], msTimestamps: false)

    /// `kong/plugins/acl/daos.lua`: unique by cache key (consumer, group); no endpoint key.
    static let acl = EntitySchema(kind: .acls, fields: [
        idField, Field("created_at", .integer, auto: true),
        Field("consumer", .foreign(.consumers), required: true),
        Field("group", .string, required: true),
        tags,
    ], endpointKey: nil, foreign: [("consumer", .consumers)], msTimestamps: false)
}

enum Credentials {
    /// Kong's `DAO_MAX_TTL` (`kong/constants.lua`).
    static let maxTTL = 100_000_000

    static func isCredential(_ kind: EntityKind) -> Bool {
        kind == .keyauthCredentials || kind == .basicauthCredentials || kind == .acls
    }

    /// `n` bytes from OpenSSL's RAND_bytes (the urandom reader if it fails).
    static func randomBytes(_ n: Int) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: n)
        let ok = b.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(n)) }
        return ok == 1 ? b : UUID4.randomBytes(n)
    }

    /// Kong's `kong.tools.rand.random_string`: base64 of 24 random bytes (32 characters), `/` replaced by a
    /// random upper-case letter and `+` by a random lower-case one.
    static func randomKey() -> String {
        let bytes = randomBytes(24)
        let extra = randomBytes(32)
        var out: [UInt8] = []
        out.reserveCapacity(32)
        var i = 0
        while i < 24 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            for shift in [18, 12, 6, 0] { out.append(Base64.alphabet[Int((v >> UInt32(shift)) & 63)]) }
            i += 3
        }
        for j in out.indices {
            if out[j] == UInt8(ascii: "/") { out[j] = 65 + extra[j] % 26 }
            else if out[j] == UInt8(ascii: "+") { out[j] = 97 + extra[j] % 26 }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Kong's basic-auth `crypto.hash`: `sha1_hex(password .. consumer_id)` (libcrypto SHA-1).
    static func hashPassword(_ password: String, consumerID: String) -> String {
        let input = Array((password + consumerID).utf8)
        var digest = [UInt8](repeating: 0, count: 20)
        input.withUnsafeBufferPointer { ip in
            digest.withUnsafeMutableBufferPointer { dp in _ = CCrypto.SHA1(ip.baseAddress, ip.count, dp.baseAddress) }
        }
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in digest { out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The request's `ttl` option: nil when absent; Kong's invalid-options error when not an integer in range.
    static func parseTTL(_ v: JSON?) throws(OpFailure) -> Int? {
        guard let v, !v.isNull else { return nil }
        let bad = OpFailure(Kong.invalidOptions("ttl", "must be an integer between 0 and \(maxTTL)"))
        var d: Double
        if let x = v.doubleValue { d = x } else if let s = v.stringValue, let x = Double(s) { d = x } else { throw bad }
        guard d == d.rounded(), d >= 0, d <= Double(maxTTL) else { throw bad }
        d = d.rounded()
        return Int(d)
    }

    /// True when the stored document is a key-auth credential whose expiry has passed.
    static func isExpired(_ kind: EntityKind, _ doc: JSON, now: Int) -> Bool {
        guard kind == .keyauthCredentials, let e = doc["expires_at"]?.intValue else { return false }
        return now >= e
    }

    /// The document as the Admin API shows it: key-auth `expires_at` becomes Kong's remaining `ttl`.
    static func present(_ kind: EntityKind, _ doc: JSON, now: Int) -> JSON {
        guard kind == .keyauthCredentials, case .object(var o) = doc else { return doc }
        let exp = o.removeValue(forKey: "expires_at")
        o["ttl"] = exp?.intValue.map { JSON(max(0, $0 - now)) } ?? .null
        return .object(o)
    }
}

extension AdminAPI {
    /// Admin API view of a stored document (see `Credentials.present`).
    func present(_ kind: EntityKind, _ doc: JSON) -> JSON {
        switch kind {
        case .keyauthCredentials: Credentials.present(kind, doc, now: Int(Clock.seconds()))
        case .certificates: presentCertificate(doc)
        default: doc
        }
    }

    /// Deletes of expired key-auth credentials (none of `keep`), run before a key-auth write.
    func purgeExpiredOps(keep: Set<String>) -> [StoreOp] {
        let now = Int(Clock.seconds())
        var ops: [StoreOp] = []
        for d in store.all(.keyauthCredentials) where Credentials.isExpired(.keyauthCredentials, d, now: now) {
            if let id = d["id"]?.stringValue, !keep.contains(id) { ops.append(.delete(.keyauthCredentials, id)) }
        }
        return ops
    }

    /// `/consumers/{c}/acls/{group}`: the consumer's ACL row of that group.
    func aclByGroup(_ group: String, consumer: JSON?) -> JSON? {
        guard let cid = consumer?["id"]?.stringValue else { return nil }
        return store.findByCacheKey(.acls, AdminStore.aclCacheKey(consumerID: cid, group: group))
    }

    /// Credential-specific input handling before the generic pipeline: returns the `ttl` option (key-auth).
    func credentialInput(_ kind: EntityKind, _ input: inout JSONObject, mode: WriteMode) throws(OpFailure) -> Int? {
        switch kind {
        case .keyauthCredentials:
            let ttl = try Credentials.parseTTL(input.removeValue(forKey: "ttl"))
            input["expires_at"] = nil
            if mode != .update, input["key"] == nil || input["key"]!.isNull { input["key"] = .string(Credentials.randomKey()) }
            return ttl
        default:
            return nil
        }
    }

    /// Credential-specific output of the pipeline (after validation and foreign keys): expiry, password hash.
    func credentialFinish(_ kind: EntityKind, _ doc: inout JSONObject, input: JSONObject, ttl: Int?) {
        switch kind {
        case .keyauthCredentials:
            if let ttl, ttl > 0 { doc["expires_at"] = JSON(Int(Clock.seconds()) + ttl) } else { doc["expires_at"] = nil }
        case .basicauthCredentials:
            guard transformPasswords, case .string(let pw)? = input["password"],
                  let cid = doc["consumer"]?["id"]?.stringValue else { return }
            doc["password"] = .string(Credentials.hashPassword(pw, consumerID: cid))
        default:
            break
        }
    }
}

extension AdminAPI {
    /// The acl plugin's entity checks (`kong/plugins/acl/schema.lua`): `only_one_of` (run only when both fields
    /// are given) then `at_least_one_of`; an empty array counts as empty.
    static func aclConfigChecks(_ cfg: JSONObject, _ e: inout Errors) {
        func given(_ k: String) -> Bool { cfg[k].map { !$0.isNull } ?? false }
        func nonEmpty(_ k: String) -> Bool {
            guard let v = cfg[k], !v.isNull else { return false }
            if let a = v.arrayValue { return !a.isEmpty }
            return true
        }
        let list = "'config.allow', 'config.deny'"
        if given("allow") && given("deny") && nonEmpty("allow") == nonEmpty("deny") {
            e.addEntity("exactly one of these fields must be non-empty: \(list)")
        }
        if !nonEmpty("allow") && !nonEmpty("deny") {
            e.addEntity("at least one of these fields must be non-empty: \(list)")
        }
    }
}

extension AdminAPI {
    /// Kong's transformation check for basic-auth's `password` (input) hashed with `consumer.id` (needs)
    /// (`run_transformation_checks`, kong/db/schema/init.lua): when the password is given, or on an update whose
    /// body does not repeat the stored consumer id, the body must give both or neither. So PATCH
    /// `/basic-auths/{u}` with only a consumer (the stored hash would no longer match) or only a password is
    /// refused; under `/consumers/{c}/basic-auth/{u}` the consumer comes from the path.
    static func passwordTransformationCheck(_ input: JSONObject, existing: JSON?, mode: WriteMode, _ e: inout Errors) {
        func nonEmpty(_ v: JSON?) -> Bool {
            guard let v, !v.isNull else { return false }
            if let s = v.stringValue { return !s.isEmpty }
            return true
        }
        let password = nonEmpty(input["password"])
        let consumerID = input["consumer"]?["id"]
        let needsChanged = mode == .update && existing != nil && consumerID != existing?["consumer"]?["id"]
        guard password || needsChanged else { return }
        // A consumer given by another key (declarative `consumer: username`) counts as given.
        if password != nonEmpty(input["consumer"]) {
            e.addEntity("all or none of these fields must be set: 'password', 'consumer.id'")
        }
    }
}
