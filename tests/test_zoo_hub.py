"""Loading presets through the real huggingface_hub client from a
Hub-compatible server on loopback (olah; see tests/zoo_fixtures.py):
by name, by revision, by hf:// handle, from the local zoo folder, and every
way it must fail: truncated or altered files, damaged cache, another
architecture, code in the config, missing repositories."""

import os
import pathlib
import re
import shutil

import numpy as np
import pytest

import keras_pu
from keras_pu import zoo
from keras_pu.zoo import registry as registry_lib
from tests.zoo_fixtures import fixed_input


@pytest.fixture
def hub_env(zoo_hub, tmp_path, monkeypatch):
    """Registry pinned to tiny_pu v1 on the test server; no local zoo
    folders; a fresh Hugging Face cache for this test."""
    monkeypatch.setenv(registry_lib.REGISTRY_ENV, str(zoo_hub.registry(tmp_path / "registry.json")))
    empty = tmp_path / "no_zoo"
    empty.mkdir()
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(empty))
    return tmp_path / "hf_cache"


def logits(model):
    return model.predict(fixed_input(), verbose=0)


def close(a, b):
    return np.max(np.abs(a - b)) <= 1e-5


def test_load_by_name_fetches_the_pinned_commit_then_reuses_the_cache(
    zoo_hub, hub_env, capsys
):
    # main has moved on to v2; the registry pins v1.
    model = zoo.load("tiny_pu", cache_dir=hub_env)
    assert close(logits(model), zoo_hub.logits["v1"])
    assert not close(zoo_hub.logits["v1"], zoo_hub.logits["v2"])
    err = capsys.readouterr().err
    assert "downloading 3 files" in err
    assert zoo_hub.revisions["v1"][:12] in err
    assert "sha256 verified against the registry" in err

    again = zoo.load("tiny_pu", cache_dir=hub_env)
    assert close(logits(again), zoo_hub.logits["v1"])
    assert "using cached files" in capsys.readouterr().err


def test_load_by_revision_and_by_hf_handle(zoo_hub, hub_env, capsys):
    rev = zoo_hub.revisions
    by_revision = zoo.load("tiny_pu", revision=rev["v2"], cache_dir=hub_env)
    assert close(logits(by_revision), zoo_hub.logits["v2"])
    assert "checked against the Hub's checksums" in capsys.readouterr().err

    main = zoo.load("hf://keras-pu/tiny_pu", cache_dir=hub_env)
    assert close(logits(main), zoo_hub.logits["v2"])
    pinned = zoo.load(f"hf://keras-pu/tiny_pu@{rev['v1']}", cache_dir=hub_env)
    assert close(logits(pinned), zoo_hub.logits["v1"])
    # The handle names the registry's pinned commit: the registry's sha256s
    # apply.
    assert "sha256 verified against the registry" in capsys.readouterr().err
    # A branch name resolves to its commit.
    branch = zoo.load("hf://keras-pu/tiny_pu@resunet", cache_dir=hub_env)
    assert type(branch).__name__ == "ResUNet"


def test_source_checkout_loads_zoo_folder_without_network(zoo_presets, tmp_path, monkeypatch, capsys):
    # Unpublished preset, a server that does not exist: the zoo folder is
    # read directly (and verified).
    registry = zoo_presets.registry_copy(tmp_path / "r.json", endpoint="http://127.0.0.1:9")
    monkeypatch.setenv(registry_lib.REGISTRY_ENV, str(registry))
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(zoo_presets.zoo_dir))
    model = zoo.load("tiny_pu", cache_dir=tmp_path / "hf")
    assert close(logits(model), zoo_presets.logits["tiny_pu"])
    assert "sha256 verified against the registry" in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()


def test_damaged_zoo_folder_is_refused(zoo_presets, tmp_path, monkeypatch):
    zoo_dir = tmp_path / "zoo"
    shutil.copytree(zoo_presets.zoo_dir / "tiny_pu", zoo_dir / "tiny_pu")
    weights = zoo_dir / "tiny_pu" / "model.weights.h5"
    weights.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n")
    monkeypatch.setenv(registry_lib.REGISTRY_ENV, str(zoo_presets.registry_copy(tmp_path / "r.json")))
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(zoo_dir))
    with pytest.raises(zoo.IntegrityError, match="Git LFS pointer.*git lfs pull"):
        zoo.load("tiny_pu")


@pytest.mark.parametrize(
    "label, expected",
    [("truncated", r"truncated: \d+ bytes instead of \d+"),
     ("altered", "has been altered: sha256")],
)
def test_server_file_that_does_not_match_the_registry_is_refused(
    zoo_hub, hub_env, tmp_path, monkeypatch, label, expected, capsys
):
    # The registry pins a commit whose weights differ from the files the
    # registry's sha256s describe.
    registry = zoo_hub.registry(tmp_path / "bad.json", pin=label)
    monkeypatch.setenv(registry_lib.REGISTRY_ENV, str(registry))
    with pytest.raises(zoo.IntegrityError) as info:
        zoo.load("tiny_pu", cache_dir=hub_env)
    message = str(info.value)
    assert "model.weights.h5 of preset 'tiny_pu'" in message
    assert re.search(expected, message)
    # It was downloaded a second time before giving up, and the message says
    # what that means.
    assert "downloading it again" in capsys.readouterr().err
    assert "does not serve the file keras-pu pinned" in message


