"""EfficientNet-Lite0 in Keras core layers: an ImageNet classifier and the
multi-scale feature pyramid a U-Net decoder needs.

EfficientNet-Lite (Tan & Le 2019; TensorFlow TPU repository,
`models/official/efficientnet/lite`) is EfficientNet without
squeeze-excitation, with ReLU6 instead of swish, and with a stem and head
that are not scaled. Lite0 is the unscaled member: 16 MBConv blocks,
4.65 M parameters. The layers follow the TensorFlow original exactly:
TensorFlow "same" padding (Keras's `padding="same"`, which pads the extra
row/column at the bottom/right on every backend), batch normalisation with
epsilon 1e-3, inputs normalised as `(pixel - 127) / 128` for pixels in
0..255.
"""

import os
import pathlib

import keras

from keras_pu.layers._utils import standardize_compute_data_format
from keras_pu.layers._utils import standardize_data_format

# (repeats, kernel size, stride, expand ratio, input filters, output filters)
# of the seven stages, from efficientnet_lite_builder.py (width and depth
# coefficients 1.0 for Lite0).
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280
BATCHNORM_EPSILON = 1e-3
# The TensorFlow original normalises 0..255 pixels as (x - 127) / 128.
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0


def block_specs():
    """The 16 MBConv blocks of Lite0, in order.

    Returns:
        A list of dicts with keys `index`, `kernel_size`, `strides`,
        `expand_ratio`, `input_filters`, `output_filters`.
    """
    specs = []
    for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
        for r in range(repeats):
            specs.append(
                dict(
                    index=len(specs),
                    kernel_size=kernel,
                    strides=stride if r == 0 else 1,
                    expand_ratio=expand,
                    input_filters=cin if r == 0 else cout,
                    output_filters=cout,
                )
            )
    return specs


def _block_output_name(spec):
    has_skip = spec["strides"] == 1 and (
        spec["input_filters"] == spec["output_filters"]
    )
    return f"block{spec['index']}_{'add' if has_skip else 'project_bn'}"


def pyramid_layer_names():
    """Layer names of the multi-scale features, by output stride.

    The last block of each resolution: stride 2 (16 channels), 4 (24),
    8 (40), 16 (112) and 32 (320 channels, before the 1x1 head
    convolution). These are the features U-Net decoders (and
    segmentation_models_pytorch / timm `features_only`) take.

    Returns:
        A dict `{2: name, 4: name, 8: name, 16: name, 32: name}`.
    """
    names = {}
    stride = 2  # after the stem
    for spec in block_specs():
        stride *= spec["strides"]
        names[stride] = _block_output_name(spec)  # the last one per stride wins
    return names


PYRAMID_CHANNELS = {2: 16, 4: 24, 8: 40, 16: 112, 32: 320}


