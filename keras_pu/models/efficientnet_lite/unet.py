"""U-Nets on a pretrained EfficientNet-Lite0 encoder: `EncoderPUUNet`
(product-unit residual blocks in the low-resolution decoder stages) and its
matched baseline `EncoderResUNet` (plain residual blocks everywhere)."""

import keras

from keras_pu.layers._utils import standardize_compute_data_format
from keras_pu.layers._utils import standardize_data_format
from keras_pu.layers.product_unit import validate_stabilization
from keras_pu.layers.residual_block import ProductUnitResidualBlock
from keras_pu.layers.residual_block import ResidualBlock
from keras_pu.models.efficientnet_lite.model import build_efficientnet_lite0_features
from keras_pu.models.efficientnet_lite.model import load_weights_by_name
from keras_pu.models.efficientnet_lite.model import pyramid_layer_names
from keras_pu.models.registry import register_model
from keras_pu.models.segmentation_model import SegmentationModel

ENCODERS = ("efficientnet_lite0",)
# Output strides of the decoder stages, lowest resolution first: 32 is the
# bridge on the encoder's last feature, 1 the full-resolution stage.
DECODER_STRIDES = (32, 16, 8, 4, 2, 1)
UPSAMPLING_MODES = ("nearest", "bilinear")


def decoder_stage_name(stride):
    return f"decoder_stage_{stride}"


