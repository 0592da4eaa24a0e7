"""Training recipes: everything `keras-pu train` needs to reproduce a run,
in one JSON file.

A recipe is a JSON object with these sections (every key but `model.class`
and `data.image_size` has a default; unknown keys are errors, so a typo
never silently falls back to a default):

```json
{
  "name": "pu_unet_kvasir",
  "description": "PU-UNet on Kvasir-SEG",
  "model": {"class": "PUUNet", "config": {"widths": 16, "depth": 4}},
  "data": {"layout": "kvasir-seg", "split": "kvasir-seg",
           "image_size": [160, 160]},
  "training": {"epochs": 60, "batch_size": 8, "seed": 42},
  "optimizer": {"name": "adamw", "learning_rate": 0.001,
                "weight_decay": 0.0001},
  "schedule": {"name": "cosine", "warmup_epochs": 2},
  "loss": {"bce_weight": 1.0, "dice_weight": 1.0},
  "augmentation": {"rotation": 15},
  "selfreg": {"enabled": false},
  "early_stopping": {"enabled": true, "patience": 15}
}
```

`Recipe.from_file(path)`, `Recipe.from_preset(name)` (the recipes shipped
in `keras_pu/training/recipes/`), `Recipe.from_dict(d)` validate and fill in
defaults; `recipe.to_dict()` gives the complete recipe back (what a run
saves next to its checkpoints); `recipe.replace({"training.epochs": 2})`
returns a validated copy with some keys changed. `describe_schema()` prints
every key with its default and meaning.
"""

import copy
import difflib
import json
import math
import pathlib

from keras_pu.selfreg import defaults as selfreg_defaults
from keras_pu.training.errors import RecipeError
from keras_pu.training.pipeline import check_augmentation

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "poly", "constant")
# "auto": keras_pu.hardware.choose_precision() picks one when a run starts
# (and the run's recipe.json records the policy it picked).
DTYPE_POLICIES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
RECIPES_DIR = pathlib.Path(__file__).resolve().parent / "recipes"


class _Field:
    """One recipe key: accepted types, default, constraint and help."""

    def __init__(self, types, default, help, check=None, choices=None,
                 required=False):
        self.types = types if isinstance(types, tuple) else (types,)
        self.default = default
        self.help = help
        self.check = check
        # A tuple, or a function returning one when the choices live in a
        # registry (asked at validation time, never copied here).
        self._choices = choices
        self.required = required

    @property
    def choices(self):
        return self._choices() if callable(self._choices) else self._choices

    def validate(self, value, where):
        if value is None and type(None) in self.types:
            return None
        if float in self.types and isinstance(value, int) and not isinstance(
            value, bool
        ):
            value = float(value)
        ok = isinstance(value, self.types) and not (
            isinstance(value, bool) and bool not in self.types
        )
        if not ok:
            names = " or ".join(
                "null" if t is type(None) else _TYPE_NAMES.get(t, t.__name__)
                for t in self.types
            )
            raise RecipeError(
                f"{where} must be {names}; got {json.dumps(value)}."
            )
        choices = self.choices
        if choices is not None and value not in choices:
            raise RecipeError(
                f"{where} must be one of {list(choices)}; got "
                f"{json.dumps(value)}.{_did_you_mean(value, choices)}"
            )
        if self.check is not None:
            message = self.check(value)
            if message:
                raise RecipeError(f"{where} {message}; got {json.dumps(value)}.")
        return copy.deepcopy(value)


_TYPE_NAMES = {
    str: "a string", int: "an integer", float: "a number", bool: "true/false",
    dict: "an object", list: "a list",
}


def _positive(v):
    return None if v > 0 and math.isfinite(v) else "must be > 0"


def _non_negative(v):
    return None if v >= 0 and math.isfinite(v) else "must be >= 0"


