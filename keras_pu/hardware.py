"""What the machine can do fast: the training precision and thread count.

`choose_precision()` answers "which Keras dtype policy trains fastest here
without hurting the model", from the active backend and the device it runs
on:

| where                                   | policy           | why |
|-----------------------------------------|------------------|-----|
| TPU                                     | `mixed_bfloat16` | bf16 is the TPU's native matmul type |
| NVIDIA GPU, compute capability >= 8.0   | `mixed_bfloat16` | tensor cores, float32 range: no loss scaling |
| NVIDIA GPU, compute capability 7.x      | `mixed_float16`  | tensor cores without bf16 (V100, T4); Keras scales the loss |
| older GPU                               | `float32`        | no tensor cores |
| CPU with AVX512-BF16 or AMX-BF16, TensorFlow (oneDNN on) or PyTorch (oneDNN) | `mixed_bfloat16` | oneDNN runs bf16 convolutions on those units |
| CPU under JAX, or without bf16 units    | `float32`        | XLA:CPU has no bf16 convolution kernels: bf16 is emulated and slower |
| CPU, model built on depthwise convolutions | `float32`     | oneDNN's bf16 depthwise kernels lose to float32 (measured 2x slower) |

The product units compute in float32 under every policy (see
`keras_pu.layers.ProductUnit2D`), so a mixed policy never puts the log/exp
in low precision.

The environment variable `KERAS_PU_PRECISION` (`auto`, `float32`,
`bfloat16` or `float16`) overrides the automatic choice wherever keras-pu
makes it (e.g. to pin float32 in a CI job).

`set_threads(n)` sets the number of CPU threads of every backend that is
(or will be) imported. PyTorch's OpenMP threads stall whenever another
process takes one of their cores, so on a shared machine fewer threads than
cores can be faster.
"""

import functools
import os
import platform
import sys
from typing import NamedTuple

# User-facing precision names -> Keras dtype policies.
PRECISIONS = {
    "float32": "float32",
    "bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
}
PRECISION_ENV = "KERAS_PU_PRECISION"
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


class PrecisionChoice(NamedTuple):
    """The chosen Keras dtype policy and why, in words."""

    policy: str
    reason: str


def dtype_policy_for(precision):
    """`"float32"`, `"bfloat16"`, `"float16"` (or a Keras policy name) ->
    the Keras dtype policy name. Raises ValueError naming the choices."""
    if precision in PRECISIONS:
        return PRECISIONS[precision]
    if precision in PRECISIONS.values():
        return precision
    raise ValueError(
        f"Unknown precision {precision!r}: use 'auto' or one of "
        f"{sorted(PRECISIONS)} (or a Keras policy: "
        f"{sorted(PRECISIONS.values())})."
    )


