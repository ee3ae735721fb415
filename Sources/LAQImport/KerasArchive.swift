import Foundation
import LAQData
import LAQFormat
import LAQHDF5
import LAQEngine
import ZIPFoundation

/// A Keras 3 `.keras` archive: a zip of `config.json`, `metadata.json` and `model.weights.h5`,
/// read with ZIPFoundation (CRC-32 of each member checked); the weights file is opened from
/// memory, without a temporary file. Keras stores its members uncompressed: the weights file
/// is then read where it lies in the memory-mapped archive, not copied (a deflated one is
/// inflated into memory).
struct KerasArchive {
    let path: String
    /// The whole archive, memory-mapped.
    let file: MappedFile
    var data: Data { file.data }
    let outlet: TensorOutlet

    /// Members larger than this, or expanding more than 100× (Keras' own zip-bomb guard), are refused.
    static let maxMemberBytes: UInt64 = 4 << 30

    func member(_ archive: Archive, _ name: String) throws -> [UInt8] {
        guard let entry = archive[name] else { throw ImportError.archive(path: path, reason: "no member '\(name)'") }
        let size = UInt64(entry.uncompressedSize)
        guard size <= Self.maxMemberBytes, size / 100 <= UInt64(entry.compressedSize) || size <= 1 << 20 else {
            throw ImportError.archive(path: path, reason: "member '\(name)' claims \(size) bytes from \(entry.compressedSize): refused as a zip bomb")
        }
        guard Memory.canAllocate(Int(size)) else {
            throw ImportError.archive(path: path, reason: "member '\(name)' of \(size) bytes: out of memory")
        }
        var data = [UInt8]()
        data.reserveCapacity(Int(min(size, UInt64(self.data.count) * 100, 1 << 30)))
        do {
            // With a consumer, ZIPFoundation returns the CRC-32 it computed; comparing is ours to do.
            let crc = try archive.extract(entry, skipCRC32: false) { chunk in
                data.append(contentsOf: chunk)
                if UInt64(data.count) > size { throw ImportError.archive(path: path, reason: "member '\(name)' is longer than its header says") }
            }
            guard crc == entry.checksum else {
                throw ImportError.archive(path: path, reason: "member '\(name)' is damaged (CRC-32 mismatch)")
            }
            guard UInt64(data.count) == size else {
                throw ImportError.archive(path: path, reason: "member '\(name)' has \(data.count) bytes, its header says \(size)")
            }
        } catch let error as ImportError {
            throw error
        } catch {
            throw ImportError.archive(path: path, reason: "member '\(name)': \(error)")
        }
        return data
    }

    func importModel(includeOptimizer: Bool, configOverride: JSONValue?) throws -> KerasImporter.Result {
        let archive: Archive
        let members: [ZipCheck.Member]
        do {
            members = try ZipCheck.validate(data)  // before ZIPFoundation trusts its offsets
        } catch {
            throw ImportError.archive(path: path, reason: error.reason)
        }
        do {
            archive = try Archive(data: data, accessMode: .read)
        } catch {
            throw ImportError.archive(path: path, reason: "not a readable zip (\(error))")
        }
        let config: JSONValue
        if let configOverride {
            config = configOverride
        } else {
            config = try KerasImporter.parseJSON(member(archive, "config.json"), path: path, what: "config.json")
        }
        var kerasVersion: String?
        if archive["metadata.json"] != nil {
            let metadata = try KerasImporter.parseJSON(member(archive, "metadata.json"), path: path, what: "metadata.json")
            kerasVersion = metadata["keras_version"]?.stringValue
        }
        if archive["model.weights.npz"] != nil, archive["model.weights.h5"] == nil {
            throw ImportError.archive(path: path, reason: "weights saved as model.weights.npz are not supported; re-save with the default (HDF5) weights")
        }
        let name = "\(path):model.weights.h5"
        func read(_ file: H5File) throws -> KerasImporter.Result {
            do {
                return try Keras3WeightsReader(file: file, path: name, outlet: outlet)
                    .importModel(config: config, includeOptimizer: includeOptimizer, kind: .archive)
            } catch let error as HDF5Error { throw ImportError.hdf5(error) }
        }
        var result: KerasImporter.Result
        if let stored = members.first(where: { $0.name == "model.weights.h5" && $0.method == 0 }) {
            // Stored: read in place (ZipCheck placed its bytes within the archive), once its
            // CRC-32 matches.
            let weights = stored.dataOffset..<(stored.dataOffset + Int(stored.uncompressedSize))
            var crc: UInt32 = 0
            file.scan(weights) { crc = Checksum.crc32($0, continuing: crc) }
            guard crc == stored.crc32 else {
                throw ImportError.archive(path: path, reason: "member 'model.weights.h5' is damaged (CRC-32 mismatch)")
            }
            do {
                result = try H5File.withImageInPlace(data, range: weights, name: name) { image in try read(image) }
            } catch let error as HDF5Error { throw ImportError.hdf5(error) }
        } else {
            let weights = try member(archive, "model.weights.h5")
            let file: H5File
            do { file = try H5File(image: weights, name: name) } catch let error as HDF5Error { throw ImportError.hdf5(error) }
            result = try read(file)
        }
        result.model.source.kerasVersion = kerasVersion
        return result
    }
}