def build_efficientnet_lite0_features(
    x,
    *,
    data_format="channels_last",
    input_scale=255.0,
    batchnorm_momentum=0.99,
    dtype=None,
    prefix="",
):
    """Applies the Lite0 feature extractor (preprocessing, stem, 16 blocks)
    to a functional tensor, creating its layers in the current graph.

    The layer names (with `prefix` in front) are those of the ImageNet
    weights file, so weights can be copied by name from an
    `EfficientNetLite0` model.

    Args:
        x: a Keras functional tensor of RGB images in `data_format`.
        data_format: `"channels_last"` or `"channels_first"`, the layout of
            `x` and of the layers. Defaults to `"channels_last"`.
        input_scale: the value of a white pixel in `x`: `255.0` for 0..255
            pixels, `1.0` for 0..1 pixels (the keras-pu data pipeline). The
            first layer maps it to the `(p - 127) / 128` normalisation of
            the ImageNet weights. Defaults to `255.0`.
        batchnorm_momentum: momentum of the batch normalisations. Defaults
            to `0.99`.
        dtype: dtype policy of the layers. Defaults to the global policy.
        prefix: string put in front of every layer name. Defaults to `""`.

    Returns:
        `(features, x)`: `features` maps each output stride (2, 4, 8, 16,
        32) to that stage's last block output; `x` is the stride-32 output
        (320 channels).

    Example:

    ```python
    import keras
    from keras_pu.models.efficientnet_lite import (
        build_efficientnet_lite0_features,
    )

    image = keras.Input((128, 128, 3))
    features, x = build_efficientnet_lite0_features(image, input_scale=1.0)
    features[8].shape  # (None, 16, 16, 40)
    ```
    """
    if not input_scale or input_scale <= 0:
        raise ValueError(
            "`input_scale` must be the positive value of a white pixel "
            f"(255.0 or 1.0). Received: input_scale={input_scale!r}"
        )
    channel_axis = -1 if data_format == "channels_last" else 1
    layer_args = dict(dtype=dtype)
    conv_args = dict(
        padding="same",
        use_bias=False,
        data_format=data_format,
        kernel_initializer="he_normal",
        **layer_args,
    )

    def bn(name):
        return keras.layers.BatchNormalization(
            axis=channel_axis,
            momentum=batchnorm_momentum,
            epsilon=BATCHNORM_EPSILON,
            name=prefix + name,
            **layer_args,
        )

    def relu6(name):
        return keras.layers.ReLU(max_value=6.0, name=prefix + name, **layer_args)

    # p -> (p * 255 / input_scale - 127) / 128
    x = keras.layers.Rescaling(
        scale=255.0 / (input_scale * PIXEL_STD),
        offset=-PIXEL_MEAN / PIXEL_STD,
        name=prefix + "normalize",
        **layer_args,
    )(x)
    x = keras.layers.Conv2D(
        STEM_FILTERS, 3, strides=2, name=prefix + "stem_conv", **conv_args
    )(x)
    x = bn("stem_bn")(x)
    x = relu6("stem_activation")(x)

    features = {}
    stride = 2
    for spec in block_specs():
        b = f"block{spec['index']}_"
        inputs = x
        expanded = spec["input_filters"] * spec["expand_ratio"]
        if spec["expand_ratio"] != 1:
            x = keras.layers.Conv2D(
                expanded, 1, name=prefix + b + "expand_conv", **conv_args
            )(x)
            x = bn(b + "expand_bn")(x)
            x = relu6(b + "expand_activation")(x)
        x = keras.layers.DepthwiseConv2D(
            spec["kernel_size"],
            strides=spec["strides"],
            padding="same",
            use_bias=False,
            data_format=data_format,
            depthwise_initializer="he_normal",
            name=prefix + b + "dwconv",
            **layer_args,
        )(x)
        x = bn(b + "dw_bn")(x)
        x = relu6(b + "dw_activation")(x)
        x = keras.layers.Conv2D(
            spec["output_filters"], 1, name=prefix + b + "project_conv",
            **conv_args,
        )(x)
        x = bn(b + "project_bn")(x)
        if spec["strides"] == 1 and spec["input_filters"] == spec["output_filters"]:
            x = keras.layers.Add(name=prefix + b + "add", **layer_args)([x, inputs])
        stride *= spec["strides"]
        features[stride] = x
    return features, x


