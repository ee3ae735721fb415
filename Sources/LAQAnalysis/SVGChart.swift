import Foundation

/// Small inline-SVG charts for `laq report`: no scripts, no external resources. Every drawn data
/// mark has class `mark`, so a renderer (tools/check_report.py) can check each chart was drawn.
enum SVGChart {
    static let width = 640.0

    /// Text escaped for HTML and SVG.
    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "–" }
        if value == 0 { return "0" }
        let magnitude = abs(value)
        if magnitude >= 1e4 || magnitude < 1e-3 { return String(format: "%.2e", value) }
        return String(format: magnitude >= 100 ? "%.0f" : magnitude >= 1 ? "%.2f" : "%.3g", value)
    }

    static func coordinate(_ value: Double) -> String { String(format: "%.1f", value) }

    static func figure(_ id: String, title: String, height: Double, body: String, caption: String? = nil) -> String {
        """
        <figure class="chart" data-chart="\(escape(id))">
        <figcaption>\(escape(title))</figcaption>
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(coordinate(width)) \(coordinate(height))" width="\(coordinate(width))" height="\(coordinate(height))" role="img" aria-label="\(escape(title))">
        \(body)
        </svg>\(caption.map { "\n<p class=\"note\">\(escape($0))</p>" } ?? "")
        </figure>
        """
    }

    /// Horizontal bars, one per item, scaled to the largest value.
    static func bars(_ id: String, title: String, items: [(label: String, value: Double, note: String)], color: String = "#3b6ea8") -> String {
        let row = 22.0, labelWidth = 210.0, noteWidth = 120.0
        let height = Double(items.count) * row + 10
        let largest = max(items.map(\.value).filter(\.isFinite).max() ?? 0, 1e-12)
        var body = ""
        for (index, item) in items.enumerated() {
            let y = 5 + Double(index) * row
            let length = item.value.isFinite ? max(1, (width - labelWidth - noteWidth) * item.value / largest) : 0
            body += "<text x=\"\(coordinate(labelWidth - 6))\" y=\"\(coordinate(y + 15))\" text-anchor=\"end\" class=\"label\">\(escape(item.label))</text>"
            body += "<rect class=\"mark\" x=\"\(coordinate(labelWidth))\" y=\"\(coordinate(y + 3))\" width=\"\(coordinate(length))\" height=\"\(coordinate(row - 6))\" fill=\"\(color)\"><title>\(escape(item.label)): \(escape(item.note))</title></rect>"
            body += "<text x=\"\(coordinate(labelWidth + length + 6))\" y=\"\(coordinate(y + 15))\" class=\"value\">\(escape(item.note))</text>\n"
        }
        return figure(id, title: title, height: height, body: body)
    }

    /// A histogram with its quantization levels drawn over it: a line per level, or a band per
    /// code where levels differ by channel.
    static func histogram(_ id: String, title: String, histogram: TensorHistogram, caption: String?) -> String {
        let height = 190.0, left = 50.0, right = 10.0, top = 10.0, bottom = 30.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let low = Double(min(histogram.minimum, histogram.levels?.map(\.minimum).min() ?? histogram.minimum))
        let high = Double(max(histogram.maximum, histogram.levels?.map(\.maximum).max() ?? histogram.maximum))
        let span = high > low ? high - low : 1
        func x(_ value: Double) -> Double { left + (value - low) / span * plotWidth }
        let largest = Double(max(histogram.bins.map(\.count).max() ?? 1, 1))
        var body = "<line x1=\"\(coordinate(left))\" y1=\"\(coordinate(top + plotHeight))\" x2=\"\(coordinate(left + plotWidth))\" y2=\"\(coordinate(top + plotHeight))\" class=\"axis\"/>"
        for bin in histogram.bins {
            let x0 = x(Double(bin.lower)), x1 = max(x(Double(bin.upper)), x0 + 1)
            let h = Double(bin.count) / largest * plotHeight
            body += "<rect class=\"mark\" x=\"\(coordinate(x0))\" y=\"\(coordinate(top + plotHeight - h))\" width=\"\(coordinate(max(x1 - x0 - 0.5, 0.5)))\" height=\"\(coordinate(max(h, bin.count > 0 ? 1 : 0)))\" fill=\"#9bb7d4\"><title>[\(number(Double(bin.lower))), \(number(Double(bin.upper)))]: \(bin.count)</title></rect>"
        }
        for level in histogram.levels ?? [] {
            if level.minimum == level.maximum {
                let position = x(Double(level.minimum))
                body += "<line class=\"mark level\" x1=\"\(coordinate(position))\" y1=\"\(coordinate(top))\" x2=\"\(coordinate(position))\" y2=\"\(coordinate(top + plotHeight))\" stroke=\"#c0392b\" stroke-width=\"2\"><title>code \(level.code): \(number(Double(level.minimum))), \(level.count) elements</title></line>"
            } else {
                let x0 = x(Double(level.minimum)), x1 = x(Double(level.maximum))
                body += "<rect class=\"mark level\" x=\"\(coordinate(x0))\" y=\"\(coordinate(top))\" width=\"\(coordinate(max(x1 - x0, 2)))\" height=\"\(coordinate(plotHeight))\" fill=\"#c0392b\" fill-opacity=\"0.18\"><title>code \(level.code): \(number(Double(level.minimum)))…\(number(Double(level.maximum))) over the channels, \(level.count) elements</title></rect>"
            }
        }
        for value in [low, (low + high) / 2, high] {
            body += "<text x=\"\(coordinate(x(value)))\" y=\"\(coordinate(height - 10))\" text-anchor=\"middle\" class=\"tick\">\(number(value))</text>"
        }
        body += "<text x=\"\(coordinate(left - 6))\" y=\"\(coordinate(top + 10))\" text-anchor=\"end\" class=\"tick\">\(Int(largest))</text>"
        return figure(id, title: title, height: height, body: body, caption: caption)
    }

    /// Lines (and their points) over a shared x axis; each series is scaled to the common y range.
    static func lines(_ id: String, title: String, xLabel: String, series: [(name: String, points: [(x: Double, y: Double)], color: String)]) -> String {
        let height = 220.0, left = 60.0, right = 130.0, top = 10.0, bottom = 34.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        let xLow = all.map(\.x).min() ?? 0, xHigh = all.map(\.x).max() ?? 1
        let yLow = all.map(\.y).min() ?? 0, yHigh = all.map(\.y).max() ?? 1
        let xSpan = xHigh > xLow ? xHigh - xLow : 1, ySpan = yHigh > yLow ? yHigh - yLow : 1
        func x(_ value: Double) -> Double { left + (value - xLow) / xSpan * plotWidth }
        func y(_ value: Double) -> Double { top + plotHeight - (value - yLow) / ySpan * plotHeight }
        var body = "<line x1=\"\(coordinate(left))\" y1=\"\(coordinate(top + plotHeight))\" x2=\"\(coordinate(left + plotWidth))\" y2=\"\(coordinate(top + plotHeight))\" class=\"axis\"/>"
        body += "<line x1=\"\(coordinate(left))\" y1=\"\(coordinate(top))\" x2=\"\(coordinate(left))\" y2=\"\(coordinate(top + plotHeight))\" class=\"axis\"/>"
        for (index, item) in series.enumerated() {
            let points = item.points.filter { $0.x.isFinite && $0.y.isFinite }
            if points.count > 1 {
                let path = points.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(coordinate(x($0.element.x))),\(coordinate(y($0.element.y)))" }.joined(separator: " ")
                body += "<path class=\"mark\" d=\"\(path)\" fill=\"none\" stroke=\"\(item.color)\" stroke-width=\"1.5\"/>"
            }
            if points.count <= 60 {
                for point in points {
                    body += "<circle class=\"mark\" cx=\"\(coordinate(x(point.x)))\" cy=\"\(coordinate(y(point.y)))\" r=\"3\" fill=\"\(item.color)\"><title>\(escape(item.name)) at \(number(point.x)): \(number(point.y))</title></circle>"
                }
            }
            body += "<text x=\"\(coordinate(left + plotWidth + 10))\" y=\"\(coordinate(top + 14 + Double(index) * 16))\" fill=\"\(item.color)\" class=\"label\">\(escape(item.name))</text>"
        }
        for value in [yLow, (yLow + yHigh) / 2, yHigh] {
            body += "<text x=\"\(coordinate(left - 6))\" y=\"\(coordinate(y(value) + 4))\" text-anchor=\"end\" class=\"tick\">\(number(value))</text>"
        }
        for value in [xLow, xHigh] {
            body += "<text x=\"\(coordinate(x(value)))\" y=\"\(coordinate(top + plotHeight + 16))\" text-anchor=\"middle\" class=\"tick\">\(number(value))</text>"
        }
        body += "<text x=\"\(coordinate(left + plotWidth / 2))\" y=\"\(coordinate(height - 4))\" text-anchor=\"middle\" class=\"tick\">\(escape(xLabel))</text>"
        return figure(id, title: title, height: height, body: body)
    }
}
