"""Fixtures and helpers for the zoo tests.

- `zoo_presets` (session): tiny presets built in a temporary folder with the
  real maintainer tool (`packaging.add_preset`) from tiny trained-like
  models, plus a registry file describing them. Nothing is written to the
  repository's zoo/ or registry.
- `zoo_hub` (session): those presets committed to git repositories and
  served by olah, a Hub-compatible server, on 127.0.0.1 (see
  ../shared/docs/hub-testing.md), so that downloads go through the real
  huggingface_hub client over HTTP. Started once per session, bounded in
  time, always stopped.

Tests point keras-pu at them with the documented overrides
KERAS_PU_REGISTRY (registry file) and KERAS_PU_ZOO_DIR (local preset
folders), and pass `cache_dir` so each test has its own Hugging Face cache.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import keras
import numpy as np
import pytest

import keras_pu
from keras_pu.zoo import registry as registry_lib
from tools.zoo.packaging import add_preset
from tests.cross_backend_worker import randomize

TINY = dict(input_shape=(32, 32, 3), widths=4, depth=2)
ORG = "keras-pu"
GIT = shutil.which("git")
OLAH = shutil.which("olah-cli")
TIMEOUT = shutil.which("timeout")
# Olah is killed after this long even if the session's teardown never runs.
SERVER_LIFETIME_S = 3600


def fixed_input():
    # Batch 1 at 32x32, like the check in packaging.add_preset: JAX compiles
    # the forward pass once for both.
    return np.random.default_rng(0).random((1, 32, 32, 3), dtype="float32")


def tiny_model(class_name="PUUNet", seed=0, **overrides):
    """A TINY U-Net whose weights (batch-norm statistics included) are
    perturbed so that logits are far from the initial ones."""
    cls = getattr(keras_pu.models, class_name)
    model = cls(**dict(TINY, **overrides))
    randomize(model, seed)
    return model


def architecture_of(model):
    config = model.get_config()
    for key in registry_lib.NON_ARCHITECTURE_KEYS:
        config.pop(key, None)
    return {
        "class_name": type(model).__name__,
        "config": json.loads(json.dumps(config)),
    }


def registry_data(presets, endpoint=None):
    """Built-in registry content with `presets` (name -> entry) added."""
    data = json.loads(registry_lib.BUILTIN_REGISTRY.read_text())
    data["hub_endpoint"] = endpoint
    data["presets"].update(presets)
    return data


def preset_entry(model, repo_id, dataset="kvasir_seg", files=None, revision=None, metrics=None):
    return {
        "description": f"Test preset ({type(model).__name__}, TINY).",
        "dataset": dataset,
        "architecture": architecture_of(model),
        "parameters": int(model.count_params()),
        "input_size": [32, 32],
        "preprocessing": {"color_mode": "rgb", "resize": "bilinear", "pixel_range": [0.0, 1.0]},
        "hub": {"repo_id": repo_id, "revision": revision},
        "files": files or {},
        "metrics": metrics,
    }


def write_registry(path, data):
    path = pathlib.Path(path)
    path.write_text(json.dumps(data, indent=2))
    return path


@pytest.fixture
def untrained_registry(tmp_path, monkeypatch):
    """The built-in presets as they were before any training (no files,
    metrics or pins), whatever the registry holds today; no zoo folder."""
    data = json.loads(registry_lib.BUILTIN_REGISTRY.read_text())
    for entry in data["presets"].values():
        entry.update(files={}, metrics=None)
        entry.pop("postprocess", None)  # a gate is chosen for trained weights
        entry["hub"]["revision"] = None
    path = write_registry(tmp_path / "untrained_registry.json", data)
    monkeypatch.setenv(registry_lib.REGISTRY_ENV, str(path))
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(tmp_path / "no_zoo"))
    return path


@dataclasses.dataclass
class ZooPresets:
    root: pathlib.Path
    zoo_dir: pathlib.Path
    registry: dict  # registry content with tiny_pu / tiny_res (unpublished)
    logits: dict  # preset name -> logits of fixed_input()
    models: dict  # preset name -> the model it was made from

    def registry_copy(self, path, endpoint=None, **presets):
        """Writes the registry, optionally with a hub endpoint and changed
        or added preset entries, to `path`; returns the path."""
        data = json.loads(json.dumps(self.registry))
        data["hub_endpoint"] = endpoint
        data["presets"].update(presets)
        return write_registry(path, data)

    def entry(self, name):
        return json.loads(json.dumps(self.registry["presets"][name]))


def build_presets(root):
    """Runs the maintainer tool on two tiny trained-like models."""
    zoo_dir = root / "zoo"
    inputs = root / "inputs"
    inputs.mkdir(parents=True)
    models = {
        "tiny_pu": tiny_model("PUUNet", seed=0),
        "tiny_res": tiny_model("ResUNet", seed=1),
    }
    presets = {
        name: preset_entry(model, f"{ORG}/{name}")
        for name, model in models.items()
    }
    registry_path = write_registry(root / "registry.json", registry_data(presets))
    logits = {}
    for name, model in models.items():
        model.save(inputs / f"{name}.keras")
        (inputs / f"{name}_metrics.json").write_text(
            json.dumps(
                # Paths of the machine, as `keras-pu evaluate` records
                # them: add_preset must not publish them.
                {"model": str(inputs / f"{name}.keras"),
                 "data_path": str(root / "data"),
                 "split": "test", "num_images": 8,
                 "metrics": {"dice": 0.83, "iou": 0.72, "hd95": 4.5}}
            )
        )
        (inputs / f"{name}_recipe.json").write_text(
            json.dumps({"model": name, "epochs": 1, "seed": 7,
                        "data": {"path": str(root / "data")}})
        )
        add_preset(
            name,
            inputs / f"{name}.keras",
            inputs / f"{name}_metrics.json",
            inputs / f"{name}_recipe.json",
            registry_path=registry_path,
            zoo_dir=zoo_dir,
            log=lambda *_: None,
        )
        logits[name] = model.predict(fixed_input(), verbose=0)
    return ZooPresets(
        root=root,
        zoo_dir=zoo_dir,
        registry=json.loads(registry_path.read_text()),
        logits=logits,
        models=models,
    )


@pytest.fixture(scope="session")
def zoo_presets(tmp_path_factory):
    return build_presets(tmp_path_factory.mktemp("zoo_presets"))


# -- a Hub on loopback --------------------------------------------------------


def git(repo, *args):
    result = subprocess.run(
        [GIT, "-c", "user.name=keras-pu tests", "-c", "user.email=tests@keras-pu",
         "-c", "commit.gpgsign=false", *args],
        cwd=repo, capture_output=True, text=True, timeout=60,
    )
    if result.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


class GitMirror:
    """Hub repositories as git work trees under olah's mirrors path."""

    def __init__(self, mirrors):
        self.mirrors = pathlib.Path(mirrors)

    def repo(self, repo_id):
        path = self.mirrors / "models" / repo_id
        if not (path / ".git").is_dir():
            path.mkdir(parents=True, exist_ok=True)
            git(path, "init", "-q", "-b", "main")
        return path

    def commit(self, repo_id, files, message, branch="main"):
        """Replaces the tree of `branch` with `files` (name -> path or
        bytes) and commits. Returns the commit sha."""
        path = self.repo(repo_id)
        has_commits = bool(git(path, "branch", "--list"))
        if has_commits:
            if git(path, "branch", "--list", branch):
                git(path, "checkout", "-q", branch)
            else:
                git(path, "checkout", "-q", "-b", branch)  # branches off main
            for old in path.iterdir():
                if old.name != ".git":
                    old.unlink()
        for name, content in files.items():
            target = path / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                shutil.copyfile(content, target)
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", message)
        sha = git(path, "rev-parse", "HEAD")
        git(path, "checkout", "-q", "main")
        return sha


