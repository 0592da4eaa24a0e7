"""`keras_pu.zoo.load`: a preset name, `hf://` handle or folder to a ready
`keras.Model`, and `keras_pu.zoo.download`.

The order of work is what makes loading safe:

1. resolve the handle (registry entry, Hub repository or local folder);
2. obtain the files (a local copy: $KERAS_PU_ZOO_DIR, the checkout's
   `zoo/` or the keras-pu-presets package, see `sources.py`; else the
   Hugging Face cache, downloading what is missing at a pinned commit);
3. verify every file (size and sha256 against the registry; against the
   Hub's checksum for other Hub revisions) before anything parses it, and
   repair a damaged cache entry by downloading it once more;
4. parse `config.json` as JSON, refuse objects that would run code
   (`safety.py`), and compare the architecture with the registry;
5. build the model, load the weights (HDF5, data only) and check that
   every variable was filled;
6. only then apply `input_shape` / `num_classes` and return the model.

Any failure raises a `ZooError` before a model exists, so a half-loaded
model can never reach the caller.
"""

import copy
import dataclasses
import json
import os
import pathlib
import shutil
import sys
import warnings

from keras_pu.zoo import hub
from keras_pu.zoo import integrity
from keras_pu.zoo import registry as registry_lib
from keras_pu.zoo import sources
from keras_pu.zoo.errors import ArchitectureMismatchError
from keras_pu.zoo.errors import DownloadError
from keras_pu.zoo.errors import IntegrityError
from keras_pu.zoo.errors import OfflineCacheMissError
from keras_pu.zoo.errors import PresetNotPublishedError
from keras_pu.zoo.errors import PresetNotTrainedError
from keras_pu.zoo.errors import UnknownPresetError
from keras_pu.zoo.errors import ZooError
from keras_pu.zoo.safety import check_config_is_safe

HEAD_LAYER = "logits"


