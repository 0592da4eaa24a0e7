"""Committed, leak-free train/val/test splits.

The split files in `keras_pu/data/splits/<name>.json` are made once by
`scripts/make_splits.py` (deterministic, fixed seed; see its docstring for
the rules) and shipped with the package, so every user trains and tests on
the same images. Each file records how it was made (script, seed,
perceptual-hash size and distance threshold, the sha256 of the dataset's
MANIFEST.sha256), the near-duplicate groups kept within one split, and the
excluded ids with the reason.

    dataset = load_dataset("busi", "data/BUSI")
    train = apply_split(dataset, "train")
    test_ids = load_split("busi", "test")
"""

import hashlib
import importlib.resources
import json
import pathlib
import warnings

from keras_pu.data import dataset_registry
from keras_pu.data.scanning import DatasetError

SPLITS = ("train", "val", "test")
# Datasets with a committed split file (their dataset module says so; the
# file is keras_pu/data/splits/<key>.json).
SPLIT_DATASETS = dataset_registry.split_names()


def split_path(name):
    """Path of the committed split file of dataset `name`."""
    spec = dataset_registry.find_dataset(name)
    if spec is None or spec.split_file is None:
        raise ValueError(
            f"no committed split for {name!r}; committed splits: "
            f"{SPLIT_DATASETS}. For other data pass a split file path, or "
            "take ids with dataset.subset(ids)."
        )
    return pathlib.Path(
        importlib.resources.files("keras_pu.data").joinpath("splits", spec.split_file)
    )


def read_split_file(name_or_path):
    """The whole split record (dict) of a committed split or a JSON file.

    Args:
        name_or_path: one of `SPLIT_DATASETS`, or the path of a split file
            of the same format (`{"splits": {"train": [...], ...}, ...}`).
    """
    candidate = pathlib.Path(str(name_or_path))
    path = candidate if candidate.suffix == ".json" else split_path(name_or_path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"split file '{path}' does not exist") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"split file '{path}' is not valid JSON: {e}") from None
    splits = record.get("splits") if isinstance(record, dict) else None
    if not isinstance(splits, dict) or not all(
        isinstance(v, list) for v in splits.values()
    ):
        raise ValueError(
            f"split file '{path}' has no 'splits' mapping of split name to id list"
        )
    record["_path"] = str(path)
    return record


def load_split(name, split):
    """The sample ids of one split.

    Args:
        name: `"kvasir-seg"`, `"busi"`, `"isic2017"`, or a split file path.
        split: `"train"`, `"val"` or `"test"`.

    Returns:
        list of str ids, in the file's order.

    Example:
    >>> len(load_split("kvasir-seg", "test"))
    200
    """
    record = read_split_file(name)
    if split not in record["splits"]:
        raise ValueError(
            f"split {split!r} is not in {record['_path']}; it has "
            f"{sorted(record['splits'])}"
        )
    return list(record["splits"][split])


def _manifest_sha256(dataset):
    for folder in (dataset.root, dataset.root.parent):
        manifest = folder / "MANIFEST.sha256"
        if manifest.is_file():
            return hashlib.sha256(manifest.read_bytes()).hexdigest()
    return None


def apply_split(dataset, split, name=None):
    """The part of `dataset` in a committed (or given) split.

    Args:
        dataset: a `SegmentationDataset` loaded in full (for ISIC 2017, load
            without `subset`: the test split is the official validation set).
        split: `"train"`, `"val"` or `"test"`.
        name: split name or file; default: the dataset's layout.

    Returns:
        SegmentationDataset named e.g. `"BUSI (test)"`, in the split's order.

    Raises:
        DatasetError: some ids of the split are not in the dataset (it is
            incomplete, or a different dataset); all are listed.

    Example:
    >>> test = apply_split(load_dataset("busi", "data/BUSI"), "test")
    """
    name = dataset.layout if name is None else name
    record = read_split_file(name)
    ids = load_split(name, split)
    missing = [i for i in ids if i not in dataset]
    if missing:
        shown = ", ".join(repr(i) for i in missing[:20])
        more = f" ... ({len(missing) - 20} more)" if len(missing) > 20 else ""
        raise DatasetError(
            f"{dataset.name} at '{dataset.root}': {len(missing)} of the "
            f"{len(ids)} ids of the {split!r} split ({record['_path']}) are "
            f"not in the dataset: {shown}{more}. Load the complete dataset "
            "(for ISIC 2017 without `subset`), or check that it is the same "
            "dataset."
        )
    expected = record.get("dataset_manifest_sha256")
    actual = _manifest_sha256(dataset)
    if expected and actual and expected != actual:
        warnings.warn(
            f"{dataset.name}: MANIFEST.sha256 differs from the one the split "
            f"{record['_path']} was made from; the files may have changed.",
            stacklevel=2,
        )
    return dataset.subset(ids, name=f"{dataset.name} ({split})")
