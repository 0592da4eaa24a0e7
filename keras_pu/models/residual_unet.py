"""Residual U-Nets: the plain ResUNet and the product-unit PU-UNet."""

import keras

from keras_pu.layers._utils import standardize_compute_data_format
from keras_pu.layers._utils import standardize_data_format
from keras_pu.layers.product_unit import validate_stabilization
from keras_pu.layers.residual_block import ProductUnitResidualBlock
from keras_pu.layers.residual_block import ResidualBlock
from keras_pu.models import unet_builder
from keras_pu.models.registry import register_model
from keras_pu.models.segmentation_model import SegmentationModel
from keras_pu.models.unet_builder import UPSAMPLING_MODES


def resolve_widths(widths, depth):
    """Returns the per-level widths, a tuple of `depth + 1` ints.

    `widths` is either an int (the width of level 0, doubled at each level)
    or a sequence with one width per level; `depth` may be omitted when the
    sequence gives it.
    """
    if isinstance(widths, int):
        if depth is None:
            depth = 4
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(
                f"`depth` must be an integer >= 1. Received: depth={depth!r}"
            )
        widths = tuple(widths * 2**level for level in range(depth + 1))
    else:
        try:
            widths = tuple(widths)
        except TypeError:
            raise ValueError(
                "`widths` must be an int or a sequence of ints. Received: "
                f"widths={widths!r}"
            ) from None
        if depth is None:
            depth = len(widths) - 1
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(
                f"`depth` must be an integer >= 1. Received: depth={depth!r}"
            )
        if len(widths) != depth + 1:
            raise ValueError(
                f"`widths` needs one width per level, depth + 1 = {depth + 1}"
                f" values for depth={depth}; received {len(widths)}: "
                f"widths={widths!r}"
            )
    bad = [w for w in widths if not isinstance(w, int) or w <= 0]
    if bad:
        raise ValueError(
            "Every width must be a positive integer; received "
            f"widths={widths!r} (bad: {bad!r})."
        )
    return widths, depth


@keras.saving.register_keras_serializable(package="keras_pu")
@register_model(display_name="Residual U-Net", aliases=("residualunet", "residual_unet"),
                tags=("residual-unet",))
