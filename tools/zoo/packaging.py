"""Turning a trained model into a preset folder (`zoo/<preset>/`).

`add_preset` takes what training and evaluation produce, a `.keras` model,
the metrics JSON of `keras-pu evaluate` and the training recipe, and writes
exactly what the preset's Hub repository will hold:

    config.json, metadata.json, model.weights.h5   Keras's directory format,
                                                   written by keras.saving
    README.md                                      model card (cards.py)
    metrics.json                                   the evaluation output
    recipe.json                                    the recipe

metrics.json and recipe.json are copied with every value that is a path on
the training machine (the run folder, the dataset folder) set to null
(`without_machine_paths`): a published preset says where nothing was.

It then records every file's sha256 and size, the metrics and the parameter
count in the registry (and resets the pinned revision: new files are
unpublished until `zoo/publish.py` uploads them). The zoo knows nothing of
training: the recipe is an opaque JSON file that is copied, never read
beyond that.

The metrics file is the JSON written by `keras-pu evaluate`: an object with
a `"metrics"` object mapping metric names (`dice`, `iou`, `hd95`,
`precision`, `recall`, `fpr_normal`, ...) to numbers (or to objects with a
`"mean"`), and optionally `"split"` and `"num_images"`. A flat object of
those metric names is accepted too. `dice` is required.
"""

import json
import math
import os
import pathlib
import shutil
import tempfile

import numpy as np

from keras_pu.zoo import integrity
from keras_pu.zoo import registry as registry_lib
from keras_pu.zoo.errors import ZooError
from tools.machine_paths import without_machine_paths
from tools.zoo import cards

# `keras-pu evaluate` names the image-level false-positive rate on images
# whose ground truth is empty `empty_gt_false_positive_rate`; the registry
# and the cards call it fpr_empty.
METRIC_ALIASES = {"empty_gt_false_positive_rate": "fpr_empty"}

# Metrics that are fractions: a value outside [0, 1] is a wrong file.
FRACTION_METRICS = (
    "dice", "iou", "precision", "recall", "fpr_normal", "fpr_empty",
)


def write_published_json(source, target):
    """Writes the JSON file `source` to `target` without machine paths.
    Returns True if `target` changed."""
    text = json.dumps(without_machine_paths(_read_json(source)), indent=2) + "\n"
    target = pathlib.Path(target)
    if target.is_file() and target.read_text(encoding="utf-8") == text:
        return False
    target.write_text(text, encoding="utf-8")
    return True


def summarize_metrics(data, path):
    """The registry's metrics entry from an evaluation JSON object.

    Returns:
        `{"split": str|None, "num_images": int|None, "values": {name: float}}`
        with the known metrics first, in `cards.METRIC_NAMES` order.

    Raises:
        ZooError: no usable metrics, no `dice`, or an impossible value.
    """
    if not isinstance(data, dict):
        raise ZooError(f"{path}: expected a JSON object of metrics.")
    if isinstance(data.get("metrics"), dict):
        container, only_known = data["metrics"], False
    else:
        container, only_known = data, True
    values = {}
    for key, value in container.items():
        key = METRIC_ALIASES.get(key, key)
        if only_known and key not in cards.METRIC_NAMES:
            continue
        if isinstance(value, dict):
            value = value.get("mean")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        value = float(value)
        if not math.isfinite(value):
            raise ZooError(f"{path}: metric {key!r} is {value}, not a finite number.")
        if key in FRACTION_METRICS and not 0.0 <= value <= 1.0:
            raise ZooError(
                f"{path}: metric {key!r} = {value} is outside [0, 1]; is this "
                "the output of `keras-pu evaluate`?"
            )
        values[key] = value
    # BUSI: the evaluator's per-class figures give the rate on the "normal"
    # (lesion-free) images, the figure the PU-UNet paper reports.
    by_group = data.get("by_group")
    normal = by_group.get("normal") if isinstance(by_group, dict) else None
    if isinstance(normal, dict):
        rate = normal.get("empty_gt_false_positive_rate")
        if isinstance(rate, (int, float)) and not isinstance(rate, bool):
            values["fpr_normal"] = float(rate)
    if "dice" not in values:
        raise ZooError(
            f"{path}: no 'dice' value found (expected {{\"metrics\": "
            "{\"dice\": ..., \"iou\": ...}} as written by `keras-pu "
            f"evaluate`); found keys {sorted(container)}."
        )
    order = list(cards.METRIC_NAMES)
    ordered = dict(
        sorted(
            values.items(),
            key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]),
        )
    )
    num_images = data.get("num_images")
    return {
        "split": data.get("split") if isinstance(data.get("split"), str) else None,
        "num_images": num_images if isinstance(num_images, int) else None,
        "values": ordered,
    }


