import Foundation
import LAQCalibration
import LAQData
import LAQEngine
import LAQExamples
import LAQFormat
import LAQImport
import LAQQuantize
import LAQTestSupport
import Testing

/// `laq quantize` as a library call (``QuantizeJob``), on the bundled Fashion-MNIST MLP and its
/// calibration images: what it reports, what it returns and what it records, without the CLI.
@Suite struct QuantizeJobTests {
    static let model = TestPaths.testdata("keras/k3_fmnist_mlp.h5").path
    static let data = TestPaths.testdata("keras/fmnist_calibration.npz").path

    @Test("one-shot with validation data: the curvature source, the validation record and its events")
    func oneShot() throws {
        let model = try KerasImporter().importModel(path: Self.model).model
        var options = QuantizeJob.Options(settings: QuantizationSettings(method: .lat2a))
        options.validationData = Self.data
        var labels: [String] = []
        let outcome = try QuantizeJob(options: options).run(model) { event in
            if case let .validation(label, _) = event { labels.append(label) }
        }
        #expect(labels == ["full precision", "one-shot"])
        #expect(Set(outcome.results.map(\.weight)) == ["hidden/kernel", "classes/kernel"])
        #expect(outcome.results.allSatisfy { $0.method == .lat2a })
        guard case .optimizer(className: "Adam", _, _)? = outcome.curvatureSource else {
            Issue.record("curvature source \(String(describing: outcome.curvatureSource))")
            return
        }
        #expect(outcome.parameters["mode"] == "one-shot")
        #expect(outcome.parameters["method"] == "lat2a")
        #expect(outcome.notices.isEmpty)
        guard case let .object(validation)? = outcome.parameters["validation"], case let .object(data)? = validation["data"] else {
            Issue.record("no validation record: \(outcome.parameters)")
            return
        }
        #expect(data["samples"] == .int(1000))
        #expect(data["file"] == "fmnist_calibration.npz")
    }

    @Test("a calibration run to a bit budget: the plan comes first, steps count up to the announced total, the record holds the run")
    func calibratedPlan() throws {
        let model = try KerasImporter().importModel(path: Self.model).model
        var options = QuantizeJob.Options(settings: QuantizationSettings(method: .lat2a))
        options.calibrationData = Self.data
        options.targetBits = 2
        options.batch = 100
        var events: [String] = []
        var total = 0, last = 0
        let outcome = try QuantizeJob(options: options).run(model) { event in
            switch event {
            case .planned: events.append("planned")
            case let .calibrationStarted(steps): events.append("started"); total = steps
            case let .step(epoch, _, step, perEpoch, _): last = (epoch - 1) * perEpoch + step
            case .calibrationEnded: events.append("ended")
            case .validation: if events.last != "validation" { events.append("validation") }
            case .planCheck: events.append("check")
            }
        }
        #expect(events == ["planned", "started", "ended", "validation", "check"])
        // 900 training samples (the last tenth held out) in batches of 100.
        #expect(total == 9 && last == 9)
        let plan = try #require(outcome.plan)
        #expect(plan.averageBits <= 2)
        #expect(outcome.curvatureSource == nil)
        #expect(outcome.parameters["mode"] == "calibrated")
        #expect(outcome.parameters["target_bits"] == .double(2))
        guard case let .object(hessian)? = outcome.parameters["hessian"] else {
            Issue.record("no hessian record")
            return
        }
        #expect(hessian["source"] == "calibration run")
        #expect(hessian["steps"] == .int(9))
        #expect(hessian["learning_rate_default"] == "a third of the imported optimizer's learning rate")
        #expect(hessian["plan_d"] != nil)
        // The MLP has no BatchNormalization: nothing re-estimated.
        #expect(hessian["bn_statistics"] == nil)
        // The written methods are the plan's.
        let planned = Dictionary(uniqueKeysWithValues: zip(plan.tensors, plan.choices).compactMap { tensor, choice in choice.method.map { (tensor.weight, $0) } })
        #expect(Dictionary(uniqueKeysWithValues: outcome.results.map { ($0.weight, $0.method) }) == planned)
    }

    @Test("a model with BatchNormalization: the record says its statistics were re-estimated, unless --bn-batches 0")
    func statisticsRecord() throws {
        let model = try Model(file: LAQFile(bytes: try ExampleModels.demoMLP().encoded()))
        var options = QuantizeJob.Options(settings: QuantizationSettings(method: .lat2a))
        options.calibrationData = Self.data
        options.loss = "sparse_categorical_crossentropy"
        options.batch = 100
        for batches in [32, 0] {
            options.statisticsBatches = batches
            let outcome = try QuantizeJob(options: options).run(model)
            guard case let .object(hessian)? = outcome.parameters["hessian"] else {
                Issue.record("no hessian record")
                return
            }
            // 900 training samples in batches of 100: 9 batches, fewer than 32.
            #expect(hessian["bn_statistics"] == (batches == 0 ? nil : .string("BatchNormalization moving_mean and moving_variance re-estimated for the quantized weights: population mean and biased variance over 9 batches of the calibration data, training mode")))
        }
    }

    @Test("--hessian-every R: d kept for R steps changes the run, is recorded, and repeats")
    func curvatureRefresh() throws {
        let model = try KerasImporter().importModel(path: Self.model).model
        var options = QuantizeJob.Options(settings: QuantizationSettings(method: .lata))
        options.calibrationData = Self.data
        options.batch = 50
        let every = try QuantizeJob(options: options).run(model)
        options.curvatureRefresh = 5
        let fifth = try QuantizeJob(options: options).run(model)
        let again = try QuantizeJob(options: options).run(model)
        func codes(_ outcome: QuantizeJob.Outcome) -> [[Float]] { outcome.results.map(\.values) }
        #expect(codes(fifth) == codes(again))
        #expect(codes(fifth) != codes(every))
        guard case let .object(hessian)? = fifth.parameters["hessian"], case let .object(first)? = every.parameters["hessian"] else {
            Issue.record("no hessian record")
            return
        }
        #expect(hessian["d_refresh_steps"] == .int(5))
        #expect(first["d_refresh_steps"] == nil)
    }

    @Test("an unknown loss and an output the model does not have are usage errors")
    func refusals() throws {
        let model = try KerasImporter().importModel(path: Self.model).model
        var options = QuantizeJob.Options(settings: QuantizationSettings(method: .lat2a))
        options.calibrationData = Self.data
        options.loss = "hinge_of_nothing"
        #expect(throws: QuantizeError.invalidOption("unknown loss 'hinge_of_nothing'")) { try QuantizeJob(options: options).run(model) }
        options.loss = nil
        options.lossOutput = "logits"
        #expect(throws: QuantizeError.invalidOption("--loss-output logits: the model's only output is '\(model.outputNames.first ?? "")'")) {
            try QuantizeJob(options: options).run(model)
        }
    }
}
