"""The workaround for oneDNN's strided 1x1 backward-weights heap overflow
(keras_pu/platform_safety.py, issue #17): which convolutions it routes, that
the routed computation equals the strided convolution (values and
gradients), and that narrow ResUNets train under TensorFlow and PyTorch
without a native crash (in a subprocess, so that a crash fails the test)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_pu import platform_safety
from keras_pu.layers import ResidualBlock
from tests._backend_utils import NO_CHANNELS_FIRST_REASON
from tests._backend_utils import backend_runs_channels_first
from tests._backend_utils import layer_gradients
from tests.conftest import REPO_ROOT

BACKEND = keras.backend.backend()


# --- which convolutions are routed -----------------------------------------


@pytest.mark.parametrize(
    "kernel_size, strides, in_channels, backend, machine, expected",
    [
        # the crashing shortcut of widths 4 and 8, on both oneDNN backends
        (1, 2, 8, "tensorflow", "x86_64", True),
        (1, 2, 4, "torch", "x86_64", True),
        ((1, 1), (2, 1), 15, "torch", "AMD64", True),
        # enough channels: the chunk offsets stay inside the workspace
        (1, 2, 16, "torch", "x86_64", False),
        (1, 2, 24, "tensorflow", "x86_64", False),
        # no stride: no "reduce to unit stride" copy
        (1, 1, 8, "torch", "x86_64", False),
        # not a 1x1 convolution: other kernels
        (3, 2, 8, "torch", "x86_64", False),
        # not oneDNN's x86 kernels
        (1, 2, 8, "jax", "x86_64", False),
        (1, 2, 8, "torch", "aarch64", False),
    ],
)
def test_routing_decision(
    kernel_size, strides, in_channels, backend, machine, expected
):
    assert (
        platform_safety.strided_pointwise_conv_is_unsafe(
            kernel_size, strides, in_channels, backend, machine, mode="auto"
        )
        is expected
    )


def test_modes_always_and_never_override_the_platform():
    args = (1, 2, 8)
    assert platform_safety.strided_pointwise_conv_is_unsafe(
        *args, backend="jax", machine="aarch64", mode="always"
    )
    assert not platform_safety.strided_pointwise_conv_is_unsafe(
        *args, backend="torch", machine="x86_64", mode="never"
    )
    # "always" still only routes the affected shape
    assert not platform_safety.strided_pointwise_conv_is_unsafe(
        3, 2, 8, backend="jax", machine="x86_64", mode="always"
    )


def test_bad_mode_in_environment_is_a_named_error(monkeypatch):
    monkeypatch.setenv(platform_safety.WORKAROUND_ENV, "sometimes")
    with pytest.raises(ValueError, match="KERAS_PU_ONEDNN_1X1_WORKAROUND"):
        platform_safety.onednn_1x1_workaround_mode()


# --- the routed computation equals the strided convolution -----------------


def reference_strided_pointwise(x, kernel, strides, data_format):
    """float64 numpy 1x1 convolution with stride: output and the gradients of
    sum(output) with respect to the input and the kernel."""
    sh, sw = strides
    x = x.astype("float64")
    w = kernel[0, 0].astype("float64")  # (in, out)
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    sub = x[:, ::sh, ::sw, :]
    y = sub @ w
    grad_x = np.zeros_like(x)
    grad_x[:, ::sh, ::sw, :] = w.sum(axis=1)
    grad_w = sub.sum(axis=(0, 1, 2))[:, None] * np.ones((1, w.shape[1]))
    if data_format == "channels_first":
        y = y.transpose(0, 3, 1, 2)
        grad_x = grad_x.transpose(0, 3, 1, 2)
    return y, grad_x, grad_w[None, None]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize(
    "spatial, strides, padding",
    [((8, 8), (2, 2), "same"), ((9, 6), (2, 2), "valid"),
     ((7, 10), (2, 1), "same"), ((9, 9), (3, 3), "same")],
)
def test_routed_conv_equals_strided_conv(
    monkeypatch, data_format, spatial, strides, padding
):
    if data_format == "channels_first" and not backend_runs_channels_first():
        pytest.skip(NO_CHANNELS_FIRST_REASON)
    # "always": the routed path on every backend, JAX included.
    monkeypatch.setenv(platform_safety.WORKAROUND_ENV, "always")
    in_channels, filters = 6, 5
    rng = np.random.default_rng(0)
    if data_format == "channels_last":
        x = rng.normal(size=(2, *spatial, in_channels)).astype("float32")
    else:
        x = rng.normal(size=(2, in_channels, *spatial)).astype("float32")
    layer = platform_safety.OneDNNSafeConv2D(
        filters, 1, strides=strides, padding=padding, use_bias=False,
        data_format=data_format,
    )
    layer.build(x.shape)
    assert layer.routes_around_onednn_1x1
    kernel = rng.normal(size=(1, 1, in_channels, filters)).astype("float32")
    layer.kernel.assign(kernel)
    y, grad_x, (grad_w,) = layer_gradients(layer, x)
    ref_y, ref_grad_x, ref_grad_w = reference_strided_pointwise(
        x, kernel, strides, data_format
    )
    assert y.shape == ref_y.shape
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_x, ref_grad_x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_w, ref_grad_w, rtol=1e-5, atol=1e-4)


@pytest.mark.skipif(
    BACKEND != "jax",
    reason="compares with the library's strided kernel, which is only safe "
    "to run where oneDNN's 1x1 kernels are not used (JAX)",
)
def test_routed_conv_equals_keras_conv2d_on_jax(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 10, 12, 8)).astype("float32")
    layers = {}
    for mode in ("always", "never"):
        monkeypatch.setenv(platform_safety.WORKAROUND_ENV, mode)
        layers[mode] = platform_safety.OneDNNSafeConv2D(16, 1, strides=2)
        layers[mode].build(x.shape)
        layers[mode].kernel.assign(layers["always"].kernel)
    assert layers["always"].routes_around_onednn_1x1
    assert not layers["never"].routes_around_onednn_1x1
    routed = layer_gradients(layers["always"], x)
    library = layer_gradients(layers["never"], x)
    for a, b in zip(
        routed[:2] + tuple(routed[2]), library[:2] + tuple(library[2])
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_safe_conv_is_plain_conv2d_where_unaffected():
    """Only the affected shape changes: a 3x3 or a 16-channel strided 1x1
    convolution computes exactly as keras.layers.Conv2D."""
    rng = np.random.default_rng(2)
    for kernel_size, in_channels in ((3, 8), (1, 16)):
        x = rng.normal(size=(1, 8, 8, in_channels)).astype("float32")
        safe = platform_safety.OneDNNSafeConv2D(8, kernel_size, strides=2)
        plain = keras.layers.Conv2D(8, kernel_size, strides=2)
        safe.build(x.shape)
        plain.build(x.shape)
        plain.set_weights(safe.get_weights())
        assert not safe.routes_around_onednn_1x1
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(safe(x)),
            keras.ops.convert_to_numpy(plain(x)),
        )


def test_safe_conv_round_trips_through_config():
    layer = platform_safety.OneDNNSafeConv2D(16, 1, strides=2, name="sc")
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(clone) is platform_safety.OneDNNSafeConv2D
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("training", [True, False])
def test_residual_block_routes_only_its_shortcut_and_computes_the_same(
    monkeypatch, training
):
    """A block widening 8 to 16 channels with stride 2: its shortcut is the
    affected convolution. Routed or not, the block gives the same output, in
    training and in the folded batch-norm inference path. (Forward only:
    the faulty oneDNN kernel is the backward-weights one, so the unrouted
    forward pass is safe to run here on every backend.)"""
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 8)).astype("float32")
    outputs = {}
    for mode in ("always", "never"):
        monkeypatch.setenv(platform_safety.WORKAROUND_ENV, mode)
        keras.utils.set_random_seed(7)
        block = ResidualBlock(16, strides=2)
        block.build(x.shape)
        assert block.shortcut_conv.routes_around_onednn_1x1 is (
            mode == "always"
        )
        assert not block.conv1.routes_around_onednn_1x1  # 3x3
        outputs[mode] = keras.ops.convert_to_numpy(
            block(x, training=training)
        )
    assert outputs["always"].shape == (2, 4, 4, 16)
    np.testing.assert_allclose(
        outputs["always"], outputs["never"], rtol=1e-5, atol=1e-5
    )


# --- the regression: narrow ResUNets train without a native crash -----------


@pytest.mark.skipif(
    BACKEND not in platform_safety.ONEDNN_BACKENDS,
    reason="JAX (XLA) does not run oneDNN's 1x1 convolution kernels",
)
def test_narrow_resunets_train_without_native_crash():
    """ResUNet widths 4 and 8 at 64 px in float32 and width 8 at 128 px in
    mixed_bfloat16, two steps each: without the workaround this process dies
    (SIGSEGV / SIGABRT, heap corruption) on x86 CPUs with AVX-512 or AVX2."""
    env = dict(os.environ, KERAS_BACKEND=BACKEND, OMP_NUM_THREADS="1")
    env.pop(platform_safety.WORKAROUND_ENV, None)
    result = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-m",
         "tests.onednn_crash_worker"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (
        f"{BACKEND} worker ended with code {result.returncode} (negative: "
        f"killed by that signal):\n{result.stdout[-2000:]}\n"
        f"{result.stderr[-4000:]}"
    )
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
    losses = json.loads(line[-1][len("RESULT "):])
    assert set(losses) == {"float32:64", "mixed_bfloat16:128"}
    assert set(losses["float32:64"]) == {"4", "8"}
    for per_width in losses.values():
        for steps in per_width.values():
            assert len(steps) == 2 and np.isfinite(steps).all()