@keras.saving.register_keras_serializable(package="keras_pu")
class EncoderUNet(SegmentationModel):
    """U-Net with an ImageNet-pretrained EfficientNet-Lite0 encoder and a
    residual decoder whose chosen stages use product-unit blocks.

    Encoder: EfficientNet-Lite0 (`EfficientNetLite0` without classifier),
    giving features at output strides 2, 4, 8, 16 and 32. Decoder: a
    *bridge* residual block on the stride-32 feature, then for strides 16,
    8, 4, 2 and 1: 2x upsampling, concatenation with the encoder feature of
    that stride (none at stride 1) and `blocks_per_stage` residual blocks. The
    stages listed in `pu_stages` (by output stride) use
    `ProductUnitResidualBlock`s, the others `ResidualBlock`s, which have
    exactly the same parameters. A 1x1 convolution gives the logits
    (float32 under any dtype policy).

    SelfReg: `feature_layers` names the five encoder features, the decoder
    stage outputs `decoder_stage_{32,16,8,4,2}` (students) and
    `decoder_stage_1` (the teacher).

    Freezing the encoder for the first epochs: `set_encoder_trainable(False)`
    (frozen weights, batch normalisation in inference mode) and the callback
    `keras_pu.models.efficientnet_lite.UnfreezeEncoder(epochs)`, or simply
    two `fit` calls with a `compile` in between.

    Args:
        input_shape: `(height, width, 3)` (channels first with
            `data_format="channels_first"`); sizes may be `None`; known
            sizes must be multiples of 32. Defaults to `(None, None, 3)`.
        num_classes: output channels (1: binary, one logit per pixel).
            Defaults to `1`.
        encoder: the encoder; only `"efficientnet_lite0"` for now.
        encoder_weights: `"imagenet"` (the zoo backbone
            `efficientnet_lite0_imagenet`), `None` (random), or the path of
            an `EfficientNetLite0` `.weights.h5`. Defaults to `"imagenet"`.
            Not part of the saved config: a saved model carries its weights.
        encoder_trainable: `False` builds the model with its encoder frozen
            (see `set_encoder_trainable`). Defaults to `True`.
        input_scale: value of a white pixel: `1.0` for the keras-pu data
            pipeline (0..1 pixels), `255.0` for 0..255. Defaults to `1.0`.
        decoder_widths: widths of the decoder stages at strides 32, 16, 8,
            4, 2, 1. Defaults to `(256, 128, 64, 32, 16, 16)`.
        pu_stages: output strides of the decoder stages built from
            product-unit blocks, each in `(32, 16, 8, 4, 2, 1)`. Defaults to
            `()`.
        blocks_per_stage: residual blocks per decoder stage. Defaults to `1`.
        upsampling: `"nearest"` (as segmentation_models_pytorch's U-Net)
            or `"bilinear"`. Defaults to `"nearest"`. (Keras 3.15's
            bilinear resize cannot be exported to ONNX under JAX with a
            dynamic batch size; nearest exports under every backend.)
        data_format, compute_data_format: as in `keras_pu.models.ResidualUNet`.
        batchnorm_momentum: momentum of every batch normalisation. Defaults
            to `0.99`.
        pu_epsilon, pu_clip_value, pu_clip_mode, pu_stabilized: product-unit
            settings (see `ProductUnit2D`). Defaults to `1e-3`, `6.0`,
            `"hard"`, `True`.
        deep_supervision: `True` adds auxiliary 1x1-convolution heads to
            the decoder stages at strides 16, 8, 4 and 2, trained against
            the downsampled masks with weights 1/2 (stride 2), 1/4, ...
            (nnU-Net's deep supervision; see
            `keras_pu.models.deep_supervision`). Training only: inference
            returns the main logits. Defaults to `False`.
        dtype: dtype policy. Defaults to the global policy.
        name: model name.
        **kwargs: other `keras.Model` arguments.

    Example:

    ```python
    import numpy as np
    from keras_pu.models.efficientnet_lite import EncoderPUUNet

    model = EncoderPUUNet(input_shape=(128, 128, 3), encoder_weights=None)
    logits = model.predict(np.zeros((1, 128, 128, 3), "float32"))
    ```
    """

    def __init__(
        self,
        input_shape=(None, None, 3),
        num_classes=1,
        encoder="efficientnet_lite0",
        encoder_weights="imagenet",
        encoder_trainable=True,
        input_scale=1.0,
        decoder_widths=(256, 128, 64, 32, 16, 16),
        pu_stages=(),
        blocks_per_stage=1,
        upsampling="nearest",
        data_format=None,
        compute_data_format=None,
        batchnorm_momentum=0.99,
        pu_epsilon=1e-3,
        pu_clip_value=6.0,
        pu_clip_mode="hard",
        pu_stabilized=True,
        deep_supervision=False,
        dtype=None,
        name=None,
        **kwargs,
    ):
        cls_name = type(self).__name__
        if not isinstance(deep_supervision, bool):
            raise ValueError(
                f"{cls_name}: `deep_supervision` must be True or False. "
                f"Received: deep_supervision={deep_supervision!r}"
            )
        if encoder not in ENCODERS:
            raise ValueError(
                f"{cls_name}: unknown encoder {encoder!r}; available: "
                f"{list(ENCODERS)}."
            )
        data_format = standardize_data_format(data_format)
        layout = standardize_compute_data_format(compute_data_format, data_format)
        channel_axis = -1 if layout == "channels_last" else 1
        input_shape = _check_input_shape(input_shape, data_format, cls_name)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"{cls_name}: `num_classes` must be an integer >= 1. "
                f"Received: num_classes={num_classes!r}"
            )
        try:
            decoder_widths = tuple(int(w) for w in decoder_widths)
        except (TypeError, ValueError):
            decoder_widths = ()
        if len(decoder_widths) != len(DECODER_STRIDES) or min(decoder_widths) < 1:
            raise ValueError(
                f"{cls_name}: `decoder_widths` needs {len(DECODER_STRIDES)} "
                f"positive ints, for strides {DECODER_STRIDES}. Received: "
                f"decoder_widths={decoder_widths!r}"
            )
        try:
            pu_stages = tuple(sorted({int(s) for s in pu_stages}, reverse=True))
        except (TypeError, ValueError):
            raise ValueError(
                f"{cls_name}: `pu_stages` must be a sequence of output "
                f"strides. Received: pu_stages={pu_stages!r}"
            ) from None
        unknown = [s for s in pu_stages if s not in DECODER_STRIDES]
        if unknown:
            raise ValueError(
                f"{cls_name}: unknown decoder stage {unknown[0]} in "
                f"pu_stages={pu_stages!r}; the stages are the output strides "
                f"{DECODER_STRIDES}."
            )
        if not isinstance(blocks_per_stage, int) or blocks_per_stage < 1:
            raise ValueError(
                f"{cls_name}: `blocks_per_stage` must be an integer >= 1. "
                f"Received: blocks_per_stage={blocks_per_stage!r}"
            )
        if upsampling not in UPSAMPLING_MODES:
            raise ValueError(
                f"{cls_name}: `upsampling` must be one of {UPSAMPLING_MODES}."
                f" Received: upsampling={upsampling!r}"
            )
        validate_stabilization(pu_epsilon, pu_clip_value, pu_clip_mode)

        block_args = dict(
            data_format=layout, batchnorm_momentum=batchnorm_momentum, dtype=dtype
        )
        pu_args = dict(
            pu_epsilon=pu_epsilon,
            pu_clip_value=pu_clip_value,
            pu_clip_mode=pu_clip_mode,
            pu_stabilized=pu_stabilized,
        )

        def stage(x, filters, stride):
            stage_name = decoder_stage_name(stride)
            for j in range(blocks_per_stage):
                last = j == blocks_per_stage - 1
                layer_name = stage_name if last else f"{stage_name}_block_{j}"
                if stride in pu_stages:
                    block = ProductUnitResidualBlock(
                        filters, name=layer_name, **block_args, **pu_args
                    )
                else:
                    block = ResidualBlock(filters, name=layer_name, **block_args)
                x = block(x)
            return x

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
        x = stage(x, decoder_widths[0], DECODER_STRIDES[0])
        for stride, width in zip(DECODER_STRIDES[1:], decoder_widths[1:]):
            stage_name = decoder_stage_name(stride)
            x = keras.layers.UpSampling2D(
                2,
                interpolation=upsampling,
                data_format=layout,
                dtype=dtype,
                name=f"{stage_name}_upsample",
            )(x)
            if stride in features:
                x = keras.layers.Concatenate(
                    axis=channel_axis, dtype=dtype, name=f"{stage_name}_concat"
                )([x, features[stride]])
            x = stage(x, width, stride)
        logits = keras.layers.Conv2D(
            num_classes, 1, data_format=layout, dtype="float32", name="logits"
        )(x)
        if layout != data_format:
            logits = keras.layers.Permute(
                (2, 3, 1) if layout == "channels_first" else (3, 1, 2),
                dtype="float32",
                name="to_data_format",
            )(logits)

        super().__init__(inputs=image, outputs=logits, name=name, **kwargs)
        self.input_shape_arg = tuple(input_shape)
        self.num_classes = num_classes
        self.encoder = encoder
        self.input_scale = float(input_scale)
        self.decoder_widths = decoder_widths
        self.pu_stages = pu_stages
        self.blocks_per_stage = blocks_per_stage
        self.upsampling = upsampling
        self.data_format = data_format
        self.compute_data_format = layout
        self.compute_data_format_arg = compute_data_format
        self.batchnorm_momentum = batchnorm_momentum
        self.pu_epsilon = pu_epsilon
        self.pu_clip_value = pu_clip_value
        self.pu_clip_mode = pu_clip_mode
        self.pu_stabilized = pu_stabilized
        self.deep_supervision = deep_supervision
        self.dtype_arg = dtype
        self._encoder_layer_names = _encoder_layer_names(self)
        if deep_supervision:
            # Every decoder stage but the output (stride 1) and the bridge
            # (stride 32), finest first.
            self._add_deep_supervision(
                [(decoder_stage_name(stride), stride)
                 for stride in reversed(DECODER_STRIDES[1:-1])],
                num_classes,
                data_format,
                layout,
            )
        if encoder_weights is not None:
            load_weights_by_name(self, encoder_weights)
        if not encoder_trainable:
            self.set_encoder_trainable(False)

    # -- encoder ------------------------------------------------------------

    @property
    def encoder_layers(self):
        """The layers of the pretrained encoder, in order."""
        return [self.get_layer(n) for n in self._encoder_layer_names]

    @property
    def encoder_trainable(self):
        """Whether the encoder trains (False while frozen)."""
        return all(layer.trainable for layer in self.encoder_layers)

    def set_encoder_trainable(self, trainable):
        """Freezes (`False`) or unfreezes (`True`) the encoder. A frozen
        encoder's batch normalisations run in inference mode. Recompile (or
        use `UnfreezeEncoder`) for the change to reach `fit`."""
        for layer in self.encoder_layers:
            layer.trainable = bool(trainable)

    # -- SelfReg ------------------------------------------------------------

    @property
    def feature_layers(self):
        names = pyramid_layer_names()
        encoder = [names[s] for s in sorted(names)]
        decoder = [decoder_stage_name(s) for s in DECODER_STRIDES]
        return {"encoder": encoder, "decoder": decoder[:-1], "teacher": decoder[-1]}

    def probe_input_shape(self):
        shape = list(self.input_shape_arg)
        spatial = (0, 1) if self.data_format == "channels_last" else (1, 2)
        for axis in spatial:
            if shape[axis] is None:
                shape[axis] = 64
        return (1,) + tuple(shape)

    def call(self, inputs, training=None, mask=None, **kwargs):
        shape = getattr(inputs, "shape", None)
        if shape is not None and len(shape) == 4:
            spatial = shape[1:3] if self.data_format == "channels_last" else shape[2:4]
            for size in spatial:
                if size is not None and size % 32:
                    raise ValueError(
                        f"{type(self).__name__} '{self.name}' needs height and "
                        f"width that are multiples of 32; received shape "
                        f"{tuple(shape)}. Resize or pad the images."
                    )
        return super().call(inputs, training=training, mask=mask, **kwargs)

    @classmethod
    def input_size_multiple(cls, config):
        """Height and width of the input must be multiples of this: the
        encoder's output stride, 32."""
        return 32

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.input_shape_arg),
            "num_classes": self.num_classes,
            "encoder": self.encoder,
            # The saved file carries the weights: never re-fetched on load.
            "encoder_weights": None,
            # A model saved while its encoder is frozen loads frozen, so that
            # its optimizer state (built on the decoder's variables) fits.
            "encoder_trainable": self.encoder_trainable,
            "input_scale": self.input_scale,
            "decoder_widths": list(self.decoder_widths),
            "pu_stages": list(self.pu_stages),
            "blocks_per_stage": self.blocks_per_stage,
            "upsampling": self.upsampling,
            "data_format": self.data_format,
            "compute_data_format": self.compute_data_format_arg,
            "batchnorm_momentum": self.batchnorm_momentum,
            "pu_epsilon": self.pu_epsilon,
            "pu_clip_value": self.pu_clip_value,
            "pu_clip_mode": self.pu_clip_mode,
            "pu_stabilized": self.pu_stabilized,
            "deep_supervision": self.deep_supervision,
            "dtype": _serialize_dtype(self.dtype_arg),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_pu")