class ResidualUNet(SegmentationModel):
    """Residual U-Net with product-unit blocks in chosen stages.

    Levels are numbered by resolution: level 0 is full resolution, level
    `depth` (the bottleneck) is `2**depth` times smaller. Each encoder level
    is `blocks_per_stage` residual blocks (the first one of levels >= 1 has
    stride 2); each decoder level upsamples, concatenates the encoder skip
    and applies `blocks_per_stage` residual blocks. In the levels listed in
    `pu_stages`, encoder and decoder blocks are `ProductUnitResidualBlock`s;
    elsewhere they are `ResidualBlock`s. A 1x1 convolution gives the logits
    (float32 under any dtype policy).

    `ResUNet` and `PUUNet` are this model with no PU stages and with PU
    stages in the low-resolution levels; with the same other arguments they
    have exactly the same parameters.

    Intermediate features: the output of each level's last block is a layer
    named `encoder_stage_{level}` / `decoder_stage_{level}`;
    `feature_layers` lists their SelfReg roles. `predict` returns the logits
    only.

    Args:
        input_shape: `(height, width, channels)` (or channels first with
            `data_format="channels_first"`); height and width may be `None`.
            Known sizes must be multiples of `2**depth`. Defaults to
            `(None, None, 3)`.
        num_classes: number of output channels. `1` means binary
            segmentation with one logit per pixel (use a sigmoid /
            `from_logits=True`); `> 1` gives per-class logits. Defaults to
            `1`.
        widths: int (width of level 0, doubled per level) or a sequence with
            one width per level. Defaults to `16` (16-32-64-128-256 at depth
            4).
        depth: number of downsampling steps. Defaults to `None`: 4 for an
            int `widths`, `len(widths) - 1` for a sequence.
        pu_stages: levels whose blocks are product-unit blocks, each in
            `[0, depth]`. Defaults to `()`.
        blocks_per_stage: residual blocks per level. Defaults to `1`.
        upsampling: `"transpose"` (2x2 transposed convolution),
            `"bilinear"` or `"nearest"` (resize, then 1x1 convolution).
            Defaults to `"transpose"`.
        data_format: `"channels_last"` or `"channels_first"`: the layout of
            the input images and of the logits. Defaults to
            `keras.config.image_data_format()`.
        compute_data_format: the layout the layers compute in, `None`,
            `"channels_last"` or `"channels_first"`. When it differs from
            `data_format`, the input is transposed once on entry and the
            logits once on exit (weights are the same in both layouts, so
            saved models load either way). Defaults to `None`: the fastest
            layout for the backend, `"channels_first"` under PyTorch (it
            avoids two copies of every activation per convolution, ~1.8x
            faster on CPU) and `data_format` under TensorFlow and JAX. The
            intermediate features (`feature_layers`) are in this layout; the
            resolved value is the `compute_data_format` attribute.
        batchnorm_momentum: momentum of every batch normalisation. Defaults
            to `0.99`.
        pu_epsilon, pu_clip_value, pu_clip_mode, pu_stabilized: settings of
            the product units (see `ProductUnit2D`). Defaults to `1e-3`,
            `6.0`, `"hard"`, `True`.
        dtype: dtype policy of the layers (e.g. `"mixed_float16"`). Defaults
            to the global policy.
        name: model name.
        **kwargs: other `keras.Model` arguments.

    Example:

    ```python
    import numpy as np
    import keras_pu

    model = keras_pu.models.ResidualUNet(
        input_shape=(128, 128, 3), widths=8, depth=3, pu_stages=(2, 3)
    )
    logits = model.predict(np.zeros((1, 128, 128, 3), "float32"))
    ```
    """

    def __init__(
        self,
        input_shape=(None, None, 3),
        num_classes=1,
        widths=16,
        depth=None,
        pu_stages=(),
        blocks_per_stage=1,
        upsampling="transpose",
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
        widths, depth = resolve_widths(widths, depth)
        if not isinstance(deep_supervision, bool):
            raise ValueError(
                f"{cls_name}: `deep_supervision` must be True or False. "
                f"Received: deep_supervision={deep_supervision!r}"
            )
        if deep_supervision and depth < 3:
            raise ValueError(
                f"{cls_name}: deep supervision needs depth >= 3 (it "
                "supervises the decoder levels between the coarsest and the "
                f"output); received depth={depth}."
            )
        data_format = standardize_data_format(data_format)
        input_shape = _check_input_shape(input_shape, depth, data_format)
        # `data_format` is the layout of the images and logits; the layers
        # compute in `layout` (see standardize_compute_data_format).
        layout = standardize_compute_data_format(
            compute_data_format, data_format
        )
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"{cls_name}: `num_classes` must be an integer >= 1 (1 for "
                f"binary segmentation). Received: num_classes={num_classes!r}"
            )
        pu_stages = _check_pu_stages(pu_stages, depth)
        if not isinstance(blocks_per_stage, int) or blocks_per_stage < 1:
            raise ValueError(
                f"{cls_name}: `blocks_per_stage` must be an integer >= 1. "
                f"Received: blocks_per_stage={blocks_per_stage!r}"
            )
        if upsampling not in UPSAMPLING_MODES:
            raise ValueError(
                f"{cls_name}: `upsampling` must be one of {UPSAMPLING_MODES}"
                f". Received: upsampling={upsampling!r}"
            )
        validate_stabilization(pu_epsilon, pu_clip_value, pu_clip_mode)

        block_args = dict(
            data_format=layout,
            batchnorm_momentum=batchnorm_momentum,
            dtype=dtype,
        )
        pu_args = dict(
            pu_epsilon=pu_epsilon,
            pu_clip_value=pu_clip_value,
            pu_clip_mode=pu_clip_mode,
            pu_stabilized=pu_stabilized,
        )

        def make_block(filters, level, strides, name):
            if level in pu_stages:
                return ProductUnitResidualBlock(
                    filters, strides=strides, name=name, **block_args, **pu_args
                )
            return ResidualBlock(filters, strides=strides, name=name, **block_args)

        image = keras.Input(shape=input_shape, name="image")
        x = unet_builder.to_compute_layout(image, data_format, layout, dtype)
        skips = unet_builder.residual_encoder(
            widths,
            make_block,
            blocks_per_stage,
            data_format=layout,
            batchnorm_momentum=batchnorm_momentum,
            dtype=dtype,
        )(x)
        x = unet_builder.unet_decoder(
            skips,
            widths[:-1],
            make_block,
            blocks_per_stage,
            upsampling=upsampling,
            data_format=layout,
            dtype=dtype,
        )
        logits = unet_builder.segmentation_head(x, num_classes, layout)
        logits = unet_builder.to_data_format(logits, data_format, layout)

        super().__init__(inputs=image, outputs=logits, name=name, **kwargs)

        self.input_shape_arg = tuple(input_shape)
        self.num_classes = num_classes
        self.widths = widths
        self.depth = depth
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
        if deep_supervision:
            self._add_deep_supervision(
                [(unet_builder.decoder_stage_name(level), 2**level)
                 for level in range(1, depth - 1)],
                num_classes,
                data_format,
                layout,
            )

    @property
    def feature_layers(self):
        return unet_builder.unet_feature_layers(self.depth + 1, self.depth)

    @classmethod
    def input_size_multiple(cls, config):
        """Height and width of the input must be multiples of this
        (`2**depth`) for a model built with constructor arguments
        `config`; the defaults are this class's own."""
        import inspect

        defaults = inspect.signature(cls.__init__).parameters
        _, depth = resolve_widths(
            config.get("widths", defaults["widths"].default),
            config.get("depth", defaults["depth"].default),
        )
        return 2**depth

    def probe_input_shape(self):
        shape = list(self.input_shape_arg)
        multiple = 2**self.depth
        spatial = (0, 1) if self.data_format == "channels_last" else (1, 2)
        for axis in spatial:
            if shape[axis] is None:
                shape[axis] = 4 * multiple
        return (1,) + tuple(shape)

    def call(self, inputs, training=None, mask=None, **kwargs):
        self._check_call_input(inputs)
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def _check_call_input(self, inputs):
        shape = getattr(inputs, "shape", None)
        if shape is None:
            return
        shape = tuple(shape)
        name = type(self).__name__
        if len(shape) != 4:
            raise ValueError(
                f"{name} '{self.name}' expects a batch of images of rank 4 "
                f"(batch, {self._layout()}); received shape {shape}."
            )
        channel_axis = -1 if self.data_format == "channels_last" else 1
        expected = self.input_shape_arg[-1 if channel_axis == -1 else 0]
        got = shape[channel_axis]
        if got is not None and got != expected:
            raise ValueError(
                f"{name} '{self.name}' expects {expected}-channel images "
                f"(input_shape={self.input_shape_arg}); received shape "
                f"{shape} with {got} channels. Convert the images (e.g. "
                "grayscale to RGB) or build the model with "
                f"input_shape=(..., {got})."
            )
        spatial = shape[1:3] if channel_axis == -1 else shape[2:4]
        multiple = 2**self.depth
        for size in spatial:
            if size is not None and size % multiple:
                raise ValueError(
                    f"{name} '{self.name}' (depth={self.depth}) needs height "
                    f"and width that are multiples of {multiple}; received "
                    f"shape {shape}. Resize or pad the images."
                )

    def _layout(self):
        if self.data_format == "channels_last":
            return "height, width, channels"
        return "channels, height, width"

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.input_shape_arg),
            "num_classes": self.num_classes,
            "widths": list(self.widths),
            "depth": self.depth,
            "pu_stages": list(self.pu_stages),
            "blocks_per_stage": self.blocks_per_stage,
            "upsampling": self.upsampling,
            "data_format": self.data_format,
            # The argument, not the resolved layout: a model saved under one
            # backend computes in the fastest layout of the backend that
            # loads it.
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
@register_model(display_name="ResUNet", aliases=("resunet", "res_unet"),
                tags=("residual-unet",))
