import Foundation
import LAQFormat
import LAQTestSupport
import Testing

/// Inputs that once crashed the reader (found while fuzzing; tools/fuzz/regressions). Each must
/// open, verify and decode to values or errors, never a trap.
@Suite struct FuzzRegressionTests {
    static let directory = TestPaths.repositoryRoot.appendingPathComponent("tools/fuzz/regressions")

    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".laq") }.sorted()
    }

    @Test("known crashers are handled", arguments: files)
    func replay(file: String) throws {
        let path = Self.directory.appendingPathComponent(file).path
        let (laq, report) = LAQFile.verify(path: path)
        if let laq {
            for tensor in laq.tensors where tensor.isDecodable {
                _ = try? laq.floats(tensor)
                _ = try? laq.statistics(of: tensor)
            }
        }
        if file.hasPrefix("canonically-equal") {
            #expect(report.problems.map(\.error) == [.duplicateName("\u{212A}", offset: Layout.manifestOffset)])
        }
    }

    @Test func regressionsExist() {
        #expect(Self.files.count >= 4)
    }
}
