import Foundation
import LAQHDF5

/// The arrays of a data file, whatever its kind: `.npy` (one array named after the file),
/// `.npz` (stored or deflated members), or HDF5 — `file.h5` (every dataset, named by its path
/// without the leading `/`: `x`, `train/x`) or `file.h5:/group/dataset` (that dataset alone,
/// named by its last path component). The kind is recognised by content, not by extension.
public enum DataFile {
    /// Opens a data file: every array's shape is known (and checked against the bytes present),
    /// no values are read until ``DataSource/read(_:)``.
    public static func open(_ specification: String) throws(DataError) -> DataSource {
        let (path, dataset) = split(specification)
        if isHDF5(path) { return try openHDF5(path: path, dataset: dataset) }
        if dataset != nil {
            throw DataError(file: path, reason: "'\(path):\(dataset!)' names a dataset, but \(path) is not an HDF5 file")
        }
        return try Numpy.open(path: path)
    }

    /// Every array of a data file, read.
    public static func load(_ specification: String) throws(DataError) -> [String: NumpyArray] {
        try open(specification).readAll()
    }

    /// `file.h5:/path` → ("file.h5", "/path"); a path without `:/` (or an existing file whose
    /// name holds one) is the whole file.
    static func split(_ specification: String) -> (String, String?) {
        guard !FileManager.default.fileExists(atPath: specification),
              let range = specification.range(of: ":/", options: .backwards) else { return (specification, nil) }
        return (String(specification[..<range.lowerBound]), String(specification[specification.index(after: range.lowerBound)...]))
    }

    /// The file a data specification names (`file.h5:/group/x` → `file.h5`).
    public static func path(of specification: String) -> String { split(specification).0 }

    /// Whether `path` starts with the HDF5 signature.
    public static func isHDF5(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return H5File.hasSignature((try? handle.read(upToCount: 8)) ?? Data())
    }

    static func openHDF5(path: String, dataset: String?) throws(DataError) -> DataSource {
        do {
            let file = try H5File(path: path)
            let root = try file.root()
            if let dataset {
                guard try root.kind(of: dataset) == .dataset else {
                    throw DataError(file: path, array: dataset, reason: "no such dataset")
                }
                let name = dataset.split(separator: "/").last.map(String.init) ?? dataset
                return DataSource(file: path, arrays: [name: try array(root.dataset(dataset), file: path, name: dataset)])
            }
            var arrays: [String: DataSource.Array] = [:]
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
            return DataSource(file: path, arrays: arrays)
        } catch let error as DataError {
            throw error
        } catch {
            throw DataError(file: path, reason: "cannot read as HDF5: \(error)")
        }
    }

    /// A dataset's shape and type, and how to read it (after the shape was checked).
    static func array(_ dataset: H5Dataset, file: String, name: String) throws -> DataSource.Array {
        let dtype: String
        switch dataset.numberClass {
        case let .float(bytes): dtype = "<f\(bytes)"
        case let .integer(bytes, signed): dtype = "<\(signed ? "i" : "u")\(bytes)"
        case let .other(description): throw DataError(file: file, array: name, reason: "not a numeric dataset (\(description))")
        }
        guard dataset.elementCount <= Numpy.maxElements else {
            throw DataError(file: file, array: name, reason: "\(dataset.elementCount) elements is more than laq reads (\(Numpy.maxElements))")
        }
        return DataSource.Array(shape: dataset.shape, dtype: dtype) { () throws(DataError) in
            do {
                return NumpyArray(shape: dataset.shape, dtype: dtype, values: try dataset.read(as: Float.self))
            } catch {
                throw DataError(file: file, array: name, reason: "cannot read: \(error)")
            }
        }
    }
}

/// An opened data file: its arrays' shapes, checked against the bytes present, and their values
/// read on demand, so that a caller checks a declared shape before memory is spent on it.
public struct DataSource {
    public struct Array {
        public var shape: [Int]
        public var dtype: String
        let read: () throws(DataError) -> NumpyArray
    }

    public let file: String
    public let arrays: [String: Array]

    public var names: [String] { arrays.keys.sorted() }

    /// The shape `name` declares, or nil when there is no such array.
    public func shape(_ name: String) -> [Int]? { arrays[name]?.shape }

    /// The values of `name`, read now.
    public func read(_ name: String) throws(DataError) -> NumpyArray {
        guard let array = arrays[name] else { throw DataError(file: file, array: name, reason: "no such array (has \(names.joined(separator: ", ")))") }
        return try array.read()
    }

    /// Every array, read.
    public func readAll() throws(DataError) -> [String: NumpyArray] {
        var values: [String: NumpyArray] = [:]
        for name in names { values[name] = try read(name) }
        return values
    }
}