class GitMirrorApi:
    """The two `huggingface_hub.HfApi` calls `publishing.publish` makes,
    backed by the olah mirror's git repositories (olah serves, it does not
    accept uploads). The read-back then goes through the real client."""

    def __init__(self, mirror, endpoint):
        self.mirror = mirror
        self.endpoint = endpoint
        self.calls = []

    def create_repo(self, repo_id, repo_type="model", exist_ok=False, private=False):
        self.calls.append(("create_repo", repo_id))
        self.mirror.repo(repo_id)

    def upload_folder(self, repo_id, folder_path, repo_type="model", commit_message=""):
        self.calls.append(("upload_folder", repo_id))
        files = {p.name: p for p in pathlib.Path(folder_path).iterdir()}
        sha = self.mirror.commit(repo_id, files, commit_message)
        return type("CommitInfo", (), {"oid": sha})()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OlahServer:
    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.mirror = GitMirror(self.root / "mirrors")
        self.process = None
        self.url = None

    def start(self, probe_repo, deadline_s=60):
        (self.root / "cache").mkdir(exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        port = _free_port()
        config = self.root / "olah.toml"
        config.write_text(
            "[basic]\n"
            'host = "127.0.0.1"\n'
            f'repos-path = "{self.root / "cache"}"\n'
            f'mirrors-path = ["{self.root / "mirrors"}"]\n'
            'hf-scheme = "http"\n'
            'hf-netloc = "127.0.0.1:9"\n'
            'hf-lfs-netloc = "127.0.0.1:9"\n'
            "[accessibility]\n"
            "offline = true\n"
        )
        command = [OLAH, "-c", str(config), "--port", str(port),
                   "--log-path", str(self.root / "logs")]
        if TIMEOUT:
            command = [TIMEOUT, str(SERVER_LIFETIME_S)] + command
        self.log = open(self.root / "olah.out", "w")
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        self.url = f"http://127.0.0.1:{port}"
        probe = f"{self.url}/api/models/{probe_repo}/revision/main"
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(probe, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"olah did not become ready on {self.url}: "
            f"{(self.root / 'olah.out').read_text()[-2000:]}"
        )

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=10)
        self.log.close()
        self.process = None


