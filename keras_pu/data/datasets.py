"""Segmentation datasets in their official folder layouts.

`load_dataset(layout, root)` scans a dataset folder, pairs every image with
its mask file(s), checks the pairs and returns a `SegmentationDataset`: an
immutable list of `Sample`s (id, image path, mask paths, metadata). Pixels
are not decoded here (see `keras_pu.data.io` and `keras_pu.data.pipeline`).

Layouts (`LAYOUTS`):

- `"kvasir-seg"`: `images/<id>.jpg` and `masks/<id>.jpg` (the same file
  names; the masks are lossy JPEGs, thresholded when read).
- `"busi"`: `Dataset_BUSI_with_GT/{benign,malignant,normal}/` with
  `<class> (N).png`, `<class> (N)_mask.png` and, for images with several
  lesions, `_mask_1.png`, `_mask_2.png` (merged with a logical OR when read).
  Normal images have all-black masks. `root` is the folder that holds
  `Dataset_BUSI_with_GT` or that folder itself. `metadata["class"]` is the
  class folder.
- `"isic2018"`: `ISIC2018_Task1-2_{Training,Validation,Test}_Input/ISIC_<n>.jpg`
  with `ISIC2018_Task1_{...}_GroundTruth/ISIC_<n>_segmentation.png`.
- `"isic2017"`: `ISIC-2017_{Training,Validation,Test_v2}_Data/ISIC_<n>.jpg`
  with `ISIC-2017_{...}_Part1_GroundTruth/ISIC_<n>_segmentation.png`
  (`*_superpixels.png` files of the official release are ignored; `Test`
  is accepted for `Test_v2`).
  For both ISIC layouts `subset` picks `"training"`, `"validation"`,
  `"test"` (or a list of them); `metadata["subset"]` records it.
- `"folder"`: your own data, `images/` and `masks/`; a mask matches an
  image by file stem, with any image extension and an optional `_mask` or
  `_segmentation` suffix (`images/a.png` <- `masks/a.png`, `masks/a.tif`,
  `masks/a_mask.png` or `masks/a_segmentation.png`).

Files that are not images (by extension) and hidden files are ignored.
A broken dataset -- an image without mask, a mask without image, image and
mask of different sizes, an unreadable file -- raises `DatasetError`, which
lists every offending file and what to do; `on_error="skip"` leaves the bad
pairs out with one warning instead.
"""

import dataclasses
import os
import pathlib
import re
import warnings
from concurrent.futures import ThreadPoolExecutor

from keras_pu.data.io import ImageReadError
from keras_pu.data.io import image_size
from keras_pu.data.io import verify_image

LAYOUTS = ("kvasir-seg", "busi", "isic2018", "isic2017", "folder")
IMAGE_EXTENSIONS = frozenset(
    (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp",
     ".ppm", ".pgm", ".pbm", ".jp2")
)
ISIC_SUBSETS = ("training", "validation", "test")
BUSI_CLASSES = ("benign", "malignant", "normal")
FOLDER_MASK_SUFFIXES = ("", "_mask", "_segmentation")
VERIFY_MODES = ("header", "decode")

_DISPLAY_NAMES = {
    "kvasir-seg": "Kvasir-SEG",
    "busi": "BUSI",
    "isic2018": "ISIC 2018 Task 1",
    "isic2017": "ISIC 2017 Part 1",
}
# Official folder names of each ISIC subset: (input folder, ground-truth
# folder) candidates, first match wins.
_ISIC_FOLDERS = {
    "isic2018": {
        "training": [("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth")],
        "validation": [("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth")],
        "test": [("ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth")],
    },
    "isic2017": {
        "training": [("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth")],
        "validation": [("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth")],
        "test": [
            ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth"),
            ("ISIC-2017_Test_Data", "ISIC-2017_Test_Part1_GroundTruth"),
        ],
    },
}
_ISIC_IMAGE = re.compile(r"^(ISIC_\d+)$")
_ISIC_MASK = re.compile(r"^(ISIC_\d+)_segmentation$")
_BUSI_MASK = re.compile(r"^(?P<image>.+?)_mask(?:_(?P<index>\d+))?$")


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


