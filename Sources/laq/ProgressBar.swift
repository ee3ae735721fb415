import Foundation

/// A one-line progress bar with rate and ETA on stderr, drawn only when stderr is a terminal
/// (so logs and pipes stay clean) and at most 10 times a second.
final class ProgressBar: @unchecked Sendable {
    /// Redrawn on the next update.
    var label: String
    private let total: Double
    private let unit: (Double) -> String
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let enabled: Bool
    private let lock = NSLock()

    init(label: String, total: Double, unit: @escaping (Double) -> String = { formatBytes(UInt64(max(0, $0))) }, force: Bool = false) {
        self.label = label
        self.total = max(total, 1)
        self.unit = unit
        enabled = force || isatty(STDERR_FILENO) == 1
    }

    private var done: Double = 0

    /// Adds `amount` to the work done and redraws.
    func advance(_ amount: Double) {
        lock.lock()
        done += amount
        let current = done
        lock.unlock()
        update(current)
    }

    func update(_ done: Double) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || done >= total else { return }
        lastDraw = now
        let fraction = min(1, done / total)
        let elapsed = now.timeIntervalSince(start)
        let eta = fraction > 0.01 ? elapsed * (1 - fraction) / fraction : .nan
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let etaText = eta.isFinite ? String(format: "ETA %.0fs", eta) : "ETA ?"
        let line = String(format: "\r%@ %@ %3.0f%% %@/%@ %@", label, bar, fraction * 100, unit(done), unit(total), etaText)
        FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
    }

    /// Clears the line.
    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