def cpu_flags():
    """The CPU's feature flags (Linux /proc/cpuinfo); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


class Device(NamedTuple):
    """The device the active backend computes on."""

    kind: str  # "cpu", "gpu" or "tpu"
    name: str
    compute_capability: tuple = None  # (major, minor) of an NVIDIA GPU


def _parse_capability(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(".")
    try:
        return tuple(int(v) for v in value)[:2]
    except (TypeError, ValueError):
        return None


def active_device(backend=None):
    """The first device of the active Keras backend (imports it)."""
    import keras

    backend = backend or keras.backend.backend()
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return Device(
                "gpu",
                torch.cuda.get_device_name(0),
                tuple(torch.cuda.get_device_capability(0)),
            )
        return Device("cpu", platform.processor() or "CPU")
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return Device(
                "gpu",
                details.get("device_name", gpus[0].name),
                _parse_capability(details.get("compute_capability")),
            )
        if tf.config.list_physical_devices("TPU"):
            return Device("tpu", "TPU")
        return Device("cpu", platform.processor() or "CPU")
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        kind = {"gpu": "gpu", "cuda": "gpu", "rocm": "gpu", "tpu": "tpu"}.get(
            device.platform, "cpu"
        )
        return Device(
            kind,
            getattr(device, "device_kind", device.platform),
            _parse_capability(getattr(device, "compute_capability", None)),
        )
    return Device("cpu", platform.processor() or "CPU")


# TensorFlow's x86 builds turn their oneDNN kernels on by default only on
# CPUs with one of these (the "neural-network" extensions); elsewhere, e.g.
# on AVX2-only CPUs, they run Eigen unless TF_ENABLE_ONEDNN_OPTS=1.
TENSORFLOW_ONEDNN_DEFAULT_FLAGS = ("avx512_vnni", "avx512_bf16", "amx_tile",
                                   "amx_bf16", "amx_int8")
TENSORFLOW_ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
X86_64_MACHINES = ("x86_64", "amd64")


def _is_x86_64(machine=None):
    return (machine or platform.machine()).lower() in X86_64_MACHINES


def _env_flag(value):
    return value.strip().lower() not in ("0", "false", "")


def _onednn_enabled(backend, flags=None):
    if backend == "tensorflow":
        value = os.environ.get(TENSORFLOW_ONEDNN_ENV)
        if value is not None:
            return _env_flag(value)
        flags = cpu_flags() if flags is None else flags
        return any(flag in flags for flag in TENSORFLOW_ONEDNN_DEFAULT_FLAGS)
    if backend == "torch":
        import torch

        return bool(
            torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled
        )
    return False


def prefer_tensorflow_onednn(machine=None):
    """Asks TensorFlow for its oneDNN CPU kernels on every x86-64 CPU, by
    setting TF_ENABLE_ONEDNN_OPTS=1, unless the user has set the variable
    (their choice stands) or TensorFlow has already started (too late: it
    reads the variable once, on import). Returns True if it set it.

    TensorFlow turns oneDNN on by itself only on CPUs with AVX512-VNNI,
    AVX512-BF16 or AMX; on the others (AVX2-only machines, common among
    cloud CPUs) it runs its Eigen kernels, which train the U-Nets here
    markedly slower (`benchmarks/bench_tf_onednn.py` measures it; see
    docs/speed.md). oneDNN also runs channels-first convolutions, which
    Eigen cannot. The `keras-pu` command calls this before it imports
    Keras; in Python, set the variable before `import keras`.

    Args:
        machine: the machine type (default `platform.machine()`); only
            x86-64 gets the setting, where oneDNN is TensorFlow's tested
            CPU path.
    """
    if (TENSORFLOW_ONEDNN_ENV in os.environ or "tensorflow" in sys.modules
            or not _is_x86_64(machine)):
        return False
    os.environ[TENSORFLOW_ONEDNN_ENV] = "1"
    return True


def tensorflow_onednn_advice(backend=None, device=None, flags=None,
                             machine=None):
    """A one-line advice to set TF_ENABLE_ONEDNN_OPTS=1, when TensorFlow
    computes on an x86-64 CPU with its Eigen kernels because nobody asked
    for oneDNN (a Python session on an AVX2-only CPU); None otherwise,
    including when the user set the variable to 0 themselves. The trainer
    prints it with its run header.

    Args:
        backend: the Keras backend (default: the active one).
        device: a `Device` (default: `active_device(backend)`).
        flags: the CPU's feature flags (default: `cpu_flags()`).
        machine: the machine type (default: `platform.machine()`).
    """
    import keras

    backend = backend or keras.backend.backend()
    if (backend != "tensorflow" or TENSORFLOW_ONEDNN_ENV in os.environ
            or not _is_x86_64(machine)):
        return None
    device = device or active_device(backend)
    if device.kind != "cpu" or _onednn_enabled(backend, flags):
        return None
    return ("TensorFlow runs its Eigen CPU kernels on this CPU; "
            "TF_ENABLE_ONEDNN_OPTS=1, set before TensorFlow is imported, "
            "trains 1.5-1.9x faster on oneDNN (the keras-pu command sets "
            "it; see docs/speed.md).")


@functools.cache
def tensorflow_runs_channels_first():
    """Whether TensorFlow runs a channels-first (NCHW) convolution on its
    default device.

    GPUs do; on a CPU only TensorFlow's oneDNN kernels do, and TensorFlow
    turns oneDNN on by default only on CPUs with AVX512-VNNI/BF16 or AMX
    (or when `TF_ENABLE_ONEDNN_OPTS=1`). On others (e.g. AVX2-only
    x86 CPUs) an NCHW convolution fails with "The Conv2D op currently only
    supports the NHWC tensor format on the CPU". Probed once with a 2x2
    convolution (run eagerly even while a function is being traced) and
    cached.
    """
    import tensorflow as tf

    with tf.init_scope():
        try:
            tf.nn.conv2d(
                tf.zeros((1, 1, 2, 2)), tf.zeros((1, 1, 1, 1)),
                strides=1, padding="VALID", data_format="NCHW",
            )
        except (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError):
            return False
    return True


def choose_precision(backend=None, device=None, flags=None,
                     depthwise=False):
    """The fastest safe dtype policy for this backend and device.

    Args:
        backend: Keras backend name. Defaults to the active one.
        device: a `Device`. Defaults to `active_device(backend)`.
        flags: CPU feature flags. Defaults to `cpu_flags()`.
        depthwise: `True` for a model whose compute is mostly depthwise
            convolutions (e.g. an EfficientNet encoder). On a CPU such a
            model stays float32: bf16 pays for dense convolutions, whose
            channel reduction runs on the AVX512-BF16 dot-product (or AMX
            tile) instructions, but a depthwise convolution has no channel
            reduction to give them, and the casts around it cost more than
            it saves (an EfficientNet-Lite0 U-Net trained 2x slower in bf16
            on an AVX512-BF16 CPU). GPUs and TPUs are not affected.

    Returns:
        `PrecisionChoice(policy, reason)`. `KERAS_PU_PRECISION`, when set to
        anything but `auto`, wins (reason says so).

    Example:

    ```python
    import keras, keras_pu

    choice = keras_pu.hardware.choose_precision()
    print(choice.policy, "-", choice.reason)
    keras.config.set_dtype_policy(choice.policy)
    ```
    """
    import keras

    forced = os.environ.get(PRECISION_ENV, "auto").strip().lower()
    if forced and forced != "auto":
        try:
            policy = dtype_policy_for(forced)
        except ValueError as e:
            raise ValueError(f"{PRECISION_ENV}: {e}") from None
        return PrecisionChoice(policy, f"set by {PRECISION_ENV}={forced}")
    backend = backend or keras.backend.backend()
    device = device or active_device(backend)
    if device.kind == "tpu":
        return PrecisionChoice("mixed_bfloat16", "TPU: bf16 is native")
    if device.kind == "gpu":
        capability = device.compute_capability
        if capability is None:
            return PrecisionChoice(
                "float32", f"GPU {device.name}: compute capability unknown"
            )
        if capability >= (8, 0):
            return PrecisionChoice(
                "mixed_bfloat16",
                f"GPU {device.name} (compute capability "
                f"{capability[0]}.{capability[1]}): bf16 tensor cores",
            )
        if capability >= (7, 0):
            return PrecisionChoice(
                "mixed_float16",
                f"GPU {device.name} (compute capability "
                f"{capability[0]}.{capability[1]}): float16 tensor cores, "
                "no bf16",
            )
        return PrecisionChoice(
            "float32", f"GPU {device.name}: no tensor cores"
        )
    flags = cpu_flags() if flags is None else frozenset(flags)
    bf16_units = [f for f in CPU_BF16_FLAGS if f in flags]
    if not bf16_units:
        return PrecisionChoice("float32", "CPU without AVX512-BF16/AMX-BF16")
    if depthwise:
        return PrecisionChoice(
            "float32",
            "CPU and a model built on depthwise convolutions: oneDNN's bf16 "
            "depthwise kernels are slower than float32",
        )
    if backend == "jax":
        return PrecisionChoice(
            "float32",
            "CPU under JAX: XLA:CPU emulates bf16 convolutions (slower "
            "than float32)",
        )
    if not _onednn_enabled(backend, flags):
        return PrecisionChoice(
            "float32", f"CPU: oneDNN is off under {backend}"
        )
    return PrecisionChoice(
        "mixed_bfloat16",
        f"CPU with {'/'.join(f.upper() for f in bf16_units)}: oneDNN bf16 "
        f"convolutions under {backend}",
    )


def set_threads(count):
    """Uses `count` CPU threads for the backends' compute.

    Sets the environment variables the backends read when they start
    (OMP_NUM_THREADS, MKL_NUM_THREADS, TF_NUM_INTRAOP_THREADS,
    TF_NUM_INTEROP_THREADS; XLA's single-thread Eigen flag for `count=1`)
    and, for a backend already imported, its runtime setting. TensorFlow's
    thread pools are fixed once it has run an op: call this first.

    Args:
        count: int >= 1.

    Raises:
        ValueError: `count` is not a positive integer.
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"threads must be an integer >= 1, got {count!r}")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "TF_NUM_INTRAOP_THREADS"):
        os.environ[name] = str(count)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1" if count == 1 else "2"
    if count == 1:  # read when XLA starts its CPU client
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (
                flags + " --xla_cpu_multi_thread_eigen=false"
            ).strip()
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(count)
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(count)
        except RuntimeError:
            # TensorFlow may run only the augmentation of a torch/JAX model:
            # its thread pools matter only when it is the backend.
            keras = sys.modules.get("keras")
            if keras is None or keras.backend.backend() != "tensorflow":
                return
            import warnings

            warnings.warn(
                f"TensorFlow has already started: its thread count stays as "
                f"it is (call set_threads({count}) before running any op).",
                stacklevel=2,
            )
