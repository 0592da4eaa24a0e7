"""Build step of keras-pu-presets: copies each trained preset's folder from
the checkout's zoo/ into the package, after checking every file against the
sha256 and size in keras_pu/zoo/registry.json. Weights are never duplicated
in git; a wheel with a file the registry does not expect cannot be built.

The checkout is the folder two levels up (this file is
packaging/keras-pu-presets/setup.py); KERAS_PU_SOURCE_ROOT overrides it.
Only the standard library is used (keras-pu itself is not imported).
"""

import hashlib
import json
import os
import pathlib
import re
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
PACKAGE = "keras_pu_presets"
# Everything a preset's Hub repository holds (keras_pu.zoo.registry.PRESET_FILES).
PRESET_FILES = ("config.json", "metadata.json", "model.weights.h5",
                "README.md", "metrics.json", "recipe.json")


def source_root():
    root = pathlib.Path(os.environ.get("KERAS_PU_SOURCE_ROOT") or HERE.parents[1])
    if not (root / "keras_pu" / "zoo" / "registry.json").is_file() or not (
        root / "zoo"
    ).is_dir():
        raise SystemExit(
            f"keras-pu-presets: {root} is not a keras-pu source checkout (it "
            "needs keras_pu/zoo/registry.json and zoo/). Build the wheel from "
            "the checkout (`pip wheel --no-deps packaging/keras-pu-presets`), "
            "not from an sdist, or set KERAS_PU_SOURCE_ROOT to the checkout."
        )
    return root


def keras_pu_version(root):
    text = (root / "keras_pu" / "version.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not match:
        raise SystemExit(f"keras-pu-presets: no __version__ in {root}/keras_pu/version.py")
    return match.group(1)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def trained_presets(root):
    """{preset: {filename: record}} of the registry's presets with weights."""
    registry = json.loads((root / "keras_pu" / "zoo" / "registry.json").read_text(encoding="utf-8"))
    return {
        name: entry["files"]
        for name, entry in registry["presets"].items()
        if entry["files"]
    }


def backbones(root):
    """{backbone: {filename: record}} of the registry's zoo backbones (the
    ImageNet encoders that `encoder_weights="imagenet"` loads)."""
    registry = json.loads((root / "keras_pu" / "zoo" / "registry.json").read_text(encoding="utf-8"))
    return {
        name: entry["files"]
        for name, entry in (registry.get("backbones") or {}).items()
        if entry["files"]
    }


def checked_preset_files(root):
    """[(source path, path inside the package)] of every preset and backbone
    file, each verified against the registry."""
    pairs = []
    problems = []
    wanted = [
        (pathlib.Path(name), filename, records[filename])
        for name, records in trained_presets(root).items()
        for filename in PRESET_FILES
    ] + [
        (pathlib.Path("backbones") / name, filename, record)
        for name, records in backbones(root).items()
        for filename, record in records.items()
    ]
    for name, filename, record in wanted:
        path = root / "zoo" / name / filename
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif path.stat().st_size != record["size"] or sha256_of(path) != record["sha256"]:
            problems.append(
                f"{path} does not match the registry (size "
                f"{path.stat().st_size} vs {record['size']}, or sha256); a Git "
                "LFS pointer or a file changed since `zoo/add_preset.py`"
            )
        else:
            pairs.append((path, pathlib.Path(PACKAGE) / name / filename))
    if problems:
        raise SystemExit(
            "keras-pu-presets: cannot build, zoo/ and the registry disagree:\n  "
            + "\n  ".join(problems)
        )
    return pairs


class BuildPyWithPresets(build_py):
    """build_py, plus the preset and backbone folders copied (verified) from
    zoo/."""

    def run(self):
        super().run()
        root = source_root()
        for source, relative in checked_preset_files(root):
            target = pathlib.Path(self.build_lib) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


setup(
    version=keras_pu_version(source_root()),
    cmdclass={"build_py": BuildPyWithPresets},
)
