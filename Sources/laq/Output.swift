import ArgumentParser
import Foundation
import LAQFormat

/// Presentation helpers shared by the subcommands: sizes, tables that fit the terminal, JSON.

func formatBytes(_ bytes: UInt64) -> String { formatBytes(Double(bytes)) }

func formatBytes(_ value: Double) -> String {
    switch value {
    case ..<1024: return "\(Int(value)) B"
    case ..<(1024 * 1024): return String(format: "%.1f KiB", value / 1024)
    case ..<(1024 * 1024 * 1024): return String(format: "%.1f MiB", value / 1024 / 1024)
    default: return String(format: "%.2f GiB", value / 1024 / 1024 / 1024)
    }
}

func formatShape(_ shape: [Int]) -> String {
    shape.isEmpty ? "scalar" : shape.map(String.init).joined(separator: "×")
}

func formatFloat(_ value: Float) -> String {
    if value == 0 { return "0" }
    let magnitude = abs(value)
    return magnitude >= 1e-3 && magnitude < 1e4 ? String(format: "%.3g", value) : String(format: "%.1e", value)
}

/// The terminal width: `COLUMNS`, else the tty's, else 100.
func terminalWidth() -> Int {
    if let columns = ProcessInfo.processInfo.environment["COLUMNS"], let width = Int(columns), width > 20 { return width }
    var size = winsize()
    if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 20 { return Int(size.ws_col) }
    return 100
}

/// A text table that fits `width`: when too wide, the columns in `droppable` are left out (only
/// as many as shrinking alone could not absorb), then the columns in `shrinkable` give up width
/// in order, each down to its minimum, and cut cells get an ellipsis in the middle.
struct TextTable {
    var headers: [String]
    var rightAligned: Set<Int>
    /// (column, minimum width), shrunk in this order.
    var shrinkable: [(column: Int, minimum: Int)]
    /// Columns left out, in this order, where shrinking cannot make the table fit: ones whose
    /// values the other columns imply (a ratio of two shown sizes).
    var droppable: [Int] = []
    var rows: [[String]] = []

    func render(width: Int) -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) }
        }
        var visible = Array(headers.indices)
        func overflow() -> Int { visible.reduce(0) { $0 + widths[$1] } + 2 * (visible.count - 1) - width }
        let minimums = Dictionary(shrinkable.map { ($0.column, $0.minimum) }, uniquingKeysWith: min)
        let slack = minimums.reduce(0) { $0 + max(0, widths[$1.key] - $1.value) }
        for column in droppable where overflow() > slack { visible.removeAll { $0 == column } }
        var excess = overflow()
        for (column, minimum) in shrinkable where excess > 0 {
            let give = min(excess, max(0, widths[column] - minimum))
            widths[column] -= give
            excess -= give
        }
        func line(_ cells: [String]) -> String {
            visible.map { column in
                let cell = ellipsize(cells[column], to: widths[column])
                let pad = String(repeating: " ", count: max(0, widths[column] - cell.count))
                return rightAligned.contains(column) ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }

    private func ellipsize(_ text: String, to width: Int) -> String {
        guard text.count > width, width > 3 else { return text }
        let keep = width - 1
        return String(text.prefix(keep - keep / 3)) + "…" + String(text.suffix(keep / 3))
    }
}

/// Compact sizes for table cells: 512B, 12.3K, 4.5M, 1.2G.
func formatBytesShort(_ bytes: UInt64) -> String { formatBytesShort(Double(bytes)) }

/// Sizes that may exceed UInt64, e.g. the float32 size of a huge declared shape.
func formatBytesShort(_ value: Double) -> String {
    switch value {
    case ..<1024: return "\(Int(value))B"
    case ..<(1024 * 1024): return String(format: "%.1fK", value / 1024)
    case ..<(1024 * 1024 * 1024): return String(format: "%.1fM", value / 1024 / 1024)
    default: return String(format: "%.1fG", value / 1024 / 1024 / 1024)
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var result = self
        while result.last == " " { result.removeLast() }
        return result
    }
}

/// Prints a line on standard error (progress and notes, which scripts reading stdout skip).
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// `value` as one line of key-sorted JSON.
func compactJSON(_ value: JSONValue) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "?"
}

/// Prints `value` as pretty, key-sorted JSON on stdout.
func printJSON(_ value: JSONValue) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// The command line for provenance records, with paths reduced to base names (spec §4.5: files
/// are named by base name only, so records do not leak directory layouts).
func recordedArguments() -> [String] {
    CommandLine.arguments.dropFirst().map { $0.contains("/") ? URL(fileURLWithPath: $0).lastPathComponent : $0 }
}

/// `--compression` for commands that write `.laq` files.
enum CompressionChoice: String, ExpressibleByArgument, CaseIterable {
    /// zlib when it saves ≥ 10% (quantized codes); float weights stay stored and mappable. For
    /// payloads of 256 KiB or more the saving is first estimated on eight 16 KiB samples.
    case balanced
    /// zlib whenever it is smaller.
    case smallest
    /// Every payload stored.
    case none

    /// The `--help` text of every command's `--compression`.
    static let help: ArgumentHelp = "Compression: balanced (zlib when it saves ≥ 10%, estimated on eight 16 KiB samples for payloads of 256 KiB or more; float weights stay mappable), smallest, none."

    var policy: WriteOptions.CompressionPolicy {
        switch self {
        case .balanced: .balanced
        case .smallest: .smallest
        case .none: .none
        }
    }
}

/// Opens a `.laq` file a command was given; a file that breaks the format is an error that
/// names it (exit 1).
func openLAQ(_ path: String) throws -> LAQFile {
    try reading(path) { try LAQFile(path: path) }
}
