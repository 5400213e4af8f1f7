import Testing
import GWJSON
@testable import GWStore

/// Credentials and ACL groups in the worker document and in deltas.
@Suite struct CredentialSnapshotTests {
    static let doc = #"""
    {"generation":3,
     "consumers":[{"id":"c1","username":"bob"}],
     "keyauth_credentials":[{"id":"k1","consumer":{"id":"c1"},"key":"secret","created_at":1,"tags":null},
                            {"id":"k2","consumer":{"id":"c1"},"key":"short","expires_at":1700000100}],
     "basicauth_credentials":[{"id":"b1","consumer":{"id":"c1"},"username":"bob","password":"0123abcd","tags":["t"]}],
     "acls":[{"id":"a1","consumer":{"id":"c1"},"group":"admin","created_at":5}]}
    """#

    @Test func decodesAndRoundTrips() throws {
        let s = try ConfigSnapshot.decode(bytes: Array(Self.doc.utf8))
        #expect(s.keyauthCredentials == [KeyAuthCredential(id: "k1", consumerID: "c1", key: "secret"),
                                         KeyAuthCredential(id: "k2", consumerID: "c1", key: "short", expiresAt: 1700000100)])
        #expect(s.keyauthCredentials[1].isExpired(now: 1700000100) && !s.keyauthCredentials[1].isExpired(now: 1700000099))
        #expect(!s.keyauthCredentials[0].isExpired(now: Int.max))
        #expect(s.basicauthCredentials == [BasicAuthCredential(id: "b1", consumerID: "c1", username: "bob", passwordHash: "0123abcd")])
        #expect(s.acls == [ACLGroup(id: "a1", consumerID: "c1", group: "admin")])
        let again = try ConfigSnapshot.decode(json: s.json)
        #expect(again.keyauthCredentials == s.keyauthCredentials && again.basicauthCredentials == s.basicauthCredentials
                && again.acls == s.acls)
        // The streaming decoder gives the same.
        let streamed = try PublishedConfig.decode(bytes: Array(Self.doc.utf8))
        #expect(streamed.snapshot.acls == s.acls && streamed.snapshot.basicauthCredentials == s.basicauthCredentials)
    }

    @Test func malformedCredentialsAreErrors() {
        #expect(throws: SnapshotError.self) {
            _ = try ConfigSnapshot.decode(bytes: Array(#"{"acls":[{"id":"a","group":"g"}]}"#.utf8))
        }
        #expect(throws: SnapshotError.self) {
            _ = try ConfigSnapshot.decode(bytes: Array(#"{"basicauth_credentials":[{"id":"b","consumer":{"id":"c"},"username":"u"}]}"#.utf8))
        }
        #expect(throws: SnapshotError.self) {
            _ = try ConfigSnapshot.decode(bytes: Array(#"{"keyauth_credentials":[{"id":"k","consumer":"c","key":"x","expires_at":"soon"}]}"#.utf8))
        }
    }

    @Test func deltasCarryCreatesUpdatesAndDeletes() throws {
        var c = try PublishedConfig.decode(bytes: Array(Self.doc.utf8))
        c.buildIndexes()
        var d = ConfigDelta(generation: 4, base: 3)
        d.puts["acls"] = [["id": "a2", "consumer": ["id": "c1"], "group": "pro"]]
        d.puts["basicauth_credentials"] = [["id": "b1", "consumer": ["id": "c1"], "username": "bob", "password": "ffff"]]
        d.puts["keyauth_credentials"] = [["id": "k1", "consumer": ["id": "c1"], "key": "secret", "expires_at": 42]]
        d.deletes["keyauth_credentials"] = ["k2"]
        let wire = try ConfigDelta.decode(json: try JSON.parse(Array(d.json.serialized())))
        try c.apply(wire)
        #expect(c.snapshot.acls.map(\.group) == ["admin", "pro"])
        #expect(c.snapshot.basicauthCredentials.first?.passwordHash == "ffff")
        #expect(c.snapshot.keyauthCredentials == [KeyAuthCredential(id: "k1", consumerID: "c1", key: "secret", expiresAt: 42)])
        d = ConfigDelta(generation: 5, base: 4)
        d.deletes["acls"] = ["a1"]
        d.deletes["basicauth_credentials"] = ["b1"]
        try c.apply(d)
        #expect(c.snapshot.acls.map(\.id) == ["a2"] && c.snapshot.basicauthCredentials.isEmpty)
    }
}
