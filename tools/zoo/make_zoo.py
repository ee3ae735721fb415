#!/usr/bin/env python3
"""Writes the model zoo: Keras' own applications (ResNet, EfficientNet, ConvNeXt, ...) at small
inputs with random weights, a MultiHeadAttention text classifier and keras_hub's BERT,
DistilBERT and GPT-2 backbones, two Adam steps trained, saved in every layout Keras writes,
with Keras' own predictions, so laq's importer can be checked against real architectures.

Needs the virtual environment `tools/setup --zoo` makes (.venv-zoo/: keras, tensorflow-cpu,
tf_keras, keras-hub, h5py, numpy):
    tools/setup --zoo
    .venv-zoo/bin/python tools/zoo/make_zoo.py [--out DIR] [--subset ci|all] [--only NAME...] [--list]
        [--isolate SECONDS] [--max-parameters N] [--report]

Every model is built by `keras.applications` (Keras 3, TensorFlow backend; tf.keras 2 models by
`tf_keras.applications`) with `weights=None`, the smallest input its family accepts (32×32×3;
Xception 71, InceptionV3 and InceptionResNetV2 75), `classes=10`, `include_top=True` and a softmax
classifier. Its weights are then drawn with a seed fixed by its name: kernels N(0, 2/fan_in),
biases N(0, 0.05²), BatchNormalization moving mean N(0, 0.1²) and variance U(0.5, 1.5), gamma
U(0.5, 1.5), beta N(0, 0.1²), the same for adapted Normalization layers' mean and variance
(EfficientNet) and for LayerScale (ConvNeXt, whose weight is named `variable`). Because random
BatchNormalization statistics do not normalize, one eager pass then rescales each kernel layer
(kernel and bias) so that its output has unit deviation on the model's inputs, and the classifier
so that its logits spread by about 2: the softmax is neither one-hot nor flat, and depends on the
input. Two Adam steps (learning rate 1e-5, batches of 8 random images and labels) follow
(train_on_batch, run eagerly), so every file carries Adam state, and the classifier is rescaled
once more (the weights are not drawn again). Files in DIR (default out/zoo):
    NAME.keras, NAME.h5 (legacy HDF5 with optimizer), NAME.weights.h5 (Keras 3 puts the optimizer
                  in it too) + NAME.config.json (model.to_json())
    tfk_NAME.h5   a tf.keras 2 build (MobileNetV2, ResNet50, EfficientNetB0, MobileNetV3Small,
                  ConvNeXtTiny), legacy HDF5
    NAME.io.npz   x: 2 random images (float32: the family's preprocess_input of pixels in [0, 255],
                  so the pixels themselves where the model preprocesses), y: model.predict(x)
    zoo.json      per model: family, files and sizes, input shape, parameters, Keras version,
                  layer classes with counts (nested models included), seconds to build and save,
                  output statistics; the models that failed or were skipped
    LAYERS.md     per family the layer classes, per class the config options that differ from
                  the class' defaults, op layers' constants, preprocessing, ci coverage, models

Sequence models (family `attention`, `keras_hub`) take sequences of 16 token ids: the
classifier `x` (ids) as above; a backbone its named inputs (`token_ids`, `segment_ids`,
`padding_mask`, padded after a random length of at least 8) stored under their names, and its
outputs as `y_<name>` where they are named (BERT). Backbones have no head: their two Adam steps
minimize their outputs' squared error against 0, and they are not rescaled.

`--subset ci` (the default) is one small model per family which together hold every layer class
and option value of the full zoo: MobileNets at small alpha, and `NAME_narrow` builds of the other
families, in which Keras' own application code runs with every Conv2D/SeparableConv2D/Dense width
divided by 16 (depth, layer classes, options and wiring unchanged; NASNet and ConvNeXt through
their generic constructors with narrow filters instead); about 140 MB and 2 minutes. `--subset
all` adds the real applications (tens of GB: 36 bytes a parameter). `--only` picks models by
the names `--list` prints. `--isolate S` builds each model in a child process killed after S
seconds; `--max-parameters N` skips larger models (built and counted, not trained or saved);
both are noted in zoo.json. `--report` only rewrites LAYERS.md from zoo.json.
"""
import argparse
import collections
import gc
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import time
import zlib

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.pop("TF_USE_LEGACY_KERAS", None)  # tf.keras stays Keras 3; tf_keras is imported by name
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "out", "zoo")
CLASSES = 10
NARROW = 16  # width divisor of the ci subset's narrow builds

# family: the keras.applications module whose preprocess_input gives the model's input range
FAMILIES = {
    "xception": "xception", "vgg": "vgg16", "resnet": "resnet", "resnet_v2": "resnet_v2",
    "inception_v3": "inception_v3", "inception_resnet_v2": "inception_resnet_v2",
    "mobilenet": "mobilenet", "mobilenet_v2": "mobilenet_v2", "mobilenet_v3": "mobilenet_v3",
    "densenet": "densenet", "nasnet": "nasnet", "efficientnet": "efficientnet",
    "efficientnet_v2": "efficientnet_v2", "convnext": "convnext",
}


class Entry:
    """One zoo model: `build(keras)` returns it uncompiled; `keras` is the keras or tf_keras module."""

    def __init__(self, name, family, size, build, ci=False, framework="keras3", options=None, note="", kind="image"):
        self.name, self.family, self.size, self.build = name, family, size, build
        self.ci, self.framework, self.options, self.note = ci, framework, options or {}, note
        # "image": size×size×3 images; "sequence": token ids of length `size`
        self.kind = kind

    @property
    def file_stem(self):
        return f"tfk_{self.name}" if self.framework == "tf_keras" else self.name


def application(function, size, **options):
    """keras.applications.<function> (or tf_keras') with random-init weights at size×size×3."""
    def build(keras):
        return getattr(keras.applications, function)(
            input_shape=(size, size, 3), weights=None, classes=CLASSES, include_top=True,
            classifier_activation="softmax", **options)
    return build


