"""Where a preset's files are found on this machine, without the Hub.

`keras_pu.zoo.load("<preset>")` looks for a folder `<preset>/` holding the
preset's files in these places, in this order, and takes the first that has
one:

1. `$KERAS_PU_ZOO_DIR`, if the variable is set. It then replaces 2 and 3:
   an explicit choice wins, and pointing it at an empty folder forces the
   Hub (the tests do this).
2. `zoo/` of the source checkout this package is imported from (the files
   a maintainer just built; they match that checkout's registry).
3. The companion distribution `keras-pu-presets` (import name
   `keras_pu_presets`, installed by `pip install "keras-pu[presets]"` or
   from its wheel): every preset's files, for air-gapped machines.
4. Otherwise the Hugging Face Hub at the commit the registry pins (from the
   cache when it is there), once the preset is published.

Every local copy is held to the sha256 and size the registry records, the
same check as for a Hub download, so the order never changes which bytes
are loaded: it only decides where they come from, local (no network, no
20 s of retries when offline) before remote.
"""

import dataclasses
import importlib.metadata
import importlib.util
import os
import pathlib

from keras_pu.zoo import registry as registry_lib

COMPANION_DISTRIBUTION = "keras-pu-presets"
COMPANION_PACKAGE = "keras_pu_presets"
COMPANION_INSTALL = 'pip install "keras-pu[presets]"'

KIND_ENV = "env"
KIND_CHECKOUT = "checkout"
KIND_COMPANION = "companion"


@dataclasses.dataclass(frozen=True)
class LocalSource:
    """A folder of `<preset>/` folders.

    kind: KIND_ENV, KIND_CHECKOUT or KIND_COMPANION.
    root: the folder.
    label: how messages name it.
    """

    kind: str
    root: pathlib.Path
    label: str


def companion_dir():
    """The installed `keras_pu_presets` package folder, or None. The package
    is located, not imported: it holds data only."""
    try:
        spec = importlib.util.find_spec(COMPANION_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def companion_version():
    """The installed keras-pu-presets version, or None."""
    try:
        return importlib.metadata.version(COMPANION_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def local_sources():
    """The local sources in search order (see the module docstring)."""
    override = os.environ.get(registry_lib.ZOO_DIR_ENV)
    if override:
        return [LocalSource(
            KIND_ENV, pathlib.Path(override),
            f"${registry_lib.ZOO_DIR_ENV}",
        )]
    sources = []
    checkout = registry_lib.local_zoo_dir()
    if checkout is not None:
        sources.append(LocalSource(KIND_CHECKOUT, checkout, "the checkout's zoo/"))
    companion = companion_dir()
    if companion is not None:
        version = companion_version()
        sources.append(LocalSource(
            KIND_COMPANION, companion,
            f"{COMPANION_DISTRIBUTION} {version}" if version else COMPANION_DISTRIBUTION,
        ))
    return sources


def find_preset_folder(name):
    """`(LocalSource, folder)` of the first local source that has a folder
    for preset `name`, or None."""
    for source in local_sources():
        folder = source.root / name
        if folder.is_dir():
            return source, folder
    return None


def searched_text(name):
    """Where `find_preset_folder(name)` looked, for messages."""
    sources = local_sources()
    if not sources:
        return (
            f"no local copy: ${registry_lib.ZOO_DIR_ENV} is not set, this is "
            f"not a source checkout, and {COMPANION_DISTRIBUTION} is not "
            "installed"
        )
    return f"no {name}/ folder in " + ", ".join(
        f"{s.label} ({s.root})" for s in sources
    )


def ways_to_get_weights(preset):
    """Every way to obtain `preset`'s weights, as one sentence for error
    messages (the same list wherever a fix is named)."""
    hub = (
        f"the Hugging Face Hub ({preset.repo_id}; with network access "
        f"`keras-pu zoo download {preset.name}` fills the cache for offline "
        "use)"
        if preset.is_published
        else f"the Hugging Face Hub, once {preset.repo_id} is published "
        "(it is not yet)"
    )
    return (
        f"Ways to get the weights of '{preset.name}': "
        f"{COMPANION_INSTALL} (the {COMPANION_DISTRIBUTION} package, also "
        "installable offline from its wheel; see docs/install.md); "
        f"{registry_lib.ZOO_DIR_ENV}=<folder holding {preset.name}/> (e.g. "
        "zoo/ of a keras-pu source checkout); "
        f"{hub}; or keras_pu.zoo.load('{preset.name}', weights=False) for "
        "the architecture with random initial weights."
    )


def mismatch_fix(source, preset):
    """What to do when a local copy does not match the registry."""
    if source.kind == KIND_COMPANION:
        from keras_pu.version import __version__

        return (
            f"The installed {COMPANION_DISTRIBUTION} "
            f"({companion_version() or 'unknown version'}) is not the one "
            f"built for keras-pu {__version__}: install the matching one "
            f"(`pip install --force-reinstall \"{COMPANION_DISTRIBUTION}=="
            f"{__version__}\"`, or its wheel), or set "
            f"{registry_lib.ZOO_DIR_ENV} to a folder with the right files."
        )
    if source.kind == KIND_ENV:
        return (
            f"{source.root / preset.name} is not this keras-pu release's "
            f"copy of '{preset.name}': replace it (e.g. with `keras-pu zoo "
            f"download {preset.name} --local-dir "
            f"{source.root / preset.name}` or the files of "
            f"{COMPANION_DISTRIBUTION}), or unset {registry_lib.ZOO_DIR_ENV}."
        )
    return (
        f"zoo/{preset.name}/ and the registry disagree: rebuild the folder "
        f"with `python zoo/add_preset.py {preset.name} ...` (which updates "
        f"the registry) or restore it with `git checkout zoo/{preset.name}`."
    )