_PROBLEM_HELP = {
    "missing mask": "images that have no mask file",
    "extra mask": "mask files that have no image",
    "ambiguous": "files that match more than one image or mask",
    "size mismatch": "image and mask of different sizes",
    "unreadable": "files that cannot be read as images",
}


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
class SegmentationDataset:
    """An ordered, immutable collection of `Sample`s.

    Supports `len()`, iteration, indexing by position or by id, `.ids`, and
    `.subset(ids)`.

    Attributes:
        name: display name, e.g. `"Kvasir-SEG"`.
        layout: one of `LAYOUTS`.
        root: the folder it was loaded from.
        samples: tuple of `Sample`.

    Example:
    >>> dataset = load_dataset("busi", "data/BUSI")
    >>> len(dataset), dataset[0].id, dataset[0].metadata
    (780, 'benign (1)', {'class': 'benign'})
    >>> test = dataset.subset(load_split("busi", "test"))
    """

    name: str
    layout: str
    root: pathlib.Path
    samples: tuple

    def __post_init__(self):
        object.__setattr__(self, "samples", tuple(self.samples))
        object.__setattr__(self, "root", pathlib.Path(self.root))
        index = {}
        for position, sample in enumerate(self.samples):
            if sample.id in index:
                raise DatasetError(
                    f"{self.name}: two samples have the id '{sample.id}' "
                    f"({self.samples[index[sample.id]].image_path} and "
                    f"{sample.image_path}); ids must be unique: rename one"
                )
            index[sample.id] = position
        object.__setattr__(self, "_index", index)

    def __len__(self):
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self._index:
                raise KeyError(f"{self.name} has no sample with id {key!r}")
            return self.samples[self._index[key]]
        return self.samples[key]

    def __contains__(self, sample_id):
        return sample_id in self._index

    def __repr__(self):
        return (
            f"SegmentationDataset(name={self.name!r}, layout={self.layout!r}, "
            f"root='{self.root}', samples={len(self)})"
        )

    @property
    def ids(self):
        """The sample ids, in order (a list of str)."""
        return [s.id for s in self.samples]

    def subset(self, ids, name=None):
        """The samples with these ids, in the order given.

        Args:
            ids: iterable of sample ids; each must be in the dataset, once.
            name: name of the new dataset (default: the same name).

        Raises:
            DatasetError: unknown or repeated ids (all are listed).
        """
        ids = list(ids)
        unknown = [i for i in ids if i not in self._index]
        seen, repeated = set(), []
        for i in ids:
            if i in seen:
                repeated.append(i)
            seen.add(i)
        if unknown or repeated:
            parts = []
            if unknown:
                parts.append(
                    f"{len(unknown)} id(s) not in the dataset: {_quote(unknown)}"
                )
            if repeated:
                parts.append(f"{len(repeated)} repeated id(s): {_quote(repeated)}")
            raise DatasetError(
                f"{self.name} ({self.layout} at '{self.root}'): cannot take the "
                f"subset: {'; '.join(parts)}. Check that the ids (or split) "
                "belong to this dataset and that the dataset folder is complete."
            )
        return dataclasses.replace(
            self,
            name=self.name if name is None else name,
            samples=tuple(self.samples[self._index[i]] for i in ids),
        )


def _quote(items, limit=None):
    items = list(items)
    shown = items if limit is None else items[:limit]
    text = ", ".join(repr(i) for i in shown)
    if len(shown) < len(items):
        text += f", ... ({len(items) - len(shown)} more)"
    return text


