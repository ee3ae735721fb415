/// The one JSON reader for what laq reads from files: `.laq` manifests (spec/FORMAT.md §4),
/// Keras architectures and metadata (`model_config`, `config.json`, `metadata.json`) and
/// `--config` files.
///
/// It accepts RFC 8259 JSON and nothing else, so that any two strict readers (this one, and
/// `tools/laq_reader.py` with Python's `json` and the same checks) read a file the same way or
/// both refuse it. It refuses:
///
/// - a UTF-8 byte-order mark, and bytes that are not UTF-8 (also an escaped lone surrogate);
/// - two members of one object with the same key, compared as Swift compares strings (canonical
///   equivalence: `"é"` and `"e\u0301"` are the same key), where readers differ on which counts;
/// - trailing commas, comments, single quotes, unquoted keys, leading zeros, `+1`, `.5`, `1.`,
///   control characters in strings, anything after the value;
/// - `NaN`, `Infinity` (Python's `json` writes them) and numbers that overflow a double;
/// - nesting deeper than `maxDepth` (the top-level array or object is depth 1).
///
/// A number without fraction or exponent that fits an `Int64` is `.int`; any other number is
/// `.double`, so `12.0` is not an integer where one is required. Documents laq only carries
/// (Keras configs) may instead read integral numbers as `.int` (`integralNumbersAsIntegers`),
/// the form laq's writer gives them, so that they compare equal after a round trip.
public enum StrictJSON {
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// What is wrong, and the byte offset in the text where it was found.
        public var reason: String
        public var offset: Int
        /// Whether the failure is the nesting limit (spec rule 4.1).
        public var tooDeep = false
        public var description: String { "\(reason) (at byte \(offset))" }
    }

    public static func parse(_ bytes: [UInt8], maxDepth: Int = 128, integralNumbersAsIntegers: Bool = false) throws(Failure) -> JSONValue {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(Failure) in try parse(raw, maxDepth: maxDepth, integralNumbersAsIntegers: integralNumbersAsIntegers) }
        }
        return try result.get()
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 128, integralNumbersAsIntegers: Bool = false) throws(Failure) -> JSONValue {
        var parser = Parser(bytes: bytes, maxDepth: maxDepth, integral: integralNumbersAsIntegers)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { throw Failure(reason: "a UTF-8 byte-order mark", offset: 0) }
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.at == bytes.count else { throw parser.fail("text after the JSON value") }
        return value
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let maxDepth: Int
        let integral: Bool
        var at = 0

        init(bytes: UnsafeRawBufferPointer, maxDepth: Int, integral: Bool) {
            self.bytes = bytes
            self.maxDepth = maxDepth
            self.integral = integral
        }

        func fail(_ reason: String) -> Failure { Failure(reason: reason, offset: at) }

        var current: UInt8? { at < bytes.count ? bytes[at] : nil }

        mutating func skipWhitespace() {
            while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 }
        }

        mutating func expect(_ literal: StaticString, _ value: JSONValue) throws(Failure) -> JSONValue {
            let count = literal.utf8CodeUnitCount
            guard bytes.count - at >= count,
                  (0..<count).allSatisfy({ bytes[at + $0] == literal.utf8Start[$0] }) else { throw fail("not a JSON value") }
            at += count
            return value
        }

        mutating func value(depth: Int) throws(Failure) -> JSONValue {
            guard let byte = current else { throw fail("the text ends where a value should be") }
            switch byte {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            case UInt8(ascii: "N"), UInt8(ascii: "I"): throw fail("NaN and Infinity are not JSON")
            default: throw fail("not a JSON value")
            }
        }

        mutating func object(depth: Int) throws(Failure) -> JSONValue {
            guard depth <= maxDepth else { var failure = fail("nesting deeper than \(maxDepth)"); failure.tooDeep = true; throw failure }
            at += 1
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if current == UInt8(ascii: "}") { at += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\"") else {
                    throw fail(current == UInt8(ascii: "}") ? "a trailing comma" : "an object key that is not a string")
                }
                let keyOffset = at
                let key = try string()
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw fail("no ':' after an object key") }
                at += 1
                skipWhitespace()
                let member = try value(depth: depth)
                guard members.updateValue(member, forKey: key) == nil else {
                    throw Failure(reason: "duplicate key \"\(key)\" in one object", offset: keyOffset)
                }
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): at += 1
                case UInt8(ascii: "}"): at += 1; return .object(members)
                default: throw fail("expected ',' or '}' in an object")
                }
            }
        }

        mutating func array(depth: Int) throws(Failure) -> JSONValue {
            guard depth <= maxDepth else { var failure = fail("nesting deeper than \(maxDepth)"); failure.tooDeep = true; throw failure }
            at += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if current == UInt8(ascii: "]") { at += 1; return .array(elements) }
            while true {
                skipWhitespace()
                if current == UInt8(ascii: "]") { throw fail("a trailing comma") }
                elements.append(try value(depth: depth))
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): at += 1
                case UInt8(ascii: "]"): at += 1; return .array(elements)
                default: throw fail("expected ',' or ']' in an array")
                }
            }
        }

        /// A string from its opening quote; raw bytes are checked to be UTF-8, escapes decoded.
        mutating func string() throws(Failure) -> String {
            at += 1
            var utf8: [UInt8] = []
            var runStart = at
            while true {
                guard at < bytes.count else { throw fail("an unterminated string") }
                let byte = bytes[at]
                if byte == UInt8(ascii: "\"") {
                    utf8.append(contentsOf: bytes[runStart..<at])
                    at += 1
                    break
                }
                if byte < 0x20 { throw fail("a control character in a string") }
                if byte != UInt8(ascii: "\\") { at += 1; continue }
                utf8.append(contentsOf: bytes[runStart..<at])
                at += 1
                guard let escape = current else { throw fail("an unterminated string") }
                at += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard bytes.count - at >= 6, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
                            throw fail("a lone surrogate escape")
                        }
                        at += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("a lone surrogate escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("a lone surrogate escape")
                    }
                    utf8.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
                default:
                    throw fail("an invalid escape in a string")
                }
                runStart = at
            }
            guard let text = String(validating: utf8, as: UTF8.self) else { throw fail("a string that is not UTF-8") }
            return text
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            guard bytes.count - at >= 4 else { throw fail("a short \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[at]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw fail("a \\u escape that is not hexadecimal")
                }
                value = value << 4 | UInt32(digit)
                at += 1
            }
            return value
        }

        mutating func number() throws(Failure) -> JSONValue {
            let start = at
            func digits() -> Int {
                let first = at
                while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
                return at - first
            }
            if current == UInt8(ascii: "-") { at += 1 }
            if current == UInt8(ascii: "I") { throw fail("NaN and Infinity are not JSON") }
            let integerStart = at
            guard digits() > 0 else { throw fail("a number without digits") }
            if bytes[integerStart] == UInt8(ascii: "0"), at - integerStart > 1 { throw fail("a number with a leading zero") }
            var integral = true
            if current == UInt8(ascii: ".") {
                at += 1
                integral = false
                guard digits() > 0 else { throw fail("a number without digits after '.'") }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                at += 1
                integral = false
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { at += 1 }
                guard digits() > 0 else { throw fail("a number without exponent digits") }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
            if integral, let value = Int64(text) { return .int(value) }
            guard let value = Double(text), value.isFinite else {
                at = start
                throw fail("a number out of a double's range")
            }
            if self.integral, value == value.rounded(), let whole = Int64(exactly: value) { return .int(whole) }
            return .double(value)
        }
    }
}
