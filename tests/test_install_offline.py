"""Air-gapped installation, end to end: both wheels (keras-pu and its
companion keras-pu-presets) are built from this checkout without network,
installed into a fresh virtual environment with `--no-index`, and a preset
is loaded there offline (HF_HUB_OFFLINE=1, no KERAS_PU_ZOO_DIR, outside the
checkout) with its weights' sha256 checked. Plus the local-source order of
`keras_pu.zoo.load` and the messages that name every way to get weights.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import keras_pu
from keras_pu import zoo
from keras_pu.zoo import registry as registry_lib
from keras_pu.zoo import sources
from tests.conftest import REPO_ROOT
from tests.conftest import once_per_suite

PRESET = "pu_unet_busi"
# What the keras-pu wheel is built from (a copy, so that the build's own
# build/ and *.egg-info folders never land in the checkout); zoo/ is linked.
SOURCE_ENTRIES = ("pyproject.toml", "README.md", "keras_pu_cli.py", "keras_pu",
                  "packaging", "LICENSE")


def test_presets_extra_pins_the_companion_of_this_version():
    text = (REPO_ROOT / "pyproject.toml").read_text()
    pins = re.findall(r'"keras-pu-presets==([^"]+)"', text)
    assert pins == [keras_pu.__version__]


def _copy_sources(target):
    target.mkdir()
    for name in SOURCE_ENTRIES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns(
                "__pycache__", "build", "*.egg-info", "dist"))
        elif source.is_file():
            shutil.copy2(source, target / name)
    (target / "zoo").symlink_to(REPO_ROOT / "zoo", target_is_directory=True)


@once_per_suite("builds wheels and a virtual environment (backend-independent)")
@pytest.mark.skipif(
    not (REPO_ROOT / "zoo" / PRESET / "model.weights.h5").is_file(),
    reason=f"zoo/{PRESET} has no weights in this checkout",
)
def test_wheels_install_and_load_a_preset_air_gapped(tmp_path):
    src = tmp_path / "src"
    _copy_sources(src)
    wheels = tmp_path / "wheels"
    build_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    build_env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    for project in (src, src / "packaging" / "keras-pu-presets"):
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps",
             "--no-build-isolation", "--no-index", "-q", "-w", str(wheels),
             str(project)],
            check=True, env=build_env, cwd=tmp_path, capture_output=True,
            timeout=300,
        )
    built = sorted(p.name for p in wheels.glob("*.whl"))
    assert [n.split("-")[0] for n in built] == ["keras_pu", "keras_pu_presets"], built

    venv = tmp_path / "venv"
    # The backends are reused from this interpreter's site-packages; pip is
    # not needed inside (this interpreter's pip installs into it).
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                    "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install",
         "--no-index", "--no-deps", "--ignore-installed", "-q",
         *map(str, wheels.glob("*.whl"))],
        check=True, env=build_env, capture_output=True, timeout=300,
    )

    # The console script starts (help needs no backend, no Keras).
    help_text = subprocess.run([str(venv / "bin" / "keras-pu"), "--help"],
                               capture_output=True, text=True, timeout=60,
                               env=build_env, check=True).stdout
    assert "usage: keras-pu" in help_text

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", registry_lib.ZOO_DIR_ENV,
                        registry_lib.REGISTRY_ENV,
                        "KERAS_PU_BACKBONE_WEIGHTS_DIR")}
    # TensorFlow builds the model fastest here (JAX dispatches each op of
    # the build eagerly: several times slower).
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "empty_cache"),
               HF_ENDPOINT="http://127.0.0.1:9", KERAS_BACKEND="tensorflow",
               TF_CPP_MIN_LOG_LEVEL="2")
    check = textwrap.dedent(
        f"""
        import json, keras_pu, keras_pu_cli
        from keras_pu.zoo import integrity, registry, sources
        model = keras_pu.zoo.load({PRESET!r}, progress=False)
        folder = keras_pu.zoo.download({PRESET!r}, progress=False)
        demo = keras_pu_cli.main(["demo", "--preset", {PRESET!r}, "--out", "demo", "--quiet"])
        print(json.dumps({{
            "keras_pu": keras_pu.__file__,
            "launcher": keras_pu_cli.__file__,
            "demo": demo,
            "companion": str(sources.companion_dir()),
            "folder": str(folder),
            "sha256": integrity.sha256_of(folder / "model.weights.h5"),
            "parameters": model.count_params(),
            "backbone": keras_pu.zoo.backbones.imagenet_weights_path(),
        }}))
        """
    )
    result = subprocess.run([str(python), "-c", check], capture_output=True,
                            text=True, env=env, cwd=elsewhere, timeout=300)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    preset = registry_lib.load_registry().get(PRESET)
    assert found["keras_pu"].startswith(str(venv)), found  # the wheel, not the checkout
    assert found["launcher"].startswith(str(venv)), found
    assert found["demo"] == 0
    assert (elsewhere / "demo" / f"{PRESET}_ultrasound_tumour_overlay.png").is_file()
    assert found["folder"] == str(pathlib.Path(found["companion"]) / PRESET)
    assert found["folder"].startswith(str(venv))
    assert found["sha256"] == preset.files["model.weights.h5"].sha256
    assert found["parameters"] == preset.parameters
    # The ImageNet encoder (encoder_weights="imagenet") comes with it.
    assert found["backbone"] == str(
        pathlib.Path(found["companion"]) / "backbones"
        / "efficientnet_lite0_imagenet" / "model.weights.h5"
    )


def test_companion_package_is_found_and_checked(monkeypatch, tmp_path):
    """A keras_pu_presets package on sys.path is a local source; a copy that
    does not match the registry is refused with the way to fix it."""
    monkeypatch.delenv(registry_lib.ZOO_DIR_ENV, raising=False)
    monkeypatch.setattr(registry_lib, "local_zoo_dir", lambda: None)  # no checkout
    package = tmp_path / "site" / sources.COMPANION_PACKAGE
    (package / PRESET).mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for filename in registry_lib.PRESET_FILES:
        shutil.copyfile(REPO_ROOT / "zoo" / PRESET / filename, package / PRESET / filename)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = sources.find_preset_folder(PRESET)
    assert found is not None and found[0].kind == sources.KIND_COMPANION
    assert found[1] == package / PRESET
    folder = zoo.download(PRESET, progress=False)
    assert folder == package / PRESET

    (package / PRESET / "metrics.json").write_text("{}")
    with pytest.raises(zoo.IntegrityError) as info:
        zoo.download(PRESET, progress=False)
    message = str(info.value)
    assert "metrics.json of preset 'pu_unet_busi'" in message
    assert "keras-pu-presets==" in message and "KERAS_PU_ZOO_DIR" in message


def test_zoo_dir_variable_replaces_the_other_local_sources(monkeypatch, tmp_path):
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(tmp_path))
    assert [s.kind for s in sources.local_sources()] == [sources.KIND_ENV]
    assert sources.find_preset_folder(PRESET) is None
    monkeypatch.delenv(registry_lib.ZOO_DIR_ENV)
    kinds = [s.kind for s in sources.local_sources()]
    assert kinds[0] == sources.KIND_CHECKOUT  # this test runs from a checkout


def test_not_published_message_names_every_way_to_get_weights(monkeypatch, tmp_path):
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(tmp_path / "empty"))
    with pytest.raises(zoo.PresetNotPublishedError) as info:
        zoo.load(PRESET, progress=False)
    message = str(info.value)
    for way in ('pip install "keras-pu[presets]"', "KERAS_PU_ZOO_DIR=",
                "Hugging Face Hub", f"keras_pu.zoo.load('{PRESET}', weights=False)"):
        assert way in message, (way, message)
    assert str(tmp_path / "empty") in message  # where it looked


def test_cold_cache_offline_names_every_way_to_get_weights(monkeypatch, tmp_path):
    """A published preset, no local copy, and the Hub unreachable (here: the
    offline cold-cache error of keras_pu.zoo.hub): the message keeps the Hub
    advice and adds the other ways."""
    import huggingface_hub.constants  # noqa: F401 (loaded by the real cache lookup)

    from keras_pu.zoo import hub

    data = json.loads(registry_lib.BUILTIN_REGISTRY.read_text())
    data["presets"][PRESET]["hub"]["revision"] = "a" * 40
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv(registry_lib.REGISTRY_ENV, str(path))
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(tmp_path / "empty"))

    def cold_cache(repo_id, filename, revision, *, owner, retry_hint, **_):
        raise zoo.OfflineCacheMissError(
            f"{owner}: {filename} is not in the Hugging Face cache, and "
            f"HF_HUB_OFFLINE=1 forbids downloading it. Run `{retry_hint}`."
        )

    monkeypatch.setattr(hub, "download_file", cold_cache)
    monkeypatch.setattr(hub, "cached_path", lambda *a, **k: None)
    with pytest.raises(zoo.OfflineCacheMissError) as info:
        zoo.download(PRESET, cache_dir=tmp_path / "hf", progress=False)
    message = str(info.value)
    for way in ("HF_HUB_OFFLINE=1", f"keras-pu zoo download {PRESET}",
                'pip install "keras-pu[presets]"', "KERAS_PU_ZOO_DIR=",
                f"keras_pu.zoo.load('{PRESET}', weights=False)"):
        assert way in message, (way, message)
