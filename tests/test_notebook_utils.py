"""The helpers the notebooks share."""

import pytest

from keras_pu import notebook_utils


def test_this_machine_is_described():
    kind, devices, capability = notebook_utils.find_accelerator()
    assert kind in ("cpu", "gpu", "tpu")
    assert devices and all(isinstance(d, str) for d in devices)
    text = notebook_utils.describe_environment((kind, devices, capability))
    assert f"Computing on {kind.upper()}" in text
    assert ("No GPU found" in text) == (kind == "cpu")


@pytest.mark.parametrize(
    "kind, capability, policy",
    [
        ("tpu", None, "mixed_bfloat16"),
        ("gpu", (9, 0), "mixed_bfloat16"),
        ("gpu", (7, 5), "mixed_float16"),
        ("gpu", (6, 1), "float32"),
        ("gpu", None, "float32"),
        ("cpu", None, "float32"),
    ],
)
def test_precision_policy_follows_the_device(kind, capability, policy):
    assert notebook_utils.precision_policy(kind, capability) == policy
