// swift-tools-version:6.0
// Gateway's libFuzzer targets (issue #13, "Fuzzing"). A separate package so that the main build never needs the
// fuzzer flags: it depends on the main package by path and is built only by `make fuzz` / `make fuzz-smoke`:
//   swift build -c release --package-path Fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing
// (-enable-testing lets the targets reach internal entry points through `@testable import`). One executable per
// target; each defines LLVMFuzzerTestOneInput and `<module>_main` (the name SwiftPM links as `main`), which runs
// libFuzzer's driver (Sources/FuzzMain); no top-level code, hence -parse-as-library.
import PackageDescription

let asLibrary: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

func fuzzTarget(_ name: String, _ deps: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: deps, path: "Sources/\(name)", swiftSettings: asLibrary)
}

let gw: Target.Dependency = .product(name: "GatewayFuzzable", package: "gateway")

let package = Package(
    name: "GatewayFuzz",
    dependencies: [.package(name: "gateway", path: "..")],
    targets: [
        .target(name: "FuzzMain", path: "Sources/FuzzMain"),
        .target(name: "FuzzSupport", dependencies: ["FuzzMain", gw], path: "Sources/FuzzSupport"),
        fuzzTarget("fuzz-http-request", ["FuzzSupport", gw]),
        fuzzTarget("fuzz-http-response", ["FuzzSupport", gw]),
        fuzzTarget("fuzz-json", ["FuzzSupport", gw]),
        fuzzTarget("fuzz-declarative", ["FuzzSupport", gw]),
        fuzzTarget("fuzz-declarative-validate", ["FuzzSupport", gw]),
        fuzzTarget("fuzz-admin-body", ["FuzzSupport", gw]),
        fuzzTarget("fuzz-path", ["FuzzSupport", gw]),
        fuzzTarget("fuzz-gateway-conf", ["FuzzSupport", gw]),
        fuzzTarget("fuzz-resp", ["FuzzSupport", gw]),
    ]
)