@keras.saving.register_keras_serializable(package="keras_pu")
class EfficientNetLite0(keras.Model):
    """EfficientNet-Lite0: ImageNet classifier or multi-scale encoder.

    With `include_top=True` the model returns the 1000 ImageNet class
    probabilities (or logits); with `include_top=False` it returns the
    feature pyramid, a list of five tensors at output strides 2, 4, 8, 16
    and 32 (16, 24, 40, 112 and 320 channels) — the skips and bottleneck of
    a U-Net. `pyramid_layer_names()` gives their layer names.

    ImageNet weights: `weights="imagenet"` loads the converted
    EfficientNet-Lite0 ImageNet-1k checkpoint of the keras-pu zoo backbone
    `efficientnet_lite0_imagenet` (offline, sha256-verified; see
    `keras_pu.zoo.backbones.imagenet_weights_path`).

    Args:
        input_shape: `(height, width, 3)` (or `(3, height, width)` with
            `data_format="channels_first"`); sizes may be `None`. Defaults
            to `(224, 224, 3)`, the ImageNet resolution.
        include_top: whether to end with global pooling, dropout and the
            1000-way classifier. Defaults to `True`.
        weights: `None` (random initialisation), `"imagenet"`, or the path
            of a `.weights.h5` file of this architecture. Defaults to
            `None`.
        input_scale: value of a white pixel in the inputs: `255.0` for
            0..255 pixels, `1.0` for 0..1 pixels. Defaults to `255.0`.
        classes: number of classifier outputs (only with `include_top`).
            Defaults to `1000`; ImageNet weights need 1000.
        classifier_activation: `"softmax"`, `None` (logits) or any Keras
            activation name. Defaults to `"softmax"`.
        dropout_rate: dropout before the classifier (training only).
            Defaults to `0.2` (the original's).
        batchnorm_momentum: momentum of the batch normalisations. Defaults
            to `0.99`.
        data_format: layout of the input images (and of the returned
            features). Defaults to `keras.config.image_data_format()`.
        compute_data_format: layout the layers compute in; `None` picks
            channels-first under PyTorch (faster there) and `data_format`
            elsewhere. The input is transposed once on entry; the returned
            features are in this layout. Defaults to `None`.
        dtype: dtype policy. Defaults to the global policy.
        name: model name. Defaults to `"efficientnet_lite0"`.
        **kwargs: other `keras.Model` arguments.

    Example:

    ```python
    import numpy as np
    from keras_pu.models.efficientnet_lite import EfficientNetLite0

    model = EfficientNetLite0(weights="imagenet")
    image = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3))
    probabilities = model.predict(image.astype("float32"))  # (1, 1000)
    ```
    """

    def __init__(
        self,
        input_shape=(224, 224, 3),
        include_top=True,
        weights=None,
        input_scale=255.0,
        classes=1000,
        classifier_activation="softmax",
        dropout_rate=0.2,
        batchnorm_momentum=0.99,
        data_format=None,
        compute_data_format=None,
        dtype=None,
        name="efficientnet_lite0",
        **kwargs,
    ):
        data_format = standardize_data_format(data_format)
        layout = standardize_compute_data_format(compute_data_format, data_format)
        input_shape = _check_input_shape(input_shape, data_format)
        if include_top and (not isinstance(classes, int) or classes < 1):
            raise ValueError(
                "EfficientNetLite0: `classes` must be a positive integer. "
                f"Received: classes={classes!r}"
            )
        if weights == "imagenet" and include_top and classes != 1000:
            raise ValueError(
                "EfficientNetLite0: the ImageNet classifier has 1000 classes; "
                f"received classes={classes}. Use include_top=False for an "
                "encoder, or classes=1000."
            )
        if not 0 <= dropout_rate < 1:
            raise ValueError(
                "EfficientNetLite0: `dropout_rate` must be in [0, 1). "
                f"Received: dropout_rate={dropout_rate!r}"
            )

        image = keras.Input(shape=input_shape, name="image")
        x = image
        if layout != data_format:
            x = keras.layers.Permute(
                (3, 1, 2) if layout == "channels_first" else (2, 3, 1),
                dtype=dtype,
                name="to_compute_layout",
            )(x)
        features, x = build_efficientnet_lite0_features(
            x,
            data_format=layout,
            input_scale=input_scale,
            batchnorm_momentum=batchnorm_momentum,
            dtype=dtype,
        )
        if include_top:
            channel_axis = -1 if layout == "channels_last" else 1
            x = keras.layers.Conv2D(
                HEAD_FILTERS,
                1,
                use_bias=False,
                data_format=layout,
                dtype=dtype,
                name="head_conv",
            )(x)
            x = keras.layers.BatchNormalization(
                axis=channel_axis,
                momentum=batchnorm_momentum,
                epsilon=BATCHNORM_EPSILON,
                dtype=dtype,
                name="head_bn",
            )(x)
            x = keras.layers.ReLU(max_value=6.0, dtype=dtype, name="head_activation")(x)
            x = keras.layers.GlobalAveragePooling2D(
                data_format=layout, dtype=dtype, name="avg_pool"
            )(x)
            x = keras.layers.Dropout(dropout_rate, dtype=dtype, name="dropout")(x)
            outputs = keras.layers.Dense(
                classes,
                activation=classifier_activation,
                dtype="float32",
                name="predictions",
            )(x)
        else:
            outputs = [features[s] for s in sorted(features)]

        super().__init__(inputs=image, outputs=outputs, name=name, **kwargs)
        self.input_shape_arg = tuple(input_shape)
        self.include_top = include_top
        self.input_scale = float(input_scale)
        self.classes = classes
        self.classifier_activation = classifier_activation
        self.dropout_rate = dropout_rate
        self.batchnorm_momentum = batchnorm_momentum
        self.data_format = data_format
        self.compute_data_format = layout
        self.compute_data_format_arg = compute_data_format
        self.dtype_arg = dtype

        if weights is not None:
            self.load_backbone_weights(weights)

    def load_backbone_weights(self, weights):
        """Loads `"imagenet"` or a `.weights.h5` path into this model.

        With `include_top=False` the classifier head of the file is skipped
        (weights are matched by layer name).
        """
        path = resolve_weights(weights)
        if self.include_top:
            self.load_weights(path)
        else:
            load_weights_by_name(self, path)

    @staticmethod
    def pyramid_layer_names():
        """See `pyramid_layer_names()` of this module."""
        return pyramid_layer_names()

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.input_shape_arg),
            "include_top": self.include_top,
            # Weights travel in the saved file, never re-fetched on load.
            "weights": None,
            "input_scale": self.input_scale,
            "classes": self.classes,
            "classifier_activation": self.classifier_activation,
            "dropout_rate": self.dropout_rate,
            "batchnorm_momentum": self.batchnorm_momentum,
            "data_format": self.data_format,
            "compute_data_format": self.compute_data_format_arg,
            "dtype": _serialize_dtype(self.dtype_arg),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


