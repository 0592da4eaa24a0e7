"""keras_pu.hardware: the automatic precision choice and thread settings."""

import os
import subprocess
import sys

import keras
import pytest

from keras_pu import hardware
from keras_pu.hardware import Device
from keras_pu.hardware import choose_precision
from tests.conftest import once_per_suite

CPU = Device("cpu", "test CPU")


@pytest.fixture
def auto(monkeypatch):
    monkeypatch.delenv(hardware.PRECISION_ENV, raising=False)


@pytest.mark.parametrize("backend", ["tensorflow", "torch", "jax"])
def test_cpu_without_bf16_units_trains_in_float32(auto, backend):
    choice = choose_precision(backend, CPU, flags={"avx2", "avx512f"})
    assert choice.policy == "float32"
    assert "BF16" in choice.reason


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_bf16_cpu_under_onednn_backends_picks_bf16(auto, monkeypatch, flag):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    choice = choose_precision("tensorflow", CPU, flags={"avx512f", flag})
    assert choice.policy == "mixed_bfloat16"
    assert flag.upper() in choice.reason


def test_onednn_switched_off_means_float32(auto, monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    choice = choose_precision("tensorflow", CPU, flags={"avx512_bf16"})
    assert choice.policy == "float32"
    assert "oneDNN" in choice.reason


def test_tensorflow_onednn_default_follows_the_cpu(monkeypatch):
    # Unset, TensorFlow decides from the CPU: on with the neural-network
    # extensions, off on an AVX2-only CPU.
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert hardware._onednn_enabled("tensorflow", {"avx2", "avx512_bf16"})
    assert hardware._onednn_enabled("tensorflow", {"avx2", "amx_tile"})
    assert not hardware._onednn_enabled("tensorflow", {"avx2", "fma"})
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert hardware._onednn_enabled("tensorflow", {"avx2", "fma"})
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "false")
    assert not hardware._onednn_enabled("tensorflow", {"avx512_bf16"})


