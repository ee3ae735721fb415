import CHDF5

// Writing: what `laq export --to h5` needs to produce files Keras loads (keras-hdf5.md), built in
// memory: groups,
// float32 datasets, and string attributes in h5py's form (variable-length UTF-8, scalar or 1-D;
// an empty list as Keras writes it, float64[0]).

extension H5File {
    /// Builds an HDF5 file in memory (libhdf5's core driver, no backing store), lets `body` fill
    /// its root group, and returns the file's bytes. `body` must not keep the groups it is given
    /// or creates (checked: any object still open is an error). `name` is used in messages.
    ///
    /// libhdf5 never touches the disk here: the caller writes the bytes (atomically, with its own
    /// error for a full disk). libhdf5 1.10 handed a failed write (EFBIG, ENOSPC) leaves the file
    /// half-closed and segfaults when the process exits.
    public static func image(name: String, _ body: (H5Group) throws -> Void) throws -> [UInt8] {
        let bytes = try fill(name: name, body)
        // Opening the image read-only checks that it is a complete HDF5 file.
        _ = try H5File(image: bytes, name: name).root()
        return bytes
    }

    /// Creates the in-memory file, runs `body`, and copies the image out; the file closes when
    /// this returns (its last reference).
    private static func fill(name: String, _ body: (H5Group) throws -> Void) throws -> [UInt8] {
        let fapl = H5ID(try HDF5.check("create file access list", path: name) { H5Pcreate(laq_h5p_file_access()) }, close: H5Pclose)
        try HDF5.check("use the in-memory driver", path: name) { H5Pset_fapl_core(fapl.id, 1 << 20, false) }
        let id = try HDF5.check("create file", path: name) { H5Fcreate(imageName(), laq_h5f_acc_trunc(), hid_t(H5P_DEFAULT), fapl.id) }
        let file = H5File(handle: H5ID(id, close: H5Fclose), path: name)
        // `file` (whose deinit closes the file) lives until the image is copied out.
        return try withExtendedLifetime(file) {
            try body(try file.root())
            try HDF5.check("flush", path: name) { H5Fflush(id, H5F_SCOPE_GLOBAL) }
            let open = try HDF5.check("count open objects", path: name) { H5Fget_obj_count(id, laq_h5f_obj_all()) }
            guard open == 1 else {
                throw HDF5Error(operation: "close file", path: name, stack: ["\(open - 1) objects are still open"])
            }
            let size = try HDF5.check("get the file image size", path: name) { H5Fget_file_image(id, nil, 0) }
            var bytes = [UInt8](repeating: 0, count: Int(size))
            let copied = try bytes.withUnsafeMutableBytes { buffer in
                try HDF5.check("get the file image", path: name) { H5Fget_file_image(id, buffer.baseAddress, buffer.count) }
            }
            guard copied == size else { throw HDF5Error(operation: "get the file image", path: name, stack: ["\(copied) of \(size) bytes"]) }
            return bytes
        }
    }
}

extension H5Group {
    /// Link-creation properties that make the missing groups of a path like `dense/kernel:0`.
    private func intermediateGroups() throws -> H5ID {
        let lcpl = H5ID(try HDF5.check(fail("create link properties for"), path: file.path) { H5Pcreate(laq_h5p_link_create()) }, close: H5Pclose)
        try HDF5.check(fail("set intermediate groups for"), path: file.path) { H5Pset_create_intermediate_group(lcpl.id, 1) }
        return lcpl
    }