class ResUNet(ResidualUNet):
    """Residual U-Net: the matched baseline of `PUUNet`.

    `ResidualUNet` with no product-unit stages: every block is a plain
    `ResidualBlock`. With the same arguments as a `PUUNet` it has exactly
    the same parameters; only the second convolution of the PU-UNet's
    low-resolution blocks differs.

    Args:
        input_shape, num_classes, widths, depth, blocks_per_stage,
        upsampling, data_format, compute_data_format, batchnorm_momentum,
        deep_supervision, dtype, name: see
            `ResidualUNet`.

    Example:

    ```python
    import numpy as np
    import keras_pu

    model = keras_pu.models.ResUNet(input_shape=(256, 256, 3))
    logits = model.predict(np.zeros((1, 256, 256, 3), "float32"))
    ```
    """

    def __init__(
        self,
        input_shape=(None, None, 3),
        num_classes=1,
        widths=16,
        depth=None,
        blocks_per_stage=1,
        upsampling="transpose",
        data_format=None,
        compute_data_format=None,
        batchnorm_momentum=0.99,
        dtype=None,
        name="res_unet",
        **kwargs,
    ):
        super().__init__(
            input_shape=input_shape,
            num_classes=num_classes,
            widths=widths,
            depth=depth,
            pu_stages=(),
            blocks_per_stage=blocks_per_stage,
            upsampling=upsampling,
            data_format=data_format,
            compute_data_format=compute_data_format,
            batchnorm_momentum=batchnorm_momentum,
            dtype=dtype,
            name=name,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        for key in (
            "pu_stages",
            "pu_epsilon",
            "pu_clip_value",
            "pu_clip_mode",
            "pu_stabilized",
        ):
            config.pop(key)
        return config


@keras.saving.register_keras_serializable(package="keras_pu")
@register_model(display_name="PU-UNet", aliases=("pu_unet", "puunet"),
                tags=("pu-unet",))
class PUUNet(ResidualUNet):
    """PU-UNet: a residual U-Net with stable product-unit blocks in its
    low-resolution stages.

    `ResidualUNet` whose blocks in `pu_stages` (by default the level just
    above the bottleneck and the bottleneck, `(depth - 1, depth)`) are
    `ProductUnitResidualBlock`s. Same parameters as the `ResUNet` built with
    the same arguments.

    Args:
        pu_stages: levels with product-unit blocks. Defaults to `None`,
            meaning `(depth - 1, depth)`.
        input_shape, num_classes, widths, depth, blocks_per_stage,
        upsampling, data_format, compute_data_format, batchnorm_momentum,
        pu_epsilon, pu_clip_value, pu_clip_mode, pu_stabilized,
        deep_supervision, dtype, name: see
            `ResidualUNet`.

    Example:

    ```python
    import numpy as np
    import keras_pu

    model = keras_pu.models.PUUNet(input_shape=(256, 256, 3))
    logits = model.predict(np.zeros((1, 256, 256, 3), "float32"))
    ```
    """

    def __init__(
        self,
        input_shape=(None, None, 3),
        num_classes=1,
        widths=16,
        depth=None,
        pu_stages=None,
        blocks_per_stage=1,
        upsampling="transpose",
        data_format=None,
        compute_data_format=None,
        batchnorm_momentum=0.99,
        pu_epsilon=1e-3,
        pu_clip_value=6.0,
        pu_clip_mode="hard",
        pu_stabilized=True,
        dtype=None,
        name="pu_unet",
        **kwargs,
    ):
        if pu_stages is None:
            _, resolved_depth = resolve_widths(widths, depth)
            pu_stages = (resolved_depth - 1, resolved_depth)
        super().__init__(
            input_shape=input_shape,
            num_classes=num_classes,
            widths=widths,
            depth=depth,
            pu_stages=pu_stages,
            blocks_per_stage=blocks_per_stage,
            upsampling=upsampling,
            data_format=data_format,
            compute_data_format=compute_data_format,
            batchnorm_momentum=batchnorm_momentum,
            pu_epsilon=pu_epsilon,
            pu_clip_value=pu_clip_value,
            pu_clip_mode=pu_clip_mode,
            pu_stabilized=pu_stabilized,
            dtype=dtype,
            name=name,
            **kwargs,
        )


def _check_input_shape(input_shape, depth, data_format):
    try:
        input_shape = tuple(
            None if d is None else int(d) for d in input_shape
        )
    except (TypeError, ValueError):
        raise ValueError(
            "`input_shape` must be a sequence of 3 ints or None, e.g. "
            f"(256, 256, 3). Received: input_shape={input_shape!r}"
        ) from None
    if len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must have 3 entries (height, width, channels for "
            f"{data_format}); received input_shape={input_shape!r}"
        )
    if data_format == "channels_last":
        spatial, channels = input_shape[:2], input_shape[2]
    else:
        spatial, channels = input_shape[1:], input_shape[0]
    if channels is None or channels <= 0:
        raise ValueError(
            "The channel count in `input_shape` must be a known positive "
            f"integer ({data_format}); received input_shape={input_shape!r}"
        )
    multiple = 2**depth
    for size in spatial:
        if size is not None and (size <= 0 or size % multiple):
            raise ValueError(
                f"Spatial size {size} in input_shape={input_shape!r} is not "
                f"a positive multiple of 2**depth = {multiple} (depth="
                f"{depth}): every level halves the size. Use a size such as "
                f"{max(multiple, (size // multiple) * multiple)} or "
                f"{(size // multiple + 1) * multiple}, or a smaller depth."
            )
    return input_shape


def _check_pu_stages(pu_stages, depth):
    try:
        stages = tuple(int(s) for s in pu_stages)
    except (TypeError, ValueError):
        raise ValueError(
            "`pu_stages` must be a sequence of level indices. Received: "
            f"pu_stages={pu_stages!r}"
        ) from None
    unknown = [s for s in stages if not 0 <= s <= depth]
    if unknown:
        raise ValueError(
            f"Unknown stage index {unknown[0]} in pu_stages={pu_stages!r}: "
            f"with depth={depth} the stages are 0 (full resolution) to "
            f"{depth} (bottleneck)."
        )
    return tuple(sorted(set(stages)))


def _serialize_dtype(dtype):
    if dtype is None or isinstance(dtype, str):
        return dtype
    return keras.dtype_policies.serialize(dtype)