def _natural_key(text):
    """'benign (2)' sorts before 'benign (10)'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _image_files(folder):
    """Image files of `folder` (not recursive), hidden files ignored."""
    return sorted(
        (
            p
            for p in pathlib.Path(folder).iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and p.suffix.lower() in IMAGE_EXTENSIONS
        ),
        key=lambda p: _natural_key(p.name),
    )


def _require_dir(path, layout, what):
    if not path.is_dir():
        raise DatasetError(
            f"{layout} layout: expected the folder '{path}' ({what}) but it "
            f"does not exist. Check the dataset path, or use the `folder` "
            "layout (images/ + masks/) for your own data."
        )


# --------------------------------------------------------------------------
# Layout scanners: each returns (samples, problems).


def _pair_by_stem(images_dir, masks_dir, suffixes, metadata=None, skip=None):
    """Pairs images with masks whose stem is the image stem + a suffix."""
    metadata = metadata or {}
    images = [p for p in _image_files(images_dir) if not (skip and skip(p))]
    masks = [p for p in _image_files(masks_dir) if not (skip and skip(p))]
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


def _scan_kvasir(root, subset):
    _require_dir(root / "images", "kvasir-seg", "the images")
    _require_dir(root / "masks", "kvasir-seg", "the masks")
    return _pair_by_stem(root / "images", root / "masks", ("",))


def _scan_folder(root, subset):
    _require_dir(root / "images", "folder", "the images")
    _require_dir(root / "masks", "folder", "the masks")
    return _pair_by_stem(root / "images", root / "masks", FOLDER_MASK_SUFFIXES)


def busi_folder(root):
    """The `Dataset_BUSI_with_GT` folder: `root` itself or its child."""
    root = pathlib.Path(root)
    inner = root / "Dataset_BUSI_with_GT"
    return inner if inner.is_dir() else root


def _scan_busi(root, subset):
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
        for path in _image_files(folder / cls):
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


def _scan_isic(layout, root, subset):
    wanted = _isic_subsets(layout, subset)
    samples, problems, found_any = [], [], False
    for name, candidates in _ISIC_FOLDERS[layout].items():
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
        for path in _image_files(images_dir):
            match = _ISIC_IMAGE.match(path.stem)
            if match:  # skips *_superpixels.png and anything unofficial
                images[path.stem] = path
        masks = {}
        for path in _image_files(masks_dir):
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
        expected = ", ".join(c[0][0] for c in _ISIC_FOLDERS[layout].values())
        raise DatasetError(
            f"{layout} layout: no image folder with ground truth in '{root}' "
            f"(expected some of: {expected}, each with its ground-truth folder)."
        )
    return samples, problems


_SCANNERS = {
    "kvasir-seg": _scan_kvasir,
    "busi": _scan_busi,
    "isic2018": lambda root, subset: _scan_isic("isic2018", root, subset),
    "isic2017": lambda root, subset: _scan_isic("isic2017", root, subset),
    "folder": _scan_folder,
}


# --------------------------------------------------------------------------
# Checks of the pairs.


def _check_sample(sample, verify):
    """Problems of one sample (unreadable files, size mismatch)."""
    problems, sizes = [], {}
    for path in (sample.image_path, *sample.mask_paths):
        try:
            sizes[path] = image_size(path)
        except ImageReadError as e:
            problems.append(DatasetProblem("unreadable", (path,), e.cause, sample.id))
    if problems:
        return problems
    image_hw = sizes[sample.image_path]
    for path in sample.mask_paths:
        if sizes[path] != image_hw:
            problems.append(DatasetProblem(
                "size mismatch", (sample.image_path, path),
                f"image {image_hw[1]}x{image_hw[0]}, mask "
                f"{sizes[path][1]}x{sizes[path][0]} (width x height)",
                sample.id,
            ))
    if problems or verify != "decode":
        return problems
    for path in (sample.image_path, *sample.mask_paths):
        try:
            verify_image(path)
        except ImageReadError as e:
            problems.append(DatasetProblem("unreadable", (path,), e.cause, sample.id))
    return problems


def _format_problems(problems, root):
    def rel(path):
        try:
            return str(pathlib.Path(path).relative_to(root))
        except ValueError:
            return str(path)

    lines = []
    kinds = sorted({p.kind for p in problems}, key=list(_PROBLEM_HELP).index)
    for kind in kinds:
        group = [p for p in problems if p.kind == kind]
        lines.append(f"  {kind} ({len(group)}): {_PROBLEM_HELP[kind]}")
        for p in group:
            names = " and ".join(f"'{rel(x)}'" for x in p.paths)
            lines.append(f"    {names}" + (f": {p.detail}" if p.detail else ""))
    return "\n".join(lines)


def load_dataset(layout, root, subset=None, on_error="raise", verify="header"):
    """Loads a segmentation dataset folder in one of the `LAYOUTS`.

    Every image must have its mask(s), every mask its image, of the same
    size (read from the file headers: nothing is decoded unless
    `verify="decode"`).

    Args:
        layout: one of `LAYOUTS`, or `"auto"` (see `detect_layout`).
        root: the dataset folder.
        subset: ISIC layouts only: `"training"`, `"validation"`, `"test"` or a
            list of them. Default None: every subset whose images and
            ground truth are both present.
        on_error: `"raise"` (default): a broken dataset raises
            `DatasetError` listing every offending file. `"skip"`: the bad
            pairs are left out, with one warning that lists them.
        verify: `"header"` (default): files are opened and their header
            read, which finds missing, empty, corrupt-header and mismatched
            files quickly. `"decode"`: every file is also decoded (and PNG
            checksums checked), which also finds truncated or corrupt pixel
            data (slower: seconds per thousand images).

    Returns:
        SegmentationDataset, samples in natural file-name order.

    Raises:
        DatasetError: missing folder, unknown layout, or a broken dataset.

    Example:
    >>> kvasir = load_dataset("kvasir-seg", "data/Kvasir-SEG")
    >>> isic_val = load_dataset("isic2017", "data/ISIC2017", subset="validation")
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(
            f"load_dataset: on_error must be 'raise' or 'skip', got {on_error!r}"
        )
    if verify not in VERIFY_MODES:
        raise ValueError(
            f"load_dataset: verify must be one of {VERIFY_MODES}, got {verify!r}"
        )
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder '{root}' does not exist or is not a folder"
        )
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise DatasetError(
            f"unknown dataset layout {layout!r}; choose one of {LAYOUTS} or 'auto'"
        )
    if subset is not None and layout not in ("isic2018", "isic2017"):
        raise ValueError(
            f"load_dataset: the {layout} layout has no subsets (got "
            f"subset={subset!r}); use load_split/apply_split for train/val/test"
        )
    samples, problems = _SCANNERS[layout](root, subset)

    workers = min(8, os.cpu_count() or 1) if verify == "decode" else 1
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            checks = list(pool.map(lambda s: _check_sample(s, verify), samples))
    else:
        checks = [_check_sample(s, verify) for s in samples]
    for found in checks:
        problems.extend(found)

    name = _DISPLAY_NAMES.get(layout, root.name)
    if problems:
        bad_ids = {p.sample_id for p in problems if p.sample_id is not None}
        report = _format_problems(problems, root)
        header = (
            f"{name} ({layout} layout at '{root}'): {len(problems)} problem(s)"
        )
        if on_error == "raise":
            raise DatasetError(
                f"{header}:\n{report}\nFix or remove these files, or pass "
                "on_error='skip' (CLI: --skip-bad-pairs) to leave the bad "
                "pairs out.",
                problems,
            )
        samples = [s for s in samples if s.id not in bad_ids]
        warnings.warn(
            f"{header}; left out {len(bad_ids)} image(s), "
            f"{len(samples)} remain:\n{report}",
            stacklevel=2,
        )
    if not samples:
        raise DatasetError(
            f"{name} ({layout} layout at '{root}'): no usable image/mask pair"
        )
    samples.sort(key=lambda s: (_natural_key(s.metadata.get("subset", "")),
                                _natural_key(s.metadata.get("class", "")),
                                _natural_key(s.id)))
    return SegmentationDataset(name, layout, root, samples)


