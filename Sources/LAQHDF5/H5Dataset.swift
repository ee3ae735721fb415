import CHDF5

/// Element types laq reads datasets into; the memory type comes from the Swift type, never from
/// the file, and HDF5 converts (float16/64 → float32, any integer width → Int64).
public protocol H5Element: Sendable, BitwiseCopyable {
    static var h5MemoryType: hid_t { get }
}

extension Float: H5Element {
    public static var h5MemoryType: hid_t { laq_h5t_native_float() }
}

extension Double: H5Element {
    public static var h5MemoryType: hid_t { laq_h5t_native_double() }
}

extension Int64: H5Element {
    public static var h5MemoryType: hid_t { laq_h5t_native_int64() }
}

/// The kind of numbers a dataset holds in the file.
public enum H5NumberClass: Sendable, Equatable {
    case float(bytes: Int)
    case integer(bytes: Int, signed: Bool)
    case other(String)
}

/// A dataset: a shape and typed elements.
public final class H5Dataset: H5Object, @unchecked Sendable {
    /// Largest element count laq reads from one dataset (2 Gi elements). Importers also check a
    /// dataset's shape against its layer's config before reading it.
    public static let maxElements = 1 << 31

    /// The extent, outermost first (`[]` for a scalar).
    public let shape: [Int]
    public let numberClass: H5NumberClass

    init(file: H5File, parent: hid_t, name: String, fullPath: String) throws {
        let operation = "open dataset '\(fullPath)'"
        // Owned from here on, so every early exit below closes it.
        let handle = H5ID(try HDF5.check(operation, path: file.path) { H5Dopen2(parent, name, hid_t(H5P_DEFAULT)) }, close: H5Dclose)
        let space = H5ID(try HDF5.check(operation, path: file.path) { H5Dget_space(handle.id) }, close: H5Sclose)
        let rank = Int(try HDF5.check(operation, path: file.path) { H5Sget_simple_extent_ndims(space.id) })
        var dims = [hsize_t](repeating: 0, count: rank)
        if rank > 0 { try HDF5.check(operation, path: file.path) { H5Sget_simple_extent_dims(space.id, &dims, nil) } }
        var shape: [Int] = []
        var count: UInt64 = 1
        for dim in dims {
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow, product <= UInt64(Self.maxElements) else {
                throw HDF5Error(operation: operation, path: file.path, stack: ["extent \(dims) is too large"])
            }
            count = product
            shape.append(Int(dim))
        }
        self.shape = shape
        let type = H5ID(try HDF5.check(operation, path: file.path) { H5Dget_type(handle.id) }, close: H5Tclose)
        let size = H5Tget_size(type.id)
        switch H5Tget_class(type.id) {
        case H5T_FLOAT: numberClass = .float(bytes: size)
        case H5T_INTEGER: numberClass = .integer(bytes: size, signed: H5Tget_sign(type.id) == H5T_SGN_2)
        case let other: numberClass = .other("class \(other.rawValue)")
        }
        super.init(file: file, handle: handle, fullPath: fullPath)
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// All elements, converted by HDF5 into `T`.
    public func read<T: H5Element>(as _: T.Type = T.self) throws -> [T] {
        let operation = "read dataset '\(fullPath)'"
        if case let .other(description) = numberClass {
            throw HDF5Error(operation: operation, path: file.path, stack: ["not a numeric dataset (\(description))"])
        }
        let count = elementCount
        if count == 0 { return [] }
        // H5Dread writes every element, so the array is not zero-filled first (and `T` is a
        // trivial type: nothing to deinitialise if the read throws).
        return try [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            _ = try HDF5.check(operation, path: file.path) {
                H5Dread(handle.id, T.h5MemoryType, hid_t(H5S_ALL), hid_t(H5S_ALL), hid_t(H5P_DEFAULT), buffer.baseAddress)
            }
            initialized = count
        }
    }
}
