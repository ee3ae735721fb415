// laq-bench: format throughput against a plain file copy measured in the same run.
//
//   swift run -c release laq-bench [--megabytes 100] [--repeats 5]
//   swift run -c release laq-bench --import MODEL.h5 [--repeats 5]     (see ImportBench.swift)
//   swift run -c release laq-bench --packed [--size 4096] [--batches 1,16,64] [--only TEXT] [--json]   (see PackedBench.swift)
//   swift run -c release laq-bench --train MODEL.h5 [--batch 100] [--steps 200] [--json]  (TrainBench.swift)
//   swift run -c release laq-bench --panels [--repeats 5] [--json]     (see PanelBench.swift)
//   swift run -c release laq-bench --convolutions [--repeats 5] [--json]   (see ConvolutionBench.swift)
//
// Writes a model of at least --megabytes MB (10^6 bytes) of float32 tensors (random bit patterns, so zlib does not pay and every payload
// is stored; float32 weights of a real model deflate by ~7%, and are then kept as zlib streams),
// then times, on warm page cache: a plain file copy (read + write, 1 MiB chunks) and a plain
// read; laq write; open + read every tensor into float32 arrays; open + verify (SHA-256, every
// CRC). Prints MB/s (10^6 bytes) and ratios against the copy. Medians of the repeats.
import Foundation
import LAQEngine
import LAQExamples
import LAQFormat

#if canImport(Glibc)
import Glibc
#endif

var megabytes = 100
var repeats = 5
var importPath: String?
var packedSize: Int?
var trainPath: String?
var trainData: String?
var batch = 100
var steps = 200
var json = false
var panels = false
var convolutions = false
var packedBatches = [1, 2, 4, 8, 16, 32, 64]
var packedOnly: String?
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--megabytes": megabytes = Int(arguments.next() ?? "") ?? megabytes
    case "--repeats": repeats = Int(arguments.next() ?? "") ?? repeats
    case "--import": importPath = arguments.next()
    case "--packed": packedSize = packedSize ?? 4096
    case "--panels": panels = true
    case "--convolutions": convolutions = true
    case "--batches":
        let batches = (arguments.next() ?? "").split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
        if !batches.isEmpty { packedBatches = batches }
    case "--only": packedOnly = arguments.next()
    case "--size": packedSize = Int(arguments.next() ?? "") ?? 4096
    case "--json": json = true
    case "--train": trainPath = arguments.next()
    case "--batch": batch = Int(arguments.next() ?? "") ?? batch
    case "--steps": steps = Int(arguments.next() ?? "") ?? steps
    case "--data": trainData = arguments.next()
    default:
        print("usage: laq-bench [--megabytes N] [--repeats N] | --import MODEL.h5 [--repeats N] | --packed [--size N] [--repeats N] [--batches 1,16,64] [--only TEXT] [--json] | --train MODEL.h5 [--batch N] [--steps N] [--data BATCH.npz] [--json] | --panels [--repeats N] [--json] | --convolutions [--repeats N] [--json]")
        exit(2)
    }
}

// As the laq command sets up the process (LAQCommand.main): OpenBLAS' idle workers sleep instead
// of spinning beside laq's own threads, and freed arrays stay in the heap for reuse.
BLASThreads.sleepWhenIdle()
EngineMemory.keepFreedBlocks()

