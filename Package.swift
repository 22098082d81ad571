// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "JobRouter",
    // Linux only: the C boundary uses Glibc, and Debian's hiredis/libcurl are what it is built and
    // tested against. No other platform is claimed.
    products: [
        // One product per module, so an app links only what it uses: enqueueing needs JobRouter +
        // JobRouterRedis (no libcurl); JobRouterSMTP adds the mail handler (libcurl).
        .library(name: "JobRouter", targets: ["JobRouter"]),
        .library(name: "JobRouterRedis", targets: ["JobRouterRedis"]),
        .library(name: "JobRouterSMTP", targets: ["JobRouterSMTP"]),
        // PostgreSQL through libpq: an app that never touches Postgres does not link libpq.
        .library(name: "JobRouterPostgres", targets: ["JobRouterPostgres"]),
        // /metrics, /healthz, /readyz over HTTP (hummingbird, SwiftNIO): only what serves HTTP links NIO.
        .library(name: "JobRouterHTTP", targets: ["JobRouterHTTP"]),
        .library(name: "JobRouterWeb", targets: ["JobRouterWeb"]),
        // `jobrouter`: runs `work` itself when the core alone runs the configuration, and hands
        // every other command to `jobrouter-cli` beside it (install both).
        .executable(name: "jobrouter", targets: ["jobrouter"]),
        .executable(name: "jobrouter-cli", targets: ["JobRouterCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // No default traits: JobRouter needs neither swift-configuration nor the full-Foundation extras.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "JobRouter",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(
            name: "JobRouterSMTP",
            dependencies: [
                .product(name: "Metrics", package: "swift-metrics"),
                "JobRouter",
                "CCurl",
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .systemLibrary(
            name: "CLibpq",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "JobRouterPostgres",
            dependencies: [
                .product(name: "Metrics", package: "swift-metrics"),
                "JobRouter",
                "CLibpq",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "JobRouterRedis",
            dependencies: [
                .product(name: "Metrics", package: "swift-metrics"),
                "JobRouter",
                "CHiredis",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "JobRouterHTTP",
            dependencies: [
                "JobRouter",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "JobRouterWeb",
            dependencies: [
                "JobRouter",
                "JobRouterRedis",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // glibc's <malloc.h> (mallopt): `work` in the full CLI sets how its large buffers are allocated.
        .systemLibrary(name: "CMalloc"),
        .executableTarget(
            name: "JobRouterCLI",
            dependencies: [
                "CMalloc",
                "JobRouter",
                "JobRouterRedis",
                "JobRouterSMTP",
                "JobRouterPostgres",
                "JobRouterHTTP",
                "JobRouterWeb",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Links only the core and Redis (no libcurl, libpq, SwiftNIO or ArgumentParser): what a
        // worker maps is what it runs.
        .executableTarget(
            name: "jobrouter",
            dependencies: [
                "JobRouter",
                "JobRouterRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Library-level figures (scripts/bench-library.sh); not a product.
        .executableTarget(
            name: "jobrouter-bench",
            dependencies: ["JobRouter", "JobRouterRedis", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/jobrouter-bench"
        ),
        .testTarget(name: "JobRouterTests", dependencies: ["JobRouter", "JobRouterHTTP"]),
        .testTarget(
            name: "JobRouterRedisTests",
            dependencies: ["JobRouter", "JobRouterRedis", "JobRouterPostgres", "CHiredis"]
        ),
        .testTarget(
            name: "JobRouterPostgresTests",
            dependencies: ["JobRouter", "JobRouterPostgres", "JobRouterRedis"]
        ),
        .testTarget(
            name: "JobRouterWebTests",
            dependencies: ["JobRouter", "JobRouterRedis", "JobRouterWeb", "JobRouterPostgres", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "JobRouterSMTPTests",
            dependencies: ["JobRouter", "JobRouterRedis", "JobRouterSMTP"]
        ),
    ]
)
