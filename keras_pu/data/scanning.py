"""What every dataset module is made of: the `DatasetSpec` it declares,
the `Sample`s its scanner finds, the problems it reports, and the helpers
that pair image files with mask files.

A dataset module (`keras_pu/data/layouts/<key>.py`) defines `DATASET =
DatasetSpec(...)` and the scanner it names; `keras_pu.data.dataset_registry`
collects them. Nothing here decodes pixels.
"""

import dataclasses
import pathlib
import re

IMAGE_EXTENSIONS = frozenset(
    (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp",
     ".ppm", ".pgm", ".pbm", ".jp2")
)


class DatasetError(ValueError):
    """A dataset folder is missing, not in the expected layout, or broken.

    Attributes:
        problems: tuple of `DatasetProblem` (empty for layout errors).
    """

    def __init__(self, message, problems=()):
        self.problems = tuple(problems)
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class DatasetProblem:
    """One defect of a dataset: what (`kind`), which files, and details."""

    kind: str
    paths: tuple
    detail: str = ""
    sample_id: str = None


@dataclasses.dataclass(frozen=True)
class Sample:
    """One image and its ground truth.

    Attributes:
        id: unique within the dataset (the image file stem, e.g.
            `"benign (4)"`, `"ISIC_0000000"`).
        image_path: `pathlib.Path` of the image.
        mask_paths: tuple of mask files, merged with a logical OR when read
            (`keras_pu.data.read_mask`).
        metadata: dict, e.g. `{"class": "benign"}` (BUSI) or
            `{"subset": "training"}` (ISIC).
    """

    id: str
    image_path: pathlib.Path
    mask_paths: tuple
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "image_path", pathlib.Path(self.image_path))
        object.__setattr__(
            self, "mask_paths", tuple(pathlib.Path(p) for p in self.mask_paths)
        )


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Everything keras-pu knows about one dataset, declared in its module.

    Attributes:
        key: the one spelling of the dataset everywhere: `load_dataset`'s
            layout, the recipe's `data.layout` and `data.split`, the
            committed split file `keras_pu/data/splits/<key>.json`, and the
            zoo registry's dataset key.
        display_name: short name (`SegmentationDataset.name`, tables).
        scan: `scan(root, subset) -> (samples, problems)`: pairs the images
            and masks of a folder in this layout.
        detect: `detect(root, subfolder_names) -> bool`: whether a folder is
            in this layout (`detect_layout`); `None`: never auto-detected.
        detect_order: datasets are tried in increasing order (specific
            layouts before generic ones).
        layout_hint: what a folder in this layout holds, for error messages.
        full_name: the name in model cards. Defaults to `display_name`.
        subsets: names of the official subsets `scan` accepts (ISIC);
            empty when the layout has none.
        has_split: whether a committed split file ships with keras-pu.
        url, citation, licence: where it comes from, how to cite it, and its
            terms. The research datasets may be used for research and
            education only.
        aliases: other spellings accepted for backward compatibility (e.g.
            `kvasir_seg`, the old zoo registry key).
    """

    key: str
    display_name: str
    scan: object
    detect: object = None
    detect_order: int = 50
    layout_hint: str = ""
    full_name: str = ""
    subsets: tuple = ()
    has_split: bool = False
    url: str = ""
    citation: str = ""
    licence: str = ""
    aliases: tuple = ()

    @property
    def split_file(self):
        """File name of the committed split (`None` without one)."""
        return f"{self.key}.json" if self.has_split else None


def natural_key(text):
    """'benign (2)' sorts before 'benign (10)'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def image_files(folder):
    """Image files of `folder` (not recursive), hidden files ignored."""
    return sorted(
        (
            p
            for p in pathlib.Path(folder).iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and p.suffix.lower() in IMAGE_EXTENSIONS
        ),
        key=lambda p: natural_key(p.name),
    )


def require_dir(path, layout, what):
    if not path.is_dir():
        raise DatasetError(
            f"{layout} layout: expected the folder '{path}' ({what}) but it "
            f"does not exist. Check the dataset path, or use the `folder` "
            "layout (images/ + masks/) for your own data."
        )


def pair_by_stem(images_dir, masks_dir, suffixes, metadata=None, skip=None):
    """Pairs images with masks whose stem is the image stem + a suffix;
    returns `(samples, problems)`."""
    metadata = metadata or {}
    images = [p for p in image_files(images_dir) if not (skip and skip(p))]
    masks = [p for p in image_files(masks_dir) if not (skip and skip(p))]
    problems = []
    by_stem = {}
    for image in images:
        by_stem.setdefault(image.stem, []).append(image)
    mask_by_stem = {}
    for mask in masks:
        mask_by_stem.setdefault(mask.stem, []).append(mask)

    samples, used = [], set()
    for stem, group in by_stem.items():
        if len(group) > 1:
            problems.append(DatasetProblem(
                "ambiguous", tuple(group),
                f"several images share the stem '{stem}'", stem,
            ))
            used.update(m for s in suffixes for m in mask_by_stem.get(stem + s, ()))
            continue
        candidates = [m for s in suffixes for m in mask_by_stem.get(stem + s, ())]
        used.update(candidates)
        if not candidates:
            problems.append(DatasetProblem("missing mask", (group[0],), "", stem))
        elif len(candidates) > 1:
            problems.append(DatasetProblem(
                "ambiguous", (group[0], *candidates),
                f"several masks match the image '{group[0].name}'", stem,
            ))
        else:
            samples.append(Sample(stem, group[0], (candidates[0],), dict(metadata)))
    for mask in masks:
        if mask not in used:
            problems.append(DatasetProblem("extra mask", (mask,)))
    return samples, problems
