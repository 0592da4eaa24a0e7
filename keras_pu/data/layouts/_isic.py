"""The scanner shared by the ISIC challenge layouts (`isic2017`,
`isic2018`): one input folder and one ground-truth folder per official
subset, `ISIC_<n>.jpg` paired with `ISIC_<n>_segmentation.png`."""

import re
import warnings

from keras_pu.data.scanning import DatasetError
from keras_pu.data.scanning import DatasetProblem
from keras_pu.data.scanning import Sample
from keras_pu.data.scanning import image_files

ISIC_SUBSETS = ("training", "validation", "test")
_ISIC_IMAGE = re.compile(r"^(ISIC_\d+)$")
_ISIC_MASK = re.compile(r"^(ISIC_\d+)_segmentation$")


def _isic_subsets(layout, subset):
    if subset is None:
        return None
    names = [subset] if isinstance(subset, str) else list(subset)
    bad = [s for s in names if s not in ISIC_SUBSETS]
    if bad or not names:
        raise ValueError(
            f"load_dataset: subset for {layout} must be one of {ISIC_SUBSETS} "
            f"or a list of them, got {subset!r}"
        )
    return names


def scan_isic(layout, folders, root, subset):
    """Scans `root` for the subsets in `folders` (subset -> list of (input
    folder, ground-truth folder) candidates, first match wins)."""
    wanted = _isic_subsets(layout, subset)
    samples, problems, found_any = [], [], False
    for name, candidates in folders.items():
        if wanted is not None and name not in wanted:
            continue
        pair = next(
            ((root / i, root / g) for i, g in candidates if (root / i).is_dir()),
            None,
        )
        if pair is None:
            if wanted is not None:
                raise DatasetError(
                    f"{layout} layout: no {name} images in '{root}' (expected "
                    f"the folder {candidates[0][0]}). Check the path and subset."
                )
            continue
        images_dir, masks_dir = pair
        if not masks_dir.is_dir():
            message = (
                f"{layout}: '{images_dir.name}' has no ground-truth folder "
                f"'{masks_dir.name}' next to it"
            )
            if wanted is not None:
                raise DatasetError(
                    message + ". Images without masks cannot be used to train "
                    "or evaluate; use `keras-pu predict` on the image folder."
                )
            warnings.warn(message + f": the {name} subset is not loaded.", stacklevel=3)
            continue
        found_any = True
        images = {}
        for path in image_files(images_dir):
            match = _ISIC_IMAGE.match(path.stem)
            if match:  # skips *_superpixels.png and anything unofficial
                images[path.stem] = path
        masks = {}
        for path in image_files(masks_dir):
            match = _ISIC_MASK.match(path.stem)
            if match:
                masks[match[1]] = path
            else:
                problems.append(DatasetProblem(
                    "extra mask", (path,),
                    "not named ISIC_<n>_segmentation.png",
                ))
        for stem, image in images.items():
            if stem in masks:
                samples.append(Sample(stem, image, (masks[stem],), {"subset": name}))
            else:
                problems.append(DatasetProblem("missing mask", (image,), "", stem))
        for stem, mask in masks.items():
            if stem not in images:
                problems.append(DatasetProblem("extra mask", (mask,)))
    if not found_any:
        expected = ", ".join(c[0][0] for c in folders.values())
        raise DatasetError(
            f"{layout} layout: no image folder with ground truth in '{root}' "
            f"(expected some of: {expected}, each with its ground-truth folder)."
        )
    return samples, problems
