import CHDF5
import Glibc

extension H5Object {
    /// Largest attribute laq reads (Keras splits attributes above 64 KB; configs are well below this).
    static let maxAttributeBytes = 64 << 20

    public func hasAttribute(_ name: String) throws -> Bool {
        try HDF5.check(fail("look up attribute '\(name)' of"), path: file.path) { H5Aexists(handle.id, name) } > 0
    }

    /// One string: a scalar string attribute, or the only element of a one-element array.
    /// Returns nil when the attribute does not exist.
    public func stringAttribute(_ name: String) throws -> String? {
        guard let strings = try stringsAttribute(name) else { return nil }
        guard strings.count == 1 else {
            throw HDF5Error(operation: "read attribute '\(name)' of '\(fullPath)'", path: file.path,
                            stack: ["expected one string, found \(strings.count)"])
        }
        return strings[0]
    }

    /// A string attribute in any of the forms Keras files have (keras-hdf5.md §7): variable- or
    /// fixed-length, scalar or array, ASCII or UTF-8 (decoded as UTF-8 either way), NUL- or
    /// space-padded; a zero-length attribute of any type (Keras writes `float64[0]`) is `[]`;
    /// an attribute split into `name0`, `name1`, … is joined. Returns nil when absent.
    public func stringsAttribute(_ name: String) throws -> [String]? {
        if try hasAttribute(name) { return try readStrings(name) }
        guard try hasAttribute("\(name)0") else { return nil }
        var all: [String] = []
        var part = 0
        while try hasAttribute("\(name)\(part)") {
            all += try readStrings("\(name)\(part)")
            part += 1
        }
        return all
    }

    private func readStrings(_ name: String) throws -> [String] {
        let operation = "read attribute '\(name)' of '\(fullPath)'"
        let attribute = H5ID(try HDF5.check(operation, path: file.path) { H5Aopen(handle.id, name, hid_t(H5P_DEFAULT)) }, close: H5Aclose)
        let type = H5ID(try HDF5.check(operation, path: file.path) { H5Aget_type(attribute.id) }, close: H5Tclose)
        let space = H5ID(try HDF5.check(operation, path: file.path) { H5Aget_space(attribute.id) }, close: H5Sclose)
        let count = Int(try HDF5.check(operation, path: file.path) { H5Sget_simple_extent_npoints(space.id) })
        if count == 0 { return [] }
        guard H5Tget_class(type.id) == H5T_STRING else {
            throw HDF5Error(operation: operation, path: file.path, stack: ["not a string attribute"])
        }
        if try HDF5.check(operation, path: file.path, { H5Tis_variable_str(type.id) }) > 0 {
            guard count <= Self.maxAttributeBytes / 8 else {
                throw HDF5Error(operation: operation, path: file.path, stack: ["\(count) strings is too many"])
            }
            let memory = H5ID(H5Tcopy(laq_h5t_c_s1()), close: H5Tclose)
            H5Tset_size(memory.id, laq_h5t_variable())
            H5Tset_cset(memory.id, H5Tget_cset(type.id))
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            try HDF5.check(operation, path: file.path) { H5Aread(attribute.id, memory.id, &pointers) }
            defer { for pointer in pointers where pointer != nil { H5free_memory(pointer) } }
            return try pointers.map { pointer in
                guard let pointer else { return "" }
                return try utf8(UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)), operation: operation)
            }
        }
        let size = H5Tget_size(type.id)
        guard size > 0, size <= Self.maxAttributeBytes, count <= Self.maxAttributeBytes / size else {
            throw HDF5Error(operation: operation, path: file.path, stack: ["\(count) strings of \(size) bytes is too large"])
        }
        var bytes = [UInt8](repeating: 0, count: size * count)
        try HDF5.check(operation, path: file.path) { H5Aread(attribute.id, type.id, &bytes) }
        return try (0..<count).map { index in
            var element = bytes[(index * size)..<((index + 1) * size)]
            if let nul = element.firstIndex(of: 0) { element = element[..<nul] }
            while element.last == 0x20 { element = element.dropLast() }
            return try element.withUnsafeBytes { try utf8($0, operation: operation) }
        }
    }

    /// The bytes as text; bytes that are not UTF-8 are refused, not replaced (two readers
    /// repairing differently would read different names).
    private func utf8(_ bytes: UnsafeRawBufferPointer, operation: String) throws -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw HDF5Error(operation: operation, path: file.path, stack: ["a string that is not UTF-8"])
        }
        return text
    }
}
