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
    ],
)
def test_precision_policy_follows_the_device(kind, capability, policy,
                                             monkeypatch):
    monkeypatch.delenv("KERAS_PU_PRECISION", raising=False)
    assert notebook_utils.precision_policy(kind, capability) == policy


def test_precision_policy_on_a_cpu_is_the_training_cli_choice(monkeypatch):
    from keras_pu.hardware import Device
    from keras_pu.hardware import choose_precision

    monkeypatch.delenv("KERAS_PU_PRECISION", raising=False)
    assert notebook_utils.precision_policy("cpu", None) == (
        choose_precision(device=Device("cpu", "cpu")).policy
    )
