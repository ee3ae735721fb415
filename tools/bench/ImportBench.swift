// `laq-bench --import MODEL.h5`: what `laq import` costs against reading the same file, measured
// side by side in one run, on warm page cache, medians of the repeats.
//
// Baselines: a plain read(2) of the file's bytes, a plain copy of it (cp + fsync: the least any
// command that reads a file and writes one of the same size can cost), and libhdf5 reading every dataset of the file
// into float32 arrays (what any HDF5 consumer, h5py included, must do at least). Then the
// importer alone (parse, hash the source with SHA-256, read, check and assemble every weight and
// optimizer slot into memory), and the whole of `laq import` in one process: import streaming each
// tensor to a spool, write the `.laq` file atomically (fsync) with `--compression none` and with
// the default `balanced`, and reopen it;
// to a new path, and replacing an existing file (the filesystem then frees the old file's blocks
// inside the rename). Also the CRC-32 every payload needs: zlib's against laq's folded kernel.
//
// A 50 MB Keras model with Adam state: tools/bench/make_import_model.py.
import CLAQFormatSupport
import CLAQZlib
import Foundation
import LAQFormat
import LAQHDF5
import LAQImport
import LAQEngine

func importBenchmark(path: String, repeats: Int) throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("laq-bench-import-\(getpid())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let output = directory.appendingPathComponent("model.laq").path
    let fileSize = Double(try FileManager.default.attributesOfItem(atPath: path)[.size] as! UInt64)
    var sink = 0

    /// Reads every dataset under `group` as float32, depth first.
    func readAll(_ group: H5Group) throws {
        for name in try group.children() {
            switch try group.kind(of: name) {
            case .group: try readAll(try group.group(name))
            case .dataset:
                let dataset = try group.dataset(name)
                if case .other = dataset.numberClass { continue }
                sink &+= try dataset.read(as: Float.self).count
            default: continue
            }
        }
    }

    /// What `laq import` does: each tensor is encoded and spooled as it is read, and the file
    /// laid out and written at the end.
    func importAndWrite(_ policy: WriteOptions.CompressionPolicy) throws {
        let writer = try LAQStreamWriter(path: output, options: WriteOptions(compression: policy))
        let model = try KerasImporter().importModel(path: path, delivery: .stream { try writer.add($0) }).model
        writer.model = model.modelInfo()
        writer.metadata = model.fileMetadata()
        writer.provenance = [ProvenanceRecord(tool: "laq-bench", command: "import", sources: [
            SourceFile(role: "model", file: path, sha256: model.source.sha256 ?? "", bytes: model.source.bytes ?? 0),
        ])]
        try writer.finish(order: model.tensorNames())
        sink &+= try LAQFile(path: output).tensors.count
    }

    _ = plainRead(path)  // warm the page cache
    let readTime = median(repeats) { sink &+= plainRead(path).count }
    let before = sink
    try readAll(try H5File(path: path).root())
    let hdf5Values = sink - before
    let copyTime = median(repeats) { plainCopy(from: path, to: output, sync: true) }
    let hdf5Time = try median(repeats) { try readAll(try H5File(path: path).root()) }
    let importTime = try median(repeats) { sink &+= try KerasImporter().importModel(path: path).model.weights.count }
    let removeOutput = { _ = unlink(output) }
    let storedTime = try median(repeats, setup: removeOutput) { try importAndWrite(.none) }
    let replacingTime = try median(repeats) { try importAndWrite(.none) }
    let balancedTime = try median(repeats, setup: removeOutput) { try importAndWrite(.balanced) }

    // CRC-32 of the file's bytes (in memory): zlib 1.2 against the folded kernel.
    let bytes = plainRead(path)
    var crc: UInt = 0
    let zlibCRCTime = median(repeats) {
        crc = bytes.withUnsafeBufferPointer { pointer in
            stride(from: 0, to: pointer.count, by: 1 << 30).reduce(0) { crc, start in
                CLAQZlib.crc32(crc, pointer.baseAddress! + start, UInt32(min(1 << 30, pointer.count - start)))
            }
        }
    }
    var foldedCRCTime = Double.nan
    if laq_crc32_fold_available() != 0 {
        let blocks = bytes.count & ~15
        foldedCRCTime = median(repeats) {
            let folded = bytes.withUnsafeBufferPointer { pointer in
                UInt(CLAQZlib.crc32(UInt(laq_crc32_fold(0, pointer.baseAddress!, blocks)), pointer.baseAddress! + blocks, UInt32(pointer.count - blocks)))
            }
            guard folded == crc else { fatalError("folded CRC-32 \(folded) differs from zlib's \(crc)") }
        }
    }

    let model = try KerasImporter().importModel(path: path).model
    let floats = model.weights.reduce(0) { $0 + $1.values.count } + (model.optimizer?.slots.reduce(0) { $0 + $1.values.count } ?? 0)
    print("laq-bench --import: \(URL(fileURLWithPath: path).lastPathComponent), \(String(format: "%.1f", fileSize / 1e6)) MB, "
        + "\(floats) float32 values (weights + optimizer slots; libhdf5 read \(hdf5Values) values), median of \(repeats), \(ProcessInfo.processInfo.activeProcessorCount) cores")
    func row(_ name: String, _ seconds: Double) {
        let name = name.padding(toLength: 50, withPad: " ", startingAt: 0)
        print("\(name) \(String(format: "%8.3f s  %8.1f MB/s  %6.2f× read  %6.2f× HDF5 read", seconds, fileSize / seconds / 1e6, seconds / readTime, seconds / hdf5Time))")
    }
    row("plain read(2) of the file", readTime)
    row("plain copy (read + write + fsync, 1 MiB chunks)", copyTime)
    row("libhdf5: every dataset into float32 arrays", hdf5Time)
    row("import (parse, SHA-256, read, check, assemble)", importTime)
    row("laq import --compression none (+ write, fsync)", storedTime)
    row("  the same, replacing an existing output", replacingTime)
    row("laq import (balanced: zlib where it saves ≥ 10%)", balancedTime)
    row("CRC-32 of the file's bytes: zlib", zlibCRCTime)
    row("CRC-32 of the file's bytes: laq folded (PCLMULQDQ)", foldedCRCTime)
    print(String(format: "import + write: %.2f× the time of reading every dataset with libhdf5, %.2f× a plain read (%.2f× replacing a file); balanced %.2f× / %.2f×",
                 storedTime / hdf5Time, storedTime / readTime, replacingTime / readTime, balancedTime / hdf5Time, balancedTime / readTime))
    print(String(format: "CRC-32: folded %.1f× zlib's speed", zlibCRCTime / foldedCRCTime))
    if sink == 42 { print("") }
}
