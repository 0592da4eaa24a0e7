"""The keras-pu model zoo: pretrained presets, Hub downloads with pinned
revisions and verified checksums, and synthetic example images.

    model = keras_pu.zoo.load("pu_unet_isic")

`load` accepts a preset name, an `hf://org/repo[@revision]` handle or a
folder in Keras's directory format. `list_presets()`, `info(name)` and
`recommended(dataset)` (which preset to use for what) read the registry (`keras_pu/zoo/registry.json`), the single source of truth for
the presets. `download()` fills the Hugging Face cache for offline use.
`keras_pu.zoo.phantoms` (the module `keras_pu.data.phantoms`, kept here for
existing code) generates synthetic test images with known masks. The
maintainer tools that write the registry, the model cards and the README's
presets table live outside the package, in `tools/zoo/` of the source
checkout.
"""

from keras_pu.data import phantoms
from keras_pu.zoo import backbones  # noqa: F401  (weights="imagenet")
from keras_pu.zoo.catalog import info
from keras_pu.zoo.catalog import list_presets
from keras_pu.zoo.catalog import recommended
from keras_pu.zoo.errors import ArchitectureMismatchError
from keras_pu.zoo.errors import DownloadError
from keras_pu.zoo.errors import IntegrityError
from keras_pu.zoo.errors import OfflineCacheMissError
from keras_pu.zoo.errors import PresetNotPublishedError
from keras_pu.zoo.errors import PresetNotTrainedError
from keras_pu.zoo.errors import UnknownPresetError
from keras_pu.zoo.errors import UnsafeModelError
from keras_pu.zoo.errors import ZooError
from keras_pu.zoo.loading import download
from keras_pu.zoo.loading import load

__all__ = [
    "load",
    "download",
    "list_presets",
    "info",
    "recommended",
    "phantoms",
    "ZooError",
    "UnknownPresetError",
    "PresetNotTrainedError",
    "PresetNotPublishedError",
    "DownloadError",
    "OfflineCacheMissError",
    "IntegrityError",
    "ArchitectureMismatchError",
    "UnsafeModelError",
]
