"""Shared test configuration. The suite runs once per Keras backend: the
backend is chosen by KERAS_BACKEND before Keras is imported (see
tests/run_all_backends.py, the one test command)."""

import os
import pathlib
import platform

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Recipes default to precision "auto" (bf16 on CPUs with AVX512-BF16/AMX
# under TensorFlow and PyTorch): pin float32 so that a test's numbers do not
# depend on the CPU that runs it. tests/test_hardware.py tests the automatic
# choice itself (with this variable cleared); tests of bf16 training ask for
# it explicitly.
os.environ.setdefault("KERAS_PU_PRECISION", "float32")
# The `keras-pu` command runs TensorFlow on its oneDNN kernels on every
# x86-64 CPU (keras_pu.hardware.prefer_tensorflow_onednn), which TensorFlow
# itself does only on CPUs with AVX512-VNNI/BF16 or AMX. Tests compare runs
# of this process with runs of `keras-pu` subprocesses, so this process
# uses the same kernels, on every CPU.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Tests that cover every backend by themselves (the others in subprocesses)
# or need no backend at all run in one session of the suite only: PyTorch's,
# the session that otherwise ends first (TensorFlow's is the longest: its
# tracing of each train step is the suite's largest cost).
ONCE_PER_SUITE_BACKEND = "torch"


def once_per_suite(why):
    """A skipif marker that runs a test in the ONCE_PER_SUITE_BACKEND
    session only; `why` says why once is enough."""
    return pytest.mark.skipif(
        keras.backend.backend() != ONCE_PER_SUITE_BACKEND,
        reason=f"{why}; runs once, in the {ONCE_PER_SUITE_BACKEND} session",
    )


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend: {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """Every test starts from the same seed and the float32 policy."""
    keras.utils.set_random_seed(1234)
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


@pytest.fixture
def backend():
    return keras.backend.backend()


def shared_data_dir():
    """Where real datasets live: $KERAS_PU_DATA, else ../shared/data next to
    the repository. Returns None when neither exists."""
    env = os.environ.get("KERAS_PU_DATA")
    if env:
        path = pathlib.Path(env)
        return path if path.is_dir() else None
    path = REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


# Session fixtures of the zoo tests (tiny presets, a Hub server on loopback).
from tests.zoo_fixtures import zoo_hub  # noqa: E402,F401
from tests.zoo_fixtures import untrained_registry  # noqa: E402,F401
from tests.zoo_fixtures import zoo_presets  # noqa: E402,F401
