"""SelfReg-UNet's two auxiliary losses (Zhu et al., MICCAI 2024), in keras.ops.

Both take channels-last feature maps `(batch, height, width, channels)` and
return a float32 scalar; both are jit-compatible on every backend.
"""

import keras
from keras import ops

from keras_pu.replicas import cross_replica_sum


def _spatial(shape):
    return tuple(shape[1:3])


def pool_factors(student_shape, teacher_shape):
    """Integer average-pooling factors that bring the teacher to the
    student's spatial size: `(teacher_h // student_h, teacher_w // student_w)`.

    Raises a ValueError naming both shapes when a size is unknown or the
    ratio is not an integer >= 1.
    """
    factors = []
    for s, t in zip(_spatial(student_shape), _spatial(teacher_shape)):
        if s is None or t is None:
            raise ValueError(
                "SCR needs the spatial sizes of the student and the teacher "
                f"to derive the pooling ratio; got student {student_shape} and"
                f" teacher {teacher_shape}. Pass `pool_size` explicitly."
            )
        if t < s or t % s:
            raise ValueError(
                f"SCR: the teacher's spatial size {_spatial(teacher_shape)} is"
                " not an integer multiple of the student's "
                f"{_spatial(student_shape)} (student shape {student_shape}, "
                f"teacher shape {teacher_shape}). SelfReg pools the teacher "
                "down by integer ratios only."
            )
        factors.append(t // s)
    return tuple(factors)


def random_channels(num_channels, k, seed):
    """`k` distinct channel indices out of `num_channels`, uniformly at random
    (the first `k` of a random permutation)."""
    keys = keras.random.uniform((num_channels,), seed=seed)
    return ops.argsort(keys)[:k]


def _selection(indices, num_channels):
    """`(num_channels, k)` matrix whose column j is one-hot at `indices[j]`:
    `F @ selection` picks the channels `indices` of `F` (as rows x channels).

    Selecting and pairing channels by a small matrix product, instead of
    gathering them, keeps the forward and backward passes to one product
    each on the feature map, which every backend runs efficiently.
    """
    return ops.one_hot(ops.cast(indices, "int32"), num_channels, axis=0)


def _rows(x):
    """`(B, H, W, C)` -> `(B*H*W, C)`."""
    return ops.reshape(x, (-1, x.shape[-1]))


def scr_loss(student, teacher, seed=None, pool_size=None, channels=None):
    """Semantic consistency regularisation (SCR).

    The teacher (the last decoder feature) is average-pooled down to the
    student's spatial size; `k = min(C_student, C_teacher)` channels are drawn
    at random from each, independently, and paired in order; the loss is the
    mean squared error over batch, the `k` channels and space. The teacher is
    stop-gradient: only the student learns from it.

    Args:
        student: `(B, H, W, C_s)` feature map.
        teacher: `(B, r*H, r*W, C_t)` feature map, an integer multiple `r`
            (per axis, >= 1) of the student's size.
        seed: int, `keras.random.SeedGenerator` or `None` for the channel
            draw. Pass a `SeedGenerator` to draw a fresh pairing on every call
            (required under `jax.jit`); an int gives the same pairing every
            time.
        pool_size: optional `(r_h, r_w)`; derived from the static shapes when
            omitted (and then an error names the shapes if they are not
            integer multiples).
        channels: optional `(student_indices, teacher_indices)`, two int
            tensors of equal length `k`, to fix the pairing (for tests and
            reproducible analysis) instead of drawing it.

    Returns:
        float32 scalar.

    Example:

    ```python
    import numpy as np
    import keras, keras_pu

    student = np.random.rand(2, 16, 16, 32).astype("float32")
    teacher = np.random.rand(2, 64, 64, 16).astype("float32")
    loss = keras_pu.selfreg.scr_loss(
        student, teacher, seed=keras.random.SeedGenerator(0)
    )
    ```
    """
    student = ops.cast(student, "float32")
    teacher = ops.stop_gradient(ops.cast(teacher, "float32"))
    if pool_size is None:
        pool_size = pool_factors(student.shape, teacher.shape)
    pool_size = tuple(int(p) for p in pool_size)
    teacher = average_pool_by(teacher, pool_size)
    return scr_loss_same_size(student, teacher, seed, channels)


def average_pool_by(x, factors):
    """Average-pools `x` by integer `factors = (r_h, r_w)` (non-overlapping)."""
    factors = tuple(int(f) for f in factors)
    if factors == (1, 1):
        return x
    return ops.average_pool(x, factors, strides=factors, padding="valid")


def scr_loss_same_size(student, teacher, seed=None, channels=None):
    """SCR against a (stop-gradient) teacher already pooled to the student's
    spatial size; see `scr_loss`."""
    c_s, c_t = student.shape[-1], teacher.shape[-1]
    if channels is None:
        k = min(c_s, c_t)
        student_idx = random_channels(c_s, k, seed)
        teacher_idx = random_channels(c_t, k, seed)
    else:
        student_idx, teacher_idx = channels
    # Row n, column j: S[n, s_j] - T[n, t_j].
    difference = ops.matmul(
        _rows(student), _selection(student_idx, c_s)
    ) - ops.matmul(_rows(teacher), _selection(teacher_idx, c_t))
    return ops.mean(ops.square(difference))


def ifd_loss(feature):
    """Internal feature distillation (IFD).

    Each channel gets a score: the mean over batch and space of the feature
    divided by the L2 norm of that channel's spatial plane (per image,
    floored at 1e-12). Channels are ranked by score, highest first, and the
    loss is the mean squared error between the first half and the second
    half of the ranking (rank `j` against rank `C // 2 + j`). Both halves
    receive gradients (no stop-gradient), as in the authors' code.

    Odd channel counts: the halves have `C // 2` channels each, so the
    lowest-ranked channel is left out. Fewer than 2 channels give 0.

    The scores come from per-plane sums (no normalised copy of the feature
    map is made).

    Args:
        feature: `(B, H, W, C)` feature map.

    Returns:
        float32 scalar.

    Example:

    ```python
    import numpy as np
    import keras_pu

    feature = np.random.rand(2, 16, 16, 32).astype("float32")
    loss = keras_pu.selfreg.ifd_loss(feature)
    ```
    """
    feature = ops.cast(feature, "float32")
    channels = feature.shape[-1]
    half = channels // 2
    if half == 0:
        return ops.zeros((), "float32")
    plane_sum = ops.sum(feature, axis=(1, 2))  # (B, C)
    plane_sq = ops.sum(ops.square(feature), axis=(1, 2))  # (B, C)
    # mean over batch and space of F / ||plane||, per channel
    scores = ops.sum(
        plane_sum / ops.maximum(ops.sqrt(plane_sq), 1e-12), axis=0
    )
    # Under data parallelism each replica holds part of the batch: the
    # ranking uses the scores of the global batch, so that every replica
    # pairs the same channels as a single process would.
    scores = cross_replica_sum(ops.stop_gradient(scores))
    order = ops.argsort(-scores)
    # Column j of the pairing matrix is +1 at rank j and -1 at rank half + j.
    pairing = _selection(order[:half], channels) - _selection(
        order[half : 2 * half], channels
    )
    difference = ops.matmul(_rows(feature), pairing)
    return ops.mean(ops.square(difference))
