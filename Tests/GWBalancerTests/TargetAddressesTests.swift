import Testing
@testable import GWBalancer

/// KONG.md §4.2: A/AAAA answers get the target's full weight each; SRV: top priority only, SRV port
/// (unless 0), SRV weight (0 → 1).
@Suite struct TargetAddressesTests {
    @Test func aRecordsEachGetTheFullTargetWeight() {
        let r = TargetAddresses.expand([DNSAddress(ip: "10.0.0.1"), DNSAddress(ip: "10.0.0.2"), DNSAddress(ip: "10.0.0.3")],
                                       targetPort: 8080, targetWeight: 100)
        #expect(r.map { "\($0.ip):\($0.port)/\($0.weight)" } == ["10.0.0.1:8080/100", "10.0.0.2:8080/100", "10.0.0.3:8080/100"])
        #expect(r.reduce(0) { $0 + $1.weight } == 300)
    }

    @Test func srvPortAndWeight() {
        let r = TargetAddresses.expand([DNSAddress(ip: "10.0.0.1", srvPort: 9000, srvWeight: 10),
                                        DNSAddress(ip: "10.0.0.2", srvPort: 0, srvWeight: 0)],
                                       targetPort: 80, targetWeight: 100)
        #expect(r.map { "\($0.ip):\($0.port)/\($0.weight)" } == ["10.0.0.1:9000/10", "10.0.0.2:80/1"])
    }

    @Test func weightZeroTargetStaysZeroAndDuplicatesMerge() {
        let r = TargetAddresses.expand([DNSAddress(ip: "10.0.0.1", srvPort: 9000, srvWeight: 10),
                                        DNSAddress(ip: "10.0.0.1", srvPort: 9000, srvWeight: 5)],
                                       targetPort: 80, targetWeight: 0)
        #expect(r.count == 1 && r[0].weight == 0)
    }

    @Test func onlyTopPrioritySRVRecords() {
        let recs = [SRVRecord(target: "a", port: 1, priority: 20, weight: 1),
                    SRVRecord(target: "b", port: 2, priority: 10, weight: 1),
                    SRVRecord(target: "c", port: 3, priority: 10, weight: 5)]
        #expect(TargetAddresses.topPriority(recs).map(\.target) == ["b", "c"])
        #expect(TargetAddresses.topPriority([]).isEmpty)
    }

    @Test func refreshDelays() {
        #expect(TargetAddresses.refreshDelay(ttl: 30) == 30)
        #expect(TargetAddresses.refreshDelay(ttl: 0) == 60)
        #expect(TargetAddresses.refreshDelay(ttl: nil) == 60)
        #expect(TargetAddresses.failureRetry == 30)
    }

    @Test func minimumAnswerTTLFromARawMessage() {
        // Header: id, flags, qd=1, an=2, ns=0, ar=0; question svc.test SRV IN; two answers (pointer to the
        // question name) with TTLs 300 and 42.
        var m: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]
        m += [3] + Array("svc".utf8) + [4] + Array("test".utf8) + [0, 0, 33, 0, 1]
        func answer(ttl: UInt32, rdata: [UInt8]) -> [UInt8] {
            [0xC0, 0x0C, 0, 33, 0, 1, UInt8(ttl >> 24), UInt8(ttl >> 16 & 0xFF), UInt8(ttl >> 8 & 0xFF), UInt8(ttl & 0xFF),
             0, UInt8(rdata.count)] + rdata
        }
        m += answer(ttl: 300, rdata: [0, 10, 0, 5, 0x1F, 0x90, 1, 0x61, 0])
        m += answer(ttl: 42, rdata: [0, 10, 0, 5, 0x1F, 0x91, 1, 0x62, 0])
        #expect(m.withUnsafeBytes { TargetAddresses.minAnswerTTL($0) } == 42)
        #expect(Array(m.prefix(20)).withUnsafeBytes { TargetAddresses.minAnswerTTL($0) } == nil)
        let noAnswers: [UInt8] = [0, 0, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]
        #expect(noAnswers.withUnsafeBytes { TargetAddresses.minAnswerTTL($0) } == nil)
    }
}
