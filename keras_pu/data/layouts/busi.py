"""BUSI (Breast Ultrasound Images): breast-tumour segmentation.

Layout: `Dataset_BUSI_with_GT/{benign,malignant,normal}/` with
`<class> (N).png`, `<class> (N)_mask.png` and, for images with several
lesions, `_mask_1.png`, `_mask_2.png` (merged with a logical OR when read).
Normal images have all-black masks. `root` is the folder that holds
`Dataset_BUSI_with_GT` or that folder itself. `metadata["class"]` is the
class folder.
"""

import pathlib
import re

from keras_pu.data.scanning import DatasetError
from keras_pu.data.scanning import DatasetProblem
from keras_pu.data.scanning import DatasetSpec
from keras_pu.data.scanning import Sample
from keras_pu.data.scanning import image_files

KEY = "busi"
BUSI_CLASSES = ("benign", "malignant", "normal")
_BUSI_MASK = re.compile(r"^(?P<image>.+?)_mask(?:_(?P<index>\d+))?$")


def busi_folder(root):
    """The `Dataset_BUSI_with_GT` folder: `root` itself or its child."""
    root = pathlib.Path(root)
    inner = root / "Dataset_BUSI_with_GT"
    return inner if inner.is_dir() else root


def scan(root, subset):
    folder = busi_folder(root)
    classes = [c for c in BUSI_CLASSES if (folder / c).is_dir()]
    if not classes:
        raise DatasetError(
            f"busi layout: no benign/, malignant/ or normal/ folder in "
            f"'{folder}'. Pass the folder that contains Dataset_BUSI_with_GT, "
            "or Dataset_BUSI_with_GT itself."
        )
    samples, problems = [], []
    for cls in classes:
        images, masks = {}, {}
        for path in image_files(folder / cls):
            match = _BUSI_MASK.match(path.stem)
            if match:
                index = int(match["index"]) if match["index"] else 0
                masks.setdefault(match["image"], []).append((index, path))
            else:
                images[path.stem] = path
        for stem, image in images.items():
            found = sorted(masks.get(stem, ()))
            if not found:
                problems.append(DatasetProblem("missing mask", (image,), "", stem))
                continue
            samples.append(Sample(
                stem, image, tuple(p for _, p in found), {"class": cls}
            ))
        for stem, found in masks.items():
            if stem not in images:
                for _, path in sorted(found):
                    problems.append(DatasetProblem("extra mask", (path,)))
    return samples, problems


def detect(root, names):
    return "Dataset_BUSI_with_GT" in names or len(names & set(BUSI_CLASSES)) >= 2


DATASET = DatasetSpec(
    key=KEY,
    display_name="BUSI",
    full_name="BUSI (Breast Ultrasound Images)",
    scan=scan,
    detect=detect,
    detect_order=10,
    layout_hint="Dataset_BUSI_with_GT/ (BUSI)",
    has_split=True,
    url="https://doi.org/10.1016/j.dib.2019.104863",
    citation="Al-Dhabyani W., Gomaa M., Khaled H., Fahmy A., \"Dataset of "
    "breast ultrasound images\", Data in Brief 28 (2020) 104863.",
    licence="BUSI was released with an open-access (CC BY 4.0) Data in "
    "Brief article; the upstream copy ships no licence file, so the terms "
    "could not be checked against one.",
)
