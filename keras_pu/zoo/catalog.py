"""`list_presets()`, `info(name)` and `recommended()`: what the registry
offers, as plain Python data (printable, JSON-serialisable)."""

import dataclasses

from keras_pu.zoo import registry as registry_lib
from keras_pu.zoo.errors import ZooError


def list_presets(with_weights=False):
    """Names of the presets in the registry, in registry order.

    Args:
        with_weights: if True, only presets that have trained weights.

    Returns:
        A list of preset names.

    Example:

    ```python
    import keras_pu

    keras_pu.zoo.list_presets()
    # ['pu_unet_isic', 'resunet_isic', 'pu_unet_kvasir', ...]
    ```
    """
    registry = registry_lib.load_registry()
    return [
        name
        for name, preset in registry.presets.items()
        if preset.has_weights or not with_weights
    ]


def info(name):
    """Everything the registry knows about a preset, as a dict.

    Keys: `name`, `status` ("not trained", "trained, not published",
    "published"), `description`, `architecture` (`class_name`, `config`),
    `parameters`, `input_size`, `preprocessing`, `dataset` (name, task,
    url, citation, `data_note`, `licence`, `paper_reference`),
    `weights_terms`, `hub` (`repo_id`, `revision`, `url`), `files`
    (filename -> sha256 and size), `metrics` (measured test metrics or
    None), `recommended` (True when it is the preset to use for its
    dataset's task, see `recommended()`), `postprocess` (None, or the
    image-level gate chosen on validation images: `gate`, a
    `keras_pu.postprocess.PeakGate` config, and `test_metrics` with it),
    `load` (the line that loads it).

    Raises:
        UnknownPresetError: unknown name (close names are suggested).

    Example:

    ```python
    import keras_pu

    card = keras_pu.zoo.info("pu_unet_busi")
    print(card["status"], card["dataset"]["licence"])
    ```
    """
    registry = registry_lib.load_registry()
    preset = registry.get(name)
    dataset = dataclasses.asdict(preset.dataset)
    dataset.pop("key")
    endpoint = (registry.endpoint or "https://huggingface.co").rstrip("/")
    return {
        "name": preset.name,
        "status": preset.status,
        "description": preset.description,
        "architecture": preset.architecture,
        "parameters": preset.parameters,
        "input_size": list(preset.input_size),
        "preprocessing": preset.preprocessing,
        "dataset": dataset,
        "weights_terms": registry.weights_terms,
        "hub": {
            "repo_id": preset.repo_id,
            "revision": preset.revision,
            "url": f"{endpoint}/{preset.repo_id}",
        },
        "files": {
            f: dataclasses.asdict(rec) for f, rec in preset.files.items()
        },
        "metrics": preset.metrics,
        "recommended": bool(
            preset.dataset.recommended
            and preset.dataset.recommended["preset"] == preset.name
        ),
        "postprocess": preset.postprocess,
        "load": f'keras_pu.zoo.load("{preset.name}")',
    }


def recommended(dataset=None):
    """The preset to use for a dataset's task, as the registry says.

    Args:
        dataset: a dataset key (`"kvasir-seg"`, `"busi"`, `"isic2017"`; any
            spelling the dataset registry accepts). `None` for all of them.

    Returns:
        With `dataset`: `{"preset", "why", "dataset", "task"}`, or `None`
        when the registry recommends no preset for it. Without: a dict
        dataset key -> that dict, for every dataset with a recommendation.

    Raises:
        ZooError: the registry has no such dataset (its datasets are named).

    Example:

    ```python
    import keras_pu

    choice = keras_pu.zoo.recommended("kvasir-seg")
    model = keras_pu.zoo.load(choice["preset"])
    ```
    """
    registry = registry_lib.load_registry()

    def entry(ds):
        if not ds.recommended:
            return None
        return {**ds.recommended, "dataset": ds.key, "task": ds.task}

    if dataset is None:
        return {
            key: entry(ds)
            for key, ds in registry.datasets.items()
            if ds.recommended
        }
    def folded(text):  # "Kvasir-SEG", "kvasir_seg" and "kvasir-seg" alike
        return "".join(c for c in str(text).lower() if c.isalnum())

    key = next((k for k in registry.datasets if folded(k) == folded(dataset)),
               None)
    if key is None:
        raise ZooError(
            f"No dataset {dataset!r} in the preset registry; its datasets: "
            f"{sorted(registry.datasets)}."
        )
    return entry(registry.datasets[key])
