import Glibc
import Testing
import GWSystem
@testable import GWProxy

/// OutputQueue over a real nonblocking socketpair: partial writes, back-pressure, drain, failure.
@Suite struct OutputQueueSocketTests {
    func readAll(_ fd: Int32) -> [UInt8] {
        var got: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let r = buf.withUnsafeMutableBytes { Socket.read(fd, into: $0.baseAddress!, count: $0.count) }
            guard case .bytes(let n) = r else { break }
            got.append(contentsOf: buf[0..<n])
        }
        return got
    }

    @Test func smallWriteDrains() throws {
        let (a, b) = try Socket.socketPair()
        defer { Socket.close(a); Socket.close(b) }
        var q = OutputQueue()
        let msg: [UInt8] = Array("HTTP/1.1 200 OK\r\n\r\n".utf8)
        q.append(msg)
        #expect(q.pending == msg.count)
        let r = q.write(to: a)
        #expect(r == .drained(wrote: msg.count))
        #expect(!q.hasPending && q.sent == 0 && q.bytes.isEmpty)
        #expect(readAll(b) == msg)
    }

    @Test func backPressureThenDrain() throws {
        let (a, b) = try Socket.socketPair()
        defer { Socket.close(a); Socket.close(b) }
        var q = OutputQueue()
        let big = [UInt8](repeating: 0x61, count: 4 << 20)   // more than the socket buffers hold
        q.append(big)
        guard case .wouldBlock(let first) = q.write(to: a) else { Issue.record("expected wouldBlock"); return }
        #expect(first > 0 && first < big.count)
        #expect(q.sent == first && q.pending == big.count - first)
        var received = readAll(b)
        var rounds = 0
        while q.hasPending && rounds < 10_000 {
            _ = q.write(to: a)
            received += readAll(b)
            rounds += 1
        }
        received += readAll(b)
        #expect(!q.hasPending)
        #expect(received.count == big.count)
    }

    @Test func peerGoneFails() throws {
        let (a, b) = try Socket.socketPair()
        Socket.close(b)
        defer { Socket.close(a) }
        var q = OutputQueue()
        q.append([1, 2, 3])
        let r = q.write(to: a)
        #expect(r == .failed)
    }
}
