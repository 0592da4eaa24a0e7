"""Property tests of ProductUnit2D (hypothesis): for finite inputs of any
shape, dtype and magnitude, under every dtype policy, the outputs and all
gradients (input, exponents, bias) are finite, and the outputs lie in
[exp(-c), exp(c)]. Issue #17, deliverable 5."""

import math

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_pu.layers import ProductUnit2D
from tests._backend_utils import layer_gradients

# Figures quoted in docs/guarantees.md: keep them in step.
MAX_EXAMPLES = 20
INPUT_DTYPES = ("float32", "float16", "bfloat16")
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
# Largest finite float16 is 65504: inputs up to 1e4 fit every input dtype.
MAX_MAGNITUDE = 1e4

# JAX compiles each new shape: few sizes keep the example count affordable.
case = st.fixed_dictionaries({
    "batch": st.integers(1, 2),
    "height": st.integers(3, 6),
    "width": st.integers(3, 6),
    "channels": st.integers(1, 3),
    # filters=1 on torch: test_single_filter_conv_gradient_on_torch below.
    "filters": st.integers(2, 3),
    "kernel_size": st.sampled_from((1, 3)),
    "strides": st.sampled_from((1, 2)),
    "padding": st.sampled_from(("same", "valid")),
    "clip_mode": st.sampled_from(("hard", "tanh")),
    "use_bias": st.booleans(),
    "input_dtype": st.sampled_from(INPUT_DTYPES),
    "policy": st.sampled_from(POLICIES),
    "magnitude_log10": st.floats(-3, math.log10(MAX_MAGNITUDE)),
    "seed": st.integers(0, 2**16),
})


def _inputs(c):
    """A backend tensor of the case's dtype (bfloat16 has no numpy type)."""
    rng = np.random.default_rng(c["seed"])
    x = rng.uniform(-1, 1, (c["batch"], c["height"], c["width"],
                            c["channels"])) * 10 ** c["magnitude_log10"]
    return keras.ops.cast(x.astype("float32"), c["input_dtype"])


def _check_finite(c):
    """Builds the case's layer and checks outputs, range and gradients."""
    layer = ProductUnit2D(
        c["filters"], kernel_size=c["kernel_size"], strides=c["strides"],
        padding=c["padding"], clip_mode=c["clip_mode"], use_bias=c["use_bias"],
        bias_initializer="random_normal", dtype=c["policy"],
    )
    x = _inputs(c)
    y, dx, dvars = layer_gradients(layer, x)
    y = y.astype("float32")
    assert np.isfinite(y).all()
    bound = math.exp(layer.clip_value)
    # exp(+-c) rounded to the compute dtype (bfloat16 keeps 8 bits).
    assert (y >= 1 / bound * 0.99).all() and (y <= bound * 1.01).all()
    assert np.isfinite(dx.astype("float32")).all(), "input gradient"
    assert len(dvars) == (2 if c["use_bias"] else 1)
    for g in dvars:
        assert np.isfinite(g.astype("float32")).all(), "variable gradient"


@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(case)
def test_outputs_and_gradients_are_finite_for_finite_inputs(c):
    _check_finite(c)


# Issue #17 defect 6 reported non-finite kernel gradients for the layer
# called on its own (as its docstring shows) under mixed_float16: a larger
# fixed case than the property draws, at the largest input magnitude.
STANDALONE_FLOAT16 = dict(
    batch=2, height=16, width=16, channels=8, filters=8, kernel_size=3,
    strides=1, padding="same", clip_mode="hard", use_bias=True,
    input_dtype="float16", policy="mixed_float16",
    magnitude_log10=math.log10(MAX_MAGNITUDE), seed=0,
)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_standalone_layer_under_mixed_precision_has_finite_gradients(policy):
    _check_finite(dict(STANDALONE_FLOAT16, policy=policy))


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch only")
@pytest.mark.xfail(strict=True, raises=RuntimeError,
                   reason="Keras 3.15 + torch 2.13 CPU: the backward pass of a "
                   "3x3 convolution with ONE output channel on a tiny input "
                   "fails with 'slow_conv2d: grad_weight must be contiguous' "
                   "(a plain keras.layers.Conv2D(1, 3) too); found by the "
                   "property test above. Strict: remove when upstream fixes it")
def test_single_filter_conv_gradient_on_torch():
    _check_finite(dict(STANDALONE_FLOAT16, batch=1, height=3, width=3,
                       channels=2, filters=1, policy="float32",
                       input_dtype="float32", magnitude_log10=0.0))
