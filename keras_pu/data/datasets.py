"""Segmentation datasets in their official folder layouts.

`load_dataset(layout, root)` scans a dataset folder, pairs every image with
its mask file(s), checks the pairs and returns a `SegmentationDataset`: an
immutable list of `Sample`s (id, image path, mask paths, metadata). Pixels
are not decoded here (see `keras_pu.data.io` and `keras_pu.data.pipeline`).

Layouts (`LAYOUTS`): one per dataset module of `keras_pu.data.layouts`
(`kvasir-seg`, `busi`, `isic2018`, `isic2017`, `folder` for your own
`images/` + `masks/`); each module's docstring describes its folder
structure, and `keras_pu.data.dataset_registry` lists them.

Files that are not images (by extension) and hidden files are ignored.
A broken dataset -- an image without mask, a mask without image, image and
mask of different sizes, an unreadable file -- raises `DatasetError`, which
lists every offending file and what to do; `on_error="skip"` leaves the bad
pairs out with one warning instead.
"""

import dataclasses
import os
import pathlib
import warnings
from concurrent.futures import ThreadPoolExecutor

from keras_pu.data import dataset_registry
from keras_pu.data.io import ImageReadError
from keras_pu.data.io import image_size
from keras_pu.data.io import verify_image
from keras_pu.data.scanning import IMAGE_EXTENSIONS  # noqa: F401  (public name)
from keras_pu.data.scanning import DatasetError
from keras_pu.data.scanning import DatasetProblem
from keras_pu.data.scanning import Sample  # noqa: F401  (public name)
from keras_pu.data.scanning import natural_key

LAYOUTS = dataset_registry.layout_names()
VERIFY_MODES = ("header", "decode")

_PROBLEM_HELP = {
    "missing mask": "images that have no mask file",
    "extra mask": "mask files that have no image",
    "ambiguous": "files that match more than one image or mask",
    "size mismatch": "image and mask of different sizes",
    "unreadable": "files that cannot be read as images",
}


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
    spec = dataset_registry.find_dataset(layout)
    if spec is None:
        raise DatasetError(
            f"unknown dataset layout {layout!r}; choose one of {LAYOUTS} or 'auto'"
        )
    layout = spec.key
    if subset is not None and not spec.subsets:
        raise ValueError(
            f"load_dataset: the {layout} layout has no subsets (got "
            f"subset={subset!r}); use load_split/apply_split for train/val/test"
        )
    samples, problems = spec.scan(root, subset)

    workers = min(8, os.cpu_count() or 1) if verify == "decode" else 1
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            checks = list(pool.map(lambda s: _check_sample(s, verify), samples))
    else:
        checks = [_check_sample(s, verify) for s in samples]
    for found in checks:
        problems.extend(found)

    name = spec.display_name or root.name
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
    samples.sort(key=lambda s: (natural_key(s.metadata.get("subset", "")),
                                natural_key(s.metadata.get("class", "")),
                                natural_key(s.id)))
    return SegmentationDataset(name, layout, root, samples)


def detect_layout(root, _depth=0):
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
    depth = _depth
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset folder '{root}' does not exist or is not a folder")
    names = {p.name for p in root.iterdir() if p.is_dir()}
    specs = dataset_registry.list_datasets()  # in detection order
    for spec in specs:
        if spec.detect is not None and spec.detect(root, names):
            return spec.key
    hint = ""
    if depth == 0:
        inside = []
        for child in sorted(p for p in root.iterdir() if p.is_dir()):
            try:
                inside.append(f"'{child}' ({detect_layout(child, _depth=1)})")
            except DatasetError:
                pass
        if inside:
            hint = f" Did you mean {' or '.join(inside)}?"
    raise DatasetError(
        f"cannot recognise the dataset layout of '{root}' (sub-folders: "
        f"{sorted(names) or 'none'}). Expected one of: "
        + ", ".join(dict.fromkeys(s.layout_hint for s in specs if s.layout_hint))
        + "."
        + hint
    )