def test_prefer_tensorflow_onednn_sets_it_only_when_it_can_matter(
        monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    saved = sys.modules.pop("tensorflow", None)
    try:
        # Not on other machine types.
        assert not hardware.prefer_tensorflow_onednn(machine="aarch64")
        assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
        # x86-64, unset, TensorFlow not started: set.
        assert hardware.prefer_tensorflow_onednn(machine="x86_64")
        assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
        # The user's choice stands.
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
        assert not hardware.prefer_tensorflow_onednn(machine="x86_64")
        assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
        # Too late once TensorFlow is imported: nothing is pretended.
        monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
        sys.modules["tensorflow"] = saved or object()
        assert not hardware.prefer_tensorflow_onednn(machine="x86_64")
        assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    finally:
        if saved is not None:
            sys.modules["tensorflow"] = saved
        else:
            sys.modules.pop("tensorflow", None)


@once_per_suite("the launcher's TensorFlow setting is the same under every "
                "backend")
def test_the_command_runs_tensorflow_on_onednn_unless_told_otherwise(
        tmp_path):
    # A fresh `keras-pu` process with the variable unset gets oneDNN on
    # x86-64; with it set, the user's value reaches TensorFlow unchanged.
    import platform

    code = ("import os, keras_pu_cli; keras_pu_cli.main(['zoo', 'list']); "
            "print('ONEDNN=' + os.environ.get('TF_ENABLE_ONEDNN_OPTS', '-'))")
    expected = ("1" if platform.machine().lower() in ("x86_64", "amd64")
                else "-")
    for preset, want in ((None, expected), ("0", "0")):
        env = {k: v for k, v in os.environ.items()
               if k != "TF_ENABLE_ONEDNN_OPTS"}
        if preset is not None:
            env["TF_ENABLE_ONEDNN_OPTS"] = preset
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"ONEDNN={want}" in result.stdout, result.stdout[-2000:]


def test_onednn_advice_only_where_tensorflow_runs_eigen_by_default(
        monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    avx2 = {"avx2", "fma"}
    advice = hardware.tensorflow_onednn_advice(
        "tensorflow", CPU, flags=avx2, machine="x86_64")
    assert "TF_ENABLE_ONEDNN_OPTS=1" in advice
    # TensorFlow's own default is oneDNN on this CPU.
    assert hardware.tensorflow_onednn_advice(
        "tensorflow", CPU, flags=avx2 | {"avx512_vnni"},
        machine="x86_64") is None
    # Not a CPU, not x86-64, not TensorFlow.
    gpu = Device("gpu", "test GPU", (8, 0))
    assert hardware.tensorflow_onednn_advice(
        "tensorflow", gpu, flags=avx2, machine="x86_64") is None
    assert hardware.tensorflow_onednn_advice(
        "tensorflow", CPU, flags=avx2, machine="aarch64") is None
    for other in ("torch", "jax"):
        assert hardware.tensorflow_onednn_advice(
            other, CPU, flags=avx2, machine="x86_64") is None
    # Set by the user, either way: their choice, no advice.
    for value in ("0", "1"):
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", value)
        assert hardware.tensorflow_onednn_advice(
            "tensorflow", CPU, flags=avx2, machine="x86_64") is None


def test_jax_on_cpu_stays_float32_even_with_bf16_units(auto):
    choice = choose_precision("jax", CPU, flags={"avx512_bf16", "amx_bf16"})
    assert choice.policy == "float32"
    assert "XLA" in choice.reason


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_depthwise_model_stays_float32_on_a_bf16_cpu(auto, monkeypatch,
                                                     backend, flag):
    # bf16 made the EfficientNet-Lite0 U-Net 2x slower on an AVX512-BF16 CPU.
    monkeypatch.setattr(hardware, "_onednn_enabled",
                        lambda backend, flags=None: True)
    dense = choose_precision(backend, CPU, flags={"avx512f", flag})
    depthwise = choose_precision(backend, CPU, flags={"avx512f", flag},
                                 depthwise=True)
    assert dense.policy == "mixed_bfloat16"
    assert depthwise.policy == "float32"
    assert "depthwise" in depthwise.reason


@pytest.mark.parametrize(
    "device, policy",
    [(Device("gpu", "test GPU", (8, 0)), "mixed_bfloat16"),
     (Device("gpu", "test GPU", (7, 5)), "mixed_float16"),
     (Device("tpu", "TPU"), "mixed_bfloat16")],
)
def test_depthwise_model_still_gets_low_precision_on_accelerators(
        auto, device, policy):
    assert choose_precision("jax", device, depthwise=True).policy == policy


def test_model_registry_says_which_models_are_depthwise():
    from keras_pu.models.registry import model_specs

    depthwise = {spec.name for spec in model_specs() if spec.depthwise}
    assert depthwise == {"EncoderPUUNet", "EncoderResUNet"}


@pytest.mark.parametrize(
    "capability, policy",
    [((9, 0), "mixed_bfloat16"), ((8, 0), "mixed_bfloat16"),
     ((7, 5), "mixed_float16"), ((6, 1), "float32"), (None, "float32")],
)
def test_gpu_choice_follows_compute_capability(auto, capability, policy):
    device = Device("gpu", "test GPU", capability)
    assert choose_precision("torch", device).policy == policy


def test_tpu_picks_bf16(auto):
    assert choose_precision("jax", Device("tpu", "TPU")).policy == (
        "mixed_bfloat16"
    )


def test_environment_variable_overrides(monkeypatch):
    monkeypatch.setenv(hardware.PRECISION_ENV, "bfloat16")
    choice = choose_precision("jax", CPU, flags=set())
    assert choice.policy == "mixed_bfloat16"
    assert hardware.PRECISION_ENV in choice.reason
    monkeypatch.setenv(hardware.PRECISION_ENV, "double")
    with pytest.raises(ValueError, match="KERAS_PU_PRECISION.*'double'"):
        choose_precision("jax", CPU, flags=set())


def test_active_device_and_choice_on_this_machine(auto):
    # No fake: the active backend is asked (CI machines have no GPU).
    device = hardware.active_device()
    assert device.kind in ("cpu", "gpu", "tpu")
    choice = choose_precision()
    assert choice.policy in ("float32", "mixed_bfloat16", "mixed_float16")
    keras.config.set_dtype_policy(choice.policy)  # a valid Keras policy


def test_precision_names():
    assert hardware.dtype_policy_for("bfloat16") == "mixed_bfloat16"
    assert hardware.dtype_policy_for("mixed_float16") == "mixed_float16"
    with pytest.raises(ValueError, match="'int8'.*auto"):
        hardware.dtype_policy_for("int8")


@pytest.mark.parametrize("count", [0, -1, 1.5, True, "2"])
def test_set_threads_rejects_bad_counts(count):
    with pytest.raises(ValueError, match="threads must be an integer"):
        hardware.set_threads(count)


def test_set_threads_reaches_the_backend_started_after_it():
    # A fresh interpreter: thread pools are fixed once a backend runs.
    code = (
        "from keras_pu import hardware; hardware.set_threads(1)\n"
        "import os, keras\n"
        "b = keras.backend.backend()\n"
        "if b == 'torch':\n"
        "    import torch; print(torch.get_num_threads())\n"
        "elif b == 'tensorflow':\n"
        "    import tensorflow as tf\n"
        "    print(tf.config.threading.get_intra_op_parallelism_threads())\n"
        "else:\n"
        "    print(1 if 'multi_thread_eigen=false' in os.environ['XLA_FLAGS']"
        " else 0)\n"
    )
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "XLA_FLAGS"):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "1"
