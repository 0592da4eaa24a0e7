"""Zoo backbones: pretrained encoders that are not presets. Here the
ImageNet weights of EfficientNet-Lite0, the zoo backbone
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
3. the same path inside the companion package keras-pu-presets
   (`pip install "keras-pu[presets]"`), for pip installs without the Hub;
4. the Hugging Face Hub repository of the entry at its pinned commit, once
   published (through the Hugging Face cache, so `HF_HUB_OFFLINE=1` works
   after one download).

Keras native weights only (`.weights.h5`, HDF5): nothing is unpickled.
"""

import os
import pathlib

from keras_pu.models.efficientnet_lite.model import register_named_weights
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
    from keras_pu.zoo.sources import companion_dir

    companion = companion_dir()
    if companion is not None:
        yield companion / "backbones" / name / WEIGHTS_FILE


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
            retry_hint=f"python -c \"import keras_pu.zoo.backbones as b; b.imagenet_weights_path({name!r})\"",
        )
        integrity.check_hdf5_signature(path, what, fix)
        integrity.verify_against_record(path, record, what, fix)
        return path
    raise ZooError(
        f"The ImageNet weights of backbone {name!r} were not found (looked "
        f"in: {', '.join(searched) or 'no local zoo folder'}) and the "
        "backbone is not published on the Hub yet. Install the companion "
        "package (`pip install \"keras-pu[presets]\"`, or its wheel built "
        "from a checkout), use a source checkout of keras-pu (its "
        "zoo/backbones/ folder holds them), or copy "
        f"zoo/backbones/{name}/ into a folder and set ${WEIGHTS_DIR_ENV} to "
        "that folder."
    )


def _resolve_imagenet():
    return imagenet_weights_path(IMAGENET_BACKBONE)


# `EfficientNetLite0(weights="imagenet")` and `EncoderUNet(encoder_weights=
# "imagenet")` (models layer) find the file through this resolver.
register_named_weights("imagenet", _resolve_imagenet)