    /// Creates the group `name` (a path: missing groups on the way are created).
    @discardableResult
    public func createGroup(_ name: String) throws -> H5Group {
        let lcpl = try intermediateGroups()
        let id = try HDF5.check("create group '\(Self.join(fullPath, name))'", path: file.path) {
            H5Gcreate2(handle.id, name, lcpl.id, hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT))
        }
        _ = H5Gclose(id)
        return try group(name)
    }

    /// Creates a little-endian float32 dataset `name` (a path, as Keras names weights) holding
    /// `values` in row-major order; `shape` `[]` is a scalar.
    public func createDataset(_ name: String, shape: [Int], values: [Float]) throws {
        let operation = "create dataset '\(Self.join(fullPath, name))'"
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
            throw HDF5Error(operation: operation, path: file.path, stack: ["shape \(shape) does not hold \(values.count) values"])
        }
        let dims = shape.map { hsize_t($0) }
        let space = H5ID(try HDF5.check(operation, path: file.path) {
            dims.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(dims.count), dims, nil)
        }, close: H5Sclose)
        let lcpl = try intermediateGroups()
        let dataset = H5ID(try HDF5.check(operation, path: file.path) {
            H5Dcreate2(handle.id, name, laq_h5t_ieee_f32le(), space.id, lcpl.id, hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT))
        }, close: H5Dclose)
        if values.isEmpty { return }
        try values.withUnsafeBytes { bytes in
            _ = try HDF5.check(operation, path: file.path) {
                H5Dwrite(dataset.id, laq_h5t_native_float(), hid_t(H5S_ALL), hid_t(H5S_ALL), hid_t(H5P_DEFAULT), bytes.baseAddress)
            }
        }
    }
}

extension H5Object {
    /// Writes a scalar variable-length UTF-8 string attribute (h5py's `attrs[name] = str`).
    public func setAttribute(_ name: String, string: String) throws {
        try writeStrings(name, [string], scalar: true)
    }

    /// Writes a 1-D variable-length UTF-8 string attribute (h5py's `attrs[name] = [str, …]`);
    /// an empty list is written as Keras writes it, a float64 array of length 0.
    public func setAttribute(_ name: String, strings: [String]) throws {
        try writeStrings(name, strings, scalar: false)
    }

    private func writeStrings(_ name: String, _ strings: [String], scalar: Bool) throws {
        let operation = "write attribute '\(name)' of '\(fullPath)'"
        if try hasAttribute(name) { try HDF5.check(operation, path: file.path) { H5Adelete(handle.id, name) } }
        var dims = [hsize_t(strings.count)]
        let space = H5ID(try HDF5.check(operation, path: file.path) {
            scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
        }, close: H5Sclose)
        if strings.isEmpty {
            let attribute = H5ID(try HDF5.check(operation, path: file.path) {
                H5Acreate2(handle.id, name, laq_h5t_ieee_f64le(), space.id, hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT))
            }, close: H5Aclose)
            _ = attribute
            return
        }
        let type = H5ID(try HDF5.check(operation, path: file.path) { H5Tcopy(laq_h5t_c_s1()) }, close: H5Tclose)
        try HDF5.check(operation, path: file.path) { H5Tset_size(type.id, laq_h5t_variable()) }
        try HDF5.check(operation, path: file.path) { H5Tset_cset(type.id, H5T_CSET_UTF8) }
        let attribute = H5ID(try HDF5.check(operation, path: file.path) {
            H5Acreate2(handle.id, name, type.id, space.id, hid_t(H5P_DEFAULT), hid_t(H5P_DEFAULT))
        }, close: H5Aclose)
        // C strings that live until the write returns.
        let buffers = strings.map { Array($0.utf8CString) }
        try withPointers(buffers) { pointers in
            _ = try HDF5.check(operation, path: file.path) { H5Awrite(attribute.id, type.id, pointers.baseAddress) }
        }
    }
}

/// Calls `body` with pointers to each buffer's first element, all valid during the call.
private func withPointers(
    _ buffers: [[CChar]], _ body: (UnsafeMutableBufferPointer<UnsafePointer<CChar>?>) throws -> Void
) throws {
    let storage = UnsafeMutableBufferPointer<UnsafeMutablePointer<CChar>>.allocate(capacity: buffers.count)
    defer {
        for pointer in storage { pointer.deallocate() }
        storage.deallocate()
    }
    for (index, buffer) in buffers.enumerated() {
        let copy = UnsafeMutablePointer<CChar>.allocate(capacity: buffer.count)
        copy.initialize(from: buffer, count: buffer.count)
        storage[index] = copy
    }
    let pointers = UnsafeMutableBufferPointer<UnsafePointer<CChar>?>.allocate(capacity: buffers.count)
    defer { pointers.deallocate() }
    for index in storage.indices { pointers[index] = UnsafePointer(storage[index]) }
    try body(pointers)
}