def is_resizable(config):
    """Whether a saved config is of a registered keras-pu architecture that
    is rebuilt from its constructor arguments, so that input_shape and
    num_classes can be changed on load (keras_pu.models.registry)."""
    from keras_pu.models.registry import spec_for_registered_name

    spec = spec_for_registered_name(config.get("registered_name"))
    return spec is not None and spec.resizable


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a model comes from, resolved from the user's handle.

    kind: "preset" (registry entry at its pinned files), "hub" (a Hub
    repository at some revision) or "local" (a folder).
    """

    kind: str
    label: str
    retry_hint: str
    preset: registry_lib.Preset | None = None
    repo_id: str | None = None
    revision: str | None = None
    directory: pathlib.Path | None = None
    endpoint: str | None = None
    registry: registry_lib.Registry | None = None


def load(
    name_or_handle,
    weights=True,
    num_classes=None,
    input_shape=None,
    *,
    revision=None,
    cache_dir=None,
    endpoint=None,
    force_download=False,
    progress=True,
):
    """Loads a segmentation model from the zoo, the Hub or a folder.

    Args:
        name_or_handle: a preset name (`keras_pu.zoo.list_presets()`), a
            Hub handle `"hf://org/repo"` or `"hf://org/repo@revision"`
            (branch, tag or commit), or the path of a folder saved in Keras's
            directory format (`config.json`, `model.weights.h5`,
            `metadata.json`). A registry name always means the preset; write
            `"./name"` for a folder with the same name.
        weights: `True` loads the trained weights; `False` builds the
            architecture with freshly initialised weights (works for presets
            that have no weights yet).
        num_classes: replaces the 1x1 output head with a new one with this
            many channels (freshly initialised) for fine-tuning; every other
            weight is kept. `None` keeps the trained head.
        input_shape: rebuilds the model for another input shape, e.g.
            `(512, 512, 3)` or `(None, None, 3)` for any size (multiples of
            `2**depth`); the U-Nets are fully convolutional, so all weights
            are kept. The channel count must stay the same.
        revision: Hub revision. For a preset, another revision than the one
            the registry pins (files are then checked against the Hub's
            checksums and the architecture against the registry). For a
            handle, the same as `@revision`.
        cache_dir: Hugging Face cache folder (default: huggingface_hub's,
            from `HF_HUB_CACHE` / `HF_HOME`).
        endpoint: Hub server URL (default: the registry's `hub_endpoint`
            if it sets one, else huggingface_hub's, from `HF_ENDPOINT`).
        force_download: download again even if the files are cached.
        progress: print what is loaded from where, and download progress
            bars, on stderr.

    Returns:
        A `keras.Model` on the active backend, uncompiled: compile it with
        your loss and optimiser before training. The keras-pu U-Nets output
        logits (one channel per class; `sigmoid(logit) > 0.5` for the
        binary presets).

    Raises:
        UnknownPresetError: unknown name (close names are suggested).
        PresetNotTrainedError: the preset has no weights yet and
            `weights=True`.
        PresetNotPublishedError: the weights exist but this installation can
            reach neither the Hub copy nor a `zoo/` folder.
        DownloadError / OfflineCacheMissError: a file could not be fetched.
        IntegrityError: a file is truncated, altered or not what it claims.
        ArchitectureMismatchError: config or weights of another architecture.
        UnsafeModelError: the config would run code from the download.
        ValueError: a bad `num_classes` / `input_shape`.

    Example:

    ```python
    import keras_pu

    model = keras_pu.zoo.load("pu_unet_kvasir")
    logits = model.predict(images)               # (N, 256, 256, 1)

    # Fine-tune on 3 classes at 384x384, keeping every other weight:
    model = keras_pu.zoo.load(
        "pu_unet_kvasir", num_classes=3, input_shape=(384, 384, 3)
    )
    ```
    """
    num_classes = _check_num_classes(num_classes)
    input_shape = _check_input_shape(input_shape)
    source = resolve(name_or_handle, revision=revision, endpoint=endpoint)
    say = _printer(progress)

    if not weights:
        if source.kind == "preset":
            config = registry_config(source.preset)
        else:
            paths = obtain(
                source, ("config.json",), cache_dir=cache_dir,
                force_download=force_download, progress=progress,
            )
            config = _read_config(paths["config.json"], source)
        model = _build(config, source, input_shape, num_classes)
        say(
            f"Built {source.label} with random initial weights "
            f"({model.count_params():,} parameters; weights=False)."
        )
        return model

    paths = obtain(
        source, registry_lib.MODEL_FILES, cache_dir=cache_dir,
        force_download=force_download, progress=progress,
    )
    config = _read_config(paths["config.json"], source)
    _read_json(paths["metadata.json"], "metadata.json", source)
    model = _build(config, source, input_shape)
    _load_weights(model, paths["model.weights.h5"], config, source)
    model = _replace_head(model, config, source, num_classes, input_shape)
    say(_loaded_message(model, source, num_classes))
    return model


def download(
    name_or_handle,
    *,
    revision=None,
    cache_dir=None,
    endpoint=None,
    local_dir=None,
    force_download=False,
    progress=True,
):
    """Fetches and verifies every file of a preset (or handle) without
    building a model: fills the Hugging Face cache for offline use, or
    copies the files into `local_dir`.

    Args:
        name_or_handle: a preset name or `hf://` handle (see `load`).
        revision, cache_dir, endpoint, force_download, progress: see `load`.
        local_dir: if given, the verified files are also copied into this
            folder, which then loads with `keras_pu.zoo.load(local_dir)` or
            `keras.saving.load_model(local_dir)`.

    Returns:
        `pathlib.Path` of the folder holding the files (`local_dir` if
        given, else the cache snapshot or the local `zoo/<preset>/`).

    Example:

    ```python
    import keras_pu

    folder = keras_pu.zoo.download("pu_unet_busi")  # then HF_HUB_OFFLINE=1 works
    ```
    """
    source = resolve(name_or_handle, revision=revision, endpoint=endpoint)
    if source.kind == "local":
        raise ValueError(
            f"{source.label} is already a local folder; there is nothing to "
            "download."
        )
    if source.kind == "preset":
        filenames = registry_lib.PRESET_FILES
    else:
        filenames = registry_lib.MODEL_FILES
    paths = obtain(
        source, filenames, cache_dir=cache_dir,
        force_download=force_download, progress=progress,
    )
    folder = pathlib.Path(paths[filenames[0]]).parent
    if local_dir is not None:
        folder = pathlib.Path(local_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for filename, path in paths.items():
            shutil.copyfile(path, folder / filename)
    _printer(progress)(f"{source.label}: {len(paths)} files in {folder}")
    return folder


# -- resolving handles ------------------------------------------------------


def resolve(name_or_handle, revision=None, endpoint=None):
    """Turns a user's handle into a `Source` (no file is read yet)."""
    if isinstance(name_or_handle, os.PathLike):
        name_or_handle = os.fspath(name_or_handle)
    if not isinstance(name_or_handle, str) or not name_or_handle:
        raise ValueError(
            "Expected a preset name, an 'hf://org/repo' handle or a folder "
            f"path; received {name_or_handle!r}."
        )
    handle = name_or_handle
    registry = registry_lib.load_registry()
    endpoint = endpoint or registry.endpoint

    if hub.is_hf_handle(handle):
        parsed = hub.parse_hf_handle(handle)
        if revision and parsed.revision and revision != parsed.revision:
            raise ValueError(
                f"Two revisions for {handle!r}: '@{parsed.revision}' in the "
                f"handle and revision={revision!r}. Give one."
            )
        rev = parsed.revision or revision
        label = repr(str(hub.HubHandle(parsed.repo_id, rev)))
        return Source(
            kind="hub",
            label=label,
            retry_hint=f"keras-pu zoo download {hub.HubHandle(parsed.repo_id, rev)}",
            repo_id=parsed.repo_id,
            revision=rev,
            endpoint=endpoint,
            registry=registry,
        )

    if handle in registry:
        preset = registry.get(handle)
        if revision and revision != preset.revision:
            return Source(
                kind="hub",
                label=f"preset '{handle}' at revision {revision}",
                retry_hint=f"keras-pu zoo download {handle} --revision {revision}",
                preset=preset,
                repo_id=preset.repo_id,
                revision=revision,
                endpoint=endpoint,
                registry=registry,
            )
        return Source(
            kind="preset",
            label=f"preset '{handle}'",
            retry_hint=f"keras-pu zoo download {handle}",
            preset=preset,
            repo_id=preset.repo_id,
            revision=preset.revision,
            endpoint=endpoint,
            registry=registry,
        )

    path = pathlib.Path(handle).expanduser()
    if path.is_dir():
        return Source(
            kind="local",
            label=f"folder '{path}'",
            retry_hint="",
            directory=path,
            registry=registry,
        )
    if handle.endswith((".keras", ".h5")) and path.is_file():
        raise ValueError(
            f"{handle!r} is a single-file Keras model; keras_pu.zoo.load "
            "reads presets, 'hf://' handles and Keras directory-format "
            "folders. Load it with keras.saving.load_model(path) after "
            "`import keras_pu`, or re-save it with "
            "model.save(folder, zipped=False)."
        )
    if os.sep in handle or "/" in handle or handle.startswith((".", "~")):
        raise ZooError(
            f"No folder {handle!r} ({path.resolve()}). Pass an existing folder"
            " saved in Keras's directory format, a preset name, or an "
            "'hf://org/repo' handle."
        )
    raise UnknownPresetError(registry_lib.unknown_preset_message(handle, registry))


# -- obtaining and verifying files ----------------------------------------


def obtain(source, filenames, *, cache_dir, force_download, progress):
    """Returns `{filename: verified local path}` for `source`."""
    if source.kind == "local":
        return _local_files(source, filenames)
    if source.kind == "preset":
        preset = source.preset
        if not preset.has_weights:
            raise PresetNotTrainedError(_not_trained_message(preset))
        # Local copies first (order and reasons: keras_pu.zoo.sources).
        found = None if force_download else sources.find_preset_folder(preset.name)
        if found is not None:
            return _zoo_folder_files(source, found, filenames, progress)
        if not preset.is_published:
            raise PresetNotPublishedError(_not_published_message(preset))
    try:
        return _hub_files(source, filenames, cache_dir, force_download, progress)
    except DownloadError as e:
        if source.kind != "preset" or type(e) not in (DownloadError, OfflineCacheMissError):
            raise
        raise type(e)(f"{e} {sources.ways_to_get_weights(source.preset)}") from None


def _local_files(source, filenames):
    paths = {}
    for filename in filenames:
        path = source.directory / filename
        if not path.is_file():
            present = sorted(p.name for p in source.directory.iterdir())
            raise ZooError(
                f"{source.label} has no {filename} (it holds: "
                f"{', '.join(present) or 'nothing'}). keras_pu.zoo.load reads"
                " Keras's directory format (config.json, model.weights.h5, "
                "metadata.json): save with model.save(folder, zipped=False)."
            )
        paths[filename] = str(path)
    return paths


def _zoo_folder_files(source, found, filenames, progress):
    preset = source.preset
    local, folder = found
    fix = sources.mismatch_fix(local, preset)
    paths = {}
    for filename in filenames:
        path = folder / filename
        if not path.is_file():
            raise IntegrityError(
                f"{filename} of preset '{preset.name}' is missing from "
                f"{folder}. {fix}"
            )
        integrity.verify_against_record(
            path, preset.files[filename],
            f"{filename} of preset '{preset.name}'", fix,
        )
        paths[filename] = str(path)
    _printer(progress)(
        f"{source.label}: using {folder} (from {local.label}; {len(paths)} "
        "files, sha256 verified against the registry)."
    )
    return paths


def _hub_files(source, filenames, cache_dir, force_download, progress):
    say = _printer(progress)
    revision = source.revision or "main"
    records = _pinned_records(source, revision)
    cached = all(
        hub.cached_path(source.repo_id, f, revision, cache_dir) for f in filenames
    )
    where = f"{hub.endpoint_in_use(source.endpoint)}/{source.repo_id}"
    short_rev = revision[:12] if hub.is_commit_sha(revision) else revision
    if cached and not force_download:
        say(f"{source.label}: using cached files of {source.repo_id}@{short_rev}.")
    elif hub.is_offline():
        # Nothing will be downloaded: the fetch below names the missing file
        # (OfflineCacheMissError); announcing a download would mislead.
        pass
    else:
        size = ""
        if records:
            total = sum(records[f].size for f in filenames)
            size = f", {hub.human_size(total)}"
        say(
            f"{source.label}: downloading {len(filenames)} files from {where} "
            f"@ {short_rev}{size} into {hub.cache_dir_in_use(cache_dir)}"
        )
    paths = {}
    with hub.progress_bars(progress):
        for filename in filenames:
            paths[filename] = _fetch_verified(
                source, filename, revision, records, cache_dir, force_download,
                say,
            )
            # Every further file comes from the same commit, even if a branch
            # moves meanwhile.
            commit = hub.commit_of_cached_path(paths[filename])
            if commit and revision != commit:
                revision = commit
                if records is None:
                    records = _pinned_records(source, commit)
                    if records is not None:
                        # A branch that is the pinned release: the files
                        # already fetched are held to the registry too.
                        for done, path in paths.items():
                            integrity.verify_against_record(
                                path, records[done], f"{done} of {source.label}",
                                "The Hub serves another file than keras-pu "
                                "pinned for this commit; do not use it.",
                            )
    how = (
        "sha256 verified against the registry"
        if records
        else "checked against the Hub's checksums"
    )
    say(f"{source.label}: {len(paths)} files at commit {revision[:12]}, {how}.")
    return paths


def _pinned_records(source, revision):
    """The registry's file records when `source` at `revision` is a
    registry preset's pinned release, else None."""
    registry = source.registry
    preset = source.preset
    if preset is None and registry is not None:
        preset = registry.preset_for_repo(source.repo_id)
    if preset is not None and preset.is_published and preset.revision == revision:
        return preset.files
    return None


def _fetch_verified(source, filename, revision, records, cache_dir, force, say):
    what = f"{filename} of {source.label}"

    def fetch(force_download):
        return hub.download_file(
            source.repo_id, filename, revision,
            owner=source.label, retry_hint=source.retry_hint,
            cache_dir=cache_dir, endpoint=source.endpoint,
            force_download=force_download,
        )

    def verify(path, fix):
        if records is not None:
            integrity.verify_against_record(path, records[filename], what, fix)
        else:
            integrity.verify_against_hub_etag(path, what, fix)

    path = fetch(force)
    try:
        verify(
            path,
            "The copy in the Hugging Face cache is damaged: with network "
            f"access run `{source.retry_hint} --force`, or delete {path}.",
        )
        return path
    except IntegrityError as damaged:
        if force or hub.is_offline():
            raise
        say(f"{what} does not match ({damaged.reason}); downloading it again.")
    path = fetch(True)
    verify(
        path,
        "It was downloaded again and still does not match: the server "
        f"({hub.endpoint_in_use(source.endpoint)}) does not serve the file "
        "keras-pu pinned. Do not use it; please report this to keras-pu."
        if records is not None
        else "It was downloaded again and still does not match: check the "
        "disk, a proxy, or the mirror.",
    )
    return path


# -- reading and checking the configuration ----------------------------------


def _read_json(path, filename, source):
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IntegrityError(
            f"{filename} of {source.label} is not valid JSON ({e}; {path}). "
            "The file is damaged or is not a Keras model file."
        ) from None


def _read_config(path, source):
    config = _read_json(path, "config.json", source)
    if not isinstance(config, dict) or "class_name" not in config:
        raise IntegrityError(
            f"config.json of {source.label} is not a Keras model "
            f"configuration (no class_name; {path})."
        )
    check_config_is_safe(config, source.label)
    if source.preset is not None:
        _check_architecture(config, source)
    return config


def registry_config(preset):
    """The Keras serialised form of a preset's architecture, as in the
    config.json that `model.save` writes for it."""
    from keras_pu.models.registry import get_model_spec

    class_name = preset.class_name
    return {
        "module": get_model_spec(class_name).module,
        "class_name": class_name,
        "config": dict(copy.deepcopy(preset.architecture["config"]), name=preset.name),
        "registered_name": f"keras_pu>{class_name}",
    }


def _check_architecture(config, source):
    """config.json must describe the preset's architecture (the registry
    entry); only the name, dtype and spatial input size may differ."""
    preset = source.preset
    problems = registry_lib.architecture_differences(config, preset.architecture)
    if problems:
        raise ArchitectureMismatchError(
            f"config.json of {source.label} describes another architecture "
            f"than the registry's {preset.class_name} for preset "
            f"'{preset.name}': {'; '.join(problems)}. These files belong to "
            "another model. Use the pinned release (no `revision=`), or load "
            "the files as what they are with an 'hf://org/repo@revision' "
            "handle; if the registry is out of date, upgrade keras-pu."
        )


# -- building ------------------------------------------------------------


def _build(config, source, input_shape, num_classes=None):
    """The model `config` describes, optionally with another input shape
    and (for a model that gets no trained weights) another head."""
    import keras

    config = copy.deepcopy(config)
    config.pop("compile_config", None)  # returned uncompiled, see load()
    is_unet = is_resizable(config)
    if num_classes is not None:
        if not is_unet:
            raise ValueError(
                f"num_classes can only be changed for keras-pu U-Nets; "
                f"{source.label} is a {config.get('class_name')}."
            )
        config["config"]["num_classes"] = num_classes
    if input_shape is not None:
        if not is_unet:
            raise ValueError(
                f"input_shape can only be changed for keras-pu U-Nets; "
                f"{source.label} is a {config.get('class_name')}."
            )
        stored = config["config"].get("input_shape")
        ch = 0 if config["config"].get("data_format") == "channels_first" else -1
        if stored and stored[ch] != input_shape[ch]:
            raise ValueError(
                f"input_shape={input_shape} for {source.label}: the model was"
                f" trained on {stored[ch]}-channel images and its first "
                "convolution keeps that channel count. Keep "
                f"{stored[ch]} channels (feed grayscale images as 3 identical"
                " RGB channels)."
            )
        config["config"]["input_shape"] = list(input_shape)
        config.pop("build_config", None)
    try:
        return keras.saving.deserialize_keras_object(config, safe_mode=True)
    except ValueError as e:
        if input_shape is not None:
            raise ValueError(f"input_shape={input_shape} for {source.label}: {e}") from None
        raise ZooError(
            f"config.json of {source.label} could not be rebuilt into a model:"
            f" {e}. It may need a newer keras-pu."
        ) from None
    except TypeError as e:
        raise ZooError(
            f"config.json of {source.label} could not be rebuilt into a model:"
            f" {e}. It may need a newer keras-pu or Keras."
        ) from None


def _load_weights(model, path, config, source):
    """Fills every variable of `model` from the HDF5 file, or raises."""
    what = f"model.weights.h5 of {source.label}"
    integrity.check_hdf5_signature(
        path, what, "The file is damaged or was replaced; download it again."
    )
    arch = f"{config.get('class_name')} {_short_config(config)}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except OSError as e:
            raise IntegrityError(f"{what} cannot be read as HDF5: {e} ({path}).") from None
        except (ValueError, KeyError) as e:
            raise ArchitectureMismatchError(
                f"{what} does not fit the architecture in its config.json "
                f"({arch}): {_keras_error_summary(e)} The weights and the "
                "config come from different models; do not use them together."
            ) from None
    partial = [
        w for w in caught
        if issubclass(w.category, UserWarning) and "saving" in str(w.filename)
    ]
    for w in caught:
        if w not in partial:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if partial:
        raise ArchitectureMismatchError(
            f"{what} left part of the model ({arch}) unloaded: "
            f"{str(partial[0].message).splitlines()[0]} The weights come from "
            "another architecture."
        )
    if is_resizable(config):
        stored = _count_h5_arrays(path)
        if stored != len(model.weights):
            raise ArchitectureMismatchError(
                f"{what} holds {stored} arrays but the {arch} has "
                f"{len(model.weights)} variables: the weights come from "
                "another architecture."
            )


def _keras_error_summary(error, limit=400):
    """Keras's loading errors span many lines; keep the informative part
    (e.g. "variable.shape=(3, 3, 3, 8), Received: value.shape=...")."""
    text = " ".join(str(error).split())
    marker = text.find("Example error message")
    if marker >= 0:
        text = text[:marker] + text[text.find(":", marker) + 1:]
    text = text.strip()
    return text[:limit] + ("..." if len(text) > limit else "")


def _count_h5_arrays(path):
    import h5py

    count = 0

    def visit(_, obj):
        nonlocal count
        if isinstance(obj, h5py.Dataset):
            count += 1

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return count


def _replace_head(model, config, source, num_classes, input_shape):
    """Returns `model`, or a copy with a new `num_classes` head (all other
    weights copied layer by layer)."""
    if num_classes is None or num_classes == getattr(model, "num_classes", None):
        return model
    import keras

    if not is_resizable(config):
        raise ValueError(
            f"num_classes can only be changed for keras-pu U-Nets; "
            f"{source.label} is a {config.get('class_name')}."
        )
    new_config = copy.deepcopy(config)
    new_config.pop("compile_config", None)
    new_config.pop("build_config", None)
    new_config["config"]["num_classes"] = num_classes
    if input_shape is not None:
        new_config["config"]["input_shape"] = list(input_shape)
    new_model = keras.saving.deserialize_keras_object(new_config, safe_mode=True)
    for layer in new_model.layers:
        if layer.name == HEAD_LAYER or not layer.weights:
            continue
        layer.set_weights(model.get_layer(layer.name).get_weights())
    return new_model


# -- messages ------------------------------------------------------------


def _printer(enabled):
    def say(message):
        if enabled:
            print(f"keras-pu: {message}", file=sys.stderr, flush=True)

    return say


def _short_config(config):
    inner = config.get("config") or {}
    keys = ("widths", "depth", "pu_stages", "num_classes")
    parts = [f"{k}={inner[k]}" for k in keys if k in inner]
    return "(" + ", ".join(parts) + ")" if parts else ""


def _loaded_message(model, source, num_classes):
    shape = "x".join("?" if d is None else str(d) for d in model.input_shape[1:])
    text = (
        f"loaded {source.label}: {model.__class__.__name__} with "
        f"{model.count_params():,} parameters, input {shape}"
    )
    if num_classes is not None:
        text += f", new {num_classes}-class head (fresh weights)"
    preset = source.preset
    if preset is not None:
        text += (
            f". Trained on {preset.dataset.name}: research and education "
            f"only (keras_pu.zoo.info('{preset.name}') has the terms)"
        )
    return text + "."


def _not_trained_message(preset):
    return (
        f"Preset '{preset.name}' has no trained weights yet in this keras-pu "
        "release. keras_pu.zoo.load("
        f"'{preset.name}', weights=False) builds its architecture with "
        "random initial weights; `keras-pu zoo list` shows which presets have"
        " weights."
    )


def _not_published_message(preset):
    return (
        f"Preset '{preset.name}' has trained weights (the registry lists "
        "their sha256), but this installation has no copy of them: they are "
        f"not published on the Hugging Face Hub yet, and there is "
        f"{sources.searched_text(preset.name)}. "
        f"{sources.ways_to_get_weights(preset)}"
    )


def _check_num_classes(num_classes):
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(
            "num_classes must be an integer >= 1 (1 = binary, one logit per "
            f"pixel) or None to keep the trained head; received {num_classes!r}."
        )
    return num_classes


def _check_input_shape(input_shape):
    if input_shape is None:
        return None
    try:
        shape = tuple(None if d is None else int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3:
        raise ValueError(
            "input_shape must be (height, width, channels), e.g. (512, 512, 3)"
            f" or (None, None, 3); received {input_shape!r}."
        )
    return shape
