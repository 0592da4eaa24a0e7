"""The preset registry: the single source of truth for every preset.

The registry is the JSON file `keras_pu/zoo/registry.json`, shipped inside
the package. For each preset it records the architecture (class and
config), parameter count, input size and preprocessing, the dataset it was
trained on with its licence note, the Hub repository and the pinned commit
once published, the sha256 and size of every file of the preset's Hub
repository, and the measured test metrics. Model cards, the README's preset
table, `keras-pu zoo list|info` and `keras_pu.zoo.load` all read it; only the
maintainer commands in `zoo/` (`add_preset.py`, `publish.py`, code in
`tools/zoo/` of the source checkout) write it. A dataset's name, source,
citation and licence come from its module in `keras_pu.data.layouts` (the
dataset registry); the registry file adds what is specific to the presets.

Two environment variables override where things are looked up (documented
in docs/zoo.md, used by the tests):

- `KERAS_PU_REGISTRY`: path of a registry JSON file that replaces the
  built-in one (e.g. a registry whose presets live on a private mirror:
  its `hub_endpoint` names the server).
- `KERAS_PU_ZOO_DIR`: folder holding `<preset>/` folders to load from before
  trying the Hub. By default this is `zoo/` of a source checkout, and nothing
  for a pip install.
"""

import dataclasses
import difflib
import json
import os
import pathlib
import tempfile

from keras_pu.zoo.errors import UnknownPresetError
from keras_pu.zoo.errors import ZooError

REGISTRY_ENV = "KERAS_PU_REGISTRY"
ZOO_DIR_ENV = "KERAS_PU_ZOO_DIR"
BUILTIN_REGISTRY = pathlib.Path(__file__).with_name("registry.json")
FORMAT_VERSION = 1

# The files Keras's directory format consists of (what `load` reads) ...
MODEL_FILES = ("config.json", "metadata.json", "model.weights.h5")
# ... and everything a preset's Hub repository holds.
PRESET_FILES = MODEL_FILES + ("README.md", "metrics.json", "recipe.json")

STATUS_NOT_TRAINED = "not trained"
STATUS_UNPUBLISHED = "trained, not published"
STATUS_PUBLISHED = "published"


@dataclasses.dataclass(frozen=True)
class FileRecord:
    """Expected content of one file: its sha256 (hex) and size in bytes."""

    sha256: str
    size: int


@dataclasses.dataclass(frozen=True)
class Dataset:
    """What a preset was trained on, and the terms of that data."""

    key: str
    name: str
    stand_in_for: str | None  # the dataset it replaces, said wherever it is named
    task: str
    target: str
    modality: str
    phantom: str
    hub_dataset_tag: str
    url: str
    citation: str
    data_note: str
    licence: str
    paper_reference: dict
    # Measured comparisons on this dataset that are not presets themselves
    # (several seeds, SelfReg on/off): rows of {"label", "runs", "note",
    # "metrics": {name: {"mean", "std"}}}. Shown in the model cards.
    experiments: tuple = ()
    # The preset to use for this dataset's task: {"preset": name, "why":
    # text}, or None. `keras_pu.zoo.recommended()` and `keras-pu zoo list`
    # show it.
    recommended: dict | None = None


