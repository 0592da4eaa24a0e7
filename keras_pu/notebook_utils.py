"""Helpers the Colab notebooks share: what the active backend computes on,
and the dtype policy that speeds training up there.

Finding the device needs the backend's own API (there is no Keras call for
it), so this module imports jax, torch or tensorflow, whichever is active;
nothing else in the package depends on it.
"""

import platform


def find_accelerator():
    """What the active Keras backend computes on.

    Returns:
        `(kind, device_names, capability)`: kind is `"gpu"`, `"tpu"` or
        `"cpu"`; `capability` is the CUDA compute capability of the first GPU
        as a tuple, e.g. `(7, 5)`, or `None`.

    Example:

    ```python
    from keras_pu.notebook_utils import find_accelerator

    kind, devices, capability = find_accelerator()   # ("cpu", ["x86_64"], None)
    ```
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        devices = jax.devices()  # the default platform: TPU or GPU when present
        if devices[0].platform == "tpu":
            return "tpu", [d.device_kind for d in devices], None
        if devices[0].platform in ("gpu", "cuda", "rocm"):
            capability = getattr(devices[0], "compute_capability", None)
            if capability:
                capability = tuple(int(v) for v in str(capability).split("."))
            return "gpu", [d.device_kind for d in devices], capability
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():  # Keras's torch backend then works on cuda:0
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            return "gpu", names, torch.cuda.get_device_capability(0)
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = [tf.config.experimental.get_device_details(g) for g in gpus]
            names = [d.get("device_name", g.name) for d, g in zip(details, gpus)]
            return "gpu", names, details[0].get("compute_capability")
    return "cpu", [platform.processor() or platform.machine()], None


def precision_policy(kind, capability):
    """The Keras dtype policy that speeds training up on this device: the
    choice `keras-pu train` makes (`keras_pu.hardware.choose_precision`).

    Args:
        kind: `"gpu"`, `"tpu"` or `"cpu"` (from `find_accelerator`).
        capability: CUDA compute capability tuple, or `None`.

    Returns:
        `"mixed_bfloat16"` (TPU, Ampere and newer GPUs, CPUs with
        AVX512-BF16/AMX under TensorFlow or PyTorch), `"mixed_float16"`
        (Volta/Turing, e.g. Colab's T4) or `"float32"`.

    Example:

    ```python
    from keras_pu.notebook_utils import precision_policy

    precision_policy("gpu", (7, 5))   # "mixed_float16"
    ```
    """
    from keras_pu.hardware import Device
    from keras_pu.hardware import choose_precision

    capability = tuple(capability) if capability else None
    return choose_precision(device=Device(kind, kind, capability)).policy


def describe_environment(accelerator):
    """The lines a notebook prints about versions and the device.

    Args:
        accelerator: the `(kind, device_names, capability)` of
            `find_accelerator()`.

    Returns:
        A str of one to three lines.

    Example:

    ```python
    from keras_pu import notebook_utils

    print(notebook_utils.describe_environment(notebook_utils.find_accelerator()))
    ```
    """
    import keras

    from keras_pu.version import __version__

    kind, devices, capability = accelerator
    lines = [
        f"keras-pu {__version__}, Keras {keras.__version__}, backend "
        f"{keras.backend.backend()}",
        f"Computing on {kind.upper()}: {', '.join(devices)}"
        + (f" (compute capability {'.'.join(map(str, capability))})"
           if capability else ""),
    ]
    if kind == "cpu":
        lines.append("No GPU found: running on the CPU. In Colab: Runtime > "
                     "Change runtime type > GPU.")
    return "\n".join(lines)
