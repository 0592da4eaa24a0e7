"""ImageNet weights of EfficientNet-Lite0: the zoo backbone
`efficientnet_lite0_imagenet`, found offline and verified before Keras reads
a byte.

The backbone is an entry of the `"backbones"` section of the zoo registry
(`keras_pu/zoo/registry.json`), which pins the sha256 and size of its
`model.weights.h5`. The file is looked up, in order:

1. `$KERAS_PU_BACKBONE_WEIGHTS_DIR/<backbone>/model.weights.h5` (e.g. a copy
   on a machine without the source checkout);
2. `<zoo dir>/backbones/<backbone>/model.weights.h5`, where the zoo dir is
   `$KERAS_PU_ZOO_DIR` or `zoo/` of a source checkout
   (`keras_pu.zoo.registry.local_zoo_dir`);
3. the Hugging Face Hub repository of the entry at its pinned commit, once
   published (through the Hugging Face cache, so `HF_HUB_OFFLINE=1` works
   after one download).

Keras native weights only (`.weights.h5`, HDF5): nothing is unpickled.
"""

import os
import pathlib

from keras_pu.zoo import integrity
from keras_pu.zoo.errors import ZooError

IMAGENET_BACKBONE = "efficientnet_lite0_imagenet"
WEIGHTS_FILE = "model.weights.h5"
WEIGHTS_DIR_ENV = "KERAS_PU_BACKBONE_WEIGHTS_DIR"


def backbone_entry(name=IMAGENET_BACKBONE):
    """The registry entry (a dict) of backbone `name`.

    Raises:
        ZooError: the registry has no such backbone.
    """
    from keras_pu.zoo.registry import load_registry

    registry = load_registry()
    backbones = registry.data.get("backbones") or {}
    if name not in backbones:
        raise ZooError(
            f"Unknown backbone {name!r}: the zoo registry {registry.path} "
            f"lists {sorted(backbones) or 'no backbones'}. Restore "
            "keras_pu/zoo/registry.json from git or reinstall keras-pu."
        )
    return backbones[name]


def _candidate_paths(name):
    override = os.environ.get(WEIGHTS_DIR_ENV)
    if override:
        yield pathlib.Path(override) / name / WEIGHTS_FILE
    from keras_pu.zoo.registry import local_zoo_dir

    zoo_dir = local_zoo_dir()
    if zoo_dir is not None:
        yield pathlib.Path(zoo_dir) / "backbones" / name / WEIGHTS_FILE


def imagenet_weights_path(name=IMAGENET_BACKBONE):
    """Path of the verified weights file of backbone `name`.

    Returns:
        A local path whose size and sha256 match the registry's pin.

    Raises:
        IntegrityError: a file was found but does not match the pin.
        ZooError: no copy was found (the message says where to put one).
    """
    from keras_pu.zoo.registry import FileRecord

    entry = backbone_entry(name)
    rec = entry["files"][WEIGHTS_FILE]
    record = FileRecord(sha256=rec["sha256"], size=int(rec["size"]))
    what = f"{WEIGHTS_FILE} of backbone {name!r}"
    fix = (
        "Delete it and restore it (`git checkout zoo/backbones` in a source "
        "checkout, or copy the published file again)."
    )
    searched = []
    for path in _candidate_paths(name):
        searched.append(str(path))
        if path.is_file():
            integrity.check_hdf5_signature(path, what, fix)
            integrity.verify_against_record(path, record, what, fix)
            return str(path)
    hub = entry.get("hub") or {}
    if hub.get("revision"):
        from keras_pu.zoo import hub as hub_lib

        path = hub_lib.download_file(
            hub["repo_id"],
            WEIGHTS_FILE,
            hub["revision"],
            owner=f"backbone {name!r}",
            retry_hint=f"python -c \"import keras_pu.models.efficientnet_lite as e; e.imagenet_weights_path({name!r})\"",
        )
        integrity.check_hdf5_signature(path, what, fix)
        integrity.verify_against_record(path, record, what, fix)
        return path
    raise ZooError(
        f"The ImageNet weights of backbone {name!r} were not found (looked "
        f"in: {', '.join(searched) or 'no local zoo folder'}) and the "
        "backbone is not published on the Hub yet. Use a source checkout of "
        "keras-pu (its zoo/backbones/ folder holds them), or copy "
        f"zoo/backbones/{name}/ into a folder and set ${WEIGHTS_DIR_ENV} to "
        "that folder."
    )


def resolve_weights(weights):
    """`"imagenet"` or a `.weights.h5` path -> a local, checked path."""
    if weights == "imagenet":
        return imagenet_weights_path()
    path = pathlib.Path(os.fspath(weights))
    if path.suffixes[-2:] != [".weights", ".h5"]:
        raise ValueError(
            "`weights` must be None, 'imagenet' or the path of a Keras "
            f"'.weights.h5' file; received {weights!r}."
        )
    if not path.is_file():
        raise FileNotFoundError(f"Weights file {str(path)!r} does not exist.")
    integrity.check_hdf5_signature(
        path, f"weights file {str(path)!r}", "Pass a file written by "
        "model.save_weights()."
    )
    return str(path)


def load_weights_by_name(model, weights, prefix=""):
    """Copies EfficientNet-Lite0 weights into the layers of `model` that
    carry the same names (with `prefix` in front).

    Used for the encoder without classifier, and for U-Nets built on the
    encoder. Every encoder layer of the source must be present in `model`.

    Args:
        model: a built Keras model containing the Lite0 feature layers.
        weights: `"imagenet"` or a `.weights.h5` path of a full
            (`include_top=True`) `EfficientNetLite0`.
        prefix: the prefix of the encoder layer names in `model`. Defaults
            to `""`.

    Returns:
        The number of layers whose weights were copied.
    """
    from keras_pu.models.efficientnet_lite.model import EfficientNetLite0

    path = resolve_weights(weights)
    source = EfficientNetLite0(
        input_shape=(None, None, 3),
        include_top=True,
        data_format="channels_last",
        compute_data_format="channels_last",
        name="efficientnet_lite0_source",
    )
    source.load_weights(path)
    head = {"head_conv", "head_bn", "predictions"}
    copied = 0
    for layer in source.layers:
        if not layer.weights or layer.name in head:
            continue
        try:
            target = model.get_layer(prefix + layer.name)
        except ValueError:
            raise ValueError(
                f"Model {model.name!r} has no layer {prefix + layer.name!r}: "
                "it is not built on the EfficientNet-Lite0 encoder (or with "
                "another layer-name prefix)."
            ) from None
        target.set_weights(layer.get_weights())
        copied += 1
    return copied
