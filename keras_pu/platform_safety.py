"""Workarounds for defects of the native libraries under the backends.

One module for everything platform-specific, so that the layers stay
`keras.ops` code and a workaround can be dropped in one place once the
library is fixed. See docs/platform-issues.md and
docs/upstream/onednn-crash.md.

oneDNN strided 1x1 convolution, backward-weights (keras-pu issue #17):
    oneDNN's x86-64 1x1 backward-weights convolutions
    (`jit_1x1:avx512_core` and `jit_1x1:avx2` in float32,
    `jit_bf16_1x1:avx512_core_bf16` in bfloat16) write past their scratchpad
    when the convolution has a stride > 1, a channels-last (nhwc) source and
    fewer input channels than the kernel's channel block (16 with AVX-512, 8
    with AVX2). They first copy the strided source into a compact
    `[pixels][channels]` workspace ("reduce to unit stride"), booked as
    `pixels * channels` elements per thread, but place each chunk of pixels
    at `first_pixel * channel_block`: with 8 channels and a block of 16 every
    chunk after the first half is written beyond the workspace, over the
    heap. The result is a segfault, "double free or corruption" or
    "malloc(): unaligned tcache chunk", usually some steps later. TensorFlow
    (oneDNN 3.7.3) and PyTorch (oneDNN 3.12.0) both ship the defect; JAX
    (XLA) does not use these kernels.

    In the U-Nets it is the stride-2 1x1 shortcut convolution of the first
    block of a level whose input has fewer than 16 channels (widths 4 and 8).

    The workaround computes such a convolution as what it is, a subsampling
    followed by a unit-stride 1x1 convolution: the same function, the same
    weights and exactly the arithmetic of oneDNN's own unit-stride copy, but
    oneDNN sees a stride-1 problem and never takes the faulty path. Every
    other convolution keeps the library's kernels.
"""

import os
import platform

import keras

# The widest channel block of the affected oneDNN kernels (16 float32 lanes
# of AVX-512; the AVX2 kernel's block is 8). With at least this many input
# channels the chunk offset never runs past the workspace.
ONEDNN_1X1_SMALL_CHANNEL_LIMIT = 16

# "auto": route the affected convolutions where the defect can occur
# (TensorFlow or PyTorch on x86-64); "always": route them on every backend
# and machine (the result is the same; used to test the routed path);
# "never": use the library's strided kernel (a oneDNN with the fix, or
# oneDNN switched off).
WORKAROUND_ENV = "KERAS_PU_ONEDNN_1X1_WORKAROUND"
WORKAROUND_MODES = ("auto", "always", "never")

# Backends whose CPU convolutions run on oneDNN (TensorFlow's oneDNN
# kernels are on by default; PyTorch uses mkldnn for CPU convolutions).
ONEDNN_BACKENDS = ("tensorflow", "torch")
X86_64_MACHINES = ("x86_64", "amd64", "x64", "i386", "i686", "x86")


def onednn_1x1_workaround_mode():
    """The mode set by $KERAS_PU_ONEDNN_1X1_WORKAROUND (default "auto")."""
    mode = os.environ.get(WORKAROUND_ENV, "auto").strip().lower() or "auto"
    if mode not in WORKAROUND_MODES:
        raise ValueError(
            f"Environment variable {WORKAROUND_ENV}={mode!r} is not one of "
            f"{WORKAROUND_MODES}. Unset it (auto) or pick one of these."
        )
    return mode


def onednn_may_run_this_op(backend=None, machine=None):
    """Whether the backend's CPU convolutions may be oneDNN's x86 kernels."""
    backend = backend or keras.backend.backend()
    machine = (machine or platform.machine()).lower()
    return backend in ONEDNN_BACKENDS and machine in X86_64_MACHINES


def _pair(value, name):
    if isinstance(value, int):
        return (value, value)
    values = tuple(int(v) for v in value)
    if len(values) != 2:
        raise ValueError(
            f"`{name}` must be an int or a pair of ints for a 2-D "
            f"convolution. Received: {name}={value!r}"
        )
    return values