def _fraction(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _image_size(v):
    if len(v) != 2 or not all(
        isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v
    ):
        return "must be [height, width], two positive integers"
    return None


def _model_classes():
    from keras_pu.models.registry import list_models

    return tuple(list_models())


def _data_layouts():
    from keras_pu.data.dataset_registry import layout_names

    return ("auto",) + layout_names()


def _probability(v):
    return None if 0 < v < 1 else "must be in (0, 1)"


# section -> key -> field. `augmentation` is a free-form section checked by
# building keras_pu.data.SegmentationAugmentation from it.
SCHEMA = {
    "name": _Field((str, type(None)), None, "recipe name (e.g. the preset name)"),
    "description": _Field(str, "", "free text"),
    "model": {
        "class": _Field(str, None, "model class in keras_pu.models (the "
                        "model registry)", choices=_model_classes,
                        required=True),
        "config": _Field(dict, {}, "constructor arguments of the model class "
                         "(input_shape is set from data.image_size)"),
    },
    "data": {
        "layout": _Field(str, "auto", "dataset layout ('auto': detect from "
                         "the folder)", choices=_data_layouts),
        "path": _Field((str, type(None)), None,
                       "dataset folder (null: given on the command line)"),
        "split": _Field((str, type(None)), "auto",
                        "committed split (a dataset key with a split file: "
                        "keras_pu.data.SPLIT_DATASETS), "
                        "a split file path, 'auto' (the layout's committed "
                        "split when there is one) or null (a seeded random "
                        "split by val_fraction/test_fraction)"),
        "val_fraction": _Field(float, 0.1, "validation fraction when split "
                               "is null", check=_fraction),
        "test_fraction": _Field(float, 0.1, "test fraction when split is "
                                "null", check=_fraction),
        "image_size": _Field(list, None, "[height, width] the images are "
                             "resized to (multiples of 2**depth)",
                             check=_image_size, required=True),
        "on_error": _Field(str, "raise", "broken image/mask pairs: 'raise' "
                           "or 'skip' (left out with a warning)",
                           choices=("raise", "skip")),
    },
    "training": {
        "epochs": _Field(int, 50, "number of epochs", check=_positive),
        "batch_size": _Field(int, 8, "images per step (global, over all "
                             "devices)", check=_positive),
        "steps_per_epoch": _Field((int, type(None)), None, "null: the whole "
                                  "training split each epoch",
                                  check=_positive),
        "seed": _Field(int, 42, "seed of keras.utils.set_random_seed, the "
                       "shuffling and the augmentation"),
        "dtype_policy": _Field(str, "auto", "Keras dtype policy (mixed "
                               "precision); 'auto': the fastest safe one "
                               "for the hardware (keras_pu.hardware)",
                               choices=DTYPE_POLICIES),
        "monitor": _Field(str, "val_dice", "the log entry that picks the best "
                          "checkpoint and drives early stopping (max for "
                          "scores, min for losses)"),
        "threshold": _Field(float, 0.5, "probability threshold of the "
                            "training-time metrics", check=_probability),
        "freeze_encoder_epochs": _Field(int, 0, "epochs at the start with "
                                        "the pretrained encoder frozen "
                                        "(models with an ImageNet encoder "
                                        "only)", check=_non_negative),
    },
    "optimizer": {
        "name": _Field(str, "adamw", "optimizer", choices=OPTIMIZERS),
        "learning_rate": _Field(float, 1e-3, "peak learning rate",
                                check=_positive),
        "weight_decay": _Field(float, 1e-4, "decoupled weight decay (adamw, "
                               "sgd)", check=_non_negative),
        "beta_1": _Field(float, 0.9, "Adam beta_1", check=_probability),
        "beta_2": _Field(float, 0.999, "Adam beta_2", check=_probability),
        "momentum": _Field(float, 0.9, "SGD momentum", check=_fraction),
        "clipnorm": _Field((float, type(None)), None, "gradient clipping by "
                           "norm (null: none)", check=_positive),
    },
    "schedule": {
        "name": _Field(str, "cosine", "learning-rate schedule: 'cosine' "
                       "(decay to min_lr_ratio * learning_rate), 'poly' "
                       "(nnU-Net's (1 - progress) ** 0.9 to min_lr_ratio * "
                       "learning_rate) or 'constant'", choices=SCHEDULES),
        "warmup_epochs": _Field(int, 0, "linear warm-up from 0", check=_non_negative),
        "min_lr_ratio": _Field(float, 0.01, "final learning rate / peak "
                               "(cosine, poly)", check=_non_negative),
    },
    "loss": {
        "bce_weight": _Field(float, 1.0, "weight of binary cross-entropy",
                             check=_non_negative),
        "dice_weight": _Field(float, 1.0, "weight of soft Dice",
                              check=_non_negative),
        "smooth": _Field(float, 1.0, "soft Dice smoothing", check=_non_negative),
    },
    "augmentation": _Field((dict, type(None)), {}, "arguments of "
                           "keras_pu.data.SegmentationAugmentation ({}: its "
                           "defaults; null: no augmentation)"),
    "selfreg": {
        "enabled": _Field(bool, False, "train with SelfReg self-distillation"),
        "lambda_scr": _Field(float, selfreg_defaults.LAMBDA_SCR, "weight of the SCR loss",
                             check=_non_negative),
        "lambda_ifd": _Field(float, selfreg_defaults.LAMBDA_IFD, "weight of the IFD loss",
                             check=_non_negative),
        "warmup_epochs": _Field(int, selfreg_defaults.WARMUP_EPOCHS,
                                "epochs over which the SelfReg "
                                "weights ramp up linearly from 0",
                                check=_non_negative),
    },
    "early_stopping": {
        "enabled": _Field(bool, True, "stop when the monitored value stops "
                          "improving"),
        "patience": _Field(int, 15, "epochs without improvement before "
                           "stopping", check=_positive),
        "min_delta": _Field(float, 0.0, "smallest change that counts as an "
                            "improvement", check=_non_negative),
    },
}


def _did_you_mean(value, options):
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(o) for o in options], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _validate_section(data, schema, where, source):
    if not isinstance(data, dict):
        raise RecipeError(
            f"{source}: {repr(where) if where else 'the recipe'} must be a "
            "JSON object; got "
            f"{json.dumps(data)}."
        )
    unknown = [k for k in data if k not in schema]
    if unknown:
        key = unknown[0]
        path = f"{where}.{key}" if where else key
        raise RecipeError(
            f"{source}: unknown recipe key '{path}'."
            f"{_did_you_mean(key, list(schema))} Valid keys"
            f"{' of ' + where if where else ''}: {sorted(schema)}."
        )
    out = {}
    for key, spec in schema.items():
        path = f"{where}.{key}" if where else key
        if isinstance(spec, dict):
            out[key] = _validate_section(data.get(key, {}), spec, path, source)
            continue
        if key not in data:
            if spec.required:
                raise RecipeError(
                    f"{source}: the recipe has no '{path}' ({spec.help}); "
                    "add it."
                )
            out[key] = copy.deepcopy(spec.default)
        else:
            try:
                out[key] = spec.validate(data[key], f"'{path}'")
            except RecipeError as e:
                raise RecipeError(f"{source}: {e}") from None
    return out


