import Foundation
import LAQData
import LAQFormat
import LAQHDF5
import LAQImport
import LAQEngine
import LAQTestSupport
import Testing

/// Import of the Keras fixtures in testdata/keras (made by tools/fixtures/make_keras_fixtures.py
/// with TensorFlow 2.21, Keras 3.15.1 and tf_keras 2.21).
@Suite struct KerasImportTests {
    @Test("keras_hub layers in a legacy .h5 Sequential, which records no input width, are refused naming them; a layer as an activation is refused")
    func hubSequentialLegacy() throws {
        do {
            _ = try KerasImporter().importModel(path: TestPaths.testdata("keras/hub_sequential.h5").path)
            Issue.record("imported")
        } catch {
            #expect("\(error)".contains("TransformerEncoder") && "\(error)".contains("no recorded input shape"), "\(error)")
        }
        let elu: JSONValue = ["module": "keras.layers", "class_name": "ELU", "config": ["name": "elu", "alpha": 0.5]]
        #expect(Activation.name(of: elu) == nil)
        #expect(Activation.name(of: ["module": "builtins", "class_name": "function", "config": "keras_hub>gelu_approximate", "registered_name": "function"]) == "gelu_approximate")
        #expect(Activation.name(of: ["module": "builtins", "class_name": "function", "config": "Custom>gelu_approximate", "registered_name": "function"]) == nil)
    }