def add_preset(
    name,
    model_path,
    metrics_path,
    recipe_path,
    *,
    registry_path=None,
    zoo_dir=None,
    readme_path=None,
    update_architecture=False,
    training=None,
    log=print,
):
    """Builds `zoo_dir/<name>/` from a trained model and records it in the
    registry.

    Args:
        name: the preset (must exist in the registry).
        model_path: the trained model, a `.keras` file.
        metrics_path: the `keras-pu evaluate` metrics JSON (test split).
        recipe_path: the training recipe JSON (copied verbatim).
        registry_path: the registry file to update (default: the one in
            effect, see `registry.registry_path()`).
        zoo_dir: where preset folders live (default: the checkout's `zoo/`).
        readme_path: a README whose presets table is regenerated (optional).
        update_architecture: if the trained model's architecture differs
            from the registry's, record the trained one instead of failing.
        training: optional dict describing how the weights were trained
            (`hardware`, `backend`, `image_size`, `epochs`, `seed`,
            `wall_minutes`, `note`), shown in the model card.
        log: function that prints progress lines.

    Returns:
        The preset folder (`pathlib.Path`).

    Raises:
        ZooError: a missing or invalid input, an architecture that differs
            from the registry (without `update_architecture`), or a folder
            that does not reload to the same logits.

    Example:

    ```python
    from tools.zoo.packaging import add_preset

    add_preset(
        "pu_unet_kvasir",
        "runs/pu_unet_kvasir/model.keras",
        "runs/pu_unet_kvasir/eval_test/metrics.json",
        "runs/pu_unet_kvasir/recipe.json",
    )
    ```
    """
    import keras

    registry = registry_lib.load_registry(registry_path)
    preset = registry.get(name)
    zoo_dir = pathlib.Path(zoo_dir) if zoo_dir else registry_lib.local_zoo_dir()
    if zoo_dir is None:
        raise ZooError(
            "No zoo/ folder: run this from a source checkout of keras-pu, or "
            "pass zoo_dir."
        )
    model_path, metrics_path, recipe_path = (
        _existing(p, what)
        for p, what in (
            (model_path, "trained model"),
            (metrics_path, "metrics JSON"),
            (recipe_path, "recipe JSON"),
        )
    )
    metrics = summarize_metrics(_read_json(metrics_path), metrics_path)
    recipe = _read_json(recipe_path)
    if not isinstance(recipe, dict):
        raise ZooError(f"{recipe_path}: a recipe must be a JSON object.")

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        trained = _load_trained(model_path)
        architecture, input_size = _checked_architecture(
            trained, preset, update_architecture, model_path, log
        )
        model = _canonical_model(trained, architecture, name)
        log(f"{name}: {model.count_params():,} parameters, weights copied from {model_path}")
        with tempfile.TemporaryDirectory(prefix="keras_pu_preset_") as tmp:
            folder = pathlib.Path(tmp) / name
            _write_model_files(model, folder)
            write_published_json(metrics_path, folder / "metrics.json")
            write_published_json(recipe_path, folder / "recipe.json")
            entry = {
                "architecture": architecture,
                "input_size": input_size,
                "parameters": int(model.count_params()),
                "metrics": metrics,
                "hub": {"repo_id": preset.repo_id, "revision": None},
                "training": training,
                # A gate was chosen for the old weights' probabilities: it
                # does not carry over to new ones (zoo/add_gate.py adds theirs).
                "postprocess": None,
            }
            if preset.postprocess:
                log(f"{name}: dropped the image-level gate of the previous "
                    "weights; choose one for these with `keras-pu calibrate` "
                    "and add it with zoo/add_gate.py")
            # The card is generated from the updated entry (files are filled
            # in afterwards: the card does not list its own checksum).
            registry.update_preset(name, files={}, **entry)
            (folder / "README.md").write_text(
                cards.model_card(registry, name), encoding="utf-8"
            )
            files = {
                f: integrity.file_record(folder / f)
                for f in registry_lib.PRESET_FILES
            }
            registry.update_preset(name, files=files)
            _check_reload(folder, model, name)
            target = zoo_dir / name
            zoo_dir.mkdir(parents=True, exist_ok=True)
            _replace_folder(folder, target)
    finally:
        keras.config.set_dtype_policy(policy)

    registry.save()
    log(f"{name}: wrote {target} and updated {registry.path} (not published yet)")
    # The cards of the other presets on this dataset compare against this
    # one: regenerate them too.
    siblings = [
        p.name for p in registry.presets.values()
        if p.dataset.key == preset.dataset.key and p.name != name
    ]
    refresh_cards(registry.path, zoo_dir, None, log, names=siblings)
    if readme_path is not None:
        if cards.update_readme(pathlib.Path(readme_path), registry):
            log(f"{name}: updated the presets table in {readme_path}")
    return target


