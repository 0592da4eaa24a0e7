"""The U-Net graph, in reusable parts: encoder stages, decoder stages, head,
and the layer names SelfReg reads.

An architecture is built from an *encoder* and a *block factory*:

- the encoder is any callable `encoder(x) -> skips` that takes the image
  tensor (already in the compute layout) and returns its skip features,
  highest resolution first and the bottleneck last, each half the size of
  the one before. `residual_encoder` is the ResUNet/PU-UNet encoder; a
  pretrained backbone is another callable returning its stage outputs.
- the block factory `make_block(filters, level, strides, name)` returns the
  layer of one block at a level (the PU-UNet returns product-unit blocks at
  its PU levels, plain residual blocks elsewhere).

`unet_decoder` then upsamples from the bottleneck, concatenates each skip and
applies `blocks_per_stage` blocks per level, and `segmentation_head` gives
float32 logits. Stage outputs are layers named `encoder_stage_{level}` and
`decoder_stage_{level}`; `unet_feature_layers` gives their SelfReg roles.

Example:

```python
import keras
from keras_pu.layers import ResidualBlock
from keras_pu.models import unet_builder as ub

def make_block(filters, level, strides, name):
    return ResidualBlock(filters, strides=strides, name=name)

image = keras.Input((64, 64, 3))
skips = ub.residual_encoder((8, 16, 32), make_block)(image)
x = ub.unet_decoder(skips, (8, 16), make_block)
logits = ub.segmentation_head(x, num_classes=1)
model = keras.Model(image, logits)
```
"""

import keras

UPSAMPLING_MODES = ("transpose", "bilinear", "nearest")
HEAD_LAYER = "logits"


def encoder_stage_name(level):
    return f"encoder_stage_{level}"


def decoder_stage_name(level):
    return f"decoder_stage_{level}"


def unet_feature_layers(encoder_levels, decoder_levels):
    """SelfReg roles of the stage outputs of a U-Net.

    Args:
        encoder_levels: number of encoder stage outputs (bottleneck
            included).
        decoder_levels: number of decoder stage outputs.

    Returns:
        `{"encoder": [...], "decoder": [...], "teacher": name}`: encoder
        stages from full resolution down; decoder stages from the deepest
        up, except the last one (level 0), which is the teacher: the last
        decoder feature before the head.
    """
    encoder = [encoder_stage_name(level) for level in range(encoder_levels)]
    # Decoder levels run from decoder_levels - 1 up to 0.
    decoder = [decoder_stage_name(level) for level in reversed(range(decoder_levels))]
    return {"encoder": encoder, "decoder": decoder[:-1], "teacher": decoder[-1]}


def stage(x, filters, level, stage_name, make_block, blocks_per_stage=1,
          first_stride=1):
    """`blocks_per_stage` blocks; the last one is named `stage_name` (the
    stage output), the others `{stage_name}_block_{j}`."""
    for j in range(blocks_per_stage):
        last = j == blocks_per_stage - 1
        layer_name = stage_name if last else f"{stage_name}_block_{j}"
        strides = first_stride if j == 0 else 1
        x = make_block(filters, level, strides, layer_name)(x)
    return x


def residual_encoder(widths, make_block, blocks_per_stage=1,
                     data_format="channels_last", batchnorm_momentum=0.99,
                     dtype=None):
    """The ResUNet/PU-UNet encoder: a conv3x3-BN-ReLU stem at `widths[0]`,
    then one stage per level (stride 2 from level 1 on).

    Returns:
        A callable `encoder(x) -> skips` (one tensor per level, full
        resolution first).
    """
    channel_axis = -1 if data_format == "channels_last" else 1

    def encoder(x):
        x = keras.layers.Conv2D(
            widths[0],
            3,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            data_format=data_format,
            dtype=dtype,
            name="stem_conv",
        )(x)
        x = keras.layers.BatchNormalization(
            axis=channel_axis,
            momentum=batchnorm_momentum,
            dtype=dtype,
            name="stem_bn",
        )(x)
        x = keras.layers.ReLU(dtype=dtype, name="stem_relu")(x)
        skips = []
        for level, filters in enumerate(widths):
            x = stage(
                x, filters, level, encoder_stage_name(level), make_block,
                blocks_per_stage, first_stride=1 if level == 0 else 2,
            )
            skips.append(x)
        return skips

    return encoder


def unet_decoder(skips, widths, make_block, blocks_per_stage=1,
                 upsampling="transpose", data_format="channels_last",
                 dtype=None):
    """Decoder stages from the bottleneck (`skips[-1]`) up to the highest
    resolution skip (`skips[0]`).

    Args:
        skips: the encoder's features, full resolution first.
        widths: filters of the decoder stage at each level, one per skip
            but the bottleneck (`len(skips) - 1` values).
        make_block: the block factory (see the module docstring).
        upsampling: `"transpose"` (2x2 transposed convolution),
            `"bilinear"` or `"nearest"` (resize, then 1x1 convolution).

    Returns:
        The output of `decoder_stage_0`, at the resolution of `skips[0]`.
    """
    if len(widths) != len(skips) - 1:
        raise ValueError(
            f"unet_decoder: {len(skips)} skips need {len(skips) - 1} decoder "
            f"widths; received widths={tuple(widths)!r}."
        )
    channel_axis = -1 if data_format == "channels_last" else 1
    x = skips[-1]
    for level in reversed(range(len(widths))):
        stage_name = decoder_stage_name(level)
        if upsampling == "transpose":
            x = keras.layers.Conv2DTranspose(
                widths[level],
                2,
                strides=2,
                data_format=data_format,
                dtype=dtype,
                name=f"{stage_name}_upsample",
            )(x)
        else:
            x = keras.layers.UpSampling2D(
                2,
                interpolation=upsampling,
                data_format=data_format,
                dtype=dtype,
                name=f"{stage_name}_upsample",
            )(x)
            x = keras.layers.Conv2D(
                widths[level],
                1,
                data_format=data_format,
                dtype=dtype,
                name=f"{stage_name}_upsample_proj",
            )(x)
        x = keras.layers.Concatenate(
            axis=channel_axis, dtype=dtype, name=f"{stage_name}_concat"
        )([x, skips[level]])
        x = stage(x, widths[level], level, stage_name, make_block,
                  blocks_per_stage)
    return x


def segmentation_head(x, num_classes, data_format="channels_last"):
    """The 1x1 convolution giving the logits, named `logits` (the layer the
    zoo replaces for another `num_classes`); float32 under any dtype policy
    (mixed-precision guidance)."""
    return keras.layers.Conv2D(
        num_classes,
        1,
        data_format=data_format,
        dtype="float32",
        name=HEAD_LAYER,
    )(x)


def to_compute_layout(x, data_format, compute_data_format, dtype=None):
    """Transposes the input once into the layout the layers compute in
    (no-op when they agree; a view under PyTorch)."""
    if compute_data_format == data_format:
        return x
    return keras.layers.Permute(
        (3, 1, 2) if compute_data_format == "channels_first" else (2, 3, 1),
        dtype=dtype,
        name="to_compute_layout",
    )(x)


def to_data_format(logits, data_format, compute_data_format):
    """Transposes the logits back into the model's `data_format`."""
    if compute_data_format == data_format:
        return logits
    return keras.layers.Permute(
        (2, 3, 1) if compute_data_format == "channels_first" else (3, 1, 2),
        dtype="float32",
        name="to_data_format",
    )(logits)