    @Test("keras_hub's masks are integers Keras casts: laq takes 0 and 1 and refuses 0.5 by name rather than attend where Keras would not")
    func hubMaskValues() throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/hub_layers.keras").path).model
        let ids = Tensor(shape: [1, 4], data: [1, 2, 3, 4])
        let executor = try Executor(model: model)
        _ = try executor.predict([ids, Tensor(shape: [1, 4], data: [1, 1, 1, 0])])
        #expect(throws: EngineError.self) { try executor.predict([ids, Tensor(shape: [1, 4], data: [1, 1, 0.5, 0])]) }
    }

    @Test("a MultiHeadAttention Keras quantized (its config stays float; its file holds integer codes) is refused naming the layer")
    func kerasQuantizedAttention() throws {
        do {
            _ = try KerasImporter().importModel(path: TestPaths.testdata("keras/k3_int8_attention.keras").path)
            Issue.record("imported")
        } catch {
            #expect("\(error)".contains("layer 'attention' (MultiHeadAttention): its variable 0 holds integer codes: Keras quantized it"), "\(error)")
        }
    }

    @Test("Keras' int8 and packed int4 codes are stored exactly as 8-bit tables of −128…127 (spec/QUANTIZATION.md §11), frozen, and left alone by quantize",
          arguments: ["k3_int8.keras", "k3_int4.keras"])
    func kerasQuantizedCodes(fixture: String) throws {
        let model = try KerasImporter().importModel(path: TestPaths.testdata("keras/\(fixture)").path).model
        let file = try LAQFile(bytes: try model.laqWriter(provenance: []).encoded())
        for name in ["embedding/embeddings", "per_token/kernel", "hidden/kernel", "no_bias/kernel", "classifier/kernel"] {
            let tensor = try #require(file.tensors.first { $0.name == name })
            guard case let .codebook(layout)? = tensor.encoding else { Issue.record("\(name): \(String(describing: tensor.encoding))"); continue }
            #expect(layout.bits == 8 && layout.levelCount == 256 && layout.axis == nil, "\(name)")
            #expect(try file.floats(tensor) == model.weight(named: name)!.values, "\(name)")
            #expect(model.weight(named: name)?.trainable == false)
        }
        #expect(!model.layers.flatMap(\.kind.weights).contains { $0.integerCodes && $0.quantizable })
    }

    static func fixture(_ name: String) -> String { TestPaths.testdata("keras/\(name)").path }

    static func load(_ name: String, config: String? = nil, optimizer: Bool = true) throws -> KerasImporter.Result {
        try KerasImporter(includeOptimizer: optimizer).importModel(path: fixture(name), configPath: config.map(fixture))
    }

    static func weights(_ model: Model) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: model.weights.map { ($0.name, $0.values) })
    }

    static func slots(_ model: Model) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: (model.optimizer?.slots ?? []).map { ("\($0.slot):\($0.weight)", $0.values) })
    }

    @Test("the tiny model: layers, weights, shapes and Adam state from a Keras 3 .h5")
    func tinyKeras3() throws {
        let result = try Self.load("k3_tiny.h5")
        let model = result.model
        #expect(result.kind == .legacyModel)
        #expect(model.name == "tiny")
        #expect(model.layers.map(\.name) == ["image", "conv", "bn", "to_seq", "lstm", "dense"])
        #expect(model.weights.map(\.name) == [
            "conv/kernel", "conv/bias", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance",
            "lstm/kernel", "lstm/recurrent_kernel", "lstm/bias", "dense/kernel", "dense/bias",
        ])
        #expect(model.weight(named: "lstm/kernel")?.shape == [24, 20])
        #expect(model.weight(named: "bn/moving_mean")?.trainable == false)
        #expect(model.parameterCounts.trainable == 666 && model.parameterCounts.nonTrainable == 8)
        let shapes = try model.outputShapes()
        #expect(shapes["conv"] == [nil, 6, 6, 4])
        #expect(shapes["to_seq"] == [nil, 6, 24])
        #expect(shapes["dense"] == [nil, 3])
        let optimizer = try #require(model.optimizer)
        #expect(optimizer.className == "Adam")
        #expect(optimizer.iterations == 4)
        #expect(optimizer.beta2 == 0.999)
        #expect(optimizer.slots.count == 18)
        // Second moments are non-negative and, after 4 steps, not all zero.
        let v = optimizer.slots.filter { $0.slot == "v" }.flatMap(\.values)
        #expect(v.allSatisfy { $0 >= 0 } && v.contains { $0 > 0 })
        #expect(model.source.kerasVersion == "3.15.1")
    }

    @Test("Keras 3: .h5, .keras and .weights.h5 + config give the same weights and moments",
          arguments: ["k3_tiny", "k3_branches", "k3_nested", "k3_shared"])
    func keras3LayoutsAgree(name: String) throws {
        let legacy = try Self.load("\(name).h5").model
        let archive = try Self.load("\(name).keras").model
        let weightsOnly = try Self.load("\(name).weights.h5", config: "\(name).config.json").model
        #expect(Self.weights(legacy) == Self.weights(archive))
        #expect(Self.weights(legacy) == Self.weights(weightsOnly))
        #expect(Self.slots(legacy) == Self.slots(archive))
        #expect(Self.slots(legacy) == Self.slots(weightsOnly))
        #expect(!Self.slots(legacy).isEmpty)
    }

    @Test("tf.keras: the ≥ 2.11 (Adam/m/var) and legacy (Adam/var/m) optimizer schemes")
    func tfKerasSchemes() throws {
        for name in ["tfk_tiny.h5", "tfk_tiny_legacy_adam.h5"] {
            let model = try Self.load(name).model
            let optimizer = try #require(model.optimizer, "\(name)")
            #expect(optimizer.slots.count == 18, "\(name)")
            #expect(optimizer.iterations == 4, "\(name)")
            #expect(model.source.kerasVersion?.hasPrefix("2.") == true)
            for slot in optimizer.slots {
                #expect(slot.values.count == model.weight(named: slot.weight)?.values.count)
            }
        }
    }

    @Test("functional graphs: two inputs, merges, GRU (both reset_after), Bidirectional, Embedding")
    func branches() throws {
        let model = try Self.load("k3_branches.h5").model
        #expect(model.inputs.map(\.layer) == ["tokens", "features"])
        #expect(model.outputs.map(\.layer) == ["out"])
        #expect(model.layer(named: "cat")?.inbound == [[TensorRef(layer: "add"), TensorRef(layer: "sub"), TensorRef(layer: "bidi")]])
        #expect(model.weight(named: "gru/bias")?.shape == [2, 9])
        #expect(model.weight(named: "gru_v1/bias")?.shape == [9])
        #expect(model.weight(named: "bidi/backward/recurrent_kernel")?.shape == [2, 2])
        #expect(try model.outputShapes()["cat"] == [nil, 10])
    }

    @Test("weights-only files: refused without --config, imported with it, no Hessian")
    func weightsOnly() throws {
        #expect(throws: ImportError.missingArchitecture(path: Self.fixture("tfk_tiny_weights_only.h5"))) {
            _ = try Self.load("tfk_tiny_weights_only.h5")
        }
        let result = try Self.load("tfk_tiny_weights_only.h5", config: "k3_tiny.config.json")
        #expect(result.model.optimizer == nil)
        #expect(result.notices.contains { $0.contains("no Hessian") })
        #expect(result.model.weights.count == 11)
    }

    @Test("SGD state is not a Hessian: imported without it, with a notice")
    func sgd() throws {
        let result = try Self.load("k3_tiny_sgd.h5")
        #expect(result.model.optimizer == nil)
        #expect(result.notices.contains { $0.contains("SGD") })
    }

    @Test("unusual but valid encodings: split attributes, fixed-length strings",
          arguments: ["ok_split_attribute.h5", "ok_fixed_strings.h5"])
    func unusualEncodings(name: String) throws {
        let reference = try Self.load("k3_tiny.h5").model
        let model = try Self.load(name).model
        #expect(Self.weights(model) == Self.weights(reference))
        #expect(Self.slots(model) == Self.slots(reference))
    }

    /// One crafted file per failure; each error names what is wrong and where.
    static let failures: [(file: String, expected: String)] = [
        ("bad_truncated.h5", "cannot open (damaged or truncated?)"),
        ("bad_not_keras.h5", "neither a zip (.keras) nor an HDF5 file"),
        ("bad_wrong_shape.h5", "weight 'conv/kernel' has shape [3, 3, 1, 5], the layer's config implies [3, 3, 1, 4]"),
        ("bad_missing_weight.h5", "layer 'dense' should have weights [kernel, bias] but the file has [dense/kernel]"),
        ("bad_missing_slot.h5", "no 'v' slot for weight 'dense/kernel'"),
        ("bad_extra_slot.h5", "slot 'adam/dense_kernel_velocity_hat' is not an Adam moment"),
        ("bad_nested_count.h5", "nested model 'inner': lists 9 weights, its layers have 10"),
        ("k3_unsupported.h5", "layer 'deconv' is a Conv2DTranspose, which laq cannot execute"),
        ("bad_damaged_member.keras", "member 'model.weights.h5' is damaged (CRC-32 mismatch)"),
        ("bad_huge_member.keras", "member 'model.weights.h5': a stored member whose sizes disagree"),
        // Nothing outside the input: refused before any data is read.
        ("bad_external_storage.h5", "its data is stored in 1 external file: laq reads nothing outside the input file"),
        ("bad_external_link.h5", "it is an external link (to another file): laq reads nothing outside the input file"),
        ("bad_virtual_dataset.h5", "a virtual dataset, whose data lies in other datasets or files"),
        ("bad_filter_lzf.h5", "it is stored through the filter 32000 (lzf), not deflate, shuffle or fletcher32"),
        // Zip structure, checked before ZIPFoundation reads it (it trapped on these).
        ("bad_duplicate_member.keras", "two members named 'config.json' (readers differ on which counts)"),
        ("bad_directory_offset.keras", ".keras archive: a ZIP64 archive without its locator"),
    ]

    @Test("HDF5 names from a file are names: an absolute path below the root, `.` and `..` are refused before libhdf5 resolves them")
    func hdf5Paths() throws {
        let file = try H5File(path: TestPaths.testdata("keras/k3_tiny.h5").path)
        let root = try file.root()
        #expect(try root.dataset("/model_weights/conv/conv/kernel").shape == [3, 3, 1, 4])
        let weights = try root.group("model_weights")
        #expect(throws: HDF5Error.self) { try weights.dataset("/model_weights/conv/conv/kernel") }
        #expect(throws: HDF5Error.self) { try weights.kind(of: "conv/../conv") }
        #expect(throws: HDF5Error.self) { try weights.group("./conv") }
        #expect(try weights.kind(of: "conv/conv/kernel") == .dataset)
    }

    /// `bytes` with the 4-byte little-endian `value` at `offset`.
    static func patched(_ bytes: [UInt8], at offset: Int, _ value: UInt32) -> [UInt8] {
        var copy = bytes
        for index in 0..<4 { copy[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
        return copy
    }

    @Test("zip archives: offsets outside the file, local headers that disagree, climbing names are refused before ZIPFoundation reads them; sound archives list their members")
    func zipStructure() throws {
        let bytes = [UInt8](try Data(contentsOf: TestPaths.testdata("keras/k3_tiny.keras")))
        let members = try ZipCheck.validate(bytes)
        #expect(Set(members.map(\.name)) == ["metadata.json", "config.json", "model.weights.h5"])
        // Keras stores its members: each one's data lies at its offset, with its CRC-32, and a
        // Data slice that does not start at 0 lists the same members.
        let weights = try #require(members.first { $0.name == "model.weights.h5" })
        #expect(weights.method == 0 && weights.compressedSize == weights.uncompressedSize)
        let stored = Array(bytes[weights.dataOffset..<(weights.dataOffset + Int(weights.uncompressedSize))])
        #expect(stored.starts(with: [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]))
        #expect(Checksum.crc32(Data(stored)) == weights.crc32)
        let padded = Data([1, 2, 3] + bytes)
        #expect(try ZipCheck.validate(padded[3...]) == members)
        let record = bytes.count - 22  // no comment
        #expect(bytes[record..<(record + 4)].elementsEqual([0x50, 0x4B, 0x05, 0x06]))
        let directory = Int(bytes[record + 16]) | Int(bytes[record + 17]) << 8 | Int(bytes[record + 18]) << 16 | Int(bytes[record + 19]) << 24
        func reason(_ mutated: [UInt8]) -> String {
            do { _ = try ZipCheck.validate(mutated); return "accepted" } catch { return error.reason }
        }
        #expect(reason(Self.patched(bytes, at: record + 16, UInt32(bytes.count))).contains("lies outside the file"))
        #expect(reason(Self.patched(bytes, at: record + 12, 1 << 30)).contains("lies outside the file"))
        #expect(reason(Self.patched(bytes, at: directory + 42, UInt32(directory - 10))).contains("its local header (offset"))
        // A stored member's two sizes must agree, and fit before the directory.
        #expect(reason(Self.patched(bytes, at: directory + 20, UInt32(bytes.count))).contains("a stored member whose sizes disagree"))
        #expect(reason(Self.patched(Self.patched(bytes, at: directory + 20, UInt32(bytes.count)), at: directory + 24, UInt32(bytes.count)))
            .contains("do not fit before the central directory"))
        // A version needed to extract past 6.3: Python's zipfile refuses it.
        var newer = bytes
        newer[directory + 6] = 64
        #expect(reason(newer).contains("needs zip version 6.4 to extract, past 6.3"))
        // The local header's CRC-32 and sizes must be the directory's (readers take either).
        let firstLocal = Int(bytes[directory + 42]) | Int(bytes[directory + 43]) << 8 | Int(bytes[directory + 44]) << 16 | Int(bytes[directory + 45]) << 24
        for field in [14, 18, 22] {
            let value = UInt32(bytes[firstLocal + field]) | UInt32(bytes[firstLocal + field + 1]) << 8 | UInt32(bytes[firstLocal + field + 2]) << 16 | UInt32(bytes[firstLocal + field + 3]) << 24
            #expect(reason(Self.patched(bytes, at: firstLocal + field, value &+ 1)).contains("its local header's CRC-32 or sizes disagree"), "field \(field)")
        }
        #expect(reason(Array(bytes.prefix(record))).contains("no end-of-central-directory record"))
        // A member renamed to climb out, in its directory entry and its local header alike.
        var climbing = bytes
        let nameLength = Int(bytes[directory + 28]) | Int(bytes[directory + 29]) << 8
        let local = Int(bytes[directory + 42]) | Int(bytes[directory + 43]) << 8 | Int(bytes[directory + 44]) << 16 | Int(bytes[directory + 45]) << 24
        let name = Array("../" + String(repeating: "x", count: nameLength - 3)).map { UInt8(ascii: $0.unicodeScalars.first!) }
        climbing.replaceSubrange((directory + 46)..<(directory + 46 + nameLength), with: name)
        climbing.replaceSubrange((local + 30)..<(local + 30 + nameLength), with: name)
        #expect(reason(climbing).contains("climbs out of the archive"))
        // An .npz whose directory lies past its end is a data error naming the file.
        let npz = [UInt8](try Data(contentsOf: TestPaths.testdata("keras/k3_tiny.io.npz")))
        let folder = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let badNpz = folder.appendingPathComponent("bad.npz")
        try Data(Self.patched(npz, at: npz.count - 22 + 16, 0x7FFF_FFFF)).write(to: badNpz)
        #expect(throws: DataError.self) { try DataFile.load(badNpz.path) }
    }

    @Test("crafted bad files are refused with a message naming the problem", arguments: failures.map(\.file))
    func badFiles(file: String) throws {
        let expected = Self.failures.first { $0.file == file }!.expected
        do {
            _ = try Self.load(file)
            Issue.record("\(file) was imported")
        } catch let error as ImportError {
            #expect(error.description.contains(expected), "\(error)")
            #expect(error.description.contains(file), "the message names the file: \(error)")
        }
    }

    @Test("Adam-family optimizers: AdamW and Nadam (m, v), Adamax (m, u), in both Keras 3 layouts",
          arguments: [("adamw", "AdamW", "v"), ("nadam", "Nadam", "v"), ("adamax", "Adamax", "u")])
    func adamFamily(name: String, className: String, second: String) throws {
        let legacy = try Self.load("k3_tiny_\(name).h5").model
        #expect(legacy.optimizer?.className == className)
        #expect(Set(legacy.optimizer?.slots.map(\.slot) ?? []) == ["m", second])
        let weightsOnly = try Self.load("k3_tiny_\(name).weights.h5", config: "k3_tiny.config.json").model
        #expect(weightsOnly.optimizer?.className == className)
        #expect(Self.slots(weightsOnly) == Self.slots(legacy))
    }

    @Test("amsgrad's extra slots are refused by name")
    func amsgrad() throws {
        #expect(throws: ImportError.self) { _ = try Self.load("k3_tiny_amsgrad.h5") }
        #expect(throws: ImportError.self) { _ = try Self.load("k3_tiny_amsgrad.weights.h5", config: "k3_tiny.config.json") }
    }

    @Test("shape inference over 1-D and 2-D convolutions, pooling, permute and merges")
    func shapes() throws {
        let conv1d = try Self.load("k3_conv1d.h5").model
        let shapes1 = try conv1d.outputShapes()
        #expect(shapes1["conv_a"] == [nil, 8, 4])  // 12 − 2·(3−1)
        #expect(shapes1["pool_a"] == [nil, 4, 4])
        #expect(shapes1["dense_3d"] == [nil, 4, 6])
        #expect(shapes1["pool_b"] == [nil, 2, 4])
        #expect(shapes1["probs"] == [nil, 3])
        let image = try Self.load("k3_image.keras").model
        let shapes2 = try image.outputShapes()
        #expect(shapes2["conv"] == [nil, 5, 5, 3])
        #expect(shapes2["depthwise"] == [nil, 5, 5, 6])
        #expect(shapes2["maxpool"] == [nil, 2, 2, 6])
        #expect(shapes2["avgpool"] == [nil, 4, 4, 6])
        #expect(shapes2["flatten"] == [nil, 24])
        #expect(shapes2["concat"] == [nil, 16])
        #expect(image.weight(named: "depthwise/kernel")?.shape == [3, 3, 3, 2])
    }

    @Test("nested Sequential and Functional models are flattened, layers named by their scope, weights by Keras' order")
    func nested() throws {
        let model = try Self.load("k3_nested.h5").model
        let layers = model.layers.map(\.name)
        #expect(layers.contains("inner/dense"))
        #expect(layers.contains("inner/core/dense"))
        #expect(model.weight(named: "inner/core/dense/kernel") != nil)
        let scoped = try #require(model.layers.first { $0.name == "inner/core/dense" })
        #expect(scoped.scope == ["inner", "core"])
        #expect(scoped.localName == "dense")
        // The nested group lists gamma and beta with the trainable weights, the moving statistics
        // after every layer's trainable weights; each lands on its own layer.
        let variance = try #require(model.weight(named: "inner/bn/moving_variance"))
        #expect(variance.values.allSatisfy { $0 > 0 } && !variance.trainable)
        #expect(model.weight(named: "inner/core/dense/kernel")?.shape == [3, 3])
        // Every trainable weight has its Adam moments, although the nested layers share local names.
        let optimizer = try #require(model.optimizer)
        #expect(optimizer.slots.count == 2 * model.weights.filter(\.trainable).count)
    }

    @Test("tf.keras nested models: the call referred to as node 1, weights and Adam state in place")
    func nestedTFKeras() throws {
        let model = try Self.load("tfk_nested.h5").model
        #expect(model.weight(named: "inner/core/core_dense/kernel")?.shape == [3, 3])
        let variance = try #require(model.weight(named: "inner/bn/moving_variance"))
        #expect(variance.values.allSatisfy { $0 > 0 } && !variance.trainable)
        let optimizer = try #require(model.optimizer)
        #expect(optimizer.slots.count == 2 * model.weights.filter(\.trainable).count)
        #expect(optimizer.slots.contains { $0.weight == "inner/core/core_dense/kernel" && $0.slot == "v" })
    }

    /// Models trained on real data, with every weight as h5py read it (`<name>.h5py.npz`).
    static let realModels = ["k3_fmnist_mlp", "k3_fmnist_cnn", "k3_char_lstm", "tfk_fmnist_mlp"]

    @Test("every weight equals the value h5py reads, bit for bit, in every layout", arguments: realModels)
    func bitForBit(name: String) throws {
        let reference = try Numpy.load(path: Self.fixture("\(name).h5py.npz"))
        var layouts = ["\(name).h5"]
        if name.hasPrefix("k3_") { layouts += ["\(name).keras", "\(name).weights.h5"] }
        for layout in layouts {
            let config = layout.hasSuffix(".weights.h5") ? "\(name).config.json" : nil
            let model = try Self.load(layout, config: config).model
            #expect(Set(model.weights.map(\.name)) == Set(reference.keys), "\(layout)")
            for weight in model.weights {
                let expected = try #require(reference[weight.name], "\(layout): \(weight.name)")
                #expect(weight.shape == expected.shape, "\(layout): \(weight.name)")
                #expect(weight.values.map(\.bitPattern) == expected.values.map(\.bitPattern), "\(layout): \(weight.name)")
            }
        }
    }

    @Test("--no-optimizer imports a file whose optimizer state is bad")
    func noOptimizer() throws {
        let result = try Self.load("bad_missing_slot.h5", optimizer: false)
        #expect(result.model.optimizer == nil)
    }

    @Test("the written .laq holds every weight and moment, tied to its weight, and verifies")
    func laqFile() throws {
        let model = try Self.load("k3_tiny.h5").model
        let bytes = try model.laqWriter(provenance: []).encoded()
        let file = try LAQFile(bytes: bytes)
        #expect(file.verify().isValid)
        for weight in model.weights {
            #expect(try file.floats(weight.name) == weight.values)
        }
        let v = try #require(file.tensor(named: "optimizer/v/lstm/kernel"))
        #expect(v.role == .optimizer(of: "lstm/kernel", slot: "v"))
        #expect(file.manifest.model.architecture == model.architecture)
        #expect(file.manifest.metadata["optimizer"]?["iterations"] == .int(4))
        #expect(file.tensor(named: "conv/kernel")?.axes == ["h", "w", "in", "out"])
    }

    /// What an import gave: the file's bytes, or the error's words.
    enum Outcome: Equatable {
        case bytes([UInt8])
        case failed(String)

        init(_ body: () throws -> [UInt8]) {
            do { self = .bytes(try body()) } catch { self = .failed("\(error)") }
        }
    }

    /// Every model fixture, with the config a weights-only file needs.
    static var modelFixtures: [(file: String, config: String?)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: TestPaths.testdata("keras").path)) ?? []
        return names.sorted().compactMap { name in
            guard !name.hasPrefix("bad_"), name.hasSuffix(".h5") || name.hasSuffix(".keras") else { return nil }
            if name.hasSuffix(".weights.h5") {
                let config = String(name.dropLast(".weights.h5".count)) + ".config.json"
                return names.contains(config) ? (name, config) : nil
            }
            return (name, nil)
        }
    }

    /// The file a streamed import writes (``TensorDelivery/stream(_:)`` into an
    /// ``LAQStreamWriter``, as `laq import` does), or the error it throws.
    static func streamed(_ file: String, config: String?, optimizer: Bool, compression: WriteOptions.CompressionPolicy, to path: String) throws -> [UInt8] {
        let writer = try LAQStreamWriter(path: path, options: WriteOptions(compression: compression))
        let model = try KerasImporter(includeOptimizer: optimizer)
            .importModel(path: fixture(file), configPath: config.map(fixture), delivery: .stream { try writer.add($0) }).model
        #expect(model.weights.allSatisfy(\.values.isEmpty) && (model.optimizer?.slots ?? []).allSatisfy(\.values.isEmpty), "\(file): the model keeps shapes only")
        writer.model = model.modelInfo()
        writer.metadata = model.fileMetadata(includeOptimizer: optimizer)
        try writer.finish(order: model.tensorNames(includeOptimizer: optimizer))
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test("a streamed import writes the bytes the in-memory import writes, for every model fixture")
    func streamedImportIsTheSame() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fixtures = Self.modelFixtures
        #expect(fixtures.count >= 40)
        var compared = 0
        for (index, (file, config)) in fixtures.enumerated() {
            // Both optimizer settings and both compression policies, spread over the fixtures.
            let optimizer = index % 3 != 2
            let compression: WriteOptions.CompressionPolicy = index % 2 == 0 ? .balanced : .smallest
            let output = directory.appendingPathComponent("\(index).laq").path
            let expected = Outcome {
                let model = try KerasImporter(includeOptimizer: optimizer).importModel(path: Self.fixture(file), configPath: config.map(Self.fixture)).model
                var writer = try model.laqWriter(provenance: [], includeOptimizer: optimizer)
                writer.options.compression = compression
                return try writer.encoded()
            }
            let actual = Outcome { try Self.streamed(file, config: config, optimizer: optimizer, compression: compression, to: output) }
            #expect(actual == expected, "\(file)")
            if case .bytes = expected { compared += 1 }
        }
        #expect(compared >= 40)
        // Nothing but the outputs in the directory: the spool files had no names.
        let left = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(left.allSatisfy { $0.hasSuffix(".laq") && !$0.hasPrefix(".") }, "\(left)")
    }

    @Test("a streamed import of a bad file fails as the in-memory one does and writes nothing", arguments: ["bad_missing_slot.h5", "bad_wrong_shape.h5", "bad_extra_slot.h5", "bad_damaged_member.keras"])
    func streamedImportFailure(file: String) throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("out.laq").path
        let expected = Outcome { _ = try Self.load(file); return [] }
        let actual = Outcome { _ = try Self.streamed(file, config: nil, optimizer: true, compression: .balanced, to: output); return [] }
        #expect(actual == expected)
        guard case .failed = actual else { Issue.record("\(file) imported"); return }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }
}
