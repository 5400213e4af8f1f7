import Testing
import GWHTTP
@testable import GWPlugins

@Suite struct RequestBodyCodecTests {
    func kind(_ s: String) -> BodyKind { BodyKind.of(contentType: FlatArray(s.utf8)[...]) }

    @Test func kinds() {
        #expect(kind("application/x-www-form-urlencoded; charset=utf-8") == .form)
        #expect(kind("Application/JSON") == .json)
        #expect(kind("application/vnd.api+json") == .json)
        #expect(kind("multipart/form-data; boundary=\"ab c\"") == .multipart(boundary: Array("ab c".utf8)))
        #expect(kind("multipart/form-data") == .other, "no boundary")
        #expect(kind("text/plain") == .other)
        #expect(BodyKind.of(contentType: nil) == .other)
    }

    @Test func form() {
        let b: [UInt8] = Array("a=1&b=x+y%21&c&&a=2".utf8)
        let pairs = b.withUnsafeBytes { FormBody.decode($0) }
        #expect(pairs.map(\.name) == ["a", "b", "c", "a"])
        #expect(pairs.map(\.value) == ["1", "x y!", "", "2"])
        #expect(String(decoding: FormBody.encode([("k y", "v&w")]), as: UTF8.self) == "k%20y=v%26w")
        #expect(b.withUnsafeBytes { DecodedBody.value("a", body: $0, kind: .form) } == .strings(["1", "2"]))
        #expect(b.withUnsafeBytes { DecodedBody.value("b", body: $0, kind: .form) } == .string("x y!"))
    }

    @Test func multipart() {
        let raw = "--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\none\r\n--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\nfile\r\nbody\r\n--XX--\r\n"
        let bytes: [UInt8] = Array(raw.utf8)
        var m = bytes.withUnsafeBytes { MultipartBody($0, boundary: Array("XX".utf8)) }
        #expect(m != nil)
        #expect(m?.parts.count == 2 && m?.get("a")?.value == "one" && m?.get("f")?.value == "file\r\nbody")
        m?.delete("a")
        m?.setSimple("n", "v")
        let out = String(decoding: m!.serialized(), as: UTF8.self)
        #expect(out == "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\nfile\r\nbody\r\n--XX\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\nv\r\n--XX--\r\n")
        let broken: [UInt8] = Array("--XX\r\nno end".utf8)
        #expect(broken.withUnsafeBytes { MultipartBody($0, boundary: Array("XX".utf8)) } == nil)
    }

    @Test func json() {
        let b: [UInt8] = Array(#"{"k":"v","n":1,"l":["a"]}"#.utf8)
        #expect(b.withUnsafeBytes { DecodedBody.value("k", body: $0, kind: .json) } == .string("v"))
        #expect(b.withUnsafeBytes { DecodedBody.value("n", body: $0, kind: .json) } == .other)
        #expect(b.withUnsafeBytes { DecodedBody.value("l", body: $0, kind: .json) } == .strings([]))
        #expect(b.withUnsafeBytes { DecodedBody.value("x", body: $0, kind: .json) } == nil)
    }
}
