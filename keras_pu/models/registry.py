"""The model registry: every keras-pu architecture, by name.

An architecture registers itself where it is defined:

```python
@keras.saving.register_keras_serializable(package="keras_pu")
@register_model(display_name="PU-UNet", aliases=("pu_unet",),
                tags=("pu-unet",))
class PUUNet(ResidualUNet):
    ...
```

Everything that needs to know which models exist asks this registry instead
of keeping its own list: the training recipe (`model.class`), `keras-pu
train --model`, the zoo (which saved configs may be rebuilt at another input
size or with another head) and the model cards (display names and tags).

Lookups import every module of `keras_pu.models` first, so a new
architecture is one new module in `keras_pu/models/` (plus its tests): no
other file lists it.
"""

import dataclasses
import difflib
import importlib
import inspect
import pkgutil

KERAS_PACKAGE = "keras_pu"


class UnknownModelError(ValueError):
    """A model name that no registered architecture answers to."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the library knows about one registered architecture.

    Attributes:
        name: the class name; what recipes write as `model.class`.
        cls: the model class.
        display_name: the name shown to people (cards, tables).
        aliases: other spellings accepted on the command line (matched case-
            insensitively, `-` and `_` alike).
        tags: Hugging Face Hub tags of the model cards.
        resizable: `True` when a saved config can be rebuilt with another
            `input_shape` and `num_classes` (the constructor takes both and
            the output head is the layer named `logits`), so the zoo may
            change them on load.
        depthwise: `True` when most of the model's compute is depthwise
            convolutions (an EfficientNet encoder); the automatic precision
            choice then keeps float32 on CPUs (see
            `keras_pu.hardware.choose_precision`).
    """

    name: str
    cls: type
    display_name: str
    aliases: tuple = ()
    tags: tuple = ()
    resizable: bool = True
    depthwise: bool = False

    @property
    def registered_name(self):
        """The name Keras serialises the class under (`keras_pu>Name`)."""
        return f"{KERAS_PACKAGE}>{self.name}"

    @property
    def module(self):
        return self.cls.__module__

    def constructor_defaults(self):
        """{argument: default} of the class's constructor, along its bases.

        A config saved before an argument existed lacks that key and builds
        the model with its default, so comparisons of configs read a missing
        key as this default.
        """
        defaults = {}
        for klass in self.cls.__mro__:
            if "__init__" not in vars(klass):
                continue
            for name, parameter in inspect.signature(klass.__init__).parameters.items():
                if parameter.default is not inspect.Parameter.empty:
                    defaults.setdefault(name, parameter.default)
        return defaults

    def input_size_multiple(self, config):
        """The number every input height and width must be a multiple of,
        for a model built with constructor arguments `config` (1 when the
        class does not say)."""
        method = getattr(self.cls, "input_size_multiple", None)
        return 1 if method is None else method(config)


_MODELS = {}
_discovered = False


def _spelling(text):
    return str(text).replace("-", "_").lower()


def register_model(display_name=None, aliases=(), tags=(), resizable=True,
                   depthwise=False):
    """Class decorator that adds an architecture to the registry.

    Args:
        display_name: name shown to people. Defaults to the class name.
        aliases: other command-line spellings, e.g. `("pu_unet",)`.
        tags: Hugging Face Hub tags of its model cards.
        resizable: see `ModelSpec.resizable`. Defaults to `True`.
        depthwise: see `ModelSpec.depthwise`. Defaults to `False`.

    Returns:
        The decorator; it returns the class unchanged.

    Example:

    ```python
    @register_model(display_name="My U-Net", aliases=("my_unet",))
    class MyUNet(keras_pu.models.SegmentationModel):
        ...
    ```
    """

    def decorator(cls):
        name = cls.__name__
        spec = ModelSpec(
            name=name,
            cls=cls,
            display_name=display_name or name,
            aliases=tuple(aliases),
            tags=tuple(tags),
            resizable=resizable,
            depthwise=depthwise,
        )
        taken = {
            _spelling(s): other.name
            for other in _MODELS.values()
            if other.name != name
            for s in (other.name, *other.aliases)
        }
        for spelling in (name, *spec.aliases):
            if _spelling(spelling) in taken:
                raise ValueError(
                    f"register_model: '{spelling}' of {name} is already a "
                    f"name of {taken[_spelling(spelling)]}; pick another."
                )
        _MODELS[name] = spec
        return cls

    return decorator


def _discover():
    """Imports every module of keras_pu.models, so that every architecture
    has registered itself before a lookup."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("keras_pu.models")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"keras_pu.models.{module.name}")
    _discovered = True


def list_models():
    """The registered class names, in registration order."""
    _discover()
    return list(_MODELS)


def model_specs():
    """Every `ModelSpec`, in registration order."""
    _discover()
    return list(_MODELS.values())


def get_model_spec(name):
    """The `ModelSpec` for a class name or alias.

    Raises:
        UnknownModelError: no such model; close names are suggested.
    """
    _discover()
    if name in _MODELS:
        return _MODELS[name]
    wanted = _spelling(name)
    for spec in _MODELS.values():
        if wanted in {_spelling(s) for s in (spec.name, *spec.aliases)}:
            return spec
    spellings = [s for spec in _MODELS.values() for s in (spec.name, *spec.aliases)]
    close = difflib.get_close_matches(str(name), spellings, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownModelError(
        f"Unknown model {name!r}.{hint} Models: {', '.join(_MODELS)} (also "
        f"accepted: {', '.join(s for s in spellings if s not in _MODELS)})."
    )


def get_model_class(name):
    """The model class registered under a class name or alias."""
    return get_model_spec(name).cls


def spec_for_registered_name(registered_name):
    """The `ModelSpec` whose Keras registered name (`keras_pu>Name`, as in
    a saved config.json) is `registered_name`, or `None`."""
    _discover()
    for spec in _MODELS.values():
        if spec.registered_name == registered_name:
            return spec
    return None