@dataclasses.dataclass
class ZooHub:
    url: str
    presets: ZooPresets
    mirror: GitMirror
    revisions: dict  # label -> commit sha
    logits: dict  # label -> logits of fixed_input() for that revision

    def registry(self, path, pin="v1", **presets):
        """A registry file whose tiny_pu is published at revision `pin` (a
        label of `revisions`), served by this server."""
        entry = self.presets.entry("tiny_pu")
        entry["hub"]["revision"] = self.revisions[pin] if pin else None
        return self.presets.registry_copy(path, endpoint=self.url, tiny_pu=entry, **presets)


def _folder_files(folder):
    return {p.name: p for p in pathlib.Path(folder).iterdir()}


def build_hub(root, presets):
    """Commits the tiny presets and some deliberately broken revisions."""
    server = OlahServer(root)
    mirror = server.mirror
    repo = f"{ORG}/tiny_pu"
    good = _folder_files(presets.zoo_dir / "tiny_pu")
    revisions = {"v1": mirror.commit(repo, good, "v1: the pinned release")}

    weights = (presets.zoo_dir / "tiny_pu" / "model.weights.h5").read_bytes()
    revisions["truncated"] = mirror.commit(
        repo, dict(good, **{"model.weights.h5": weights[: len(weights) // 2]}),
        "weights truncated", branch="truncated",
    )
    flipped = bytearray(weights)
    flipped[len(flipped) // 2] ^= 0xFF
    revisions["altered"] = mirror.commit(
        repo, dict(good, **{"model.weights.h5": bytes(flipped)}),
        "one byte altered", branch="altered",
    )

    staging = root / "staging"
    # Another architecture, complete and consistent (a ResUNet).
    res = presets.zoo_dir / "tiny_res"
    revisions["resunet"] = mirror.commit(
        repo, _folder_files(res), "a ResUNet", branch="resunet"
    )
    # The preset's config with the weights of the ResUNet.
    revisions["mixed"] = mirror.commit(
        repo,
        dict(good, **{"model.weights.h5": res / "model.weights.h5"}),
        "config and weights of different models", branch="mixed",
    )
    staging.mkdir()
    # A model with a Lambda layer (code in the config).
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    lam = keras.Model(inputs, outputs)
    keras.saving.save_model(lam, staging / "lambda", zipped=False)
    revisions["lambda"] = mirror.commit(
        repo,
        {f: staging / "lambda" / f for f in registry_lib.MODEL_FILES},
        "a Lambda model", branch="lambda",
    )
    # main moves on: new weights for the same architecture.
    v2 = tiny_model("PUUNet", seed=5)
    keras.saving.save_model(v2, staging / "v2", zipped=False)
    revisions["v2"] = mirror.commit(
        repo,
        dict(good, **{f: staging / "v2" / f for f in registry_lib.MODEL_FILES}),
        "v2: retrained",
    )
    logits = {
        "v1": presets.logits["tiny_pu"],
        "v2": v2.predict(fixed_input(), verbose=0),
    }
    server.start(probe_repo=repo)
    return server, ZooHub(
        url=server.url, presets=presets, mirror=mirror,
        revisions=revisions, logits=logits,
    )


@pytest.fixture(scope="session")
def zoo_hub(tmp_path_factory, zoo_presets):
    if OLAH is None or GIT is None:
        pytest.skip(
            "olah-cli and git are needed for the Hub tests "
            "(pip install -e '.[test]' installs olah)"
        )
    server, hub = build_hub(tmp_path_factory.mktemp("zoo_hub"), zoo_presets)
    try:
        yield hub
    finally:
        server.stop()