/// Runs a benchmark; an error is printed with its reason (exit 1), not raised at top level.
func running(_ body: () throws -> Void) -> Never {
    do { try body() } catch {
        FileHandle.standardError.write(Data("laq-bench: error: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}

if let trainPath {
    running { try trainBenchmark(path: trainPath, batch: batch, steps: steps, data: trainData, json: json) }
}

if let packedSize {
    packedBenchmark(size: packedSize, repeats: repeats == 5 ? 30 : repeats, batches: packedBatches, only: packedOnly, json: json)
    exit(0)
}

if panels {
    panelBenchmark(repeats: repeats == 5 ? 20 : repeats, json: json)
    exit(0)
}

if convolutions {
    convolutionBenchmark(repeats: repeats == 5 ? 50 : repeats, json: json)
    exit(0)
}

if let importPath {
    running { try importBenchmark(path: importPath, repeats: repeats) }
}

let directory = FileManager.default.temporaryDirectory.appendingPathComponent("laq-bench-\(getpid())")
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
defer { if ProcessInfo.processInfo.environment["LAQ_BENCH_KEEP"] == nil { try? FileManager.default.removeItem(at: directory) } }
let modelPath = directory.appendingPathComponent("model.laq").path
let copyPath = directory.appendingPathComponent("copy.bin").path

// 4 MiB tensors (1M floats), like the kernels of a mid-sized model.
var random = SeededGenerator(seed: 42)
var writer = LAQWriter(model: ModelInfo(name: "bench"))
// Rounded up: 100 MB is 24 tensors, 100.7 MB.
let tensorCount = max(1, (megabytes * 1_000_000 + (4 << 20) - 1) / (4 << 20))
for index in 0..<tensorCount {
    // Uniformly random bit patterns (finite): incompressible, so every payload is stored.
    let values = (0..<(1 << 20)).map { _ -> Float in
        let bits = UInt32.random(in: 0...UInt32.max, using: &random)
        return Float(bitPattern: (bits >> 23) & 0xFF == 0xFF ? bits ^ (1 << 23) : bits)
    }
    try writer.add(TensorRecord(name: "layer_\(index)/kernel", shape: [1024, 1024], data: .float(values, as: .float32)))
}

var sink = 0
let writeTime = try median(repeats) { try writer.write(to: modelPath) }
let fileSize = Double(try FileManager.default.attributesOfItem(atPath: modelPath)[.size] as! UInt64)
let copyTime = median(repeats) { plainCopy(from: modelPath, to: copyPath, sync: true) }
let readTime = median(repeats) { sink &+= plainRead(modelPath).count }
let decodeTime = try median(repeats) {
    let file = try LAQFile(path: modelPath)
    for tensor in file.tensors { sink &+= try file.floats(tensor).count }
}
let viewTime = try median(repeats) {
    let file = try LAQFile(path: modelPath)
    for tensor in file.tensors { sink &+= try file.withDecodedPayload(tensor) { Int($0[$0.count - 1]) } }
}
let verifyTime = try median(repeats) {
    let report = try LAQFile(path: modelPath).verify()
    precondition(report.isValid)
}

func row(_ name: String, _ seconds: Double) {
    let rate = fileSize / seconds / 1e6
    let name = name.padding(toLength: 46, withPad: " ", startingAt: 0)
    print("\(name) \(String(format: "%9.1f MB/s  %6.2f× copy  %6.2f× read", rate, copyTime / seconds, readTime / seconds))")
}

print("laq-bench: \(tensorCount) float32 tensors, \(String(format: "%.1f", fileSize / 1e6)) MB, median of \(repeats), \(ProcessInfo.processInfo.activeProcessorCount) cores")
row("plain copy (read+write+fsync, 1 MiB chunks)", copyTime)
row("plain read into memory", readTime)
row("laq write (zlib tried, kept stored; atomic)", writeTime)
row("laq open + read all tensors to [Float]", decodeTime)
row("laq open + CRC + zero-copy view of tensors", viewTime)
row("laq verify (SHA-256 ∥ CRC-32, every byte)", verifyTime)
print(String(format: "verify: %.2f GB/s; reading stored tensors: %.0f%% of plain-copy speed", fileSize / verifyTime / 1e9, copyTime / decodeTime * 100))
let allStored = try LAQFile(path: modelPath).tensors.allSatisfy { $0.compression == .stored }
precondition(allStored, "the benchmark model must be stored, not compressed")
if sink == 42 { print("") }