class NarrowLayers:
    """Stands in for an application module's `layers`: Conv2D, SeparableConv2D and Dense are the
    real classes with filters/units divided by `divisor` (at least 1), except the classifier
    (CLASSES wide) and the named layers `keep(name)` selects (those sized from a tensor's shape,
    which is already narrow); Reshape((1, 1, c)) (squeeze-and-excite) gets c divided likewise.
    Every other attribute is the module's own."""

    def __init__(self, layers, divisor, keep):
        self._layers, self._divisor, self._keep = layers, divisor, keep

    def __getattr__(self, attribute):
        target = getattr(self._layers, attribute)
        if attribute == "Reshape":
            def reshape(target_shape, *args, **kwargs):
                shape = tuple(target_shape)
                if len(shape) == 3 and shape[:2] == (1, 1):
                    shape = (1, 1, self._narrow(shape[2]))
                return target(shape, *args, **kwargs)
            return reshape
        if attribute not in ("Conv2D", "SeparableConv2D", "Dense"):
            return target
        key = "units" if attribute == "Dense" else "filters"

        def make(*args, **kwargs):
            width = args[0] if args else kwargs.pop(key)
            name = kwargs.get("name")
            if width != CLASSES and not (name and self._keep(name)):
                width = self._narrow(width)
            return target(width, *args[1:], **kwargs)
        return make

    def _narrow(self, width):
        return max(1, int(width) // self._divisor)


def narrow(function, module, size, keep=None, **options):
    """keras.applications.<function> run with NarrowLayers patched into `module` (the one whose
    code makes the layers): the same code path, layers and wiring at 1/NARROW of the widths."""
    def build(keras):
        package = "keras.src" if keras.__name__ == "keras" else "tf_keras.src"
        mod = importlib.import_module(f"{package}.applications.{module}")
        kept = re.compile(keep).search if keep else (lambda name: False)
        saved = mod.layers
        extra = {}
        if saved is None:  # tf_keras' resnet/mobilenet_v2 take their layers as an argument
            from tf_keras.src.layers import VersionAwareLayers
            extra["layers"] = NarrowLayers(VersionAwareLayers(), NARROW, kept)
        else:
            mod.layers = NarrowLayers(saved, NARROW, kept)
        try:
            return application(function, size, **options)(keras) if not extra else \
                getattr(keras.applications, function)(
                    input_shape=(size, size, 3), weights=None, classes=CLASSES, include_top=True,
                    classifier_activation="softmax", **options, **extra)
        finally:
            mod.layers = saved
    return build


def nasnet_narrow(size):
    """NASNetMobile's constructor arguments (num_blocks 4, no skip reduction, multiplier 2) with
    penultimate_filters 96 (cells 4–16 filters wide) and a 4-filter stem."""
    def build(keras):
        from keras.src.applications.nasnet import NASNet
        return NASNet(input_shape=(size, size, 3), penultimate_filters=96, num_blocks=4,
                      stem_block_filters=4, skip_reduction=False, filter_multiplier=2,
                      include_top=True, weights=None, classes=CLASSES, default_size=224,
                      classifier_activation="softmax", name="nasnet_narrow")
    return build


def convnext_narrow(size):
    """ConvNeXtTiny's depths (3, 3, 9, 3) with projection dims 96…768 divided by NARROW."""
    def build(keras):
        if keras.__name__ == "tf_keras":  # tf_keras names the model `model_name`
            from tf_keras.src.applications.convnext import ConvNeXt
            naming = {"model_name": "convnext_narrow"}
        else:
            from keras.src.applications.convnext import ConvNeXt
            naming = {"name": "convnext_narrow"}
        return ConvNeXt(depths=[3, 3, 9, 3], projection_dims=[d // NARROW for d in (96, 192, 384, 768)],
                        drop_path_rate=0.0, layer_scale_init_value=1e-6, default_size=224,
                        **naming, include_preprocessing=True, include_top=True,
                        weights=None, input_shape=(size, size, 3), classes=CLASSES,
                        classifier_activation="softmax")
    return build


VOCABULARY = 100  # token ids of the sequence models


def transformer_encoder(size):
    """A text classifier as Keras' examples build one: token and learned position embeddings
    (keras_hub's PositionEmbedding), a post-norm encoder block of Keras' own MultiHeadAttention
    (4 heads, dropout), LayerNormalization and a GELU feed-forward, average pooling, softmax."""
    def build(keras):
        import keras_hub
        layers = keras.layers
        tokens = keras.Input((size,), dtype="int32", name="token_ids")
        x = layers.Embedding(VOCABULARY, 32, name="token_embedding")(tokens)
        x = layers.Add(name="embeddings")([x, keras_hub.layers.PositionEmbedding(size, name="position_embedding")(x)])
        a = layers.MultiHeadAttention(4, 8, dropout=0.1, name="attention")(x, x)
        x = layers.LayerNormalization(epsilon=1e-6, name="attention_norm")(layers.Add(name="attention_residual")([x, layers.Dropout(0.1)(a)]))
        f = layers.Dense(64, activation="gelu", name="feedforward_in")(x)
        f = layers.Dense(32, name="feedforward_out")(f)
        x = layers.LayerNormalization(epsilon=1e-6, name="feedforward_norm")(layers.Add(name="feedforward_residual")([x, f]))
        x = layers.GlobalAveragePooling1D(name="pool")(x)
        outputs = layers.Dense(CLASSES, activation="softmax", name="predictions")(x)
        return keras.Model(tokens, outputs, name="transformer_encoder")
    return build


def backbone(class_name, size):
    """keras_hub.models.<class_name>, small: 2 blocks of 4 heads, hidden 32, feed-forward 64,
    position tables for sequences of up to twice `size`."""
    def build(keras):
        import keras_hub
        return getattr(keras_hub.models, class_name)(vocabulary_size=VOCABULARY, num_layers=2, num_heads=4, hidden_dim=32,
                                                     intermediate_dim=64, max_sequence_length=2 * size)
    return build


def zoo():
    """Every zoo entry, in build order."""
    entries = []

    def add(name, family, size, build=None, ci=False, **options):
        entries.append(Entry(name, family, size, build or application(name, size, **options), ci, options=options))

    def add_narrow(name, family, size, function, module, keep=None):
        entries.append(Entry(name, family, size, narrow(function, module, size, keep), ci=True,
                             options={"width_divisor": NARROW, "of": function},
                             note=f"{function} with Conv2D/SeparableConv2D/Dense widths / {NARROW}"))

    # ci: one small model per family
    add("MobileNet", "mobilenet", 32, ci=True, alpha=0.25)
    add("MobileNetV2", "mobilenet_v2", 32, ci=True, alpha=0.35)
    add("MobileNetV3Small_a025", "mobilenet_v3", 32, application("MobileNetV3Small", 32, alpha=0.25),
        ci=True, alpha=0.25)
    add("MobileNetV3Small_minimalistic_a025", "mobilenet_v3", 32,
        application("MobileNetV3Small", 32, alpha=0.25, minimalistic=True), ci=True, alpha=0.25, minimalistic=True)
    add_narrow("VGG16_narrow", "vgg", 32, "VGG16", "vgg16")
    add_narrow("ResNet50_narrow", "resnet", 32, "ResNet50", "resnet")
    add_narrow("ResNet50V2_narrow", "resnet_v2", 32, "ResNet50V2", "resnet")  # resnet.ResNet builds it
    add_narrow("Xception_narrow", "xception", 71, "Xception", "xception")
    add_narrow("InceptionV3_narrow", "inception_v3", 75, "InceptionV3", "inception_v3")
    # the residual branch's last conv is as wide as the (already narrow) block input
    add_narrow("InceptionResNetV2_narrow", "inception_resnet_v2", 75, "InceptionResNetV2",
               "inception_resnet_v2", keep=r"^block(35|17|8)_\d+_conv$")
    # the transition convs are half as wide as their (already narrow) input
    add_narrow("DenseNet121_narrow", "densenet", 32, "DenseNet121", "densenet", keep=r"^pool\d_conv$")
    add_narrow("EfficientNetB0_narrow", "efficientnet", 32, "EfficientNetB0", "efficientnet")
    add_narrow("EfficientNetV2B0_narrow", "efficientnet_v2", 32, "EfficientNetV2B0", "efficientnet_v2")
    # S/M/L preprocess with Rescaling(1/128, offset=-1) instead of B0–B3's Rescaling + Normalization
    add_narrow("EfficientNetV2S_narrow", "efficientnet_v2", 32, "EfficientNetV2S", "efficientnet_v2")
    entries.append(Entry("NASNetMobile_narrow", "nasnet", 32, nasnet_narrow(32), ci=True,
                         options={"penultimate_filters": 96, "num_blocks": 4, "stem_block_filters": 4},
                         note="NASNet() with NASNetMobile's arguments but penultimate_filters 96, stem 4"))
    entries.append(Entry("ConvNeXtTiny_narrow", "convnext", 32, convnext_narrow(32), ci=True,
                         options={"depths": [3, 3, 9, 3], "projection_dims": [d // NARROW for d in (96, 192, 384, 768)]},
                         note=f"ConvNeXt() with ConvNeXtTiny's depths, projection dims / {NARROW}"))
    # tf.keras 2 (tf_keras.applications), legacy .h5 only
    entries.append(Entry("MobileNetV2", "mobilenet_v2", 32, application("MobileNetV2", 32, alpha=0.35), ci=True,
                         framework="tf_keras", options={"alpha": 0.35}))
    entries.append(Entry("ResNet50_narrow", "resnet", 32, narrow("ResNet50", "resnet", 32), ci=True,
                         framework="tf_keras", options={"width_divisor": NARROW, "of": "ResNet50"}))
    entries.append(Entry("EfficientNetB0_narrow", "efficientnet", 32, narrow("EfficientNetB0", "efficientnet", 32),
                         ci=True, framework="tf_keras", options={"width_divisor": NARROW, "of": "EfficientNetB0"}))
    # tf.keras records their `x + 3.0`, `x * (1/6)` and residual `inputs + x` as TFOpLambda layers
    entries.append(Entry("MobileNetV3Small_a025", "mobilenet_v3", 32, application("MobileNetV3Small", 32, alpha=0.25), ci=True,
                         framework="tf_keras", options={"alpha": 0.25}))
    entries.append(Entry("ConvNeXtTiny_narrow", "convnext", 32, convnext_narrow(32), ci=True, framework="tf_keras",
                         options={"depths": [3, 3, 9, 3], "projection_dims": [d // NARROW for d in (96, 192, 384, 768)]}))

    # sequences: attention built from Keras layers, and keras_hub's backbones (rebuilt by laq
    # from their constructor arguments)
    entries.append(Entry("TransformerEncoder", "attention", 16, transformer_encoder(16), ci=True, kind="sequence"))
    for name in ["BertBackbone", "DistilBertBackbone", "GPT2Backbone"]:
        entries.append(Entry(name, "keras_hub", 16, backbone(name, 16), ci=True, kind="sequence",
                             options={"num_layers": 2, "num_heads": 4, "hidden_dim": 32}))

    # all: the real applications at their smallest inputs
    add("MobileNetV3Small", "mobilenet_v3", 32, alpha=0.75)
    add("MobileNetV3Small_minimalistic", "mobilenet_v3", 32,
        application("MobileNetV3Small", 32, alpha=1.0, minimalistic=True), alpha=1.0, minimalistic=True)
    add("MobileNetV3Large", "mobilenet_v3", 32, alpha=0.75)
    add("MobileNetV3Large_minimalistic", "mobilenet_v3", 32,
        application("MobileNetV3Large", 32, alpha=1.0, minimalistic=True), alpha=1.0, minimalistic=True)
    for name in ["EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3"]:
        add(name, "efficientnet", 32)
    for name in ["EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3"]:
        add(name, "efficientnet_v2", 32)
    add("NASNetMobile", "nasnet", 32)
    for name in ["DenseNet121", "DenseNet169", "DenseNet201"]:
        add(name, "densenet", 32)
    add("Xception", "xception", 71)
    add("InceptionV3", "inception_v3", 75)
    add("ResNet50", "resnet", 32)
    add("ResNet50V2", "resnet_v2", 32)
    add("VGG16", "vgg", 32)
    add("VGG19", "vgg", 32)
    add("ConvNeXtTiny", "convnext", 32)
    entries.append(Entry("ResNet50", "resnet", 32, application("ResNet50", 32), framework="tf_keras"))
    entries.append(Entry("EfficientNetB0", "efficientnet", 32, application("EfficientNetB0", 32), framework="tf_keras"))
    for name in ["EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7"]:
        add(name, "efficientnet", 32)
    for name in ["EfficientNetV2S", "EfficientNetV2M", "EfficientNetV2L"]:
        add(name, "efficientnet_v2", 32)
    add("ResNet101", "resnet", 32)
    add("ResNet152", "resnet", 32)
    add("ResNet101V2", "resnet_v2", 32)
    add("ResNet152V2", "resnet_v2", 32)
    add("InceptionResNetV2", "inception_resnet_v2", 75)
    add("NASNetLarge", "nasnet", 32)
    for name in ["ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge"]:
        add(name, "convnext", 32)
    return entries


def leaf_layers(model):
    """The layers that own weights or compute: nested models are opened."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ in ("Functional", "Sequential", "Model"):
            yield from leaf_layers(layer)
        else:
            yield layer


def short_name(variable):
    return variable.name.split("/")[-1].split(":")[0]


def randomize(model, rng):
    """Draws every float weight (see the module docstring); returns the names of weights left as
    they were (none expected)."""
    untouched = []
    for layer in leaf_layers(model):
        kind = layer.__class__.__name__
        for variable in layer.weights:
            name, shape = short_name(variable), tuple(variable.shape)
            if "float" not in str(variable.dtype):
                if name != "count":
                    untouched.append(f"{layer.name}/{name}")
                continue
            if name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
                depthwise = name == "depthwise_kernel" or kind == "DepthwiseConv2D"
                fan_in = int(np.prod(shape[:-2] if depthwise else shape[:-1])) or 1
                value = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
            elif name == "bias":
                value = rng.normal(0, 0.05, shape)
            elif name in ("embeddings", "reverse_embeddings"):
                value = rng.normal(0, 0.5, shape)
            elif name in ("moving_mean", "mean", "beta"):
                value = rng.normal(0, 0.1, shape)
            elif name in ("moving_variance", "variance", "gamma") or kind == "LayerScale":  # its weight is "variable"
                value = rng.uniform(0.5, 1.5, shape)
            else:
                untouched.append(f"{layer.name}/{name}")
                continue
            variable.assign(value.astype(str(variable.dtype).replace("<dtype: '", "").rstrip("'>")))
        if kind == "Normalization" and layer.weights:
            layer.finalize_state()  # the layer computes with copies it took of mean and variance
    return untouched


def classifier(model):
    """The last layer with a kernel: the Dense (or 1×1 Conv2D) that makes the logits."""
    return [layer for layer in leaf_layers(model) if any(short_name(v) == "kernel" for v in layer.weights)][-1]


def scale_layer(layer, factor):
    """Multiplies the layer's output kernel (the pointwise one of a separable convolution) and bias."""
    for variable in layer.weights:
        if short_name(variable) in ("kernel", "pointwise_kernel", "bias"):
            variable.assign(variable.numpy() * factor)


def normalize(model, x):
    """One eager pass over x in which every kernel layer but the classifier, as soon as it has run,
    has its kernel and bias rescaled so that its output's standard deviation is 1 (and runs again):
    the random BatchNormalization statistics do not normalize, and without this, residual stacks
    grow their activations until the softmax is one-hot and blind to the input."""
    last = classifier(model)
    wrapped = []
    for layer in leaf_layers(model):
        if layer is last or not any(short_name(v) in ("kernel", "pointwise_kernel") for v in layer.weights):
            continue

        def call(*args, _layer=layer, _call=layer.call, **kwargs):
            out = _call(*args, **kwargs)
            std = float(np.std(np.asarray(out, dtype=np.float64)))
            if std > 0 and np.isfinite(std):
                scale_layer(_layer, 1.0 / std)
                out = _call(*args, **kwargs)
            return out
        layer.call = call
        wrapped.append(layer)
    try:
        model(x, training=False)
    finally:
        for layer in wrapped:
            del layer.call


def calibrate(model, x):
    """Scales the classifier's kernel and bias until the logits (log of the softmax output, up to a
    constant) spread by about 2 across classes; returns the factor applied."""
    layer = classifier(model)
    total = 1.0
    for _ in range(8):
        y = np.asarray(model(x, training=False), dtype=np.float64)
        spread = float(np.mean(np.std(np.log(np.maximum(y, 1e-37)), axis=-1)))
        if 1.5 <= spread <= 2.5 or spread == 0:
            break
        factor = 2.0 / spread
        scale_layer(layer, factor)
        total *= factor
    return total


def inputs_for(entry, rng, n=2):
    """n random images through the family's preprocess_input (identity where the model preprocesses
    itself), float32. Pixels are a level U(40, 215) per image and channel, a ramp of ±40 across the
    image in a random direction, and N(0, 25²) noise, clipped to [0, 255]: images of pure uniform
    noise all look alike after global pooling, and the models would answer them all alike."""
    import keras
    size = entry.size
    rows, cols = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    angle = rng.uniform(0, 2 * np.pi, (n, 1, 1, 1))
    ramp = 40 * (np.cos(angle) * cols[None, :, :, None] + np.sin(angle) * rows[None, :, :, None])
    pixels = rng.uniform(40, 215, (n, 1, 1, 3)) + ramp + rng.normal(0, 25, (n, size, size, 3))
    pixels = np.clip(pixels, 0, 255).astype("float32")
    module = getattr(keras.applications, FAMILIES[entry.family])
    return np.asarray(module.preprocess_input(pixels.copy()), dtype="float32")


def sequence_inputs(entry, model, rng, n=2):
    """n random sequences of `entry.size` token ids for each of the model's inputs by name:
    `padding_mask` 1 up to a random length (at least half) and 0 after it, `segment_ids` 0 then 1
    from the middle, ids in 1…VOCABULARY−1 otherwise. A dict for a model with dict inputs."""
    names = list(model.input) if isinstance(model.input, dict) else [model.inputs[0].name]
    arrays = {}
    for name in names:
        if name == "padding_mask":
            lengths = rng.integers(entry.size // 2, entry.size + 1, n)
            arrays[name] = (np.arange(entry.size)[None, :] < lengths[:, None]).astype("int32")
        elif name == "segment_ids":
            arrays[name] = np.repeat((np.arange(entry.size) >= entry.size // 2)[None, :], n, axis=0).astype("int32")
        else:
            arrays[name] = rng.integers(1, VOCABULARY, (n, entry.size)).astype("int32")
    return arrays if isinstance(model.input, dict) else arrays[names[0]]


def layer_key(layer):
    """How zoo.json and LAYERS.md name a layer: its class, the module where it is not a Keras layer
    (ops such as `x + 3.0` on symbolic tensors, the applications' own layers), the op of TFOpLambda."""
    name, module = layer["class_name"], layer.get("module")
    if name in ("TFOpLambda", "SlicingOpLambda"):
        return f"{name}:{layer['config'].get('function')}"
    if module in (None, "keras", "keras.layers", "keras.models") or name in ("Functional", "Sequential"):
        return name
    return f"{name} [{module}]"


def config_layers(config, path=()):
    """(layer config, nesting path) for every layer of a model config, nested models opened."""
    for layer in config["config"].get("layers", []):  # none in a keras_hub backbone's config
        yield layer, path
        if layer["class_name"] in ("Functional", "Sequential", "Model") and "layers" in layer.get("config", {}):
            yield from config_layers(layer, path + (layer["config"].get("name", layer.get("name")),))


def model_config(out, entry_name, framework):
    if framework == "tf_keras":
        import h5py
        with h5py.File(os.path.join(out, f"tfk_{entry_name}.h5"), "r") as f:
            text = f.attrs["model_config"]
        return json.loads(text.decode() if isinstance(text, bytes) else text)
    with open(os.path.join(out, f"{entry_name}.config.json")) as f:
        return json.load(f)


class TooLarge(Exception):
    """A model over --max-parameters: built, counted, not saved."""


def make(entry, out, max_parameters=None):
    """Builds, randomizes, trains, saves one entry; returns its zoo.json record."""
    started = time.time()
    seed = zlib.crc32(f"{entry.framework}/{entry.name}".encode())
    rng = np.random.default_rng(seed)
    if entry.framework == "tf_keras":
        import tf_keras as keras
    else:
        import keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = entry.build(keras)
    built = time.time()
    if max_parameters and model.count_params() > max_parameters:
        raise TooLarge(f"{model.count_params():,} parameters > --max-parameters {max_parameters:,}")
    untouched = randomize(model, rng)
    sequence, hub = entry.kind == "sequence", entry.family == "keras_hub"
    x = sequence_inputs(entry, model, rng) if sequence else inputs_for(entry, rng)
    if not sequence:
        normalize(model, x)  # sequence models normalize their layers themselves
    factors = [] if hub else [calibrate(model, x)]
    randomized = time.time()
    # Adam's first steps move every weight by about the learning rate, all in the gradient's sign:
    # 1e-3 would swamp the rescaled kernels of deep, wide models (EfficientNetB6 gave NaN).
    # A backbone has no head: it trains on the squared error of its outputs against 0.
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="mse" if hub else "sparse_categorical_crossentropy")
    model.run_eagerly = True  # two steps: tracing (and XLA) would cost more; not in the saved compile config
    losses = []
    for _ in range(2):
        # 8 samples: with 2, BatchNormalization's batch statistics of 1×1 maps are near zero and
        # EfficientNetV2M's gradients overflow Adam's float32 second moments
        batch = sequence_inputs(entry, model, rng, 8) if sequence else inputs_for(entry, rng, 8)
        if hub:
            labels = {name: np.zeros_like(value) for name, value in model.predict(batch, verbose=0).items()} \
                if isinstance(model.output, dict) else np.zeros_like(model.predict(batch, verbose=0))
        else:
            labels = rng.integers(0, CLASSES, size=8)
        losses.append(float(np.asarray(model.train_on_batch(batch, labels)).ravel()[0]))
    if not hub:
        factors.append(calibrate(model, x))  # the Adam steps move the classifier too
    trained = time.time()
    y = model.predict(x, verbose=0)
    # Named outputs (a dict) are stored as y_<name>, named inputs under their names.
    outputs = {f"y_{name}": value.astype("float32") for name, value in y.items()} if isinstance(y, dict) else {"y": y.astype("float32")}
    y = outputs.get("y", next(iter(outputs.values())))
    stem = os.path.join(out, entry.file_stem)
    if entry.framework == "tf_keras":
        model.save(f"{stem}.h5", save_format="h5")
        files = [f"{entry.file_stem}.h5"]
    else:
        model.save(f"{stem}.keras")
        model.save(f"{stem}.h5")  # legacy HDF5, with optimizer
        model.save_weights(f"{stem}.weights.h5")
        with open(f"{stem}.config.json", "w") as f:
            json.dump(json.loads(model.to_json()), f, indent=1)
        files = [f"{entry.file_stem}{suffix}" for suffix in (".keras", ".h5", ".weights.h5", ".config.json")]
    np.savez(f"{stem}.io.npz", **(x if isinstance(x, dict) else {"x": x}), **outputs)
    files.append(f"{entry.file_stem}.io.npz")
    finished = time.time()
    config = model_config(out, entry.name, entry.framework)
    counts = collections.Counter(layer_key(layer) for layer, _ in config_layers(config))
    if not counts:  # a backbone's config holds its constructor's arguments: count its built layers
        counts = collections.Counter(type(layer).__name__ for layer in model.layers)
    logits = np.log(np.maximum(y.astype(np.float64), 1e-37))
    record = {
        "name": entry.name, "framework": entry.framework, "family": entry.family, "ci": entry.ci,
        "application": entry.options.get("of", entry.name), "options": entry.options, "note": entry.note,
        "files": {name: os.path.getsize(os.path.join(out, name)) for name in files},
        "input_shape": [None, entry.size] if sequence else [None, entry.size, entry.size, 3],
        "x_range": [float(min(v.min() for v in x.values())), float(max(v.max() for v in x.values()))] if isinstance(x, dict)
        else [float(x.min()), float(x.max())],
        "parameters": int(model.count_params()),
        "keras_version": keras.__version__ if hasattr(keras, "__version__") else None,
        "layer_classes": dict(sorted(counts.items())), "layers": sum(counts.values()),
        "seed": seed, "classifier_scale": factors, "train_losses": losses,
        "y_max": float(y.max()), "logit_spread": float(np.mean(np.std(logits, axis=-1))),
        "y_sample_difference": float(np.abs(y[0] - y[1]).max()), "finite": all(bool(np.isfinite(v).all()) for v in outputs.values()),
        "untouched_weights": untouched,
        "seconds": {"build": round(built - started, 1), "randomize": round(randomized - built, 1),
                    "train": round(trained - randomized, 1), "save": round(finished - trained, 1),
                    "total": round(finished - started, 1)},
    }
    del model
    keras.backend.clear_session()
    gc.collect()
    return record


def load_zoo(out):
    path = os.path.join(out, "zoo.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"models": {}, "failed": {}, "skipped": {}}


def save_zoo(out, data):
    import keras
    import tensorflow as tf
    data["versions"] = {"keras": keras.__version__, "tensorflow": tf.__version__,
                        "tf_keras": importlib.import_module("tf_keras").__version__, "numpy": np.__version__}
    data["models"] = dict(sorted(data["models"].items()))
    with open(os.path.join(out, "zoo.json"), "w") as f:
        json.dump(data, f, indent=1)


def key_of(entry):
    return f"{entry.framework}/{entry.name}"


def run(entries, out, isolate, max_parameters):
    data = load_zoo(out)
    data.setdefault("skipped", {})
    for entry in entries:
        key = key_of(entry)
        print(f"{key} ...", end=" ", flush=True)
        if isolate:
            command = [sys.executable, os.path.abspath(__file__), "--out", out, "--only", entry.name,
                       "--framework", entry.framework, "--no-report"]
            if max_parameters:
                command += ["--max-parameters", str(max_parameters)]
            data = load_zoo(out)
            for table in ("models", "failed", "skipped"):  # the child writes this run's outcome
                data.setdefault(table, {}).pop(key, None)
            save_zoo(out, data)
            try:
                result = subprocess.run(command, timeout=isolate, capture_output=True, text=True)
                reason = None if result.returncode == 0 else (result.stderr.strip().splitlines() or ["?"])[-1]
            except subprocess.TimeoutExpired:
                reason = f"not finished in {isolate} s (--isolate)"
            data = load_zoo(out)
            if key in data["skipped"]:
                print("skipped:", data["skipped"][key], flush=True)
            elif key in data["models"]:
                record = data["models"][key]
                print(f"{record['seconds']['total']} s, {record['parameters']:,} parameters, "
                      f"{sum(record['files'].values()) / 1e6:.1f} MB", flush=True)
            else:
                data["failed"][key] = data["failed"].get(key) or reason or "no record written"
                save_zoo(out, data)
                print("FAILED:", data["failed"][key], flush=True)
            continue
        try:
            record = make(entry, out, max_parameters)
        except TooLarge as error:
            data["skipped"][key] = str(error)
            data["models"].pop(key, None)
            save_zoo(out, data)
            print("skipped:", error, flush=True)
            continue
        except Exception as error:  # noted in zoo.json, the run goes on
            data["failed"][key] = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
            data["models"].pop(key, None)
            save_zoo(out, data)
            print("FAILED:", data["failed"][key], flush=True)
            continue
        data["models"][key] = record
        data["failed"].pop(key, None)
        data["skipped"].pop(key, None)
        save_zoo(out, data)
        print(f"{record['seconds']['total']} s, {record['parameters']:,} parameters, "
              f"{sum(record['files'].values()) / 1e6:.1f} MB", flush=True)
    return data


# ---- LAYERS.md ----------------------------------------------------------------------------------

IGNORED_KEYS = {"name", "trainable", "dtype", "batch_input_shape", "batch_shape", "build_input_shape", "layers",
                "input_layers", "output_layers", "sparse", "ragged", "optional"}
# sizes and rates, not kinds of computation: left out of the ci coverage check
WIDTH_KEYS = {"filters", "units", "projection_dim", "groups", "target_shape", "noise_shape", "rate"}


def default_config(framework, class_name, observed, cache={}):
    """(config a layer of this class gets from its constructor's defaults, with the required
    arguments taken from `observed`; the names of those required arguments), or (None, names)
    where the class cannot be made so."""
    module = importlib.import_module("tf_keras.layers" if framework == "tf_keras" else "keras.layers")
    cls = getattr(module, class_name, None)
    if cls is None:
        return None, set()
    required = {}
    try:
        for parameter in inspect.signature(cls.__init__).parameters.values():
            if parameter.name == "self" or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                continue
            if parameter.default is inspect.Parameter.empty:
                required[parameter.name] = observed.get(parameter.name)
        key = (framework, class_name, json.dumps(required, sort_keys=True))
        if key not in cache:
            cache[key] = json.loads(json.dumps(cls(**required).get_config(), default=float))
        return cache[key], set(required)
    except Exception:
        return None, set(required)


def constants(node_args):
    """The non-tensor arguments of an op layer's call (Keras 3 `args`/`kwargs`, tf_keras' kwargs)."""
    found = []

    def visit(value):
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                return
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            if len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):  # tf_keras tensor ref
                for item in value[3:]:
                    visit(item)
                return
            for item in value:
                visit(item)
        elif value is not None and not isinstance(value, str):
            found.append(value)
    visit(node_args)
    return found


def brief(value, limit=70):
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def write_report(out):
    data = load_zoo(out)
    models = data["models"]
    by_family = collections.defaultdict(list)
    options = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))  # class -> key -> value -> n
    option_users = collections.defaultdict(lambda: collections.defaultdict(set))
    op_constants = collections.defaultdict(collections.Counter)
    preprocessing = {}
    seen_ci, seen_all = collections.defaultdict(set), collections.defaultdict(set)
    for key, record in models.items():
        by_family[record["family"]].append(record)
        user = record["family"] + (" (tf_keras)" if record["framework"] == "tf_keras" else "")
        try:
            config = model_config(out, record["name"], record["framework"])
        except OSError:
            continue
        stem = []
        for layer, _ in config_layers(config):
            cls = layer_key(layer)
            observed = layer.get("config", {})
            seen_all[cls].add("")
            if record["ci"]:
                seen_ci[cls].add("")
            if "[keras.src.ops" in cls or cls.startswith(("TFOpLambda", "SlicingOpLambda")):
                for node in layer.get("inbound_nodes", []):
                    op_constants[cls][brief(constants(node))] += 1
                continue
            if layer["class_name"] in ("Rescaling", "Normalization"):
                where = ""
                if layer["class_name"] == "Normalization":
                    where = " mean/variance in config" if observed.get("mean") is not None else \
                        " mean/variance/count as weights"
                stem.append(f"{layer['class_name']}({', '.join(f'{k}={brief(observed.get(k), 60)}' for k in ('scale', 'offset', 'axis', 'mean', 'variance') if k in observed and observed.get(k) is not None)}){where}")
            default, required = default_config(record["framework"], layer["class_name"], observed) \
                if "[" not in cls else ({}, set(observed) - IGNORED_KEYS)
            for option, value in observed.items():
                if option in IGNORED_KEYS:
                    continue
                if option not in required and default is not None and option in default \
                        and json.dumps(default[option], sort_keys=True) == json.dumps(value, sort_keys=True):
                    continue
                if option.endswith(("_initializer", "_regularizer", "_constraint")) and isinstance(value, dict):
                    value = value.get("class_name")
                text = brief(value)
                options[cls][option][text] += 1
                option_users[cls][option].add(user)
                if option not in WIDTH_KEYS:
                    seen_all[cls].add(f"{option}={text}")
                    if record["ci"]:
                        seen_ci[cls].add(f"{option}={text}")
        if stem:
            preprocessing[("tfk_" if record["framework"] == "tf_keras" else "") + record["name"]] = " → ".join(stem)

    lines = ["# Layers of the Keras applications zoo", "",
             "Written by `tools/zoo/make_zoo.py` from `zoo.json` and the models' configs "
             f"(Keras {data.get('versions', {}).get('keras')}, TensorFlow {data.get('versions', {}).get('tensorflow')}, "
             f"tf_keras {data.get('versions', {}).get('tf_keras')}). A class `X [module]` is not a Keras layer: "
             "`[keras.src.ops.numpy]` is an operator applied to a symbolic tensor (`x + 3.0`), serialized as an op "
             "layer whose constant operands sit in its inbound node; `[keras.src.applications.…]` is an application's "
             "own layer class. `TFOpLambda:f` is tf.keras 2's wrapper of the TensorFlow function f.", ""]
    lines += ["## Layer classes per family", "",
              "Counts are per model (min–max over the family's models in this zoo, narrow builds included).", ""]
    for family in sorted(by_family):
        records = sorted(by_family[family], key=lambda r: r["parameters"])
        names = ", ".join(f"{'tfk_' if r['framework'] == 'tf_keras' else ''}{r['name']}" for r in records)
        lines += [f"### {family}", "", f"Models: {names}", ""]
        classes = sorted({c for r in records for c in r["layer_classes"]})
        for cls in classes:
            counts = [r["layer_classes"].get(cls, 0) for r in records]
            low, high = min(counts), max(counts)
            lines.append(f"- {cls}: {low if low == high else f'{low}–{high}'}"
                         + ("" if low else f" (in {sum(1 for c in counts if c)} of {len(counts)})"))
        lines.append("")
    lines += ["## Options that differ from the class' defaults", "",
              "For each layer class, each config key whose value differs from what the constructor's defaults "
              "give (tf_keras' defaults for tf_keras files), and every required argument (`filters`, Activation's "
              "`activation`, Rescaling's `scale`, ...), with how many layers use each value (over all models here) and "
              "the families using it; initializers, regularizers and constraints by class name.", ""]
    for cls in sorted(options):
        lines.append(f"### {cls}")
        lines.append("")
        for option in sorted(options[cls]):
            values = options[cls][option].most_common()
            shown = ", ".join(f"`{v}` ×{n}" for v, n in values[:10])
            more = f", … {len(values) - 10} more values" if len(values) > 10 else ""
            lines.append(f"- {option}: {shown}{more} — {', '.join(sorted(option_users[cls][option]))}")
        lines.append("")
    lines += ["## Op layers and their constant operands", ""]
    for cls in sorted(op_constants):
        values = op_constants[cls].most_common()
        lines.append(f"- {cls}: " + ", ".join(f"`{v}` ×{n}" for v, n in values[:12]))
    lines += ["", "## Preprocessing inside the models", ""]
    lines += [f"- {name}: {text}" for name, text in sorted(preprocessing.items())]
    lines += ["", "## ci coverage", ""]
    missing_classes = sorted(set(seen_all) - set(seen_ci))
    missing_options = sorted(f"{cls} {item}" for cls in seen_all if cls in seen_ci
                             for item in seen_all[cls] - seen_ci[cls])
    lines.append(f"Classes in the zoo but in no ci model: {', '.join(missing_classes) or 'none'}.")
    lines.append("")
    lines.append(f"Option values (other than {', '.join(sorted(WIDTH_KEYS))}) in the zoo but in no ci model"
                 f" ({len(missing_options)}): " + ("; ".join(f"`{m}`" for m in missing_options[:80]) or "none")
                 + ("; …" if len(missing_options) > 80 else "") + ".")
    lines += ["", "## Models", "",
              "| model | family | ci | input | parameters | layers | .keras | .h5 | .weights.h5 | .io.npz | "
              "build s | total s | max y |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def size(record, suffix):
        value = sum(v for k, v in record["files"].items() if k.endswith(suffix) and not k.endswith(".weights" + suffix)
                    or (suffix == ".weights.h5" and k.endswith(".weights.h5")))
        return f"{value / 1e6:.1f} MB" if value else "–"
    for key, record in sorted(models.items(), key=lambda kv: (kv[1]["family"], kv[1]["parameters"])):
        name = ("tfk_" if record["framework"] == "tf_keras" else "") + record["name"]
        lines.append(f"| {name} | {record['family']} | {'yes' if record['ci'] else ''} | "
                     f"{'×'.join(str(d) for d in record['input_shape'][1:])} | {record['parameters']:,} | "
                     f"{record['layers']} | {size(record, '.keras')} | {size(record, '.h5')} | "
                     f"{size(record, '.weights.h5')} | {size(record, '.io.npz')} | {record['seconds']['build']} | "
                     f"{record['seconds']['total']} | {record['y_max']:.3f} |")
    ci_bytes = sum(sum(r["files"].values()) for r in models.values() if r["ci"])
    all_bytes = sum(sum(r["files"].values()) for r in models.values())
    ci_seconds = sum(r["seconds"]["total"] for r in models.values() if r["ci"])
    lines += ["", f"ci models: {ci_bytes / 1e6:.1f} MB, {ci_seconds:.0f} s to make; all models here: "
              f"{all_bytes / 1e6:.1f} MB.", ""]
    if data.get("failed"):
        lines += ["## Failed", ""] + [f"- {k}: {v}" for k, v in sorted(data["failed"].items())] + [""]
    if data.get("skipped"):
        lines += ["## Skipped", ""] + [f"- {k}: {v}" for k, v in sorted(data["skipped"].items())] + [""]
    with open(os.path.join(out, "LAYERS.md"), "w") as f:
        f.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=OUT, help="output folder (default out/zoo)")
    parser.add_argument("--subset", choices=["ci", "all"], help="ci (the default) or all")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these models (tfk_NAME for tf_keras builds)")
    parser.add_argument("--framework", choices=["keras3", "tf_keras"], help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true", help="print the models, their families and ci membership")
    parser.add_argument("--isolate", type=int, metavar="SECONDS", help="one child process per model, killed after SECONDS")
    parser.add_argument("--max-parameters", type=int, metavar="N",
                        help="skip (after building, before saving) models with more than N parameters")
    parser.add_argument("--report", action="store_true", help="only rewrite LAYERS.md from zoo.json")
    parser.add_argument("--no-report", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import logging
    logging.getLogger("absl").setLevel(logging.ERROR)  # "HDF5 file format is considered legacy"
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # grouped convolutions' retracing
    entries = zoo()
    if args.list:
        for entry in entries:
            print(f"{entry.file_stem:40} {entry.family:20} {'ci' if entry.ci else '-'}")
        return
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if args.report:
        write_report(out)
        print("wrote", os.path.join(out, "LAYERS.md"))
        return
    if args.only:
        known = {e.file_stem: e for e in entries}
        unknown = [n for n in args.only if n not in known and n not in {e.name for e in entries}]
        if unknown:
            parser.error(f"unknown models {unknown} (see --list)")
        if args.framework:  # a child of --isolate
            chosen = [e for e in entries if e.name in args.only and e.framework == args.framework]
        else:
            chosen = [e for e in entries if e.file_stem in args.only]
    else:
        chosen = [e for e in entries if e.ci or args.subset == "all"]
    if args.subset == "ci" and args.only:
        chosen = [e for e in chosen if e.ci]
    started = time.time()
    run(chosen, out, args.isolate, args.max_parameters)
    if not args.no_report:
        write_report(out)
    data = load_zoo(out)
    made = [data["models"][key_of(e)] for e in chosen if key_of(e) in data["models"]]
    total = sum(sum(r["files"].values()) for r in made)
    print(f"{len(made)} of {len(chosen)} models in {out}: {total / 1e6:.1f} MB, {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