@register_model(display_name="PU-UNet (EfficientNet-Lite0 encoder)",
                aliases=("pu_unet_efficientnet_lite0", "encoder_pu_unet"),
                tags=("pu-unet", "efficientnet-lite0"), depthwise=True)
class EncoderPUUNet(EncoderUNet):
    """PU-UNet on a pretrained EfficientNet-Lite0 encoder.

    `EncoderUNet` whose lowest-resolution decoder stages (by default the
    bridge at stride 32 and the stride-16 stage) are product-unit residual
    blocks. Same parameters as `EncoderResUNet` with the same arguments.

    Args:
        pu_stages: output strides of the product-unit stages. Defaults to
            `(32, 16)`.
        input_shape, num_classes, encoder, encoder_weights, input_scale,
        decoder_widths, blocks_per_stage, upsampling, data_format,
        compute_data_format, batchnorm_momentum, pu_epsilon, pu_clip_value,
        pu_clip_mode, pu_stabilized, dtype, name: see `EncoderUNet`.

    Example:

    ```python
    from keras_pu.models.efficientnet_lite import EncoderPUUNet

    model = EncoderPUUNet(input_shape=(256, 256, 3))  # ImageNet encoder
    ```
    """

    def __init__(self, pu_stages=(32, 16), name="encoder_pu_unet", **kwargs):
        super().__init__(pu_stages=pu_stages, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="keras_pu")