def refresh_cards(
    registry_path=None, zoo_dir=None, readme_path=None, log=print, names=None
):
    """Regenerates the model card of every trained preset from the registry
    (after its metrics, training notes or the dataset's experiments changed),
    drops machine paths from its metrics.json and recipe.json
    (`without_machine_paths`), and records the new files' sha256. A preset
    whose files changed is no longer what its pinned Hub revision holds, so
    its revision is reset until `zoo/publish.py` uploads it again.

    Args:
        names: only these presets (default: every trained one). A named
            preset whose folder is missing is skipped with a message;
            without `names`, a missing folder is an error.

    Returns:
        The names of the presets whose card changed.
    """
    registry = registry_lib.load_registry(registry_path)
    zoo_dir = pathlib.Path(zoo_dir) if zoo_dir else registry_lib.local_zoo_dir()
    changed = []
    for preset in list(registry.presets.values()):
        if not preset.has_weights or (names is not None and preset.name not in names):
            continue
        card_path = zoo_dir / preset.name / "README.md"
        if not card_path.parent.is_dir():
            if names is not None:
                log(f"{preset.name}: no folder {card_path.parent}; card not refreshed")
                continue
            raise ZooError(
                f"{preset.name} has weights in the registry but no folder "
                f"{card_path.parent}; restore it from git or run add_preset."
            )
        folder = card_path.parent
        # Files written before add_preset dropped machine paths get them
        # dropped here.
        rewritten = [
            name for name in ("metrics.json", "recipe.json")
            if (folder / name).is_file()
            and write_published_json(folder / name, folder / name)
        ]
        text = cards.model_card(registry, preset.name)
        if (not rewritten and card_path.is_file()
                and card_path.read_text(encoding="utf-8") == text):
            continue
        card_path.write_text(text, encoding="utf-8")
        files = dict(registry.data["presets"][preset.name]["files"])
        for name in ["README.md", *rewritten]:
            files[name] = integrity.file_record(folder / name)
        hub = {"repo_id": preset.repo_id, "revision": None}
        registry.update_preset(preset.name, files=files, hub=hub)
        changed.append(preset.name)
        log(f"{preset.name}: regenerated {card_path}")
    registry.save()
    if readme_path is not None and cards.update_readme(pathlib.Path(readme_path), registry):
        log(f"updated the presets table in {readme_path}")
    return changed


def add_gate(name, gate_path, metrics_path, registry_path=None, zoo_dir=None,
             log=print):
    """Records a preset's image-level gate and its test metrics.

    Args:
        name: a trained preset.
        gate_path: the `postprocess.json` that `keras-pu calibrate` wrote
            from the preset's validation results.
        metrics_path: the metrics JSON of `keras-pu evaluate --split test
            --gate ...` with that gate.

    The metrics must be test-split metrics measured with exactly that gate;
    the registry's validation refuses a gate not chosen on the val split or
    a preset without weights. The card is then regenerated (and the pinned
    revision reset).

    Raises:
        ZooError: any of those checks fails.
    """
    from keras_pu.postprocess import GateError
    from keras_pu.postprocess import PeakGate

    registry = registry_lib.load_registry(registry_path)
    registry.get(name)  # an unknown name is named, with close ones
    try:
        gate = PeakGate.load(_existing(gate_path, "gate file"))
    except GateError as e:
        raise ZooError(str(e)) from None
    data = _read_json(_existing(metrics_path, "metrics file"))
    if data.get("split") != "test" or data.get("gate") != gate.min_peak_probability:
        raise ZooError(
            f"{metrics_path}: expected test-split metrics measured with gate "
            f"{gate.min_peak_probability} (`keras-pu evaluate --split test "
            f"--gate ...`); found split {data.get('split')!r}, gate "
            f"{data.get('gate')!r}."
        )
    test_metrics = summarize_metrics(data, metrics_path)
    # update_preset validates the entry before anything is written: the gate
    # must be chosen on the val split, and the preset must have weights.
    registry.update_preset(
        name, postprocess={"gate": gate.get_config(), "test_metrics": test_metrics}
    )
    registry.save()
    log(
        f"{name}: gate {gate.min_peak_probability:.4f}, test Dice "
        f"{test_metrics['values']['dice']:.4f} with it"
    )
    refresh_cards(registry_path, zoo_dir, None, log=log, names=[name])


def _existing(path, what):
    path = pathlib.Path(path)
    if not path.is_file():
        raise ZooError(f"The {what} {path} does not exist.")
    return path


def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ZooError(f"{path} is not valid JSON: {e}") from None


