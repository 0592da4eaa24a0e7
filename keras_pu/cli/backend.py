"""Which Keras backend the `keras-pu` command runs on, decided before Keras
is imported (Keras fixes its backend on first import).

The order, first match wins:

1. `--backend NAME` on the command line;
2. the `KERAS_BACKEND` environment variable;
3. the `"backend"` of Keras's own config file (`$KERAS_HOME/keras.json`,
   default `~/.keras/keras.json`) when that backend is installed;
4. the first installed of tensorflow, jax, torch. TensorFlow comes first
   because it is Keras's own default (so the command line and
   `import keras` agree); JAX next, because it compiles the whole training
   step, which is faster than PyTorch's eager steps on a CPU.

A backend named in 1 or 2 that is not installed is an error (never a
silent switch to another backend). Nothing here imports Keras or a
backend: installation is checked with `importlib.util.find_spec`.
"""

import importlib.util
import json
import os
import pathlib

BACKENDS = ("tensorflow", "torch", "jax")
# Detection order of step 4 (see the module docstring for why).
DETECTION_ORDER = ("tensorflow", "jax", "torch")
# The distributions that make each backend importable.
BACKEND_MODULES = {
    "tensorflow": ("tensorflow",),
    "torch": ("torch",),
    "jax": ("jax", "jaxlib"),
}
INSTALL_HINT = (
    'pip install "keras-pu[jax]" (or [torch], [tensorflow]; CPU-only '
    "PyTorch: see docs/install.md)"
)


class BackendError(Exception):
    """No usable Keras backend: the message is one line that says what to
    install or which variable to change."""


def is_installed(backend):
    """True if every module of `backend` can be found (none is imported)."""
    for module in BACKEND_MODULES[backend]:
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def installed_backends():
    """The installed backends, in detection order."""
    return [name for name in DETECTION_ORDER if is_installed(name)]


def keras_config_backend():
    """The backend written in Keras's config file, or None."""
    home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    path = pathlib.Path(home) / "keras.json"
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    return value if value in BACKENDS else None


def select_backend(requested=None, environ=None):
    """The backend name to run on (see the module docstring for the order).

    Args:
        requested: the `--backend` value, or None.
        environ: the environment to read `KERAS_BACKEND` from (default
            `os.environ`).

    Raises:
        BackendError: the requested backend is not installed, or none is.
    """
    environ = os.environ if environ is None else environ
    if requested:
        if not is_installed(requested):
            raise BackendError(
                f"--backend {requested}: {requested} is not installed. "
                f"Install it ({_install_one(requested)}) or pick an installed "
                f"backend ({_installed_text()})."
            )
        return requested
    from_env = environ.get("KERAS_BACKEND")
    if from_env:
        if from_env in BACKENDS and not is_installed(from_env):
            raise BackendError(
                f"KERAS_BACKEND={from_env}, but {from_env} is not installed. "
                f"Install it ({_install_one(from_env)}), or unset "
                f"KERAS_BACKEND to use an installed backend "
                f"({_installed_text()})."
            )
        # Keras's other backends (numpy, openvino) are the user's choice.
        return from_env
    configured = keras_config_backend()
    if configured and is_installed(configured):
        return configured
    installed = installed_backends()
    if not installed:
        raise BackendError(
            "no Keras backend is installed (TensorFlow, JAX or PyTorch). "
            f"Install one: {INSTALL_HINT}."
        )
    return installed[0]


def _install_one(backend):
    return f'pip install "keras-pu[{backend}]"'


def _installed_text():
    installed = installed_backends()
    return "installed: " + ", ".join(installed) if installed else "none is installed"