def _check_input_shape(input_shape, data_format):
    try:
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            "EfficientNetLite0: `input_shape` must be 3 ints or None, e.g. "
            f"(224, 224, 3). Received: input_shape={input_shape!r}"
        ) from None
    if len(input_shape) != 3:
        raise ValueError(
            "EfficientNetLite0: `input_shape` needs 3 entries "
            f"({data_format}); received input_shape={input_shape!r}"
        )
    channels = input_shape[-1] if data_format == "channels_last" else input_shape[0]
    if channels != 3:
        raise ValueError(
            "EfficientNetLite0 takes RGB images (3 channels); received "
            f"input_shape={input_shape!r} ({data_format}). Convert grayscale "
            "images to RGB first."
        )
    return input_shape


def _serialize_dtype(dtype):
    if dtype is None or isinstance(dtype, str):
        return dtype
    return keras.dtype_policies.serialize(dtype)


# Named weights ("imagenet") are resolved by the zoo (keras_pu.zoo.backbones
# registers the resolver when keras_pu is imported): the models layer does
# not depend on the zoo.
_NAMED_WEIGHTS = {}


def register_named_weights(name, resolver):
    """Makes `weights=name` resolve to the path `resolver()` returns (a
    verified local `.weights.h5`)."""
    _NAMED_WEIGHTS[name] = resolver


def resolve_weights(weights):
    """A named weight set (e.g. `"imagenet"`) or a `.weights.h5` path ->
    a local path."""
    if isinstance(weights, str) and weights in _NAMED_WEIGHTS:
        return _NAMED_WEIGHTS[weights]()
    if weights == "imagenet":
        raise ValueError(
            "weights='imagenet' is resolved by keras_pu.zoo; `import "
            "keras_pu` (which imports it) before building the model."
        )
    path = pathlib.Path(os.fspath(weights))
    if path.suffixes[-2:] != [".weights", ".h5"]:
        raise ValueError(
            "`weights` must be None, 'imagenet' or the path of a Keras "
            f"'.weights.h5' file; received {weights!r}."
        )
    if not path.is_file():
        raise FileNotFoundError(f"Weights file {str(path)!r} does not exist.")
    return str(path)


def load_weights_by_name(model, weights, prefix=""):
    """Copies EfficientNet-Lite0 weights into the layers of `model` that
    carry the same names (with `prefix` in front).

    Used for the encoder without classifier, and for U-Nets built on the
    encoder. Every encoder layer of the source must be present in `model`.

    Args:
        model: a built Keras model containing the Lite0 feature layers.
        weights: `"imagenet"` or a `.weights.h5` path of a full
            (`include_top=True`) `EfficientNetLite0`.
        prefix: the prefix of the encoder layer names in `model`. Defaults
            to `""`.

    Returns:
        The number of layers whose weights were copied.
    """
    path = resolve_weights(weights)
    source = EfficientNetLite0(
        input_shape=(None, None, 3),
        include_top=True,
        data_format="channels_last",
        compute_data_format="channels_last",
        name="efficientnet_lite0_source",
    )
    source.load_weights(path)
    head = {"head_conv", "head_bn", "predictions"}
    copied = 0
    for layer in source.layers:
        if not layer.weights or layer.name in head:
            continue
        try:
            target = model.get_layer(prefix + layer.name)
        except ValueError:
            raise ValueError(
                f"Model {model.name!r} has no layer {prefix + layer.name!r}: "
                "it is not built on the EfficientNet-Lite0 encoder (or with "
                "another layer-name prefix)."
            ) from None
        target.set_weights(layer.get_weights())
        copied += 1
    return copied