def strided_pointwise_conv_is_unsafe(
    kernel_size, strides, in_channels, backend=None, machine=None, mode=None
):
    """Whether a 2-D convolution must avoid oneDNN's strided 1x1 path.

    Args:
        kernel_size: int or pair, the spatial size of the kernel.
        strides: int or pair.
        in_channels: input channels per group (the kernel's input axis).
        backend: Keras backend name. Defaults to the running one.
        machine: `platform.machine()` value. Defaults to this machine.
        mode: "auto", "always" or "never". Defaults to
            $KERAS_PU_ONEDNN_1X1_WORKAROUND, else "auto".

    Returns:
        True for a 1x1 kernel with a stride > 1 and fewer than 16 input
        channels, when the backend may run it on oneDNN ("auto") or always
        ("always"); False otherwise.
    """
    mode = mode or onednn_1x1_workaround_mode()
    if mode not in WORKAROUND_MODES:
        raise ValueError(
            f"`mode` must be one of {WORKAROUND_MODES}. Received: {mode!r}"
        )
    if mode == "never":
        return False
    affected_shape = (
        _pair(kernel_size, "kernel_size") == (1, 1)
        and max(_pair(strides, "strides")) > 1
        and in_channels is not None
        and int(in_channels) < ONEDNN_1X1_SMALL_CHANNEL_LIMIT
    )
    if not affected_shape:
        return False
    return mode == "always" or onednn_may_run_this_op(backend, machine)


def subsampled_pointwise_conv(inputs, kernel, strides, data_format):
    """A 1x1 convolution with `strides`, computed as a subsampling of the
    input followed by a unit-stride 1x1 convolution.

    Equal to `keras.ops.conv(inputs, kernel, strides, padding)` for a 1x1
    kernel with either padding: a 1x1 kernel needs no padding, so both
    paddings read input pixels `0, s, 2s, ...` (ceil(size / s) of them).
    """
    sh, sw = _pair(strides, "strides")
    if data_format == "channels_last":
        inputs = inputs[:, ::sh, ::sw, :]
    else:
        inputs = inputs[:, :, ::sh, ::sw]
    return keras.ops.conv(
        inputs, kernel, strides=1, padding="valid", data_format=data_format
    )


def conv2d(
    inputs, kernel, strides=1, padding="valid", data_format=None,
    dilation_rate=1,
):
    """`keras.ops.conv` for 2-D inputs, avoiding oneDNN's faulty strided 1x1
    backward-weights path (see the module docstring). Same arguments and
    result as `keras.ops.conv`; the kernel is `(kh, kw, in, out)`.
    """
    data_format = data_format or keras.config.image_data_format()
    kh, kw, in_channels = (int(d) for d in kernel.shape[:3])
    if strided_pointwise_conv_is_unsafe((kh, kw), strides, in_channels):
        # A 1x1 kernel does not see the dilation: no need to pass it on.
        return subsampled_pointwise_conv(inputs, kernel, strides, data_format)
    return keras.ops.conv(
        inputs,
        kernel,
        strides=strides,
        padding=padding,
        data_format=data_format,
        dilation_rate=dilation_rate,
    )


@keras.saving.register_keras_serializable(package="keras_pu")
class OneDNNSafeConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` that avoids oneDNN's faulty strided 1x1 path.

    A drop-in replacement: same arguments, config, variables and results as
    `Conv2D` (saved weights load into either). Only a 1x1 convolution with a
    stride > 1 and fewer than 16 input channels per group, on a backend that
    runs it on oneDNN (TensorFlow or PyTorch on x86-64), is computed as a
    subsampling and a unit-stride convolution; every other convolution is
    exactly `Conv2D`'s. `$KERAS_PU_ONEDNN_1X1_WORKAROUND` ("auto", "always",
    "never") overrides the choice, read when the layer is built.

    Args:
        *args, **kwargs: those of `keras.layers.Conv2D`.

    Example:

    ```python
    import numpy as np
    import keras_pu

    # The shortcut of a residual block going from 8 to 16 channels.
    conv = keras_pu.platform_safety.OneDNNSafeConv2D(16, 1, strides=2)
    y = conv(np.ones((2, 64, 64, 8), "float32"))  # (2, 32, 32, 16)
    ```
    """

    def build(self, input_shape):
        super().build(input_shape)
        channel_axis = -1 if self.data_format == "channels_last" else 1
        in_channels_per_group = input_shape[channel_axis] // self.groups
        # Decided once, when the input width is known: the layer then runs
        # one fixed computation whatever the call.
        self.routes_around_onednn_1x1 = strided_pointwise_conv_is_unsafe(
            self.kernel_size, self.strides, in_channels_per_group
        )

    def convolution_op(self, inputs, kernel):
        if getattr(self, "routes_around_onednn_1x1", False):
            return subsampled_pointwise_conv(
                inputs, kernel, self.strides, self.data_format
            )
        return super().convolution_op(inputs, kernel)
