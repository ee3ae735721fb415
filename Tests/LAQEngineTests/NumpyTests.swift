import Foundation
import LAQData
import LAQTestSupport
import Testing

/// .npy/.npz reading: the dtypes NumPy writes, and one bad file per error.
@Suite struct NumpyTests {
    @Test("our .npy writer round-trips through the reader")
    func roundTrip() throws {
        let bytes = Numpy.encode(shape: [2, 3], values: [1, 2, 3, 4, 5, -6.5])
        #expect((bytes.count - 6 * 4) % 64 == 0, "data starts 64-byte aligned")
        let array = try Numpy.parse(bytes, file: "t.npy")
        #expect(array.shape == [2, 3])
        #expect(array.values == [1, 2, 3, 4, 5, -6.5])
        #expect(try Numpy.parse(Numpy.encode(shape: [4], values: [1, 2, 3, 4]), file: "v.npy").shape == [4])
        #expect(try Numpy.parse(Numpy.encode(shape: [], values: [7]), file: "s.npy").values == [7])
    }

    @Test("Keras fixtures' .npz: float32 and int32 arrays")
    func fixtures() throws {
        let arrays = try Numpy.load(path: TestPaths.testdata("keras/k3_branches.io.npz").path)
        #expect(arrays["x0"]?.dtype == "<i4")
        #expect(arrays["x0"]?.shape == [32, 7])
        #expect(arrays["x1"]?.dtype == "<f4")
        #expect(arrays["y"]?.shape == [32, 2])
    }

    static func npy(descr: String, shape: String, data: [UInt8], order: String = "False") -> [UInt8] {
        let header = "{'descr': '\(descr)', 'fortran_order': \(order), 'shape': \(shape), }\n"
        return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8) + data
    }

    @Test("integer and half dtypes convert exactly")
    func dtypes() throws {
        #expect(try Numpy.parse(Self.npy(descr: "|u1", shape: "(3,)", data: [0, 128, 255]), file: "f").values == [0, 128, 255])
        #expect(try Numpy.parse(Self.npy(descr: "<i8", shape: "(1,)", data: [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]), file: "f").values == [-2])
        #expect(try Numpy.parse(Self.npy(descr: "<f2", shape: "(1,)", data: [0x00, 0x3C]), file: "f").values == [1])
    }

    static let bad: [(name: String, bytes: [UInt8], reason: String)] = [
        ("magic", Array("not numpy at all".utf8), "bad magic"),
        ("dtype", npy(descr: "<c8", shape: "(1,)", data: [UInt8](repeating: 0, count: 8)), "dtype <c8 is not supported"),
        ("fortran", npy(descr: "<f4", shape: "(1,)", data: [0, 0, 0, 0], order: "True"), "Fortran-ordered"),
        ("short", npy(descr: "<f4", shape: "(2, 2)", data: [0, 0, 0, 0]), "4 data bytes for shape [2, 2] of <f4, expected 16"),
        ("huge", npy(descr: "<f4", shape: "(100000, 100000, 100000)", data: []), "is too large"),
        ("truncated header", Array(npy(descr: "<f4", shape: "(1,)", data: [0, 0, 0, 0]).prefix(20)), "truncated header"),
        // Headers NumPy's literal_eval refuses, which a reader picking out fields would accept.
        ("junk padding", npyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }   \u{7F}  \n", data: [0, 0, 0, 0]), "text after the dict"),
        ("missing comma", npyHeader("{'descr': '<f4' 'fortran_order': False, 'shape': (1,), }\n", data: [0, 0, 0, 0]), "',' or '}' expected"),
        ("duplicate key", npyHeader("{'descr': '<f4', 'shape': (2,), 'fortran_order': False, 'shape': (1,), }\n", data: [0, 0, 0, 0]), "key 'shape' twice"),
        ("integer shape", npyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1), }\n", data: [0, 0, 0, 0]), "',' expected in the shape"),
        ("minor version", { var bytes = npy(descr: "<f4", shape: "(1,)", data: [0, 0, 0, 0]); bytes[7] = 127; return bytes }(), ".npy version 1.127 is not supported"),
        ("extra key", npyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': True}\n", data: [0, 0, 0, 0]), "unknown key 'x'"),
    ]

    static func npyHeader(_ header: String, data: [UInt8]) -> [UInt8] {
        [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8) + data
    }

    @Test("headers as NumPy writes them, with its spacing variants")
    func headerVariants() throws {
        for header in ["{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }\n", "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(2,1)}",
                       "{'shape': (2, 1,), 'fortran_order': False, 'descr': '<f4'}    \n"] {
            #expect(try Numpy.parse(Self.npyHeader(header, data: [UInt8](repeating: 0, count: 8)), file: "f").shape == [2, 1], "\(header)")
        }
    }

    @Test("bad .npy files are refused with the reason", arguments: bad.map(\.name))
    func badFiles(name: String) {
        let testCase = Self.bad.first { $0.name == name }!
        do {
            _ = try Numpy.parse(testCase.bytes, file: "bad.npy", array: "x")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains(testCase.reason), "\(error)")
            #expect(error.description.contains("array 'x'"))
        }
    }
}

/// HDF5 data input (`file.h5`, `file.h5:/path`), the same arrays as the `.npz` it was made from.
@Suite struct HDF5DataTests {
    @Test("an HDF5 file's datasets by path, or one dataset by `file.h5:/path`; integers converted exactly")
    func datasets() throws {
        let path = TestPaths.testdata("data/fmnist_200.h5").path
        let npz = try Numpy.load(path: TestPaths.testdata("keras/fmnist_calibration.npz").path)
        let all = try DataFile.load(path)
        #expect(Set(all.keys) == ["test/x", "test/y", "note"])
        #expect(all["test/x"]?.shape == [200, 784] && all["test/x"]?.values == Array(npz["x"]!.values[0..<(200 * 784)]))
        #expect(all["test/y"]?.dtype == "<u1" && all["test/y"]?.values == Array(npz["y"]!.values[0..<200]))
        let one = try DataFile.load(path + ":/test/y")
        #expect(Array(one.keys) == ["y"] && one["y"]?.values == all["test/y"]?.values)
        // An .npz still loads as before.
        #expect(try DataFile.load(TestPaths.testdata("keras/fmnist_calibration.npz").path)["x"] == npz["x"])
    }

    @Test("a missing dataset, a dataset path on a non-HDF5 file and a missing file are refused with the reason")
    func refused() throws {
        let path = TestPaths.testdata("data/fmnist_200.h5").path
        #expect { try DataFile.load(path + ":/test/nope") } throws: { ($0 as? DataError)?.array == "/test/nope" }
        let npz = TestPaths.testdata("keras/fmnist_calibration.npz").path
        #expect { try DataFile.load(npz + ":/x") } throws: { ($0 as? DataError)?.reason.contains("not an HDF5 file") == true }
        #expect { try DataFile.load("/nonexistent/data.h5") } throws: { ($0 as? DataError)?.isIO == true }
    }
}
