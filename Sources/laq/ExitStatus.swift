import ArgumentParser
import Foundation
import LAQAnalysis
import LAQCalibration
import LAQData
import LAQEngine
import LAQExport
import LAQFormat
import LAQHDF5
import LAQImport
import LAQQuantize

/// laq's exit statuses (`laq --help`, the README), and the one place that decides which error
/// ends with which.
enum ExitStatus: Int32 {
    case success = 0
    /// The input is invalid: a file that breaks its format, a model or data laq refuses, `verify`
    /// found problems, `diff` found differences.
    case invalidInput = 1
    /// Bad arguments, an I/O error (a file missing, unreadable or unwritable, a full disk), or
    /// out of memory.
    case usageOrIO = 2
    /// A bug in laq: an error it does not classify. Please report it.
    case internalError = 3

    /// The status an error of laq's libraries ends with; nil for an error they do not throw.
    static func of(_ error: any Error) -> ExitStatus? {
        switch error {
        case let error as CLIError: error.code
        case let error as FormatError: ExitStatus(rawValue: error.exitStatus) ?? .invalidInput
        case let error as DataError: error.isIO ? .usageOrIO : .invalidInput
        case let error as ImportError: if case .io = error { .usageOrIO } else { .invalidInput }
        case let error as QuantizeError: error.isUsage ? .usageOrIO : .invalidInput
        case is HDF5Error, is ModelError, is EngineError, is ExportError, is ScheduleError, is TensorHistogram.ReferenceError,
             is ZipCheck.Failure, is StrictJSON.Failure: .invalidInput
        // JSON output of a value no JSON number can hold (a NaN loss): the data made it.
        case is EncodingError: .invalidInput
        case is CocoaError, is POSIXError: .usageOrIO
        default: nil
        }
    }
}

/// An error the CLI reports as it is worded, with its exit status.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    var code: ExitStatus
    var description: String { message }
}