def _load_trained(model_path):
    import keras

    if model_path.suffix != ".keras":
        raise ZooError(
            f"{model_path}: expected a .keras file (model.save('x.keras'))."
        )
    try:
        # compile=False: the training losses and optimiser are not part of a
        # preset, and the zoo must not need the training code.
        return keras.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as e:
        raise ZooError(f"Cannot load the trained model {model_path}: {e}") from None


def _checked_architecture(trained, preset, update, model_path, log):
    """(architecture, input size) to record for the preset: the registry's,
    or with `update` the trained model's where they differ."""
    import keras

    config = keras.saving.serialize_keras_object(trained)
    problems = registry_lib.architecture_differences(config, preset.architecture)
    # The spatial size is not architecture (the U-Nets are fully
    # convolutional), but it is the size the preset was trained at and the
    # size `load` builds it for: a preset trained at 128x128 but declared
    # 256x256 would see its objects twice as large as in training.
    trained_size = _trained_input_size(config["config"])
    size = list(preset.input_size)
    if trained_size is not None and trained_size != size:
        problems.append(
            f"trained at {trained_size[0]}x{trained_size[1]}, registry input "
            f"size {size[0]}x{size[1]}"
        )
        size = trained_size
    if not problems:
        return preset.architecture, list(preset.input_size)
    if not update:
        raise ZooError(
            f"{model_path} is not the architecture the registry gives preset "
            f"'{preset.name}': {'; '.join(problems)}. If the preset's "
            "architecture changed on purpose, run again with "
            "--update-architecture to record the trained one."
        )
    inner = {
        k: v
        for k, v in config["config"].items()
        if k not in registry_lib.NON_ARCHITECTURE_KEYS
    }
    channels = inner["input_shape"][-1]
    inner["input_shape"] = [size[0], size[1], channels]
    log(f"{preset.name}: recording the trained architecture ({'; '.join(problems)})")
    architecture = {"class_name": config["class_name"], "config": json.loads(json.dumps(inner))}
    return architecture, size


def _trained_input_size(config):
    """[height, width] of a serialised U-Net's input, or None if dynamic."""
    shape = config.get("input_shape")
    if not shape or len(shape) != 3:
        return None
    h, w = (shape[1], shape[2]) if config.get("data_format") == "channels_first" else (shape[0], shape[1])
    return [int(h), int(w)] if h and w else None


def _canonical_model(trained, architecture, name):
    """The preset's model built from the registry architecture, carrying the
    trained weights (layer by layer, by name)."""
    import keras

    from keras_pu.models.registry import UnknownModelError
    from keras_pu.models.registry import get_model_spec

    try:
        spec = get_model_spec(architecture["class_name"])
    except UnknownModelError as e:
        raise ZooError(f"Unsupported preset class: {e}") from None
    model = keras.saving.deserialize_keras_object(
        {
            "module": spec.module,
            "class_name": spec.name,
            "registered_name": spec.registered_name,
            "config": dict(architecture["config"], name=name),
        },
        safe_mode=True,
    )
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            source = trained.get_layer(layer.name)
        except ValueError:
            raise ZooError(
                f"The trained model has no layer '{layer.name}', which the "
                f"{architecture['class_name']} needs."
            ) from None
        layer.set_weights(source.get_weights())
    return model


def _write_model_files(model, folder):
    import keras

    keras.saving.save_model(model, folder, zipped=False)
    assets = folder / "assets"
    if assets.is_dir():
        if any(assets.iterdir()):
            raise ZooError(
                f"The model wrote assets ({sorted(p.name for p in assets.iterdir())}); "
                "keras-pu presets have none."
            )
        assets.rmdir()  # git and the Hub keep no empty folders
    written = sorted(p.name for p in folder.iterdir())
    if written != sorted(registry_lib.MODEL_FILES):
        raise ZooError(f"Keras wrote {written}, expected {registry_lib.MODEL_FILES}.")


def _check_reload(folder, model, name):
    """The folder must load through the zoo's own loader (safety checks
    included) and give the same logits as the model it was made from."""
    from keras_pu.zoo.loading import load

    size = model.input_shape[1] or 64
    x = np.random.default_rng(0).random((1, size, size, 3), dtype="float32")
    expected = model.predict(x, verbose=0)
    reloaded = load(str(folder), progress=False)
    got = reloaded.predict(x, verbose=0)
    diff = float(np.max(np.abs(got - expected)))
    if diff > 1e-5:
        raise ZooError(
            f"{name}: the written folder reloads with logits that differ by "
            f"{diff:g}; nothing was written to zoo/."
        )


def _replace_folder(new, target):
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old")
        if backup.exists():
            shutil.rmtree(backup)
        os.replace(target, backup)
    shutil.copytree(new, target)
    if backup is not None:
        shutil.rmtree(backup)
