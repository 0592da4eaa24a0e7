"""Errors raised by the model zoo.

Every zoo error says which preset (or handle) and which file it is about, and
what to do next. They all derive from `ZooError`, so `except
keras_pu.zoo.ZooError` catches any failure to obtain a model, while the
subclasses let callers react to one cause (e.g. retry a download).
`UnknownPresetError` is also a `ValueError`: a wrong name is a bad
argument.
"""


class ZooError(Exception):
    """Base class: a preset or handle could not be turned into a model."""


class UnknownPresetError(ZooError, ValueError):
    """The name is not a preset of the registry (nor a handle or folder)."""


class PresetNotTrainedError(ZooError):
    """The preset exists but has no trained weights in this release."""


class PresetNotPublishedError(ZooError):
    """The preset has weights, but they are neither on the Hub nor in a local
    `zoo/` folder this installation can see."""


class DownloadError(ZooError):
    """A file could not be obtained from the Hub (network, missing file or
    revision, cold cache while offline)."""


class OfflineCacheMissError(DownloadError):
    """`HF_HUB_OFFLINE=1` is set and a needed file is not in the cache."""


class IntegrityError(ZooError):
    """A file does not match its expected checksum or size (truncated,
    altered, or a Git LFS pointer instead of the file).

    `reason` is the short cause (e.g. "truncated: 10 bytes instead of 20")
    without the advice.
    """

    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason or message


class ArchitectureMismatchError(ZooError):
    """`config.json` describes another architecture than the preset's
    registry entry, or the weights do not fit the architecture."""


class UnsafeModelError(ZooError):
    """The model configuration asks for code or objects that loading must
    never run (Lambda layers, foreign modules, wrapped framework modules)."""
