// swift-tools-version: 6.0
import PackageDescription

// C libraries from Debian 12 (bookworm), used through system-library targets (see scripts/setup.sh).
let cTargets: [Target] = [
    .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
    .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb", providers: [.apt(["librocksdb-dev"])]),
    .systemLibrary(name: "CAvro", pkgConfig: "avro-c", providers: [.apt(["libavro-dev"])]),
    .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
    .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
]

// Binaries built here load .local/lib/librdkafka.so.1 (2.16, linked by scripts/local-broker.sh
// install) before Debian's 2.0.2, which cannot talk to the local broker (../shared/local-broker.md).
// $ORIGIN is .build/<triple>/<configuration>.
let librdkafkaFromLocalLib: [LinkerSetting] = [.unsafeFlags(["-Xlinker", "-rpath", "-Xlinker", "$ORIGIN/../../../.local/lib"])]

// The long-running binaries allocate through jemalloc (libjemalloc-dev, scripts/setup.sh) instead of
// glibc's malloc: the jobs make many small short-lived allocations on one thread and a second one
// (Kafka, Redis), where glibc's free-list consolidation cost 14 % of the job's samples and jemalloc
// cut its CPU per 500k transactions by 16-20 % (docs/benchmarks.md). Linking it is enough: it comes
// before libc in the executable's DT_NEEDED, so every malloc/free (Swift runtime's included) binds to it.
let jobBinary: [LinkerSetting] = librdkafkaFromLocalLib + [.linkedLibrary("jemalloc", .when(platforms: [.linux]))]

