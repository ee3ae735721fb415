import Foundation
import LAQFormat
import LAQTestSupport
import Testing

/// Every truncated prefix and every single-bit flip of the golden file is rejected by `laq verify`
/// with exit status 1, never a crash.
///
/// Each damaged file takes the path `laq verify` takes, in memory: ``LAQFile/verify(bytes:)``
/// (open, then every check; an error while opening becomes the report's one problem) and the
/// report's ``VerificationReport/exitStatus``, which the command exits with. CLITests runs the
/// command itself on a sample, so that thousands of files need no process each.
@Suite struct DamageTests {
    static let golden: [UInt8] = (try? [UInt8](Data(contentsOf: TestPaths.testdata("golden/every-encoding.laq")))) ?? []

    /// The exit status `laq verify` gives `bytes`: 0 valid, 1 invalid, 2 unreadable.
    static func verifyStatus(_ bytes: [UInt8]) -> Int32 {
        LAQFile.verify(bytes: bytes).report.exitStatus
    }

    @Test func goldenIsValid() {
        #expect(!Self.golden.isEmpty)
        #expect(Self.verifyStatus(Self.golden) == 0)
    }

    @Test("every truncated prefix: verify exits 1")
    func truncations() {
        var wrong: [(length: Int, status: Int32)] = []
        for length in 0..<Self.golden.count {
            let status = Self.verifyStatus(Array(Self.golden[0..<length]))
            if status != 1 { wrong.append((length, status)) }
        }
        #expect(wrong.isEmpty, "prefixes not rejected with 1: \(wrong.prefix(10))")
    }

    @Test("every single-bit flip: verify exits 1")
    func bitFlips() {
        var wrong: [(bit: Int, status: Int32)] = []
        var bytes = Self.golden
        for bit in 0..<(bytes.count * 8) {
            bytes[bit / 8] ^= 1 << (bit % 8)
            let status = Self.verifyStatus(bytes)
            if status != 1 { wrong.append((bit, status)) }
            bytes[bit / 8] ^= 1 << (bit % 8)
        }
        #expect(wrong.isEmpty, "flips not rejected with 1 at bits: \(wrong.prefix(10))")
    }

    @Test("exit status: 1 for a file that does not open as .laq, 2 only for one that cannot be read")
    func unreadableIsNotInvalid() {
        #expect(LAQFile.verify(bytes: []).report.exitStatus == 1)
        let missing = LAQFile.verify(path: "/nonexistent/nope.laq").report
        #expect(!missing.opened)
        #expect(missing.exitStatus == 2)
    }
}