def test_damaged_cache_is_repaired_by_downloading_again(zoo_hub, hub_env, capsys):
    zoo.load("tiny_pu", cache_dir=hub_env, progress=False)
    blob = pathlib.Path(
        os.path.realpath(
            next(hub_env.glob("models--keras-pu--tiny_pu/snapshots/*/model.weights.h5"))
        )
    )
    blob.write_bytes(blob.read_bytes()[:100])
    model = zoo.load("tiny_pu", cache_dir=hub_env)
    assert close(logits(model), zoo_hub.logits["v1"])
    err = capsys.readouterr().err
    assert "model.weights.h5 of preset 'tiny_pu' does not match (truncated" in err
    assert "downloading it again" in err


def test_config_of_another_architecture_is_refused(zoo_hub, hub_env):
    with pytest.raises(zoo.ArchitectureMismatchError) as info:
        zoo.load("tiny_pu", revision="resunet", cache_dir=hub_env)
    message = str(info.value)
    assert "config.json of preset 'tiny_pu' at revision resunet" in message
    assert "class ResUNet instead of PUUNet" in message


def test_weights_of_another_architecture_are_refused(zoo_hub, hub_env):
    with pytest.raises(zoo.ArchitectureMismatchError, match="model.weights.h5 of 'hf://keras-pu/tiny_pu@mixed' does not fit"):
        zoo.load("hf://keras-pu/tiny_pu@mixed", cache_dir=hub_env)


def test_config_with_code_is_refused(zoo_hub, hub_env):
    with pytest.raises(zoo.UnsafeModelError, match="Lambda object"):
        zoo.load("hf://keras-pu/tiny_pu@lambda", cache_dir=hub_env)


def test_missing_repository_names_repo_file_and_advice(zoo_hub, hub_env):
    with pytest.raises(zoo.DownloadError) as info:
        zoo.load("hf://keras-pu/no_such_model", cache_dir=hub_env)
    message = str(info.value)
    assert "'hf://keras-pu/no_such_model'" in message
    assert "config.json" in message and zoo_hub.url in message
    assert "does not exist" in message or "Check" in message


def test_cli_download_fills_the_cache_and_copies(zoo_hub, hub_env, tmp_path, capsys):
    from keras_pu.cli.main import main

    out = tmp_path / "copy"
    rc = main(["zoo", "download", "tiny_pu", "--cache-dir", str(hub_env),
               "--local-dir", str(out), "--quiet"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(registry_lib.PRESET_FILES)
    # The copy is a Keras folder keras-pu loads as such.
    model = zoo.load(str(out), progress=False)
    assert close(logits(model), zoo_hub.logits["v1"])


def test_publish_uploads_pins_and_verifies(zoo_hub, zoo_presets, tmp_path, monkeypatch):
    from tools.zoo.publishing import publish
    from tests.zoo_fixtures import GitMirrorApi

    registry = zoo_presets.registry_copy(tmp_path / "registry.json", endpoint=zoo_hub.url)
    readme = tmp_path / "README.md"
    from tools.zoo import cards

    readme.write_text(f"# x\n\n{cards.TABLE_START}\nold\n{cards.TABLE_END}\n")
    api = GitMirrorApi(zoo_hub.mirror, zoo_hub.url)
    revision = publish(
        "tiny_res", api=api, registry_path=registry, zoo_dir=zoo_presets.zoo_dir,
        readme_path=readme, cache_dir=tmp_path / "hf", log=lambda *_: None,
    )
    assert api.calls == [("create_repo", "keras-pu/tiny_res"), ("upload_folder", "keras-pu/tiny_res")]
    pinned = registry_lib.load_registry(registry).get("tiny_res")
    assert pinned.revision == revision and pinned.is_published
    assert "published ([keras-pu/tiny_res]" in readme.read_text()

    monkeypatch.setenv(registry_lib.REGISTRY_ENV, str(registry))
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(tmp_path / "none"))
    model = zoo.load("tiny_res", cache_dir=tmp_path / "hf2", progress=False)
    assert close(logits(model), zoo_presets.logits["tiny_res"])


def test_publish_refuses_a_folder_that_differs_from_the_registry(zoo_presets, tmp_path):
    from tools.zoo.publishing import publish

    zoo_dir = tmp_path / "zoo"
    shutil.copytree(zoo_presets.zoo_dir / "tiny_res", zoo_dir / "tiny_res")
    (zoo_dir / "tiny_res" / "metrics.json").write_text("{}")
    registry = zoo_presets.registry_copy(tmp_path / "registry.json")

    class NoUpload:
        def __getattr__(self, name):
            raise AssertionError("nothing may be uploaded")

    with pytest.raises(zoo.IntegrityError, match="metrics.json of preset 'tiny_res'"):
        publish("tiny_res", api=NoUpload(), registry_path=registry, zoo_dir=zoo_dir, log=lambda *_: None)
    assert registry_lib.load_registry(registry).get("tiny_res").revision is None


def test_keras_pu_import_registers_classes_for_keras_load_model(zoo_presets):
    import keras

    model = keras.saving.load_model(zoo_presets.zoo_dir / "tiny_pu")
    assert isinstance(model, keras_pu.models.PUUNet)
    assert close(logits(model), zoo_presets.logits["tiny_pu"])
