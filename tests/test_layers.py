"""ProductUnit2D, ResidualBlock and ProductUnitResidualBlock."""

import math

import keras
import numpy as np
import pytest

import keras_pu
from keras_pu.layers import ProductUnit2D
from keras_pu.layers import ProductUnitResidualBlock
from keras_pu.layers import ResidualBlock
from tests._backend_utils import NO_CHANNELS_FIRST_REASON
from tests._backend_utils import backend_runs_channels_first
from tests._backend_utils import layer_gradients
from tests._backend_utils import to_numpy

POLICIES = ["float32", "mixed_float16", "mixed_bfloat16"]


def large_inputs(shape=(2, 8, 8, 8), magnitude=1e4, seed=0):
    """Inputs of magnitude up to `magnitude`, both signs, plus small values
    (the positivity map must handle x <= 0)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-magnitude, magnitude, size=shape)
    x[0, 0, 0, :] = 0.0
    x[0, 0, 1, :] = magnitude
    x[0, 0, 2, :] = -magnitude
    return x.astype("float32")


def large_exponents():
    """Exponents of the size training can reach (N(0.2, 0.5^2)), seeded so
    the stabilised and the plain unit get the same ones. With 72 inputs per
    output and log(1e4) = 9.2, the plain log-space sum is ~130 on average:
    far past exp's float32 range (88.7)."""
    return keras.initializers.RandomNormal(mean=0.2, stddev=0.5, seed=7)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("clip_mode", ["hard", "tanh"])
def test_stable_unit_finite_for_inputs_up_to_1e4(policy, clip_mode):
    keras.config.set_dtype_policy(policy)
    layer = ProductUnit2D(
        8, clip_mode=clip_mode, kernel_initializer=large_exponents()
    )
    y, grad_x, grad_vars = layer_gradients(layer, large_inputs())
    compute_dtype = keras.config.dtype_policy().compute_dtype
    assert keras.backend.standardize_dtype(y.dtype) == compute_dtype
    y = y.astype("float32")
    assert np.all(np.isfinite(y)), "stable unit output overflowed"
    c = layer.clip_value
    # bfloat16/float16 rounding of exp(+-c) may step just past the bound.
    assert y.min() >= math.exp(-c) * 0.99 and y.max() <= math.exp(c) * 1.01
    assert np.all(np.isfinite(grad_x.astype("float32")))
    assert all(np.all(np.isfinite(g)) for g in grad_vars)
    assert np.any(grad_vars[0] != 0), "no gradient reached the exponents"


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_standalone_unit_computes_float32_gradients_under_mixed_policy(policy):
    """Issue #17, defect 6: called on its own under a global mixed policy,
    the unit read its exponents through the autocast scope (a float16 /
    bfloat16 copy), giving non-finite or wrong kernel gradients. The
    exponents are never cast: the gradients equal the float32 ones."""
    x = large_inputs(shape=(2, 16, 16, 8))
    grads = {}
    for name in ("float32", policy):
        keras.config.set_dtype_policy(name)
        layer = ProductUnit2D(8, kernel_initializer=large_exponents())
        layer.build(x.shape)
        assert layer.kernel.dtype == "float32"
        _, _, (kernel_grad,) = layer_gradients(
            layer, keras.ops.convert_to_tensor(x, "float32")
        )
        grads[name] = kernel_grad
    assert np.all(np.isfinite(grads[policy]))
    np.testing.assert_allclose(
        grads[policy], grads["float32"], rtol=1e-5,
        atol=1e-5 * np.abs(grads["float32"]).max(),
    )


@pytest.mark.parametrize("policy", POLICIES)
def test_plain_unit_overflows_on_the_same_input(policy):
    keras.config.set_dtype_policy(policy)
    x = np.abs(large_inputs())  # positive, so log(x) is defined
    x[x < 1.0] = 1.0
    stable = ProductUnit2D(8, kernel_initializer=large_exponents())
    plain = ProductUnit2D(
        8, stabilized=False, kernel_initializer=large_exponents()
    )
    y_stable = to_numpy(stable(x)).astype("float32")
    y_plain = to_numpy(plain(x)).astype("float32")
    np.testing.assert_array_equal(
        to_numpy(stable.kernel), to_numpy(plain.kernel)
    )
    assert np.all(np.isfinite(y_stable))
    assert np.any(np.isinf(y_plain)), "the plain product unit should overflow"


def test_plain_unit_is_exp_conv_log():
    x = np.random.default_rng(1).uniform(0.5, 2.0, (1, 5, 5, 2))
    x = x.astype("float32")
    layer = ProductUnit2D(1, kernel_size=1, stabilized=False)
    layer.build(x.shape)
    w = np.array([[[[0.5], [2.0]]]], "float32")
    layer.kernel.assign(w)
    expected = x[..., :1] ** 0.5 * x[..., 1:] ** 2.0
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5)


def test_stable_unit_matches_numpy_reference():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 6, 3)).astype("float32") * 3
    layer = ProductUnit2D(4, kernel_size=1, clip_value=2.0, epsilon=1e-2)
    layer.build(x.shape)
    w = rng.normal(size=(1, 1, 3, 4)).astype("float32")
    layer.kernel.assign(w)
    u = np.log1p(np.exp(x)) + 1e-2
    z = np.einsum("bhwc,cd->bhwd", np.log(u), w[0, 0])
    expected = np.exp(np.clip(z, -2.0, 2.0))
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-4)


