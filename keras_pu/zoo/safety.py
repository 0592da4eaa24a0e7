"""What a downloaded model configuration may contain.

Loading a model must run no code that came with the download. The weights
are HDF5 (data only, read by h5py) and the configuration is JSON (no
pickle), but a Keras configuration can still name objects that execute
arbitrary code when rebuilt: `Lambda` layers (marshalled bytecode), wrapped
framework modules (`TorchModuleWrapper` stores a pickled `torch.nn.Module`),
functions wrapped by `JaxLayer`/`FlaxLayer`, or SavedModel endpoints
(`TFSMLayer`). Keras's `safe_mode=True` refuses lambdas; this module adds an
allow-list checked before Keras sees the config: every object must come from
Keras itself or from keras-pu, and none of the classes above may appear.
"""

from keras_pu.zoo.errors import UnsafeModelError

# Classes that run, unpickle or import code when rebuilt.
FORBIDDEN_CLASSES = frozenset(
    {
        "Lambda",
        "__lambda__",
        "TorchModuleWrapper",
        "JaxLayer",
        "FlaxLayer",
        "TFSMLayer",
    }
)
_ALLOWED_PACKAGES = ("keras", "keras_pu")
# Serialisation helpers without a module (tuples, numpy arrays, dtypes ...).
_MODULELESS = frozenset(
    {
        "__tuple__",
        "__numpy__",
        "__bytes__",
        "__slice__",
        "__ellipsis__",
        "__keras_tensor__",
        "__tensor__",
        "__typespec__",
    }
)


def check_config_is_safe(config, owner):
    """Walks a Keras object config and raises on anything outside the
    allow-list.

    Args:
        config: the parsed `config.json` (dict).
        owner: who the config belongs to, for messages.

    Raises:
        UnsafeModelError: naming the object and where it sits in the config.
    """
    for path, node in _objects(config, "config.json"):
        class_name = node.get("class_name")
        if class_name in FORBIDDEN_CLASSES:
            raise UnsafeModelError(
                f"{owner}: config.json contains a {class_name} object at "
                f"{path}, which would run code from the download when "
                "rebuilt. keras-pu refuses to load it. If you trust the "
                "author and the file, load it yourself with "
                "keras.saving.load_model(..., safe_mode=False)."
            )
        module = node.get("module")
        if module is None:
            if class_name in _MODULELESS or class_name == "function":
                continue
            registered = node.get("registered_name") or ""
            if registered.startswith("keras_pu>"):
                continue
            raise UnsafeModelError(
                f"{owner}: config.json object {class_name!r} at {path} names "
                "no module; keras-pu only rebuilds objects from Keras or "
                "keras-pu."
            )
        if class_name == "function" and module == "builtins":
            # Keras resolves these among its own built-in functions only.
            continue
        package = str(module).split(".", 1)[0]
        if package not in _ALLOWED_PACKAGES:
            raise UnsafeModelError(
                f"{owner}: config.json object {class_name!r} at {path} comes "
                f"from module {module!r}; keras-pu only rebuilds objects from "
                "Keras or keras-pu, so it never imports a module named by a "
                "downloaded file."
            )
        registered = node.get("registered_name")
        if (
            isinstance(registered, str)
            and ">" in registered
            and not registered.startswith("keras_pu>")
        ):
            raise UnsafeModelError(
                f"{owner}: config.json object {class_name!r} at {path} is "
                f"registered as {registered!r}, a custom object from outside "
                "keras-pu; it cannot be rebuilt safely here."
            )


def _objects(node, path):
    """Yields (path, dict) for every serialised Keras object in the tree."""
    if isinstance(node, dict):
        if "class_name" in node:
            yield path, node
        for key, value in node.items():
            yield from _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{path}[{i}]")