class Recipe:
    """A validated training recipe (see the module docstring for the format).

    Args:
        data: dict following the recipe format; missing keys take their
            defaults.
        source: where it came from (a file path or preset name), used in
            error messages.

    Raises:
        RecipeError: unknown key, wrong type, value out of range, or an
            inconsistent combination; the message names the key.

    Example:

    ```python
    from keras_pu.training import Recipe

    recipe = Recipe.from_preset("pu_unet_kvasir")
    short = recipe.replace({"training.epochs": 2})
    short.to_dict()["training"]["epochs"]  # 2
    ```
    """

    def __init__(self, data, source="recipe"):
        self.source = str(source)
        self._data = _validate_section(data, SCHEMA, "", self.source)
        self._check_consistency()

    # -- construction ------------------------------------------------------

    @classmethod
    def from_dict(cls, data, source="recipe"):
        return cls(data, source)

    @classmethod
    def from_file(cls, path):
        path = pathlib.Path(path)
        if not path.is_file():
            raise RecipeError(
                f"recipe file '{path}' does not exist. Give a JSON file or "
                f"one of the preset recipes: {available_recipes()}."
            )
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RecipeError(
                f"recipe file '{path}' is not valid JSON: {e}"
            ) from None
        return cls(data, source=str(path))

    @classmethod
    def from_preset(cls, name):
        path = RECIPES_DIR / f"{name}.json"
        if not path.is_file():
            raise RecipeError(
                f"no recipe named '{name}'.{_did_you_mean(name, available_recipes())}"
                f" Recipes: {available_recipes()}; or give a JSON file path."
            )
        return cls.from_file(path)

    @classmethod
    def load(cls, name_or_path):
        """A preset recipe name or a JSON file path."""
        text = str(name_or_path)
        if text.endswith(".json") or "/" in text or pathlib.Path(text).is_file():
            return cls.from_file(text)
        return cls.from_preset(text)

    # -- access ------------------------------------------------------------

    def to_dict(self):
        """The complete recipe (defaults filled in), a new dict."""
        return copy.deepcopy(self._data)

    def __getitem__(self, section):
        return copy.deepcopy(self._data[section])

    def get(self, dotted):
        """The value of a dotted key, e.g. `recipe.get("training.epochs")`."""
        node = self._data
        for part in dotted.split("."):
            node = node[part]
        return copy.deepcopy(node)

    def replace(self, changes):
        """A validated copy with `{"section.key": value}` changes applied."""
        data = self.to_dict()
        for dotted, value in changes.items():
            parts = dotted.split(".")
            node, spec = data, SCHEMA
            for part in parts[:-1]:
                if part not in spec or not isinstance(spec[part], dict):
                    raise RecipeError(f"unknown recipe key '{dotted}'.")
                node, spec = node[part], spec[part]
            if parts[-1] not in spec:
                raise RecipeError(
                    f"unknown recipe key '{dotted}'."
                    f"{_did_you_mean(parts[-1], list(spec))}"
                )
            node[parts[-1]] = value
        return Recipe(data, source=self.source)

    def save(self, path):
        from keras_pu import atomic_files

        atomic_files.write_text(path, json.dumps(self._data, indent=2) + "\n")

    def __eq__(self, other):
        return isinstance(other, Recipe) and self._data == other._data

    def __repr__(self):
        return f"Recipe({self._data.get('name')!r}, source={self.source!r})"

    def differences(self, other, ignore=("name", "description")):
        """Dotted keys whose values differ from `other`'s (sorted)."""
        return sorted(
            k for k in _diff(self._data, other._data, "")
            if k.split(".")[0] not in ignore
        )

    # -- checks ------------------------------------------------------------

    def _check_consistency(self):
        src = self.source
        config = self._data["model"]["config"]
        if "input_shape" in config:
            raise RecipeError(
                f"{src}: 'model.config.input_shape' is set from "
                "'data.image_size' (and 3 channels); remove it from "
                "model.config."
            )
        for key in ("name", "dtype"):
            if key in config:
                raise RecipeError(
                    f"{src}: 'model.config.{key}' is set by the trainer "
                    f"({'data and training sections' if key == 'dtype' else 'recipe name'}); "
                    "remove it."
                )
        multiple = _input_size_multiple(self._data["model"], src)
        size = self._data["data"]["image_size"]
        if any(s % multiple for s in size):
            raise RecipeError(
                f"{src}: 'data.image_size' {size} must be multiples of "
                f"{multiple}, the input size multiple of model "
                f"{self._data['model']['class']} (2**depth for the U-Nets)."
            )
        data = self._data["data"]
        if data["split"] in (None, "auto") and (
            data["val_fraction"] + data["test_fraction"] >= 1
            or data["val_fraction"] == 0
        ):
            raise RecipeError(
                f"{src}: for a random split ('data.split' null or 'auto'), "
                "'data.val_fraction' "
                "must be > 0 and val_fraction + test_fraction < 1; got "
                f"{data['val_fraction']} and {data['test_fraction']}."
            )
        schedule = self._data["schedule"]
        if schedule["min_lr_ratio"] > 1:
            raise RecipeError(
                f"{src}: 'schedule.min_lr_ratio' must be <= 1; got "
                f"{schedule['min_lr_ratio']}."
            )
        check_augmentation(self._data["augmentation"], src)
        loss = self._data["loss"]
        if loss["bce_weight"] == 0 and loss["dice_weight"] == 0:
            raise RecipeError(
                f"{src}: 'loss.bce_weight' and 'loss.dice_weight' are both "
                "0; give one a positive weight."
            )


def _input_size_multiple(model, source):
    """Asks the model class (through the model registry) which multiple
    its input size must be, so that the recipe never re-derives a model's
    defaults."""
    from keras_pu.models.registry import get_model_spec

    spec = get_model_spec(model["class"])
    try:
        return spec.input_size_multiple(model["config"])
    except (TypeError, ValueError):
        # An inconsistent model.config: building the model reports it, with
        # the recipe named (trainer.build_model); no size is checkable here.
        return 1


def _diff(a, b, prefix):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            path = f"{prefix}.{key}" if prefix else key
            if key not in a or key not in b:
                yield path
            else:
                yield from _diff(a[key], b[key], path)
    elif a != b:
        yield prefix


def available_recipes():
    """Names of the recipes shipped with keras-pu (sorted)."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.json"))


def describe_schema():
    """Every recipe key with its default and meaning, as text."""
    lines = []

    def walk(schema, prefix):
        for key, spec in schema.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(spec, dict):
                walk(spec, path)
            else:
                default = "(required)" if spec.required else json.dumps(spec.default)
                choices = f" one of {list(spec.choices)}" if spec.choices else ""
                lines.append(f"{path} = {default}: {spec.help}{choices}")

    walk(SCHEMA, "")
    return "\n".join(lines)
