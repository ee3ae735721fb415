// libFuzzer targets for what laq reads from strangers besides `.laq` files (tools/fuzz/README.md):
//
//   json   StrictJSON.parse, then the manifest decoder (JSONValueDecoder → Manifest);
//   npz    .npy/.npz images through Numpy.open(bytes:) and every array's read;
//   h5     a Keras .h5 through KerasImporter, in-process (libhdf5 included);
//   keras  a Keras .keras archive through KerasImporter.
//
// The target is chosen by LAQ_FUZZ_TARGET. A thrown error is a correct answer; a trap, a
// sanitizer report, a timeout or an out-of-memory is a finding. Built by tools/fuzz/run-inputs
// with `swift build --sanitize=fuzzer --sanitize=address -Xswiftc -DLAQ_FUZZER`, where
// libFuzzer supplies `main`. Without LAQ_FUZZER (a plain `swift build`) the same file is a
// replay tool: `laq-fuzz-inputs TARGET FILE…` runs each file once and reports the outcome.

import Foundation
import LAQData
import LAQFormat
import LAQImport

enum FuzzTarget: String, CaseIterable {
    case json, npz, h5, keras

    /// Runs one input; thrown errors are the readers' answers and are ignored.
    func run(_ bytes: [UInt8]) {
        switch self {
        case .json:
            guard let value = try? StrictJSON.parse(bytes) else { return }
            _ = try? JSONValueDecoder().decode(Manifest.self, from: value)
            // Oracle: what the reader accepts, laq's writer writes back as JSON it accepts again.
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            guard let text = try? encoder.encode(value) else { return }
            guard (try? StrictJSON.parse([UInt8](text))) != nil else {
                fatalError("laq-fuzz-inputs oracle failed: the re-encoded JSON is refused")
            }
        case .npz:
            guard let source = try? Numpy.open(bytes: bytes, path: "fuzz.npz") else { return }
            for name in source.names {
                guard let array = try? source.read(name) else { continue }
                // Oracle: the values match the declared shape.
                if array.values.count != array.shape.reduce(1, *) || array.shape != source.shape(name) {
                    fatalError("laq-fuzz-inputs oracle failed: array '\(name)' has \(array.values.count) values for shape \(array.shape)")
                }
            }
        case .h5, .keras:
            // The importer reads by path (libhdf5 opens files by name): the input goes to a file
            // in memory-backed /dev/shm, rewritten for each run.
            let path = Self.scratch + (self == .h5 ? ".h5" : ".keras")
            guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { fatalError("cannot write \(path)") }
            guard let result = try? KerasImporter().importModel(path: path) else { return }
            // Oracle: every imported weight holds as many values as its shape says.
            for weight in result.model.weights where weight.values.count != weight.shape.reduce(1, *) {
                fatalError("laq-fuzz-inputs oracle failed: weight '\(weight.name)' has \(weight.values.count) values for shape \(weight.shape)")
            }
        }
    }

    static let scratch: String = {
        let directory = FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        return "\(directory)/laq-fuzz-\(getpid())"
    }()
}

#if LAQ_FUZZER
let target: FuzzTarget = {
    guard let name = ProcessInfo.processInfo.environment["LAQ_FUZZ_TARGET"], let target = FuzzTarget(rawValue: name) else {
        fatalError("set LAQ_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    target.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
@main
struct Replay {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name), arguments.count > 1 else {
            print("usage: laq-fuzz-inputs {\(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|"))} FILE…")
            exit(2)
        }
        for file in arguments.dropFirst() {
            guard let bytes = FileManager.default.contents(atPath: file) else {
                print("cannot read \(file)")
                exit(2)
            }
            target.run([UInt8](bytes))
            print("ok \(file)")
        }
    }
}
#endif
