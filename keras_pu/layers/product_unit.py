"""The stable 2-D product unit: a convolution in log space."""

import math

import keras
from keras import ops

from keras_pu.layers._utils import normalize_tuple
from keras_pu.layers._utils import standardize_data_format

CLIP_MODES = ("hard", "tanh")

# log(max finite float16) = log(65504): an exp() of anything larger overflows
# when the result is cast back to a float16 compute dtype.
FLOAT16_MAX_LOG = math.log(65504.0)


def default_exponent_initializer():
    """Small exponents, so that the unit starts close to y = 1.

    With fan-in n = k*k*C_in, each exponent has variance 0.1 / n, so the
    log-space sum z has a standard deviation of about 0.3 * rms(log u):
    y = exp(z) starts within a few tens of percent of 1.
    """
    return keras.initializers.VarianceScaling(
        scale=0.1, mode="fan_in", distribution="truncated_normal"
    )


def validate_stabilization(epsilon, clip_value, clip_mode):
    """Raises a ValueError naming the bad stabilisation argument."""
    if clip_mode not in CLIP_MODES:
        raise ValueError(
            f"ProductUnit2D: `clip_mode` must be one of {CLIP_MODES}. "
            f"Received: clip_mode={clip_mode!r}"
        )
    if not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(
            "ProductUnit2D: `epsilon` must be a number > 0 so that log(u) "
            f"stays finite. Received: epsilon={epsilon!r}"
        )
    if not isinstance(clip_value, (int, float)) or not clip_value > 0:
        raise ValueError(
            "ProductUnit2D: `clip_value` must be a number > 0. "
            f"Received: clip_value={clip_value!r}"
        )


