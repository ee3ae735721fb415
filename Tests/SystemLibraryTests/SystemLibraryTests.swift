import CBLAS
import CHDF5
import CLAQZlib
import Testing

/// The C libraries link and answer: catches a missing -dev package or a broken module map early.
@Suite struct SystemLibraryTests {
    @Test func hdf5() {
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        #expect(H5get_libversion(&major, &minor, &release) >= 0)
        #expect(major == 1 && minor >= 10)
        #expect(laq_h5t_native_float() > 0)
    }

    @Test func openBLAS() {
        let a: [Float] = [1, 2, 3]
        let b: [Float] = [4, 5, 6]
        #expect(cblas_sdot(3, a, 1, b, 1) == 32)
    }

    @Test func zlib() {
        let bytes = Array("123456789".utf8)
        #expect(crc32(0, bytes, UInt32(bytes.count)) == 0xCBF4_3926)
    }
}