@register_model(display_name="ResUNet (EfficientNet-Lite0 encoder)",
                aliases=("resunet_efficientnet_lite0", "encoder_res_unet"),
                tags=("residual-unet", "efficientnet-lite0"), depthwise=True)
class EncoderResUNet(EncoderUNet):
    """ResUNet on a pretrained EfficientNet-Lite0 encoder: the matched
    baseline of `EncoderPUUNet` (plain residual blocks in every stage).

    Args:
        input_shape, num_classes, encoder, encoder_weights, input_scale,
        decoder_widths, blocks_per_stage, upsampling, data_format,
        compute_data_format, batchnorm_momentum, dtype, name: see
            `EncoderUNet`.

    Example:

    ```python
    from keras_pu.models.efficientnet_lite import EncoderResUNet

    model = EncoderResUNet(input_shape=(256, 256, 3))  # ImageNet encoder
    ```
    """

    def __init__(self, name="encoder_res_unet", **kwargs):
        super().__init__(pu_stages=(), name=name, **kwargs)

    def get_config(self):
        config = super().get_config()
        for key in (
            "pu_stages", "pu_epsilon", "pu_clip_value", "pu_clip_mode",
            "pu_stabilized",
        ):
            config.pop(key)
        return config


class UnfreezeEncoder(keras.callbacks.Callback):
    """Trains an `EncoderUNet` with its encoder frozen for the first
    `epochs` epochs, then unfrozen.

    At the start of each epoch before `epochs` the encoder is frozen
    (weights fixed, batch normalisation in inference mode), from epoch
    `epochs` on it is trainable. The callback acts only when the encoder's
    state differs from the one the epoch needs, so a run resumed from a
    checkpoint (which saves the frozen state with the model) continues
    exactly: `fit(..., initial_epoch=k)` with k >= `epochs` leaves a loaded
    trainable encoder and its optimizer alone. At each change the optimizer
    is replaced by a fresh one with the same configuration, built on the
    new set of trainable variables (JAX's optimizer step needs exactly the
    variables it was built with); the step count (`iterations`, hence
    learning-rate schedules) carries over, the optimizer's slot variables
    (e.g. Adam's moments) start again from zero.

    Args:
        epochs: number of epochs with the frozen encoder. Defaults to `2`.
        configure_optimizer: optional function called with each fresh
            optimizer before it is built, for settings that are not part of
            an optimizer's config (e.g. `exclude_from_weight_decay`).

    Example:

    ```python
    model.fit(x, y, epochs=20, callbacks=[UnfreezeEncoder(epochs=3)])
    ```
    """

    def __init__(self, epochs=2, configure_optimizer=None):
        super().__init__()
        self.configure_optimizer = configure_optimizer
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(
                f"UnfreezeEncoder: `epochs` must be an integer >= 0. "
                f"Received: epochs={epochs!r}"
            )
        self.epochs = epochs

    def on_train_begin(self, logs=None):
        if not hasattr(self.model, "set_encoder_trainable"):
            raise ValueError(
                "UnfreezeEncoder needs a model with a pretrained encoder "
                f"(EncoderUNet); got {type(self.model).__name__}."
            )

    def on_epoch_begin(self, epoch, logs=None):
        trainable = epoch >= self.epochs
        if self.model.encoder_trainable != trainable:
            self._set_encoder_trainable(trainable)

    def _set_encoder_trainable(self, trainable):
        model = self.model
        model.set_encoder_trainable(trainable)
        old = model.optimizer
        new = old.__class__.from_config(old.get_config())
        if self.configure_optimizer is not None:
            self.configure_optimizer(new)
        new.build(model.trainable_variables)
        new.iterations.assign(old.iterations)
        model.optimizer = new
        model.make_train_function(force=True)

    def get_config(self):
        return {"epochs": self.epochs}