def detect_layout(root):
    """Recognises a dataset's layout from its folder structure.

    Returns:
        One of `LAYOUTS`: `"busi"` (a `Dataset_BUSI_with_GT` folder or
        benign/malignant/normal folders), `"isic2018"` / `"isic2017"` (their
        official input folders), `"kvasir-seg"` (images/ + masks/ with the
        official `kavsir_bboxes.json`, or a folder named Kvasir-SEG), or
        `"folder"` (any other images/ + masks/).

    Raises:
        DatasetError: no known layout; the message lists what was expected.

    Example:
    >>> detect_layout("data/BUSI")
    'busi'
    """
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset folder '{root}' does not exist or is not a folder")
    names = {p.name for p in root.iterdir() if p.is_dir()}
    if "Dataset_BUSI_with_GT" in names or len(names & set(BUSI_CLASSES)) >= 2:
        return "busi"
    if any(re.fullmatch(r"ISIC2018_Task1-2_\w+_Input", n) for n in names):
        return "isic2018"
    if any(re.fullmatch(r"ISIC-2017_\w+_Data", n) for n in names):
        return "isic2017"
    if {"images", "masks"} <= names:
        if (root / "kavsir_bboxes.json").is_file() or root.name.lower().startswith("kvasir"):
            return "kvasir-seg"
        return "folder"
    raise DatasetError(
        f"cannot recognise the dataset layout of '{root}' (sub-folders: "
        f"{sorted(names) or 'none'}). Expected one of: images/ + masks/ "
        "(Kvasir-SEG or your own data), Dataset_BUSI_with_GT/ (BUSI), "
        "ISIC2018_Task1-2_*_Input/ (ISIC 2018), ISIC-2017_*_Data/ (ISIC 2017)."
    )
