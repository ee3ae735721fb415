import CHDF5
import LAQFormat

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
    /// Bytes per element in the file, and whether the data passes through deflate.
    let fileElementSize: Int
    let compressed: Bool

    init(file: H5File, parent: hid_t, name: String, fullPath: String) throws {
        let operation = "open dataset '\(fullPath)'"
        // Owned from here on, so every early exit below closes it.
        let handle = H5ID(try HDF5.check(operation, path: file.path) { H5Dopen2(parent, name, hid_t(H5P_DEFAULT)) }, close: H5Dclose)
        // Before anything else: even the extent of a virtual dataset can open its source files.
        compressed = try Self.checkStorage(handle.id, operation: operation, path: file.path)
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
        fileElementSize = size
        switch H5Tget_class(type.id) {
        case H5T_FLOAT:
            try Self.checkIEEE(type.id, size: size, operation: operation, path: file.path)
            numberClass = .float(bytes: size)
        case H5T_INTEGER:
            guard H5Tget_precision(type.id) == size * 8, H5Tget_offset(type.id) == 0, [1, 2, 4, 8].contains(size) else {
                throw HDF5Error(operation: operation, path: file.path, stack: ["an integer type with padding bits (\(H5Tget_precision(type.id)) of \(size * 8))"])
            }
            numberClass = .integer(bytes: size, signed: H5Tget_sign(type.id) == H5T_SGN_2)
        case let other: numberClass = .other("class \(other.rawValue)")
        }
        super.init(file: file, handle: handle, fullPath: fullPath)
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// Refuses a float type that is not IEEE 754 binary16, binary32 or binary64 (either byte
    /// order). HDF5 describes floats by their bit fields and exponent bias, and converts any
    /// layout it is given: a damaged bias turned a kernel into zeros that h5py refuses to read.
    static func checkIEEE(_ type: hid_t, size: Int, operation: String, path: String) throws {
        // (sign position, exponent position, exponent bits, mantissa bits, bias) by size.
        let layouts: [Int: (Int, Int, Int, Int, UInt)] = [2: (15, 10, 5, 10, 15), 4: (31, 23, 8, 23, 127), 8: (63, 52, 11, 52, 1023)]
        var (sign, exponent, exponentBits, mantissa, mantissaBits) = (0, 0, 0, 0, 0)
        let fields = H5Tget_fields(type, &sign, &exponent, &exponentBits, &mantissa, &mantissaBits)
        guard fields >= 0, let layout = layouts[size], H5Tget_precision(type) == size * 8, H5Tget_offset(type) == 0,
              (sign, exponent, exponentBits, mantissaBits) == (layout.0, layout.1, layout.2, layout.3), mantissa == 0,
              H5Tget_ebias(type) == layout.4, H5Tget_norm(type) == H5T_NORM_IMPLIED else {
            throw HDF5Error(operation: operation, path: path, stack: ["a \(size)-byte float type that is not IEEE 754 (exponent bias \(H5Tget_ebias(type)), fields \(sign)/\(exponent)/\(exponentBits)/\(mantissaBits))"])
        }
    }

    /// The filters laq lets libhdf5 run: deflate, shuffle and fletcher32 (what h5py and Keras write).
    static let allowedFilters: Set<H5Z_filter_t> = [1, 2, 3]  // H5Z_FILTER_DEFLATE, _SHUFFLE, _FLETCHER32

    /// Refuses, before anything is read, a dataset whose data lies outside the file (external
    /// storage, a virtual dataset's sources) or passes through a filter outside the allow-list;
    /// returns whether deflate is among its filters.
    static func checkStorage(_ dataset: hid_t, operation: String, path: String) throws -> Bool {
        let plist = H5ID(try HDF5.check(operation, path: path) { H5Dget_create_plist(dataset) }, close: H5Pclose)
        func refuse(_ reason: String) -> HDF5Error { HDF5Error(operation: operation, path: path, stack: [reason]) }
        if H5Pget_layout(plist.id) == H5D_VIRTUAL {
            throw refuse("a virtual dataset, whose data lies in other datasets or files: laq reads nothing outside the input file")
        }
        let external = try HDF5.check(operation, path: path) { H5Pget_external_count(plist.id) }
        if external > 0 {
            throw refuse("its data is stored in \(external) external file\(external == 1 ? "" : "s"): laq reads nothing outside the input file")
        }
        let filters = try HDF5.check(operation, path: path) { H5Pget_nfilters(plist.id) }
        var deflate = false
        for index in 0..<filters {
            var flags: UInt32 = 0
            var count = 0
            var name = [CChar](repeating: 0, count: 64)
            var config: UInt32 = 0
            let filter = H5Pget_filter2(plist.id, UInt32(index), &flags, &count, nil, name.count, &name, &config)
            guard allowedFilters.contains(filter) else {
                let label = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                throw refuse("it is stored through the filter \(filter)\(label.isEmpty ? "" : " (\(label))"), not deflate, shuffle or fletcher32")
            }
            if filter == 1 { deflate = true }
        }
        return deflate
    }

    /// Refuses a dataset whose declared extent the stored bytes cannot hold, before memory is
    /// spent on it: uncompressed, every byte must be stored (unwritten chunks or an unallocated
    /// dataset would read as fill values, data that is not in the file); deflated, the extent
    /// may be at most 1032× (deflate's largest expansion) the stored bytes. Then checks that the
    /// `bytes` the read needs can be allocated.
    func checkPresent(needing bytes: Int, operation: String) throws {
        let declared = UInt64(elementCount) * UInt64(fileElementSize)
        let stored = UInt64(H5Dget_storage_size(handle.id))
        if compressed {
            guard declared / 1032 <= stored + 64 else {
                throw HDF5Error(operation: operation, path: file.path, stack: ["its extent \(shape) needs \(declared) bytes, more than deflate makes of the \(stored) bytes stored"])
            }
        } else {
            guard stored >= declared else {
                throw HDF5Error(operation: operation, path: file.path, stack: ["its extent \(shape) needs \(declared) bytes, the file stores \(stored) (unwritten data would read as fill values)"])
            }
        }
        guard Memory.canAllocate(bytes) else {
            throw HDF5Error(operation: operation, path: file.path, stack: ["out of memory: cannot allocate \(bytes) bytes for it"])
        }
    }

    /// All elements, converted by HDF5 into `T`.
    public func read<T: H5Element>(as _: T.Type = T.self) throws -> [T] {
        let operation = "read dataset '\(fullPath)'"
        if case let .other(description) = numberClass {
            throw HDF5Error(operation: operation, path: file.path, stack: ["not a numeric dataset (\(description))"])
        }
        let count = elementCount
        if count == 0 { return [] }
        try checkPresent(needing: count * MemoryLayout<T>.stride, operation: operation)
        // H5Dread writes every element, so the array is not zero-filled first (and `T` is a
        // trivial type: nothing to deinitialise if the read throws).
        return try [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            // A data read gets the metadata budget and a second per 20 MB (deflated data inflates
            // at 50–300 MB/s).
            let bytes = count * max(fileElementSize, MemoryLayout<T>.stride)
            let budget = HDF5.Watchdog.defaultBudget + Double(bytes) / 20e6
            _ = try HDF5.check(operation, path: file.path, budget: budget, memory: HDF5.Watchdog.defaultMemory + 2 * bytes) {
                H5Dread(handle.id, T.h5MemoryType, hid_t(H5S_ALL), hid_t(H5S_ALL), hid_t(H5P_DEFAULT), buffer.baseAddress)
            }
            initialized = count
        }
    }
}
