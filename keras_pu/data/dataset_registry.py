"""The dataset registry: every dataset keras-pu knows, by its key.

Each module of `keras_pu.data.layouts` declares one `DatasetSpec` as
`DATASET`; this registry collects them. `load_dataset` and `detect_layout`,
the committed splits, the training recipe (`data.layout`), `keras-pu train
--help`, the zoo registry (names, citation, licence) and
`scripts/summarize_runs.py` ask it instead of keeping their own tables.
"""

import difflib
import importlib
import pkgutil

_DATASETS = None


def _discover():
    global _DATASETS
    if _DATASETS is None:
        package = importlib.import_module("keras_pu.data.layouts")
        found = {}
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):
                continue  # shared helpers, not datasets
            module = importlib.import_module(f"keras_pu.data.layouts.{info.name}")
            spec = getattr(module, "DATASET", None)
            if spec is None:
                raise RuntimeError(
                    f"keras_pu.data.layouts.{info.name} declares no DATASET; "
                    "every dataset module must (see keras_pu/data/scanning.py)."
                )
            if spec.key in found:
                raise RuntimeError(f"Two dataset modules declare the key {spec.key!r}.")
            found[spec.key] = spec
        _DATASETS = dict(sorted(found.items(), key=lambda kv: (kv[1].detect_order, kv[0])))
    return _DATASETS


def list_datasets():
    """Every `DatasetSpec`, in detection order."""
    return list(_discover().values())


def layout_names():
    """The dataset keys, which are also the `load_dataset` layouts."""
    return tuple(_discover())


def split_names():
    """Keys of the datasets with a committed split file."""
    return tuple(key for key, spec in _discover().items() if spec.has_split)


def canonical_key(key):
    """The one spelling of a dataset key, accepting legacy aliases
    (`kvasir_seg` -> `kvasir-seg`); unknown keys come back unchanged."""
    datasets = _discover()
    if key in datasets:
        return key
    for spec in datasets.values():
        if key in spec.aliases:
            return spec.key
    return key


def find_dataset(key):
    """The `DatasetSpec` of `key` (or a legacy alias), or `None`."""
    return _discover().get(canonical_key(key))


def get_dataset(key):
    """The `DatasetSpec` of `key` (or a legacy alias).

    Raises:
        KeyError: unknown key; the message lists the known ones.
    """
    spec = find_dataset(key)
    if spec is None:
        close = difflib.get_close_matches(str(key), list(_discover()), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(
            f"unknown dataset {key!r}.{hint} Known datasets: "
            f"{', '.join(_discover())}."
        )
    return spec


def display_name_keys():
    """`{display name: key}`, e.g. `{"Kvasir-SEG": "kvasir-seg"}` (the names
    `keras-pu evaluate` writes)."""
    return {
        spec.display_name: spec.key
        for spec in _discover().values()
        if spec.display_name
    }