def _encoder_layer_names(model):
    """Names of the encoder layers: those from the normalisation layer to
    the last encoder feature, in graph order (they carry no decoder name)."""
    names = []
    for layer in model.layers:
        if layer.name in ("image", "to_compute_layout"):
            continue
        if layer.name.startswith("decoder_stage_") or layer.name in (
            "logits", "to_data_format",
        ):
            continue
        names.append(layer.name)
    return names


def _check_input_shape(input_shape, data_format, cls_name):
    try:
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"{cls_name}: `input_shape` must be 3 ints or None, e.g. "
            f"(256, 256, 3). Received: input_shape={input_shape!r}"
        ) from None
    if len(input_shape) != 3:
        raise ValueError(
            f"{cls_name}: `input_shape` needs 3 entries ({data_format}); "
            f"received input_shape={input_shape!r}"
        )
    if data_format == "channels_last":
        spatial, channels = input_shape[:2], input_shape[2]
    else:
        spatial, channels = input_shape[1:], input_shape[0]
    if channels != 3:
        raise ValueError(
            f"{cls_name}: the ImageNet encoder takes RGB images (3 channels); "
            f"received input_shape={input_shape!r}. Convert grayscale images "
            "to RGB (keras-pu's data pipeline does)."
        )
    for size in spatial:
        if size is not None and (size <= 0 or size % 32):
            raise ValueError(
                f"{cls_name}: spatial size {size} in input_shape="
                f"{input_shape!r} is not a positive multiple of 32 (the "
                f"encoder's output stride). Use e.g. {max(32, size // 32 * 32)}"
                f" or {(size // 32 + 1) * 32}."
            )
    return input_shape


def _serialize_dtype(dtype):
    if dtype is None or isinstance(dtype, str):
        return dtype
    return keras.dtype_policies.serialize(dtype)
