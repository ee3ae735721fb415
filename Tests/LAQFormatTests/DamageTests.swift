import Foundation
import LAQFormat
import LAQTestSupport
import Testing

/// Every truncated prefix and every single-bit flip of the golden file is rejected, never a crash.
@Suite struct DamageTests {
    static let golden: [UInt8] = (try? [UInt8](Data(contentsOf: TestPaths.testdata("golden/every-encoding.laq")))) ?? []

    /// Verification of in-memory bytes: open errors count as problems, as in `laq verify`.
    static func problems(_ bytes: [UInt8]) -> [FormatError] {
        do {
            return try LAQFile(bytes: bytes).verify().problems.map(\.error)
        } catch let error as FormatError {
            return [error]
        } catch {
            Issue.record("non-format error \(error)")
            return []
        }
    }

    @Test func goldenIsValid() {
        #expect(!Self.golden.isEmpty)
        #expect(Self.problems(Self.golden).isEmpty)
    }

    @Test("every truncated prefix is rejected")
    func truncations() {
        var accepted: [Int] = []
        for length in 0..<Self.golden.count where Self.problems(Array(Self.golden[0..<length])).isEmpty {
            accepted.append(length)
        }
        #expect(accepted.isEmpty, "prefixes accepted: \(accepted.prefix(10))")
    }

    @Test("every single-bit flip is detected")
    func bitFlips() {
        var missed: [Int] = []
        var bytes = Self.golden
        for bit in 0..<(bytes.count * 8) {
            bytes[bit / 8] ^= 1 << (bit % 8)
            if Self.problems(bytes).isEmpty { missed.append(bit) }
            bytes[bit / 8] ^= 1 << (bit % 8)
        }
        #expect(missed.isEmpty, "flips not detected at bits \(missed.prefix(10))")
    }
}