@keras.saving.register_keras_serializable(package="keras_pu")
class ProductUnit2D(keras.layers.Layer):
    """2-D stable product unit: a k x k convolution in log space.

    A product unit computes multiplicative feature interactions with learned
    exponents, `y = prod_i x_i ** w_i = exp(sum_i w_i log x_i)`. Over a k x k
    neighbourhood of all input channels the sum is a convolution of `log x`,
    so the unit has exactly the parameters of the convolution it replaces.

    The plain log/exp form is fragile: `log` is undefined for `x <= 0` and
    `exp` overflows as soon as the weighted sum exceeds ~88 (float32) or ~11
    (float16). The stable form used here is

        u   = softplus(x) + epsilon          # smooth positivity map
        z   = conv_kxk(log u; W) (+ b)       # W are the learned exponents
        z_c = clip(z, -c, c)                 # or c * tanh(z / c)
        y   = exp(z_c)

    and it is computed in float32 whatever the dtype policy (the kernel is
    kept and used in float32; the output is cast to the policy's compute
    dtype). With `stabilized=False` the unit is the plain product unit
    `exp(conv(log x))`, kept only to show what the stabilisation buys.

    Args:
        filters: int, number of output channels.
        kernel_size: int or pair of ints, size of the exponent kernel.
            Defaults to `3`.
        strides: int or pair of ints. Defaults to `1`.
        padding: `"same"` or `"valid"`. Defaults to `"same"`. With
            `"same"`, zero padding happens in log space, i.e. padded
            positions contribute a factor of 1 to the product.
        dilation_rate: int or pair of ints. Defaults to `1`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        use_bias: bool, whether to add a learned bias in log space (a learned
            multiplicative gain `exp(b)`). Defaults to `False`, because the
            unit is followed by batch normalisation in the residual blocks.
        epsilon: float > 0, added after the softplus so that the log stays
            finite (`log u >= log(epsilon)`). Defaults to `1e-3`.
        clip_value: float > 0, the log-domain bound `c`; outputs lie in
            `[exp(-c), exp(c)]`. Defaults to `6.0` (outputs within
            `[0.0025, 403]`), which keeps `exp` far from float16 overflow
            (`c` must be below `log(65504) = 11.09` under a float16 policy).
        clip_mode: `"hard"` (`clip(z, -c, c)`) or `"tanh"`
            (`c * tanh(z / c)`, smooth, never a zero gradient). Defaults to
            `"hard"`.
        stabilized: bool. `False` gives the plain product unit
            `exp(conv(log x))` with no positivity map and no clipping.
            Defaults to `True`.
        kernel_initializer: initializer for the exponents. Defaults to
            `VarianceScaling(scale=0.1, mode="fan_in",
            distribution="truncated_normal")`: small exponents, so that the
            unit starts close to `y = 1`.
        bias_initializer: initializer for the bias. Defaults to `"zeros"`.
        kernel_regularizer: optional regularizer for the exponents.
        bias_regularizer: optional regularizer for the bias.
        kernel_constraint: optional constraint for the exponents.
        bias_constraint: optional constraint for the bias.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Example:

    ```python
    import numpy as np
    import keras_pu

    x = np.random.uniform(-1e4, 1e4, size=(2, 32, 32, 8)).astype("float32")
    pu = keras_pu.layers.ProductUnit2D(16)
    y = pu(x)  # shape (2, 32, 32, 16), every value in [exp(-6), exp(6)]
    ```
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        padding="same",
        dilation_rate=1,
        data_format=None,
        use_bias=False,
        epsilon=1e-3,
        clip_value=6.0,
        clip_mode="hard",
        stabilized=True,
        kernel_initializer=None,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        # The unit computes in float32 under every policy: variables must
        # not be auto-cast to a float16/bfloat16 compute dtype on read.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters <= 0:
            raise ValueError(
                "ProductUnit2D: `filters` must be a positive integer. "
                f"Received: filters={filters!r}"
            )
        padding = str(padding).lower()
        if padding not in ("same", "valid"):
            raise ValueError(
                "ProductUnit2D: `padding` must be 'same' or 'valid'. "
                f"Received: padding={padding!r}"
            )
        validate_stabilization(epsilon, clip_value, clip_mode)
        self.filters = filters
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size")
        self.strides = normalize_tuple(strides, "strides")
        self.padding = padding
        self.dilation_rate = normalize_tuple(dilation_rate, "dilation_rate")
        self.data_format = standardize_data_format(data_format)
        self.use_bias = bool(use_bias)
        self.epsilon = float(epsilon)
        self.clip_value = float(clip_value)
        self.clip_mode = clip_mode
        self.stabilized = bool(stabilized)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or default_exponent_initializer()
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self._channel_axis = -1 if self.data_format == "channels_last" else 1
        self.input_spec = keras.layers.InputSpec(min_ndim=4, max_ndim=4)

    def build(self, input_shape):
        in_channels = input_shape[self._channel_axis]
        if in_channels is None:
            raise ValueError(
                f"ProductUnit2D '{self.name}': the channel dimension of the "
                f"input must be known. Received input shape {input_shape}."
            )
        if (
            self.stabilized
            and keras.backend.standardize_dtype(self.compute_dtype)
            == "float16"
            and self.clip_value >= FLOAT16_MAX_LOG
        ):
            raise ValueError(
                f"ProductUnit2D '{self.name}': clip_value={self.clip_value} "
                "lets exp() exceed the float16 range under the "
                f"'{self.dtype_policy.name}' policy; use clip_value < "
                f"{FLOAT16_MAX_LOG:.2f}."
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (in_channels, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            dtype="float32",
            # Never cast on read: under a mixed policy an enclosing
            # AutocastScope would otherwise hand call() a float16/bfloat16
            # copy of the exponents (the layer's own autocast=False does
            # not cover scopes opened elsewhere, e.g. by the backend's
            # call machinery when the layer is called on its own).
            autocast=False,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                dtype="float32",
                autocast=False,
            )
        else:
            self.bias = None
        axes = {self._channel_axis: in_channels}
        self.input_spec = keras.layers.InputSpec(ndim=4, axes=axes)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.stabilized:
            log_u = ops.log(ops.softplus(x) + self.epsilon)
        else:
            log_u = ops.log(x)
        z = ops.conv(
            log_u,
            ops.cast(self.kernel, "float32"),
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )
        if self.bias is not None:
            bias = ops.cast(self.bias, "float32")
            if self.data_format == "channels_first":
                bias = ops.reshape(bias, (1, self.filters, 1, 1))
            z = z + bias
        if self.stabilized:
            c = self.clip_value
            if self.clip_mode == "hard":
                z = ops.clip(z, -c, c)
            else:
                z = c * ops.tanh(z / c)
        return ops.cast(ops.exp(z), self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "data_format": self.data_format,
                "use_bias": self.use_bias,
                "epsilon": self.epsilon,
                "clip_value": self.clip_value,
                "clip_mode": self.clip_mode,
                "stabilized": self.stabilized,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self.bias_regularizer
                ),
                "kernel_constraint": keras.constraints.serialize(
                    self.kernel_constraint
                ),
                "bias_constraint": keras.constraints.serialize(
                    self.bias_constraint
                ),
            }
        )
        return config
