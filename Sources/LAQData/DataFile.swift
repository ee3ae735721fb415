import Foundation
import LAQHDF5

/// The arrays of a data file, whatever its kind: `.npy` (one array named after the file),
/// `.npz` (stored or deflated members), or HDF5 — `file.h5` (every dataset, named by its path
/// without the leading `/`: `x`, `train/x`) or `file.h5:/group/dataset` (that dataset alone,
/// named by its last path component). The kind is recognised by content, not by extension.
public enum DataFile {
    public static func load(_ specification: String) throws(DataError) -> [String: NumpyArray] {
        let (path, dataset) = split(specification)
        if isHDF5(path) { return try loadHDF5(path: path, dataset: dataset) }
        if dataset != nil {
            throw DataError(file: path, reason: "'\(path):\(dataset!)' names a dataset, but \(path) is not an HDF5 file")
        }
        return try Numpy.load(path: path)
    }

    /// `file.h5:/path` → ("file.h5", "/path"); a path without `:/` (or an existing file whose
    /// name holds one) is the whole file.
    static func split(_ specification: String) -> (String, String?) {
        guard !FileManager.default.fileExists(atPath: specification),
              let range = specification.range(of: ":/", options: .backwards) else { return (specification, nil) }
        return (String(specification[..<range.lowerBound]), String(specification[specification.index(after: range.lowerBound)...]))
    }

    static func isHDF5(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return H5File.hasSignature((try? handle.read(upToCount: 8)) ?? Data())
    }

    static func loadHDF5(path: String, dataset: String?) throws(DataError) -> [String: NumpyArray] {
        do {
            let file = try H5File(path: path)
            let root = try file.root()
            if let dataset {
                guard try root.kind(of: dataset) == .dataset else {
                    throw DataError(file: path, array: dataset, reason: "no such dataset")
                }
                let name = dataset.split(separator: "/").last.map(String.init) ?? dataset
                return [name: try array(root.dataset(dataset), file: path, name: dataset)]
            }
            var arrays: [String: NumpyArray] = [:]
            func visit(_ group: H5Group, prefix: String, depth: Int) throws {
                guard depth <= 8 else { return }
                for child in try group.children() {
                    let name = prefix.isEmpty ? child : "\(prefix)/\(child)"
                    switch try group.kind(of: child) {
                    case .dataset?: arrays[name] = try array(group.dataset(child), file: path, name: name)
                    case .group?: try visit(group.group(child), prefix: name, depth: depth + 1)
                    default: break
                    }
                }
            }
            try visit(root, prefix: "", depth: 0)
            if arrays.isEmpty { throw DataError(file: path, reason: "holds no datasets") }
            return arrays
        } catch let error as DataError {
            throw error
        } catch {
            throw DataError(file: path, reason: "cannot read as HDF5: \(error)")
        }
    }

    static func array(_ dataset: H5Dataset, file: String, name: String) throws -> NumpyArray {
        let dtype: String
        switch dataset.numberClass {
        case let .float(bytes): dtype = "<f\(bytes)"
        case let .integer(bytes, signed): dtype = "<\(signed ? "i" : "u")\(bytes)"
        case let .other(description): throw DataError(file: file, array: name, reason: "not a numeric dataset (\(description))")
        }
        guard dataset.elementCount <= Numpy.maxElements else {
            throw DataError(file: file, array: name, reason: "\(dataset.elementCount) elements is more than laq reads (\(Numpy.maxElements))")
        }
        return NumpyArray(shape: dataset.shape, dtype: dtype, values: try dataset.read(as: Float.self))
    }
}
