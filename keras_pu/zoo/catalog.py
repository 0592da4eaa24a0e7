"""`list_presets()` and `info(name)`: what the registry offers, as plain
Python data (printable, JSON-serialisable)."""

import dataclasses

from keras_pu.zoo import registry as registry_lib


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
    None), `load` (the line that loads it).

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
        "load": f'keras_pu.zoo.load("{preset.name}")',
    }