# Preset fields that may be absent: how the weights were trained (for the
# card) and the image-level gate chosen for them.
OPTIONAL_PRESET_FIELDS = ("training", "postprocess")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One registry entry. See the module docstring for the fields' roles.

    `files` is empty until the preset has trained weights; `revision` is
    `None` until the preset's files are published on the Hub.
    """

    name: str
    description: str
    dataset: Dataset
    architecture: dict
    parameters: int
    input_size: tuple
    preprocessing: dict
    repo_id: str
    revision: str | None
    files: dict
    metrics: dict | None
    # How the weights were trained (hardware, backend, image size, epochs,
    # wall time), for the model card; None when unknown or untrained.
    training: dict | None = None
    # The image-level gate chosen on validation images, or None:
    # {"gate": keras_pu.postprocess.PeakGate config, "test_metrics": the
    # test metrics with the gate, like `metrics`}. Applied by `keras-pu
    # evaluate/predict --gate model`; reported next to `metrics`.
    postprocess: dict | None = None

    @property
    def has_weights(self):
        return bool(self.files)

    @property
    def is_published(self):
        return self.has_weights and self.revision is not None

    @property
    def status(self):
        if not self.has_weights:
            return STATUS_NOT_TRAINED
        if not self.is_published:
            return STATUS_UNPUBLISHED
        return STATUS_PUBLISHED

    @property
    def class_name(self):
        return self.architecture["class_name"]

    @property
    def input_shape(self):
        return tuple(self.architecture["config"]["input_shape"])

    @property
    def weights_size(self):
        """Total bytes of the files `load` reads (0 when untrained)."""
        return sum(
            self.files[f].size for f in MODEL_FILES if f in self.files
        )


class Registry:
    """The parsed registry file. Obtain it with `load_registry()`."""

    def __init__(self, data, path):
        self.path = pathlib.Path(path)
        self.data = data
        _validate(data, self.path)
        self.endpoint = data.get("hub_endpoint")
        self.weights_terms = data["weights_terms"]
        self.hub_licence = dict(data["hub_licence"])
        self.datasets = {
            canonical_key(key): Dataset(
                key=canonical_key(key),
                **{
                    **_declared_by_dataset_module(key),
                    **{k: v for k, v in entry.items() if k != "experiments"},
                },
                experiments=tuple(entry.get("experiments", ())),
            )
            for key, entry in data["datasets"].items()
        }
        self.presets = {
            name: _make_preset(name, entry, self.datasets)
            for name, entry in data["presets"].items()
        }

    @property
    def names(self):
        return list(self.presets)

    def __contains__(self, name):
        return name in self.presets

    def get(self, name):
        """Returns the `Preset` called `name`, or raises
        `UnknownPresetError` suggesting close names."""
        try:
            return self.presets[name]
        except (KeyError, TypeError):
            raise UnknownPresetError(unknown_preset_message(name, self)) from None

    def preset_for_repo(self, repo_id):
        """The preset published as `repo_id`, or `None`."""
        for preset in self.presets.values():
            if preset.repo_id == repo_id:
                return preset
        return None

    # -- writing (maintainer tools only) ------------------------------------

    def update_preset(self, name, **fields):
        """Sets raw JSON fields of preset `name` (e.g. files=..., hub=...)
        and re-validates; an optional field (`training`, `postprocess`) set
        to None is removed. Call `save()` to write the file."""
        if name not in self.presets:
            raise UnknownPresetError(unknown_preset_message(name, self))
        data = json.loads(json.dumps(self.data))  # deep copy
        entry = data["presets"][name]
        entry.update(fields)
        for key in OPTIONAL_PRESET_FIELDS:
            if key in fields and fields[key] is None:
                del entry[key]
        self.__init__(data, self.path)

    def update_dataset(self, key, **fields):
        """Sets raw JSON fields of dataset `key` (e.g. experiments=...) and
        re-validates. Call `save()` to write the file."""
        if canonical_key(key) not in self.datasets:
            raise ZooError(f"Unknown dataset {key!r}; known: {sorted(self.datasets)}.")
        data = json.loads(json.dumps(self.data))  # deep copy
        raw_key = next(k for k in data["datasets"] if canonical_key(k) == canonical_key(key))
        data["datasets"][raw_key].update(fields)
        self.__init__(data, self.path)

    def save(self, path=None):
        """Writes the registry atomically (to `path`, default its own)."""
        path = pathlib.Path(path or self.path)
        text = json.dumps(self.data, indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".registry-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def registry_path():
    """The registry file in effect: `$KERAS_PU_REGISTRY` or the built-in."""
    override = os.environ.get(REGISTRY_ENV)
    return pathlib.Path(override) if override else BUILTIN_REGISTRY


def load_registry(path=None):
    """Reads and validates the registry (default: `registry_path()`).

    Read afresh on every call: it is a few kB, and the override variable may
    change between calls (tests, notebooks).
    """
    path = pathlib.Path(path) if path else registry_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        hint = (
            f" (set by ${REGISTRY_ENV}; unset it to use the built-in registry)"
            if os.environ.get(REGISTRY_ENV) and path == registry_path()
            else " (reinstall keras-pu: the package is incomplete)"
        )
        raise ZooError(
            f"Cannot read the preset registry {path}: {e}{hint}."
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ZooError(
            f"The preset registry {path} is not valid JSON ({e}). Restore it "
            "from git (`git checkout keras_pu/zoo/registry.json`) or "
            "reinstall keras-pu."
        ) from None
    return Registry(data, path)


def local_zoo_dir():
    """Folder of local preset folders: `$KERAS_PU_ZOO_DIR`, else `zoo/` of
    the source checkout this package is imported from, else `None`.

    A pip-installed package has no `zoo/` next to it, so it loads published
    presets from the Hub only. A checkout is recognised by its
    `pyproject.toml` and `zoo/publish.py`, so that an unrelated top-level
    `zoo` folder in site-packages is never mistaken for ours.
    """
    override = os.environ.get(ZOO_DIR_ENV)
    if override:
        return pathlib.Path(override)
    root = pathlib.Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (
        root / "zoo" / "publish.py"
    ).is_file():
        return root / "zoo"
    return None


# Keys of a model config that do not change what the model computes.
NON_ARCHITECTURE_KEYS = frozenset({"name", "trainable", "dtype"})


def architecture_differences(config, architecture):
    """How a Keras model config differs from a registry architecture.

    Args:
        config: a serialised model (`config.json`: class_name, config) or
            just its inner `config` dict together with
            `architecture["class_name"]`.
        architecture: a registry `{"class_name", "config"}`.

    Returns:
        A list of human-readable differences (empty if they match). The
        model name, dtype policy and the spatial input size are not
        architecture (the U-Nets are fully convolutional); the channel count
        is. A key that one side lacks counts as the class's default for it
        (a config written before the argument existed builds the same
        model).
    """
    problems = []
    defaults = _constructor_defaults(architecture["class_name"])
    if config.get("class_name") != architecture["class_name"]:
        problems.append(
            f"class {config.get('class_name')} instead of "
            f"{architecture['class_name']}"
        )
    actual = config.get("config") or {}
    expected = architecture["config"]
    for key in sorted((set(actual) | set(expected)) - NON_ARCHITECTURE_KEYS):
        have = _as_list(actual.get(key, defaults.get(key, "<missing>")))
        want = _as_list(expected.get(key, defaults.get(key, "<missing>")))
        if key == "input_shape" and isinstance(have, list) and isinstance(want, list):
            channel = 0 if expected.get("data_format") == "channels_first" else -1
            if have and want and have[channel] != want[channel]:
                problems.append(
                    f"{have[channel]} input channels instead of {want[channel]}"
                )
        elif have != want:
            problems.append(f"{key}={have!r} instead of {want!r}")
    return problems


def _constructor_defaults(class_name):
    from keras_pu.models.registry import UnknownModelError
    from keras_pu.models.registry import get_model_spec

    try:
        return get_model_spec(class_name).constructor_defaults()
    except UnknownModelError:
        return {}  # a class this version does not know: compare as written


def _as_list(value):
    if isinstance(value, (list, tuple)):
        return [_as_list(v) for v in value]
    return value


def unknown_preset_message(name, registry):
    names = registry.names
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"Unknown preset {name!r}.{hint} Presets: {', '.join(names)} "
        "(`keras-pu zoo list` shows their status). To load a Hub repository "
        "use 'hf://<org>/<repo>[@revision]'; to load a folder saved with "
        "Keras, pass its path (e.g. './my_model')."
    )


def _make_preset(name, entry, datasets):
    files = {
        filename: FileRecord(sha256=rec["sha256"], size=int(rec["size"]))
        for filename, rec in entry["files"].items()
    }
    return Preset(
        name=name,
        description=entry["description"],
        dataset=datasets[canonical_key(entry["dataset"])],
        architecture=entry["architecture"],
        parameters=int(entry["parameters"]),
        input_size=tuple(entry["input_size"]),
        preprocessing=dict(entry["preprocessing"]),
        repo_id=entry["hub"]["repo_id"],
        revision=entry["hub"]["revision"],
        files=files,
        metrics=entry["metrics"],
        training=entry.get("training"),
        postprocess=entry.get("postprocess"),
    )


_PRESET_KEYS = {
    "description",
    "dataset",
    "architecture",
    "parameters",
    "input_size",
    "preprocessing",
    "hub",
    "files",
    "metrics",
}
_DATASET_KEYS = {f.name for f in dataclasses.fields(Dataset)} - {
    "key",
    "experiments",  # optional
    "recommended",  # optional
}
# Fields a dataset module of keras_pu.data.layouts declares (the one home
# of a dataset's name, source, citation and terms): a registry entry of a
# known dataset leaves them out (one given there takes precedence).
_FROM_DATASET_MODULE = {"name", "url", "citation", "licence"}


def canonical_key(key):
    """The dataset registry's spelling of a dataset key (the registry file
    once wrote `kvasir_seg` for `kvasir-seg`)."""
    from keras_pu.data.dataset_registry import canonical_key as canonical

    return canonical(key)


def _declared_by_dataset_module(key):
    from keras_pu.data.dataset_registry import find_dataset

    spec = find_dataset(key)
    if spec is None:
        return {}
    return {
        "name": spec.full_name or spec.display_name,
        "url": spec.url,
        "citation": spec.citation,
        "licence": spec.licence,
    }


def _validate(data, path):
    """Checks the registry's structure, so that a hand edit that breaks it
    fails here with the entry named, not later in some unrelated place."""

    def fail(msg):
        raise ZooError(
            f"Invalid preset registry {path}: {msg}. Fix the entry (the "
            "maintainer tools in zoo/ write it) or restore the file from git."
        )

    if not isinstance(data, dict):
        fail("the top level must be a JSON object")
    if data.get("format_version") != FORMAT_VERSION:
        fail(
            f"format_version is {data.get('format_version')!r}; this "
            f"keras-pu reads version {FORMAT_VERSION}"
        )
    for key in ("weights_terms", "hub_licence", "datasets", "presets"):
        if key not in data:
            fail(f"missing top-level key {key!r}")
    dataset_keys = {canonical_key(k) for k in data["datasets"]}
    for key, entry in data["datasets"].items():
        missing = _DATASET_KEYS - set(entry)
        if _declared_by_dataset_module(key):
            missing -= _FROM_DATASET_MODULE
        if missing:
            fail(f"dataset {key!r} lacks {sorted(missing)}")
        for row in entry.get("experiments", []):
            if not isinstance(row, dict) or not {"label", "metrics"} <= set(row):
                fail(f"dataset {key!r}: each experiment needs a label and metrics")
        recommended = entry.get("recommended")
        if recommended is not None:
            if not isinstance(recommended, dict) or set(recommended) != {"preset", "why"}:
                fail(f"dataset {key!r}: recommended must be {{preset, why}}")
            chosen = data["presets"].get(recommended["preset"])
            if chosen is None or canonical_key(chosen["dataset"]) != canonical_key(key):
                fail(
                    f"dataset {key!r}: recommended preset "
                    f"{recommended['preset']!r} is not a preset of this dataset"
                )
    for name, entry in data["presets"].items():
        where = f"preset {name!r}"
        missing = _PRESET_KEYS - set(entry)
        if missing:
            fail(f"{where} lacks {sorted(missing)}")
        if canonical_key(entry["dataset"]) not in dataset_keys:
            fail(f"{where} names unknown dataset {entry['dataset']!r}")
        if entry.get("training") is not None and not isinstance(entry["training"], dict):
            fail(f"{where}: training must be an object")
        arch = entry["architecture"]
        if not isinstance(arch, dict) or set(arch) != {"class_name", "config"}:
            fail(f"{where}: architecture must be {{class_name, config}}")
        if "input_shape" not in arch["config"]:
            fail(f"{where}: architecture config lacks input_shape")
        hub = entry["hub"]
        if not isinstance(hub, dict) or "repo_id" not in hub:
            fail(f"{where}: hub must be {{repo_id, revision}}")
        if str(hub["repo_id"]).count("/") != 1:
            fail(f"{where}: repo_id {hub['repo_id']!r} is not 'org/name'")
        files = entry["files"]
        if files and set(files) != set(PRESET_FILES):
            fail(
                f"{where}: files must list exactly {list(PRESET_FILES)} "
                f"(or nothing while untrained); got {sorted(files)}"
            )
        for filename, rec in files.items():
            sha = rec.get("sha256", "") if isinstance(rec, dict) else ""
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                fail(f"{where}: {filename} has no valid lowercase sha256")
            if not isinstance(rec.get("size"), int) or rec["size"] < 0:
                fail(f"{where}: {filename} has no valid size")
        revision = hub.get("revision")
        if revision is not None:
            if (
                not isinstance(revision, str)
                or len(revision) != 40
                or any(c not in "0123456789abcdef" for c in revision)
            ):
                fail(
                    f"{where}: revision {revision!r} is not a full commit "
                    "sha (40 hex digits); pin commits, not branches"
                )
            if not files:
                fail(f"{where}: a published revision but no files")
        postprocess = entry.get("postprocess")
        if postprocess is not None:
            from keras_pu.postprocess import GateError
            from keras_pu.postprocess import PeakGate

            if not isinstance(postprocess, dict) or set(postprocess) != {
                "gate", "test_metrics"
            }:
                fail(f"{where}: postprocess must be {{gate, test_metrics}}")
            try:
                gate = PeakGate.from_config(postprocess["gate"], source="its gate")
            except GateError as e:
                fail(f"{where}: {e}")
            if (gate.calibration or {}).get("split") != "val":
                fail(f"{where}: its gate must be chosen on the val split")
            if not entry["files"]:
                fail(f"{where}: a postprocess gate but no trained weights")
