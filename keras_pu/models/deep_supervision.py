"""Deep supervision: auxiliary segmentation heads on coarser decoder stages,
trained against downsampled masks and ignored at inference.

This follows nnU-Net (Isensee et al., Nature Methods 2021): every decoder
stage but the coarsest gets a 1x1 convolution head, and the training loss
adds the compiled segmentation loss of each head, against the mask brought
down to that stage's resolution, with weight `1 / 2**i` for the head `i`
steps below full resolution. The main output keeps weight 1 (nnU-Net also
divides all weights by their sum; under Adam or AdamW that only rescales
the reported loss, so keras-pu leaves the main loss as it is and reports
the auxiliary term as `deep_supervision_loss`).

Masks are brought down by average pooling, so a coarse cell's target is
the fraction of foreground it covers (a soft target that BCE and soft Dice
accept, with no aliasing of thin structures); integer class-index masks are
subsampled instead (nearest), since averaging class indices is meaningless.

The heads belong to the model (its config has `deep_supervision=True`, its
saved file holds their weights, so an interrupted run resumes exactly), but
they are not part of the inference graph: `predict`, `evaluate` and exports
compute and return the main logits only.
"""

from keras import ops


def auxiliary_weights(num_heads):
    """Loss weights of `num_heads` auxiliary heads, finest first:
    `0.5, 0.25, ...` (the main output has weight 1)."""
    return [0.5 ** (i + 1) for i in range(num_heads)]


def downsample_target(y_true, factor, data_format="channels_last", sparse=False):
    """The mask `y_true` at `1 / factor` of its resolution.

    Args:
        y_true: masks, `(batch, height, width, channels)` (or channels
            first), or `(batch, height, width)`.
        factor: integer downsampling factor (a power of two for the U-Nets).
        data_format: layout of `y_true`.
        sparse: `True` for integer class indices (subsampled at the centre
            of each `factor x factor` cell); `False` for binary, soft or
            one-hot masks (averaged over each cell).

    Returns:
        The downsampled masks, with the rank of `y_true`.
    """
    factor = int(factor)
    if factor == 1:
        return y_true
    rank = len(y_true.shape)
    if rank == 3:
        channel_axis = -1 if data_format == "channels_last" else 1
        return ops.squeeze(
            downsample_target(
                ops.expand_dims(y_true, channel_axis), factor, data_format, sparse
            ),
            axis=channel_axis,
        )
    if rank != 4:
        raise ValueError(
            "Deep supervision: masks must have rank 3 or 4 (batch, height, "
            f"width[, channels]); received shape {tuple(y_true.shape)}."
        )
    if sparse:
        offset = factor // 2
        if data_format == "channels_last":
            return y_true[:, offset::factor, offset::factor, :]
        return y_true[:, :, offset::factor, offset::factor]
    return ops.average_pool(
        ops.cast(y_true, "float32"),
        pool_size=factor,
        strides=factor,
        padding="valid",
        data_format=data_format,
    )


def is_sparse_target(y_true, num_classes, data_format="channels_last"):
    """Whether `y_true` holds class indices rather than per-class masks: an
    integer dtype, or a multi-class model whose masks have one channel."""
    if "int" in str(y_true.dtype):
        return True
    if num_classes <= 1:
        return False
    if len(y_true.shape) == 3:
        return True
    channel_axis = -1 if data_format == "channels_last" else 1
    return y_true.shape[channel_axis] == 1
