import Glibc
import Testing
import GWHTTP
@testable import GWProxy

@Suite struct RequestBodyModeTests {
    func choose(_ body: Bool, chunked: Bool = false, upgrade: Bool = false, buffers: Bool = true, plugins: Bool = false) -> RequestBodyMode {
        RequestBodyMode.choose(hasBody: body, chunked: chunked, upgrade: upgrade, routeBuffers: buffers, pluginsNeedBody: plugins)
    }

    @Test func modes() {
        #expect(choose(false) == .none)
        #expect(choose(true) == .buffer)
        #expect(choose(true, chunked: true) == .buffer)
        #expect(choose(true, buffers: false) == .stream)
        #expect(choose(true, chunked: true, buffers: false) == .rechunk)
        #expect(choose(true, buffers: false, plugins: true) == .buffer, "a plugin reading the body forces buffering")
        #expect(choose(true, chunked: true, upgrade: true) == .rechunk, "an Upgrade request's body is relayed")
    }
}

@Suite struct RequestBodyBufferTests {
    @Test func memoryThenTempFile() throws {
        let dir = "/tmp/gw-body-test-\(getpid())"
        _ = mkdir(dir, 0o700)
        defer { _ = rmdir(dir) }
        let b = RequestBodyBuffer(memoryLimit: 8, tempDirectory: dir)
        let piece: [UInt8] = Array("abcdef".utf8)
        #expect(piece.withUnsafeBytes { b.append($0) } && b.inMemory)
        #expect(piece.withUnsafeBytes { b.append($0) } && !b.inMemory, "past the memory limit: a file")
        #expect(b.length == 12)
        var out = FlatArray<UInt8>()
        #expect(b.copy(from: 0, max: 5, into: &out) == 5)
        #expect(b.copy(from: 5, max: 100, into: &out) == 7)
        #expect(Array(out) == Array("abcdefabcdef".utf8))
        #expect(b.copy(from: 12, max: 100, into: &out) == 0)
        b.reset()
        #expect(b.inMemory && b.length == 0)
        #expect(piece.withUnsafeBytes { b.append($0) } && b.memory == piece)
    }

    @Test func unwritableTempDirectoryFails() {
        let b = RequestBodyBuffer(memoryLimit: 2, tempDirectory: "/nonexistent/dir")
        let piece: [UInt8] = [1, 2, 3]
        #expect(!piece.withUnsafeBytes { b.append($0) })
        #expect(b.failure?.contains("/nonexistent/dir") == true)
    }
}
