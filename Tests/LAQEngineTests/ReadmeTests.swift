import Foundation
import LAQEngine
import LAQTestSupport
import Testing

/// The README's list of supported layers is the layer registry's, rendered; a layer added to
/// the registry fails this test until the README lists it (the failure prints the new list).
@Suite struct ReadmeTests {
    static func rendered() -> String {
        LayerRegistry.supportedGroups.map { group in
            "- **\(group.name)** (\(group.classes.count)): " + group.classes.map { "`\($0)`" }.joined(separator: ", ")
        }.joined(separator: "\n")
    }

    @Test("the README lists exactly the layer classes LayerRegistry executes")
    func supportedLayers() throws {
        let readme = try String(contentsOf: TestPaths.repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let parts = readme.components(separatedBy: "<!-- layers:begin -->")
        try #require(parts.count == 2, "README.md needs one <!-- layers:begin --> marker")
        let inner = parts[1].components(separatedBy: "<!-- layers:end -->")
        try #require(inner.count == 2, "README.md needs one <!-- layers:end --> marker after the begin marker")
        let listed = inner[0].trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(listed == Self.rendered(), "put this between the README's layers markers:\n\(Self.rendered())")
        #expect(LayerRegistry.supportedGroups.allSatisfy { !$0.classes.isEmpty })
    }
}
