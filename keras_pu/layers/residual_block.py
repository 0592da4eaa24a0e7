"""Residual basic blocks: the plain one and the product-unit one."""

import keras

from keras_pu.layers._utils import standardize_data_format
from keras_pu.layers.product_unit import ProductUnit2D
from keras_pu.layers.product_unit import validate_stabilization
from keras_pu.platform_safety import OneDNNSafeConv2D
from keras_pu.platform_safety import conv2d as onednn_safe_conv2d


@keras.saving.register_keras_serializable(package="keras_pu")
class ResidualBlock(keras.layers.Layer):
    """Residual basic block: conv-BN-ReLU, conv-BN, shortcut, ReLU.

    `y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, where the
    shortcut is the identity when shapes allow and a 1x1 conv-BN otherwise
    (a change of width or a stride).

    Args:
        filters: int, output channels.
        strides: int, stride of the first convolution (and of the shortcut).
            Defaults to `1`; `2` halves the spatial size.
        kernel_size: int, size of both square kernels. Defaults to `3`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        batchnorm_momentum: momentum of the batch-normalisation moving
            statistics. Defaults to `0.99` (Keras's default).
        batchnorm_epsilon: epsilon of batch normalisation. Defaults to
            `1e-3` (Keras's default).
        kernel_initializer: initializer of the convolutions. Defaults to
            `"he_normal"` (the ReLU-appropriate choice).
        kernel_regularizer: optional regularizer of the convolutions.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Example:

    ```python
    import numpy as np
    import keras_pu

    block = keras_pu.layers.ResidualBlock(32, strides=2)
    y = block(np.ones((1, 64, 64, 16), "float32"))  # (1, 32, 32, 32)
    ```
    """

    def __init__(
        self,
        filters,
        strides=1,
        kernel_size=3,
        data_format=None,
        batchnorm_momentum=0.99,
        batchnorm_epsilon=1e-3,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters <= 0:
            raise ValueError(
                f"{type(self).__name__}: `filters` must be a positive "
                f"integer. Received: filters={filters!r}"
            )
        if strides not in (1, 2):
            raise ValueError(
                f"{type(self).__name__}: `strides` must be 1 or 2. "
                f"Received: strides={strides!r}"
            )
        self.filters = filters
        self.strides = strides
        self.kernel_size = kernel_size
        self.data_format = standardize_data_format(data_format)
        self.batchnorm_momentum = batchnorm_momentum
        self.batchnorm_epsilon = batchnorm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self._channel_axis = -1 if self.data_format == "channels_last" else 1
        # Sublayers are created in build(): whether a projection shortcut is
        # needed depends on the input width.
        self.shortcut_conv = None
        self.shortcut_bn = None

    def _conv(self, filters, kernel_size, strides, name):
        # Conv2D, except for the strided 1x1 shortcut of a narrow input,
        # which oneDNN's backward pass corrupts (keras_pu.platform_safety).
        return OneDNNSafeConv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=False,  # followed by batch normalisation
            data_format=self.data_format,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _batchnorm(self, name):
        return keras.layers.BatchNormalization(
            axis=self._channel_axis,
            momentum=self.batchnorm_momentum,
            epsilon=self.batchnorm_epsilon,
            dtype=self.dtype_policy,
            name=name,
        )

    def _second_operation(self):
        """The operation after the first conv-BN-ReLU: a 3x3 convolution."""
        return self._conv(self.filters, self.kernel_size, 1, "conv2")

    def build(self, input_shape):
        in_channels = input_shape[self._channel_axis]
        if in_channels is None:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the channel dimension "
                f"of the input must be known. Received shape {input_shape}."
            )
        self.conv1 = self._conv(
            self.filters, self.kernel_size, self.strides, "conv1"
        )
        self.bn1 = self._batchnorm("bn1")
        self.conv2 = self._second_operation()
        self.bn2 = self._batchnorm("bn2")
        self.conv1.build(input_shape)
        mid_shape = self.conv1.compute_output_shape(input_shape)
        self.bn1.build(mid_shape)
        self.conv2.build(mid_shape)
        self.bn2.build(mid_shape)
        if self.strides != 1 or in_channels != self.filters:
            self.shortcut_conv = self._conv(
                self.filters, 1, self.strides, "shortcut_conv"
            )
            self.shortcut_bn = self._batchnorm("shortcut_bn")
            self.shortcut_conv.build(input_shape)
            self.shortcut_bn.build(mid_shape)
        self.input_spec = keras.layers.InputSpec(
            ndim=4, axes={self._channel_axis: in_channels}
        )

    def call(self, inputs, training=None):
        h = self._conv_bn(self.conv1, self.bn1, inputs, training)
        h = keras.ops.relu(h)
        # conv2 is a product unit in ProductUnitResidualBlock: not folded.
        h = self._conv_bn(self.conv2, self.bn2, h, training)
        if self.shortcut_conv is not None:
            shortcut = self._conv_bn(
                self.shortcut_conv, self.shortcut_bn, inputs, training
            )
        else:
            shortcut = inputs
        return keras.ops.relu(h + shortcut)

    def _conv_bn(self, conv, bn, inputs, training):
        """`bn(conv(inputs))`. When the batch norm uses its moving
        statistics (inference, or a frozen batch norm) and the block computes
        in float32, it is folded into the convolution: one convolution with
        kernel `W * s` plus a bias `beta - mean * s`, `s = gamma /
        sqrt(var + eps)`. Same function, same weights; it saves the batch
        norm's passes over the activation (three elementwise kernels under
        PyTorch eager, two under TensorFlow without XLA)."""
        if (training and bn.trainable) or not self._can_fold(conv, bn):
            return bn(conv(inputs), training=training)
        ops = keras.ops
        scale = bn.gamma * ops.rsqrt(bn.moving_variance + bn.epsilon)
        shift = bn.beta - bn.moving_mean * scale
        outputs = onednn_safe_conv2d(
            inputs,
            conv.kernel * scale,  # scales each output channel
            strides=conv.strides,
            padding=conv.padding,
            data_format=conv.data_format,
            dilation_rate=conv.dilation_rate,
        )
        if self.data_format == "channels_first":
            shift = ops.reshape(shift, (1, -1, 1, 1))
        return outputs + shift

    def _can_fold(self, conv, bn):
        # Folding in a lower precision would round the folded kernel: under
        # mixed precision the layers run as they are.
        compute_dtype = keras.backend.standardize_dtype(self.compute_dtype)
        return (
            isinstance(conv, keras.layers.Conv2D)
            and compute_dtype == "float32"
            and bn.scale
            and bn.center
            and getattr(conv, "quantization_mode", None) is None
            and not conv.use_bias
        )

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        spatial = (1, 2) if self.data_format == "channels_last" else (2, 3)
        for axis in spatial:
            if shape[axis] is not None:
                shape[axis] = -(-shape[axis] // self.strides)
        shape[self._channel_axis] = self.filters
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "strides": self.strides,
                "kernel_size": self.kernel_size,
                "data_format": self.data_format,
                "batchnorm_momentum": self.batchnorm_momentum,
                "batchnorm_epsilon": self.batchnorm_epsilon,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_pu")
class ProductUnitResidualBlock(ResidualBlock):
    """Residual block whose second convolution is a stable product unit.

    conv3x3-BN-ReLU, then `ProductUnit2D` 3x3-BN, plus the shortcut, then
    ReLU. The product unit has the same kernel shape as the convolution it
    replaces, so this block has exactly the parameters of `ResidualBlock`.

    Args:
        filters, strides, kernel_size, data_format, batchnorm_momentum,
        batchnorm_epsilon, kernel_initializer, kernel_regularizer: as in
            `ResidualBlock` (the initializer and regularizer apply to the
            ordinary convolutions).
        pu_epsilon: `epsilon` of the product unit. Defaults to `1e-3`.
        pu_clip_value: `clip_value` of the product unit. Defaults to `6.0`.
        pu_clip_mode: `clip_mode` of the product unit. Defaults to `"hard"`.
        pu_stabilized: `stabilized` of the product unit. Defaults to `True`.
        pu_kernel_initializer: initializer of the product unit's exponents.
            Defaults to `None`, the product unit's own small-exponent
            default.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Example:

    ```python
    import numpy as np
    import keras_pu

    block = keras_pu.layers.ProductUnitResidualBlock(32)
    y = block(np.ones((1, 16, 16, 32), "float32"))  # (1, 16, 16, 32)
    ```
    """

    def __init__(
        self,
        filters,
        strides=1,
        kernel_size=3,
        data_format=None,
        batchnorm_momentum=0.99,
        batchnorm_epsilon=1e-3,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        pu_epsilon=1e-3,
        pu_clip_value=6.0,
        pu_clip_mode="hard",
        pu_stabilized=True,
        pu_kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            strides=strides,
            kernel_size=kernel_size,
            data_format=data_format,
            batchnorm_momentum=batchnorm_momentum,
            batchnorm_epsilon=batchnorm_epsilon,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            **kwargs,
        )
        validate_stabilization(pu_epsilon, pu_clip_value, pu_clip_mode)
        self.pu_epsilon = float(pu_epsilon)
        self.pu_clip_value = float(pu_clip_value)
        self.pu_clip_mode = pu_clip_mode
        self.pu_stabilized = bool(pu_stabilized)
        self.pu_kernel_initializer = (
            keras.initializers.get(pu_kernel_initializer)
            if pu_kernel_initializer is not None
            else None
        )

    def _second_operation(self):
        return ProductUnit2D(
            self.filters,
            kernel_size=self.kernel_size,
            padding="same",
            data_format=self.data_format,
            use_bias=False,  # followed by batch normalisation
            epsilon=self.pu_epsilon,
            clip_value=self.pu_clip_value,
            clip_mode=self.pu_clip_mode,
            stabilized=self.pu_stabilized,
            kernel_initializer=self.pu_kernel_initializer,
            dtype=self.dtype_policy,
            name="product_unit",
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pu_epsilon": self.pu_epsilon,
                "pu_clip_value": self.pu_clip_value,
                "pu_clip_mode": self.pu_clip_mode,
                "pu_stabilized": self.pu_stabilized,
                "pu_kernel_initializer": (
                    keras.initializers.serialize(self.pu_kernel_initializer)
                    if self.pu_kernel_initializer is not None
                    else None
                ),
            }
        )
        return config
