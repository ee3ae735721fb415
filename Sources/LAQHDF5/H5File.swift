import Foundation
import CHDF5
import Synchronization

private let imageCounter = Atomic<Int>(0)

/// An HDF5 file opened read-only, from a path or from bytes in memory.
public final class H5File: @unchecked Sendable {
    let handle: H5ID
    /// The path (or name) used in error messages.
    public let path: String

    init(handle: consuming H5ID, path: String) {
        self.handle = handle
        self.path = path
    }

    /// Opens the file at `path` read-only.
    public init(path: String) throws {
        self.path = path
        let id = try HDF5.check("open file", path: path) { H5Fopen(path, laq_h5f_acc_rdonly(), hid_t(H5P_DEFAULT)) }
        handle = H5ID(id, close: H5Fclose)
    }

    /// Opens an HDF5 file image held in memory (for `model.weights.h5` inside a `.keras` zip),
    /// without a temporary file. `name` is used in error messages.
    public init(image: [UInt8], name: String) throws {
        path = name
        let fapl = H5ID(try HDF5.check("create file access list", path: name) { H5Pcreate(laq_h5p_file_access()) }, close: H5Pclose)
        try HDF5.check("use the in-memory driver", path: name) { H5Pset_fapl_core(fapl.id, 1 << 20, false) }
        try image.withUnsafeBytes { bytes throws in
            _ = try HDF5.check("set file image", path: name) { H5Pset_file_image(fapl.id, UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count) }
        }
        let id = try HDF5.check("open file image", path: name) { H5Fopen(Self.imageName(), laq_h5f_acc_rdonly(), fapl.id) }
        handle = H5ID(id, close: H5Fclose)
    }

    /// Runs `body` with the HDF5 file image `data[range]` opened where it lies, without copying
    /// it (a stored `model.weights.h5` inside a memory-mapped `.keras` zip). `data` must not
    /// change while the file, or anything opened from it, is open; `body` must not keep them.
    /// `name` is used in error messages.
    public static func withImageInPlace<T>(_ data: Data, range: Range<Int>, name: String, _ body: (H5File) throws -> T) throws -> T {
        try data[range].withUnsafeBytes { image in try body(H5File(imageInPlace: image, name: name)) }
    }

    /// Opens an HDF5 file image where it lies in memory (see ``withImageInPlace(_:range:name:_:)``).
    init(imageInPlace image: UnsafeRawBufferPointer, name: String) throws {
        path = name
        guard let base = image.baseAddress, image.count > 0 else { throw HDF5Error(operation: "open file image", path: name, stack: ["the image is empty"]) }
        let fapl = H5ID(try HDF5.check("create file access list", path: name) { H5Pcreate(laq_h5p_file_access()) }, close: H5Pclose)
        try HDF5.check("use the in-memory driver", path: name) { H5Pset_fapl_core(fapl.id, 1 << 20, false) }
        try HDF5.check("set file image", path: name) { laq_h5p_set_file_image_in_place(fapl.id, UnsafeMutableRawPointer(mutating: base), image.count) }
        let id = try HDF5.check("open file image", path: name) { H5Fopen(Self.imageName(), laq_h5f_acc_rdonly(), fapl.id) }
        handle = H5ID(id, close: H5Fclose)
    }

    /// A name for libhdf5's in-memory driver that no file on disk can have (nothing can be
    /// created in /proc/self), unique per image: the driver refuses to open an image under the
    /// name of an existing file (and looks at it), and takes two open images of the same name for
    /// one file.
    static func imageName() -> String {
        "/proc/self/laq-hdf5-image-\(imageCounter.add(1, ordering: .relaxed).newValue)"
    }

    /// The root group `/`.
    public func root() throws -> H5Group {
        try H5Group(file: self, parent: handle.id, name: "/", fullPath: "/")
    }

    /// True when `bytes` start with the HDF5 signature (at offset 0; libhdf5 also finds it after a user block).
    public static func hasSignature(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.starts(with: [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A])
    }
}

/// What a link in a group points to.
public enum H5ObjectKind: Sendable, Equatable {
    case group, dataset, other
}

/// A group or a dataset: something with attributes.
public class H5Object: @unchecked Sendable {
    let handle: H5ID
    let file: H5File
    /// The object's path inside the file, for messages.
    public let fullPath: String