def test_initial_output_close_to_one():
    x = np.abs(np.random.default_rng(3).normal(size=(4, 16, 16, 32)))
    y = to_numpy(ProductUnit2D(32)(x.astype("float32")))
    assert 0.7 < np.median(y) < 1.5


def test_same_padding_and_strides_shape():
    layer = ProductUnit2D(5, kernel_size=3, strides=2)
    y = layer(np.ones((2, 9, 9, 3), "float32"))
    assert tuple(y.shape) == (2, 5, 5, 5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"filters": 0}, "filters"),
        ({"filters": 4, "clip_mode": "soft"}, "clip_mode"),
        ({"filters": 4, "epsilon": 0.0}, "epsilon"),
        ({"filters": 4, "clip_value": -1.0}, "clip_value"),
        ({"filters": 4, "padding": "causal"}, "padding"),
        ({"filters": 4, "data_format": "nhwc"}, "data_format"),
    ],
)
def test_product_unit_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProductUnit2D(**kwargs)


def test_float16_policy_rejects_clip_beyond_float16_range():
    layer = ProductUnit2D(4, clip_value=12.0, dtype="mixed_float16")
    with pytest.raises(ValueError, match="float16"):
        layer(np.ones((1, 4, 4, 2), "float32"))


def test_wrong_channel_count_after_build():
    layer = ProductUnit2D(4)
    layer(np.ones((1, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="axis -1"):
        layer(np.ones((1, 8, 8, 5), "float32"))


@pytest.mark.parametrize(
    "layer",
    [
        lambda: ProductUnit2D(
            6,
            kernel_size=(3, 1),
            strides=2,
            use_bias=True,
            epsilon=1e-2,
            clip_value=4.0,
            clip_mode="tanh",
            stabilized=True,
            kernel_regularizer="l2",
            name="pu",
        ),
        lambda: ResidualBlock(6, strides=2, batchnorm_momentum=0.9),
        lambda: ProductUnitResidualBlock(
            6, pu_clip_value=3.0, pu_clip_mode="tanh", pu_epsilon=1e-2
        ),
    ],
    ids=["ProductUnit2D", "ResidualBlock", "ProductUnitResidualBlock"],
)
def test_layer_config_round_trip(layer):
    layer = layer()
    x = np.random.default_rng(4).normal(size=(2, 8, 8, 4)).astype("float32")
    y = to_numpy(layer(x))
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(clone(x)), y, rtol=1e-5, atol=1e-6)
    # And through Keras's registry, as load_model does.
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is type(layer)
    assert revived.get_config() == config


def test_blocks_have_identical_parameter_counts():
    x = np.ones((1, 8, 8, 4), "float32")
    plain = ResidualBlock(8, strides=2)
    pu = ProductUnitResidualBlock(8, strides=2)
    plain(x)
    pu(x)
    assert plain.count_params() == pu.count_params()
    assert isinstance(pu.conv2, ProductUnit2D)
    assert pu.shortcut_conv is not None  # width and stride change


def test_identity_shortcut_when_shapes_match():
    block = ResidualBlock(4)
    y = block(np.ones((1, 8, 8, 4), "float32"))
    assert block.shortcut_conv is None
    assert tuple(y.shape) == (1, 8, 8, 4)


def test_block_channels_first():
    if not backend_runs_channels_first():
        pytest.skip(NO_CHANNELS_FIRST_REASON)
    block = ProductUnitResidualBlock(6, strides=2, data_format="channels_first")
    y = block(np.ones((1, 4, 8, 8), "float32"))
    assert tuple(y.shape) == (1, 6, 4, 4)


def test_layers_are_registered_in_the_keras_pu_package():
    for cls in (ProductUnit2D, ResidualBlock, ProductUnitResidualBlock):
        name = keras.saving.get_registered_name(cls)
        assert name == f"keras_pu>{cls.__name__}"
    assert keras_pu.layers.ProductUnit2D is ProductUnit2D


def _unfolded_block_output(block, x):
    """The block's inference output computed layer by layer, with no
    batch-norm folding: the reference for the folded fast path."""
    ops = keras.ops
    h = ops.relu(block.bn1(block.conv1(x), training=False))
    h = block.bn2(block.conv2(h), training=False)
    if block.shortcut_conv is not None:
        s = block.shortcut_bn(block.shortcut_conv(x), training=False)
    else:
        s = x
    return ops.relu(h + s)


@pytest.mark.parametrize(
    "block_cls", [ResidualBlock, ProductUnitResidualBlock]
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_inference_folds_batchnorm_without_changing_the_output(
    block_cls, data_format
):
    if data_format == "channels_first" and not backend_runs_channels_first():
        pytest.skip(NO_CHANNELS_FIRST_REASON)
    rng = np.random.default_rng(6)
    shape = (2, 8, 8, 4) if data_format == "channels_last" else (2, 4, 8, 8)
    x = rng.normal(size=shape).astype("float32")
    block = block_cls(6, strides=2, data_format=data_format)
    block(x)
    # Batch-norm statistics and affine weights far from their initial values.
    for bn in (block.bn1, block.bn2, block.shortcut_bn):
        bn.gamma.assign(rng.uniform(0.5, 2.0, 6).astype("float32"))
        bn.beta.assign(rng.normal(size=6).astype("float32"))
        bn.moving_mean.assign(rng.normal(size=6).astype("float32"))
        bn.moving_variance.assign(rng.uniform(0.2, 3.0, 6).astype("float32"))
    expected = to_numpy(_unfolded_block_output(block, x))
    got = to_numpy(block(x, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # Training uses batch statistics: not folded, so it differs.
    assert not np.allclose(to_numpy(block(x, training=True)), expected)