let package = Package(
    name: "Tributary",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "StreamCore", targets: ["StreamCore"]),
        .library(name: "Operators", targets: ["Operators"]),
        .library(name: "StreamTesting", targets: ["StreamTesting"]),
        .library(name: "Connectors", targets: ["Connectors"]),
        .library(name: "Contracts", targets: ["Contracts"]),
        .library(name: "Kafka", targets: ["Kafka"]),
        .executable(name: "replay", targets: ["Replay"]),
        .executable(name: "bench-kafka", targets: ["BenchKafka"]),
        .executable(name: "generate", targets: ["Generate"]),
        .executable(name: "example-job", targets: ["ExampleJob"]),
        .executable(name: "bench-windows", targets: ["BenchWindows"]),
        .executable(name: "bench-codec", targets: ["BenchCodec"]),
        .executable(name: "flink-diff-tributary", targets: ["FlinkDiff"]),
        .executable(name: "bench-checkpoint", targets: ["BenchCheckpoint"]),
        .executable(name: "crash-test-job", targets: ["CrashTestJob"]),
        .executable(name: "txn-features", targets: ["TxnFeatures"]),
        .executable(name: "click-features", targets: ["ClickFeatures"]),
        .executable(name: "backfill", targets: ["Backfill"]),
        .executable(name: "drill", targets: ["Drill"]),
    ],
    // Metrics go through swift-metrics (the API every library emits to) to a Prometheus registry that
    // a process serves on /metrics (Telemetry, `--metrics-port`); without a bootstrap they cost nothing.
    dependencies: [
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: cTargets + [
        // StreamCore compresses checkpoint snapshots with zstd (Checkpoint/Zstd.swift).
        .target(name: "StreamCore", dependencies: ["CZstd", "CRocksDB", .product(name: "CoreMetrics", package: "swift-metrics")]),
        // The Prometheus side: swift-metrics bootstrapped to a Prometheus registry, the runtime's
        // per-operator figures reported into it, and the HTTP endpoint that serves /metrics.
        .target(name: "Telemetry", dependencies: ["StreamCore", .product(name: "CoreMetrics", package: "swift-metrics"),
                                                  .product(name: "Prometheus", package: "swift-prometheus")]),
        .testTarget(name: "TelemetryTests", dependencies: ["Telemetry", "StreamCore", "StreamTesting"]),
        .target(name: "Operators", dependencies: ["StreamCore"]),
        .target(name: "StreamTesting", dependencies: ["StreamCore"]),
        // Sinks and sources at the edge: files, Redis (Feast's online-store layout).
        .target(name: "Connectors", dependencies: ["StreamCore", "CHiredis", .product(name: "CoreMetrics", package: "swift-metrics")]),
        // A job written against the public library alone, as a user outside this repo would.
        .executableTarget(name: "ExampleJob", dependencies: ["StreamCore"], path: "Examples/ExampleJob"),
        .target(name: "CMallocCounter", path: "Benchmarks/CMallocCounter"),
        .executableTarget(
            name: "BenchWindows",
            dependencies: ["StreamCore", "Operators", "CMallocCounter"],
            path: "Benchmarks/BenchWindows"
        ),
        // The job the kill -9 crash tests run as a separate process (Tests/CrashTests).
        .executableTarget(name: "CrashTestJob", dependencies: ["StreamCore", "Connectors"], path: "Tools/CrashTestJob"),
        .testTarget(name: "CrashTests", dependencies: ["Connectors", "StreamCore", "CrashTestJob"]),
        .executableTarget(name: "BenchCheckpoint", dependencies: ["StreamCore"], path: "Benchmarks/BenchCheckpoint"),
        // The checkpoint codec, zstd and XXH64 on 1 M small structs (docs/benchmarks.md).
        .executableTarget(name: "BenchCodec", dependencies: ["StreamCore"], path: "Benchmarks/BenchCodec"),
        // The Tributary side of the differential test against Apache Flink (scripts/flink_diff.py).
        .executableTarget(name: "FlinkDiff", dependencies: ["Operators"], path: "Tools/FlinkDiff"),
        // example-job is a dependency so its binary sits next to the tests (cross-process key-group test).
        .testTarget(name: "StreamCoreTests", dependencies: ["StreamCore", "StreamTesting", "Operators", "ExampleJob"]),
        .testTarget(name: "OperatorsTests", dependencies: ["Operators", "StreamTesting"]),
        .testTarget(name: "ConnectorsTests", dependencies: ["Connectors", "StreamCore"]),
        .testTarget(name: "CInteropTests", dependencies: ["CRdKafka", "CRocksDB", "CAvro", "CZstd", "CHiredis"]),
        // Avro contracts (schemas/) in the Confluent wire format, resolved by libavro.
        .target(name: "Contracts", dependencies: ["CAvro"]),
        .testTarget(name: "ContractsTests", dependencies: ["Contracts", "StreamTesting"]),
        // Against the local broker (scripts/local-broker.sh): librdkafka 2.16 from .local/lib first.
        // Kafka source and sink (librdkafka), DLQ envelopes, Avro (de)serializers.
        .target(name: "Kafka", dependencies: ["StreamCore", "CRdKafka", "Contracts", .product(name: "CoreMetrics", package: "swift-metrics")]),
        // Re-publishes DLQ records (or a file of fixed ones) to their source topic.
        .executableTarget(name: "Replay", dependencies: ["Kafka", "Contracts", "StreamCore"], path: "Tools/Replay",
                          linkerSettings: librdkafkaFromLocalLib),
        // Deterministic synthetic transactions, clicks and devices (issue 6), and the tool that sends them.
        .target(name: "Generators", dependencies: ["Contracts"]),
        .executableTarget(name: "Generate", dependencies: ["Generators", "Kafka", "Contracts", "StreamCore"], path: "Tools/Generate",
                          linkerSettings: jobBinary),
        .testTarget(name: "GeneratorsTests", dependencies: ["Generators", "Contracts"]),
        .executableTarget(name: "BenchKafka", dependencies: ["Kafka", "Contracts", "StreamCore"], path: "Benchmarks/BenchKafka",
                          linkerSettings: librdkafkaFromLocalLib),
        // The feature jobs (issue 6): features, views, the offline log, settings, the job graphs.
        .target(name: "FeatureJobs", dependencies: ["StreamCore", "Operators", "Connectors", "Contracts", "Kafka", "Telemetry",
                                                    .product(name: "CoreMetrics", package: "swift-metrics")]),
        .executableTarget(name: "TxnFeatures", dependencies: ["FeatureJobs", "StreamCore", "Kafka"], path: "Sources/Jobs/TxnFeatures",
                          linkerSettings: jobBinary),
        .executableTarget(name: "ClickFeatures", dependencies: ["FeatureJobs", "StreamCore", "Kafka"], path: "Sources/Jobs/ClickFeatures",
                          linkerSettings: jobBinary),
        .executableTarget(name: "Backfill", dependencies: ["FeatureJobs", "Kafka"], path: "Tools/Backfill", linkerSettings: jobBinary),
        .executableTarget(name: "Drill", dependencies: ["FeatureJobs", "Kafka", "Connectors"], path: "Tools/Drill", linkerSettings: jobBinary),
        .testTarget(name: "FeatureJobsTests", dependencies: ["FeatureJobs", "StreamTesting", "StreamCore", "Operators", "Connectors", "Contracts", "Kafka", "Generators", "TxnFeatures", "ClickFeatures", "Generate", "Backfill", "Drill"],
                    linkerSettings: librdkafkaFromLocalLib),
        .testTarget(name: "KafkaTests", dependencies: ["CRdKafka", "Kafka", "StreamCore", "Contracts", "Operators", "StreamTesting", "Replay", "Generate"],
                    linkerSettings: librdkafkaFromLocalLib),
    ],
    swiftLanguageModes: [.v6]
)
