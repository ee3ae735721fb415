// swift-tools-version: 6.1
//
// laq: loss-aware quantization for Keras models, and the `.laq` file format.
//
// Data flow, one library target per job:
//   C libraries (one system-library target each) → LAQFormat (the container)
//   → LAQExamples (deterministic example models) → laq (the CLI)
import PackageDescription

let package = Package(
    name: "laq",
    products: [
        .executable(name: "laq", targets: ["laq"]),
        .library(name: "LAQFormat", targets: ["LAQFormat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", exact: "0.9.20"),
    ],
    targets: [
        // MARK: C libraries (Debian -dev packages; `tools/setup` installs them)
        .systemLibrary(name: "CLAQZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CCrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CHDF5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CBLAS", providers: [.apt(["libopenblas-dev"])]),

        // MARK: Libraries
        /// The `.laq` container: spec/FORMAT.md in code. Pure Swift apart from
        /// zlib (compression), libcrypto (SHA-256) and CLAQFormatSupport.
        .target(name: "LAQFormat", dependencies: ["CLAQZlib", "CCrypto", "CLAQFormatSupport"]),
        /// LAQFormat's C: a CRC-32 folded with carry-less multiplication (PCLMULQDQ; zlib's
        /// value, ~4× zlib's speed) and early writeback (sync_file_range).
        .target(name: "CLAQFormatSupport"),
        /// A thin, safe layer over libhdf5: the one place that calls the HDF5 C API.
        .target(name: "LAQHDF5", dependencies: ["CHDF5", "LAQFormat"]),
        /// Keras importers (legacy .h5, .weights.h5, .keras) into the model graph, with Adam state.
        .target(
            name: "LAQImport",
            dependencies: ["LAQHDF5", "LAQEngine", "LAQFormat", "LAQData", .product(name: "ZIPFoundation", package: "ZIPFoundation")]
        ),
        /// Data input: NumPy .npy/.npz arrays and HDF5 datasets for run, eval, calibration and diff.
        .target(name: "LAQData", dependencies: ["LAQHDF5", "LAQFormat", "LAQEngine", .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        /// The model graph and what runs it: Keras architecture parsing, the layer kinds (one type
        /// per Keras layer class: config, weights, shapes, forward and backward; `Layers/`), the
        /// executor and training (OpenBLAS for dense products).
        .target(name: "LAQEngine", dependencies: ["LAQFormat", "CBLAS", "CLAQKernels"]),
        /// The engine's hand-vectorised kernels (plane-matrix products, narrow products, max
        /// pooling, Adam's update; AVX-512 / AVX2 / scalar, chosen at run time), its worker thread
        /// and its allocator setting: the one place LAQEngine runs C.
        .target(name: "CLAQKernels"),
        /// The quantizers: loss-aware (LAB, LAT, LAT2, LAQ) and baselines, and model quantization.
        .target(name: "LAQQuantize", dependencies: ["LAQEngine", "LAQFormat"]),
        /// The calibration fine-tuning run of loss-aware quantization (quantizers + training engine).
        .target(name: "LAQCalibration", dependencies: ["LAQQuantize", "LAQEngine", "LAQFormat", "LAQData"]),
        /// `laq export`: a .laq file's weights as float32 .npz, safetensors, or a Keras-loadable
        /// legacy .h5 (architecture + weights, through LAQHDF5).
        .target(name: "LAQExport", dependencies: ["LAQFormat", "LAQEngine", "LAQHDF5", "LAQData"]),
        /// Comparing and reporting: `laq diff` (tensors, architecture, outputs on data, per-layer
        /// sensitivity) and the data behind `inspect --histogram` and `report`.
        .target(name: "LAQAnalysis", dependencies: ["LAQFormat", "LAQEngine", "LAQQuantize"]),
        /// Deterministic example models for `laq demo`, tests, benchmarks and fuzz seeds.
        .target(name: "LAQExamples", dependencies: ["LAQFormat", "LAQEngine"]),

        // MARK: Executables
        .executableTarget(
            name: "laq",
            dependencies: [
                "LAQFormat", "LAQExamples", "LAQEngine", "LAQImport", "LAQData", "LAQQuantize", "LAQCalibration", "LAQExport", "LAQAnalysis",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        /// `swift run -c release laq-bench`: format throughput against a plain file copy; with
        /// `--import MODEL.h5`, `laq import` against reading the same file; with `--packed`,
        /// packed-code products against float32 OpenBLAS.
        .executableTarget(name: "laq-bench", dependencies: ["LAQFormat", "CLAQFormatSupport", "CLAQZlib", "LAQExamples", "LAQHDF5", "LAQImport", "LAQEngine", "LAQData"],
                          path: "tools/bench", exclude: ["make_import_model.py", "compare_ort.py", "compare_tf.py", "compare_peers.py", "compare_import.py",
                                                          "compare_ggml.py", "count_mallocs.c", "ggml_mul_mat.c"]),

        /// libFuzzer targets for JSON, .npy/.npz, .h5 and .keras inputs (tools/fuzz/run-inputs builds
        /// them with `--sanitize=fuzzer`); a plain build is a tool that replays files through them.
        .executableTarget(name: "laq-fuzz-inputs", dependencies: ["LAQData", "LAQFormat", "LAQImport"], path: "tools/fuzz/inputs",
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),

        // MARK: Tests
        .target(name: "LAQTestSupport", dependencies: ["LAQFormat"], path: "Tests/LAQTestSupport"),
        .testTarget(name: "LAQFormatTests", dependencies: ["LAQFormat", "CLAQFormatSupport", "CLAQZlib", "LAQExamples", "LAQTestSupport"]),
        .testTarget(name: "LAQImportTests", dependencies: ["LAQImport", "LAQEngine", "LAQHDF5", "LAQFormat", "LAQData", "LAQTestSupport"]),
        .testTarget(name: "LAQEngineTests", dependencies: ["LAQEngine", "CLAQKernels", "LAQData", "LAQImport", "LAQFormat", "LAQQuantize", "LAQTestSupport"]),
        .testTarget(name: "LAQQuantizeTests", dependencies: ["LAQQuantize", "LAQCalibration", "LAQEngine", "LAQImport", "LAQData", "LAQFormat", "LAQExamples", "LAQTestSupport"]),
        .testTarget(name: "LAQExportTests", dependencies: ["LAQExport", "LAQImport", "LAQQuantize", "LAQEngine", "LAQData", "LAQFormat", "LAQExamples", "LAQTestSupport"]),
        .testTarget(name: "LAQAnalysisTests", dependencies: ["LAQAnalysis", "LAQEngine", "LAQImport", "LAQQuantize", "LAQData", "LAQFormat", "LAQExamples", "LAQTestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["LAQFormat", "LAQExamples", "LAQTestSupport"]),
        .testTarget(name: "SystemLibraryTests", dependencies: ["CHDF5", "CBLAS", "CLAQZlib"]),
    ],
    swiftLanguageModes: [.v6]
)
