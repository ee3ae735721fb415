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

    /// The status `error` ends `command` with; nil for an error laq's libraries do not throw (a
    /// bug, ``internalError``).
    static func of(_ error: any Error, in command: (any ParsableCommand)? = nil) -> ExitStatus? {
        let status = of(error)
        // diff(1): 1 means "different", so every failure of `laq diff` is trouble, 2 (a bug stays 3).
        if command is Diff, status != nil, status != .internalError { return .usageOrIO }
        return status
    }

    private static func of(_ error: any Error) -> ExitStatus? {
        switch error {
        // A library error laq does not classify is a bug, reported as one (nil).
        case let error as FileError: of(error.reason)
        case let error as CommandError:
            switch error {
            case .refused, .crashed: .invalidInput
            case .usage, .io, .outOfMemory: .usageOrIO
            }
        case let error as FormatError: ExitStatus(rawValue: error.exitStatus) ?? .invalidInput
        case let error as DataError: error.isIO ? .usageOrIO : .invalidInput
        case let error as ImportError: if case .io = error { .usageOrIO } else { .invalidInput }
        case let error as QuantizeError: error.isUsage ? .usageOrIO : .invalidInput
        case let error as TensorHistogram.ReferenceError: of(error.underlying) ?? .invalidInput
        case is HDF5Error, is ModelError, is EngineError, is ExportError, is ScheduleError,
             is ZipCheck.Failure, is StrictJSON.Failure: .invalidInput
        // JSON output of a value no JSON number can hold (a NaN loss): the data made it.
        case is EncodingError: .invalidInput
        case is CocoaError, is POSIXError: .usageOrIO
        default: nil
        }
    }
}

/// An error about a file a command was given: the library's error, reported against the file's
/// path (as given on the command line). Its status is the library error's.
struct FileError: Error, CustomStringConvertible {
    var path: String
    /// What the command was doing with the file, when the reason alone would not say.
    var context: String?
    var reason: any Error
    var description: String { "\(path): \(context.map { "\($0): " } ?? "")\(reason)" }
}

/// A problem a subcommand finds itself (not one of the libraries' errors), by its cause; the
/// cause decides the status (``ExitStatus/of(_:in:)``).
enum CommandError: Error, CustomStringConvertible {
    /// The input is valid but laq will not use it for this: a model `eval` cannot score, data too
    /// small to split, outputs that are not finite.
    case refused(String)
    /// Reading the input crashed libhdf5 in the isolated child process.
    case crashed(String)
    /// An argument names something the input does not have.
    case usage(String)
    /// The file system or the system: a file that cannot be read, laq's own executable missing.
    case io(String)
    case outOfMemory(String)

    var description: String {
        switch self {
        case let .refused(message), let .crashed(message), let .usage(message), let .io(message), let .outOfMemory(message): message
        }
    }
}

/// Runs `body`, reporting its errors against the file `path`. Errors that already name their file
/// (data files, HDF5, I/O) or are about the arguments pass as they are.
func reading<T>(_ path: String, _ context: String? = nil, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as FileError {
        throw error
    } catch let error as CommandError {
        throw error
    } catch let error as DataError {
        throw error
    } catch let error as HDF5Error {
        throw error
    } catch let error as QuantizeError where error.isUsage {
        throw error
    } catch let error as FormatError {
        if case .io = error { throw error }
        throw FileError(path: path, context: context, reason: error)
    } catch let error as ValidationError {
        throw error
    } catch {
        throw FileError(path: path, context: context, reason: error)
    }
}