    init(file: H5File, handle: consuming H5ID, fullPath: String) {
        self.file = file
        self.handle = handle
        self.fullPath = fullPath
    }

    func fail(_ operation: String) -> String { "\(operation) '\(fullPath)'" }

    static func join(_ parent: String, _ name: String) -> String {
        parent == "/" ? "/" + name : parent + "/" + name
    }
}

/// A group: named links to groups and datasets.
public final class H5Group: H5Object, @unchecked Sendable {
    init(file: H5File, parent: hid_t, name: String, fullPath: String) throws {
        let id = try HDF5.check("open group '\(fullPath)'", path: file.path) { H5Gopen2(parent, name, hid_t(H5P_DEFAULT)) }
        super.init(file: file, handle: H5ID(id, close: H5Gclose), fullPath: fullPath)
    }

    /// The names of the group's links, in HDF5's name order.
    public func children() throws -> [String] {
        var info = H5G_info_t()
        try HDF5.check(fail("list group"), path: file.path) { H5Gget_info(handle.id, &info) }
        var names: [String] = []
        for index in 0..<info.nlinks {
            let length = try HDF5.check(fail("read a link name of"), path: file.path) {
                H5Lget_name_by_idx(handle.id, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, hid_t(H5P_DEFAULT))
            }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            try HDF5.check(fail("read a link name of"), path: file.path) {
                H5Lget_name_by_idx(handle.id, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, buffer.count, hid_t(H5P_DEFAULT))
            }
            names.append(String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return names
    }

    /// What `path` (relative, may contain `/`) points to, or nil when it does not exist.
    /// Every link on the way must be a hard link (``checkLinks(_:)``).
    public func kind(of path: String) throws -> H5ObjectKind? {
        guard try checkLinks(path) else { return nil }
        let object = try HDF5.check(fail("open '\(path)' in"), path: file.path) { H5Oopen(handle.id, path, hid_t(H5P_DEFAULT)) }
        defer { H5Oclose(object) }
        switch H5Iget_type(object) {
        case H5I_GROUP: return .group
        case H5I_DATASET: return .dataset
        default: return .other
        }
    }

    public func group(_ path: String) throws -> H5Group {
        _ = try checkLinks(path)
        return try H5Group(file: file, parent: handle.id, name: path, fullPath: Self.join(fullPath, path))
    }

    public func dataset(_ path: String) throws -> H5Dataset {
        _ = try checkLinks(path)
        return try H5Dataset(file: file, parent: handle.id, name: path, fullPath: Self.join(fullPath, path))
    }

    /// Whether every link of `path` exists (false at the first that does not), each checked to
    /// be a hard link before it is followed: libhdf5 would follow an external link into another
    /// file, and a soft or user-defined link wherever it names. laq reads nothing outside the
    /// input, and Keras writes hard links only.
    @discardableResult
    func checkLinks(_ path: String) throws -> Bool {
        // libhdf5 resolves `/…` from the root, past the links checked here; `.` and `..` are
        // not names Keras writes.
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !path.hasPrefix("/") || fullPath == "/", !components.contains(where: { $0 == "." || $0 == ".." }) else {
            throw HDF5Error(operation: "follow '\(path)' from '\(fullPath)'", path: file.path, stack: ["an absolute or relative path where a name is expected"])
        }
        var prefix = ""
        for component in components {
            prefix = prefix.isEmpty ? String(component) : prefix + "/" + component
            // H5Lexists needs every intermediate link to exist: each prefix in turn.
            let exists = try HDF5.check(fail("look up '\(prefix)' in"), path: file.path) {
                H5Lexists(handle.id, prefix, hid_t(H5P_DEFAULT))
            }
            if exists == 0 { return false }
            var info = H5L_info_t()
            try HDF5.check(fail("look up '\(prefix)' in"), path: file.path) { H5Lget_info(handle.id, prefix, &info, hid_t(H5P_DEFAULT)) }
            guard info.type == H5L_TYPE_HARD else {
                let kind = info.type == H5L_TYPE_EXTERNAL ? "an external link (to another file)" : info.type == H5L_TYPE_SOFT ? "a soft link" : "a user-defined link"
                throw HDF5Error(operation: "follow '\(Self.join(fullPath, prefix))'", path: file.path,
                                stack: ["it is \(kind): laq reads nothing outside the input file, and Keras writes none"])
            }
        }
        return true
    }
}
