"""The zoo without a server: the registry and its checks, loading from
local preset folders (head swap, input shape), the safety allow-list,
model cards and the README table, the packaging tool, argument errors and
the synthetic phantoms."""

import json
import shutil

import keras
import numpy as np
import pytest

import keras_pu
from keras_pu import zoo
from tools.zoo import cards
from keras_pu.zoo import integrity
from keras_pu.data import phantoms
from keras_pu.zoo import registry as registry_lib
from keras_pu.zoo.errors import ZooError
from tools.zoo.packaging import add_preset
from tools.zoo.packaging import refresh_cards
from tools.machine_paths import is_machine_path
from tools.zoo.packaging import summarize_metrics
from tools.machine_paths import without_machine_paths
from keras_pu.zoo.safety import check_config_is_safe
from tests.conftest import REPO_ROOT
from tests.conftest import once_per_suite
from tests.test_models import disk_batch
from tests.zoo_fixtures import fixed_input

PRESETS = (
    "pu_unet_isic", "resunet_isic", "pu_unet_kvasir",
    "resunet_kvasir", "pu_unet_busi", "resunet_busi",
    "pu_unet_efficientnet_lite0_kvasir", "resunet_efficientnet_lite0_kvasir",
    "pu_unet_efficientnet_lite0_busi", "pu_unet_efficientnet_lite0_isic",
    "resunet_efficientnet_lite0_busi", "resunet_efficientnet_lite0_isic",
)
EXPECTED_CLASS = {
    "pu_unet_efficientnet_lite0_kvasir": "EncoderPUUNet",
    "resunet_efficientnet_lite0_kvasir": "EncoderResUNet",
    "pu_unet_efficientnet_lite0_busi": "EncoderPUUNet",
    "pu_unet_efficientnet_lite0_isic": "EncoderPUUNet",
    "resunet_efficientnet_lite0_busi": "EncoderResUNet",
    "resunet_efficientnet_lite0_isic": "EncoderResUNet",
}


@pytest.fixture
def local_presets(zoo_presets, tmp_path, monkeypatch):
    """The tiny presets as a source checkout sees them: registry entries
    with files, folders in the zoo dir, not published."""
    monkeypatch.setenv(
        registry_lib.REGISTRY_ENV,
        str(zoo_presets.registry_copy(tmp_path / "registry.json", endpoint="http://127.0.0.1:9")),
    )
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(zoo_presets.zoo_dir))
    return zoo_presets


# -- the built-in registry -----------------------------------------------------


def test_builtin_registry_describes_every_preset(monkeypatch):
    monkeypatch.delenv(registry_lib.REGISTRY_ENV, raising=False)
    assert zoo.list_presets() == list(PRESETS)
    for name in PRESETS:
        card = zoo.info(name)
        assert card["hub"]["repo_id"] == f"keras-pu/{name}"
        expected_class = EXPECTED_CLASS.get(
            name, "PUUNet" if name.startswith("pu_unet") else "ResUNet")
        assert card["architecture"]["class_name"] == expected_class
        assert card["input_size"] == card["architecture"]["config"]["input_shape"][:2]
        assert "research and education only" in card["weights_terms"].lower()
        # Status, files, metrics and pin agree, whatever the stage.
        if card["status"] == "not trained":
            assert card["files"] == {} and card["metrics"] is None
            assert card["hub"]["revision"] is None
        else:
            assert sorted(card["files"]) == sorted(registry_lib.PRESET_FILES)
            assert "dice" in card["metrics"]["values"]
            assert (card["hub"]["revision"] is not None) == (card["status"] == "published")
    isic = zoo.info("pu_unet_isic")["dataset"]
    assert isic["name"] == "ISIC 2017 Part 1"
    assert isic["stand_in_for"] == "ISIC 2018 Task 1"
    assert "stand-in for ISIC 2018 Task 1" in isic["data_note"]
    assert "CC BY-NC 4.0" in isic["licence"]
    assert "research and education only" in zoo.info("pu_unet_kvasir")["dataset"]["licence"]


@once_per_suite("parameter counts do not depend on the backend, and building "
                "two 2M-parameter models costs ~20 s under JAX; weights=False "
                "is tested on every backend with the tiny preset")
def test_registry_parameters_and_architectures_build(monkeypatch):
    monkeypatch.delenv(registry_lib.REGISTRY_ENV, raising=False)
    for name in ("pu_unet_isic", "resunet_busi"):  # the two architectures
        model = zoo.load(name, weights=False, progress=False)
        assert model.name == name
        assert model.count_params() == zoo.info(name)["parameters"]
        h, w = zoo.info(name)["input_size"]  # what the preset was trained at
        assert model.input_shape == (None, h, w, 3)
        assert model.output_shape == (None, h, w, 1)


def test_committed_presets_match_the_registry_and_segment(monkeypatch):
    """Every trained preset's folder in zoo/ is exactly what the registry
    records (so a stale card or weights file fails here, not at a user's),
    and a trained preset segments its synthetic phantom."""
    monkeypatch.delenv(registry_lib.REGISTRY_ENV, raising=False)
    monkeypatch.delenv(registry_lib.ZOO_DIR_ENV, raising=False)
    registry = registry_lib.load_registry()
    trained = [p for p in registry.presets.values() if p.has_weights]
    if not trained:
        pytest.skip("no preset has trained weights in this checkout")
    for preset in trained:
        folder = REPO_ROOT / "zoo" / preset.name
        assert sorted(p.name for p in folder.iterdir()) == sorted(registry_lib.PRESET_FILES)
        for filename, record in preset.files.items():
            assert integrity.file_record(folder / filename) == {
                "sha256": record.sha256, "size": record.size
            }, f"zoo/{preset.name}/{filename} differs from the registry"
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["dice"] == pytest.approx(preset.metrics["values"]["dice"])
        for filename in ("metrics.json", "recipe.json"):
            found = _machine_paths(json.loads((folder / filename).read_text()))
            assert not found, f"zoo/{preset.name}/{filename} names {found}"
        assert (folder / "README.md").read_text() == cards.model_card(registry, preset.name)
    name = "pu_unet_kvasir" if "pu_unet_kvasir" in [p.name for p in trained] else trained[0].name
    model = zoo.load(name, progress=False)
    h, w = registry.get(name).input_size
    example = phantoms.generate(registry.get(name).dataset.phantom, size=h, seed=0)
    logits = model.predict(example.image[None].astype("float32") / 255.0, verbose=0)
    predicted = logits[0, ..., 0] > 0
    truth = example.mask.astype(bool)
    dice = 2 * (predicted & truth).sum() / (predicted.sum() + truth.sum())
    assert dice > 0.5, f"{name} segments its phantom with Dice {dice:.3f}"


def _machine_paths(data):
    """Every string in a JSON value that is a path on some machine."""
    if isinstance(data, dict):
        return [p for v in data.values() for p in _machine_paths(v)]
    if isinstance(data, list):
        return [p for v in data for p in _machine_paths(v)]
    return [data] if is_machine_path(data) else []


def test_published_json_drops_paths_of_the_training_machine():
    given = {
        "model": "/work/runs/pu_unet_isic/",
        "data_path": "C:\\data\\ISIC2017",
        "cache": "~/cache",
        "share": "\\\\server\\data",
        "nested": [{"path": "/tmp/x"}, "relative/folder", "https://hf.co/x"],
        "dice": 0.83,
        "scored_at": "original image size",
        "split": "test",
    }
    assert without_machine_paths(given) == {
        "model": None, "data_path": None, "cache": None, "share": None,
        "nested": [{"path": None}, "relative/folder", "https://hf.co/x"],
        "dice": 0.83, "scored_at": "original image size", "split": "test",
    }


def test_untrained_preset_says_so(untrained_registry):
    with pytest.raises(zoo.PresetNotTrainedError) as info:
        zoo.load("pu_unet_isic")
    message = str(info.value)
    assert "'pu_unet_isic' has no trained weights yet" in message
    assert "weights=False" in message


def test_unknown_name_suggests_close_names():
    with pytest.raises(zoo.UnknownPresetError) as info:
        zoo.load("pu_unet_isc")
    assert "Did you mean 'pu_unet_isic'" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(zoo.UnknownPresetError, match="Did you mean 'resunet_kvasir'"):
        zoo.info("resunet_kvasr")


def test_trained_but_unpublished_preset_without_zoo_folder(zoo_presets, tmp_path, monkeypatch):
    monkeypatch.setenv(registry_lib.REGISTRY_ENV, str(zoo_presets.registry_copy(tmp_path / "r.json")))
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(tmp_path / "empty"))
    with pytest.raises(zoo.PresetNotPublishedError) as info:
        zoo.load("tiny_pu")
    message = str(info.value)
    assert "'tiny_pu' has trained weights" in message
    assert "not published" in message and "weights=False" in message


def test_local_zoo_dir_is_the_checkout_or_the_override(monkeypatch, tmp_path):
    monkeypatch.delenv(registry_lib.ZOO_DIR_ENV, raising=False)
    assert registry_lib.local_zoo_dir() == REPO_ROOT / "zoo"
    monkeypatch.setenv(registry_lib.ZOO_DIR_ENV, str(tmp_path))
    assert registry_lib.local_zoo_dir() == tmp_path
    # Only preset folders, backbones/ (ImageNet encoders, see
    # keras_pu/zoo/backbones.py) and the maintainer files
    # live in zoo/: no test weights are ever committed there.
    committed = {p.name for p in (REPO_ROOT / "zoo").iterdir()}
    assert committed <= set(PRESETS) | {
        "README.md", "add_preset.py", "add_gate.py", "publish.py", "refresh_cards.py",
        "backbones",
    }


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda e: e["hub"].update(revision="main"), "not a full commit sha"),
        (lambda e: (e.update(files={}), e["hub"].update(revision="a" * 40)),
         "published revision but no files"),
        (lambda e: e.update(files={"config.json": {"sha256": "0" * 64, "size": 1}}), "files must list exactly"),
        (lambda e: e.update(dataset="nope"), "unknown dataset 'nope'"),
        (lambda e: e.pop("architecture"), "lacks \\['architecture'\\]"),
        (lambda e: e.update(postprocess={"min_peak_probability": 0.9}),
         "postprocess must be \\{gate, test_metrics\\}"),
        (lambda e: e.update(postprocess={"gate": {"format": "keras_pu.peak_gate/1",
                                                  "min_peak_probability": 0.9,
                                                  "calibration": {"split": "test"}},
                                         "test_metrics": {}}),
         "chosen on the val split"),
        (lambda e: e.update(postprocess={"gate": {"format": "keras_pu.peak_gate/1",
                                                  "min_peak_probability": 7},
                                         "test_metrics": {}}),
         "min_peak_probability must be"),
    ],
)
def test_invalid_registry_entries_are_named(tmp_path, change, match):
    data = json.loads(registry_lib.BUILTIN_REGISTRY.read_text())
    change(data["presets"]["pu_unet_busi"])
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ZooError, match=f"preset 'pu_unet_busi'.*{match}"):
        registry_lib.load_registry(path)


@pytest.mark.parametrize(
    "recommended, match",
    [
        ({"preset": "pu_unet_busi", "why": "x"}, "not a preset of this dataset"),
        ({"preset": "nope", "why": "x"}, "not a preset of this dataset"),
        ({"preset": "pu_unet_kvasir"}, "must be \\{preset, why\\}"),
    ],
)
def test_invalid_recommendations_are_named(tmp_path, recommended, match):
    data = json.loads(registry_lib.BUILTIN_REGISTRY.read_text())
    data["datasets"]["kvasir-seg"]["recommended"] = recommended
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ZooError, match=f"dataset 'kvasir-seg'.*{match}"):
        registry_lib.load_registry(path)


def test_registry_says_which_preset_to_use_for_each_task():
    every = zoo.recommended()
    assert every, "the registry recommends no preset"
    for key, choice in every.items():
        info = zoo.info(choice["preset"])
        assert info["recommended"] is True
        assert info["status"] != "not trained"
        # The best measured test Dice of the dataset's trained presets, each
        # used at its best: with its validation-chosen gate if it has one.
        trained = [zoo.info(n) for n in zoo.list_presets(with_weights=True)]
        same = [i for i in trained if i["dataset"]["task"] == choice["task"]]

        def best_dice(info):
            dice = info["metrics"]["values"]["dice"]
            if info["postprocess"]:
                dice = max(dice, info["postprocess"]["test_metrics"]["values"]["dice"])
            return dice

        best = max(same, key=best_dice)
        assert best["name"] == choice["preset"], (key, best["name"])
        assert choice["why"]
    assert zoo.recommended("Kvasir-SEG") == every["kvasir-seg"]
    assert zoo.info("pu_unet_kvasir")["recommended"] is False
    with pytest.raises(ZooError, match="No dataset 'cvc'.*kvasir-seg"):
        zoo.recommended("cvc")


def test_unreadable_registry_override_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(registry_lib.REGISTRY_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(ZooError, match="KERAS_PU_REGISTRY"):
        zoo.list_presets()


# -- loading from local folders --------------------------------------------


def test_head_swap_keeps_every_other_weight_and_trains(local_presets):
    original = zoo.load("tiny_pu", progress=False)
    tuned = zoo.load("tiny_pu", num_classes=3, progress=False)
    assert tuned.output_shape == (None, 32, 32, 3)
    assert tuned.num_classes == 3
    compared = 0
    for layer in tuned.layers:
        source = original.get_layer(layer.name).get_weights()
        if layer.name == "logits":
            kernel, bias = layer.get_weights()
            assert kernel.shape == (1, 1, 4, 3) and bias.shape == (3,)
            continue
        for a, b in zip(layer.get_weights(), source):
            np.testing.assert_array_equal(a, b)
            compared += 1
    assert compared == len(original.weights) - 2
    # Without weights, the head is simply built with the new size.
    fresh = zoo.load("tiny_pu", weights=False, num_classes=2, input_shape=(None, None, 3), progress=False)
    assert fresh.output_shape == (None, None, None, 2)
    # Ready for fine-tuning: compile and take a step.
    images, masks = disk_batch(n=2)
    labels = np.concatenate([1 - masks, masks, np.zeros_like(masks)], -1)
    # One step does not repay TensorFlow's XLA compilation; JAX needs jit
    # (eager JAX compiles every op on its own).
    tuned.compile(
        optimizer="adam",
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        jit_compile=keras.backend.backend() == "jax",
    )
    loss = tuned.train_on_batch(images, labels)
    assert np.isfinite(loss)


def test_input_shape_rebuild_keeps_weights(local_presets):
    any_size = zoo.load("tiny_pu", input_shape=(None, None, 3), progress=False)
    np.testing.assert_allclose(
        any_size.predict(fixed_input(), verbose=0), local_presets.logits["tiny_pu"], atol=1e-5
    )
    bigger = np.random.default_rng(1).random((1, 64, 64, 3), dtype="float32")
    assert any_size.predict(bigger, verbose=0).shape == (1, 64, 64, 1)
    with pytest.raises(ValueError, match="multiple of 2\\*\\*depth"):
        zoo.load("tiny_pu", input_shape=(30, 30, 3), progress=False)
    with pytest.raises(ValueError, match="3-channel images"):
        zoo.load("tiny_pu", input_shape=(32, 32, 1), progress=False)


def test_bad_arguments_are_named(local_presets, tmp_path):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        zoo.load("tiny_pu", num_classes=0)
    with pytest.raises(ValueError, match="input_shape must be \\(height, width, channels\\)"):
        zoo.load("tiny_pu", input_shape=(32, 32))
    with pytest.raises(ValueError, match="Malformed Hub handle"):
        zoo.load("hf://just-a-name")
    with pytest.raises(ValueError, match="Two revisions"):
        zoo.load("hf://keras-pu/tiny_pu@main", revision="v2")
    single = tmp_path / "model.keras"
    single.write_bytes(b"PK")
    with pytest.raises(ValueError, match="single-file Keras model"):
        zoo.load(str(single))
    with pytest.raises(ZooError, match="has no metadata.json.*zipped=False"):
        (tmp_path / "half").mkdir()
        (tmp_path / "half" / "config.json").write_text("{}")
        zoo.load(str(tmp_path / "half"))


def test_unsafe_local_folder_is_refused_before_keras_reads_it(local_presets, tmp_path):
    folder = tmp_path / "evil"
    shutil.copytree(local_presets.zoo_dir / "tiny_pu", folder)
    config = json.loads((folder / "config.json").read_text())
    config["config"]["dtype"] = {"module": "os", "class_name": "system", "config": {"command": "echo hi"}}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(zoo.UnsafeModelError, match="module 'os'"):
        zoo.load(str(folder))


# -- the safety allow-list ---------------------------------------------------


def _functional_config():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    return keras.saving.serialize_keras_object(keras.Model(inputs, x))


def test_allow_list_accepts_keras_and_keras_pu_models():
    check_config_is_safe(_functional_config(), "test")
    model = keras_pu.models.PUUNet(input_shape=(32, 32, 3), widths=4, depth=2)
    check_config_is_safe(keras.saving.serialize_keras_object(model), "test")


@pytest.mark.parametrize(
    "node, match",
    [
        ({"class_name": "Lambda", "module": "keras.layers", "config": {}}, "Lambda object"),
        ({"class_name": "TorchModuleWrapper", "module": "keras.layers", "config": {}}, "TorchModuleWrapper"),
        ({"class_name": "__lambda__", "config": {"code": "..."}}, "__lambda__"),
        ({"class_name": "Evil", "module": "evil.layers", "config": {}}, "module 'evil.layers'"),
        ({"class_name": "X", "module": "keras.layers", "registered_name": "other>X", "config": {}}, "'other>X'"),
        ({"class_name": "X", "config": {}}, "names no module"),
    ],
)
def test_allow_list_rejects_objects_that_run_code(node, match):
    config = _functional_config()
    config["config"]["layers"][1]["config"]["kernel_initializer"] = node
    with pytest.raises(zoo.UnsafeModelError, match=match):
        check_config_is_safe(config, "preset 'x'")


# -- cards, README, packaging ------------------------------------------------


def test_model_card_has_hub_metadata_and_measured_metrics(zoo_presets):
    from huggingface_hub import ModelCard

    card = ModelCard.load(zoo_presets.zoo_dir / "tiny_pu" / "README.md")
    data = card.data
    assert data.library_name == "keras"
    assert data.license == "other"
    assert {"keras-pu", "image-segmentation", "polyp", "pu-unet"} <= set(data.tags)
    assert data.datasets == ["kvasir-seg"]
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == {"dice": 0.83, "iou": 0.72, "hd95": 4.5}
    assert all(r.dataset_split == "test" for r in data.eval_results)
    text = card.text
    assert "Research and education only" in text
    assert "| Dice | 0.8300 |" in text
    assert 'keras_pu.zoo.load("tiny_pu")' in text
    # Regenerating from the registry gives the same file: nothing by hand.
    registry = registry_lib.Registry(zoo_presets.registry, "registry.json")
    assert cards.model_card(registry, "tiny_pu") == (zoo_presets.zoo_dir / "tiny_pu" / "README.md").read_text()


def test_untrained_card_says_not_trained_and_names_the_stand_in(untrained_registry):
    registry = registry_lib.load_registry(untrained_registry)
    text = cards.model_card(registry, "pu_unet_isic")
    assert "Not trained yet" in text
    assert "stand-in for ISIC 2018 Task 1" in text
    assert "0.942 on ISIC 2018 Task 1" in text


def test_readme_presets_table_is_generated_from_the_registry():
    registry = registry_lib.load_registry(registry_lib.BUILTIN_REGISTRY)
    readme = (REPO_ROOT / "README.md").read_text()
    assert cards.replace_table(readme, cards.presets_table(registry)) == readme, (
        "README presets table is stale: run `python zoo/add_preset.py` or "
        "regenerate it with tools.zoo.cards.update_readme"
    )


def test_preset_folder_is_exactly_the_hub_repository(zoo_presets):
    folder = zoo_presets.zoo_dir / "tiny_pu"
    assert sorted(p.name for p in folder.iterdir()) == sorted(registry_lib.PRESET_FILES)
    config = json.loads((folder / "config.json").read_text())
    assert config["registered_name"] == "keras_pu>PUUNet"
    assert config["config"]["name"] == "tiny_pu"
    assert json.loads((folder / "metadata.json").read_text())["keras_version"] == keras.__version__
    inputs = zoo_presets.root / "inputs"
    for published, given in (("recipe.json", "tiny_pu_recipe.json"),
                             ("metrics.json", "tiny_pu_metrics.json")):
        assert json.loads((folder / published).read_text()) == without_machine_paths(
            json.loads((inputs / given).read_text()))
        assert not _machine_paths(json.loads((folder / published).read_text()))
    entry = zoo_presets.registry["presets"]["tiny_pu"]
    from keras_pu.zoo.integrity import file_record

    for name in registry_lib.PRESET_FILES:
        assert entry["files"][name] == file_record(folder / name)
    assert entry["metrics"]["values"] == {"dice": 0.83, "iou": 0.72, "hd95": 4.5}
    assert entry["hub"]["revision"] is None  # new files are unpublished


def test_add_preset_checks_architecture_and_metrics(zoo_presets, tmp_path):
    registry = zoo_presets.registry_copy(tmp_path / "registry.json")
    inputs = zoo_presets.root / "inputs"
    # The ResUNet's model offered as tiny_pu (a PUUNet in the registry).
    with pytest.raises(ZooError, match="class ResUNet instead of PUUNet.*--update-architecture"):
        add_preset("tiny_pu", inputs / "tiny_res.keras", inputs / "tiny_res_metrics.json",
                   inputs / "tiny_res_recipe.json", registry_path=registry,
                   zoo_dir=tmp_path / "zoo", log=lambda *_: None)
    bad_metrics = tmp_path / "metrics.json"
    bad_metrics.write_text(json.dumps({"metrics": {"iou": 0.5}}))
    with pytest.raises(ZooError, match="no 'dice' value"):
        add_preset("tiny_res", inputs / "tiny_res.keras", bad_metrics,
                   inputs / "tiny_res_recipe.json", registry_path=registry,
                   zoo_dir=tmp_path / "zoo", log=lambda *_: None)
    bad_metrics.write_text(json.dumps({"metrics": {"dice": 93.0}}))
    with pytest.raises(ZooError, match="outside \\[0, 1\\]"):
        add_preset("tiny_res", inputs / "tiny_res.keras", bad_metrics,
                   inputs / "tiny_res_recipe.json", registry_path=registry,
                   zoo_dir=tmp_path / "zoo", log=lambda *_: None)
    assert not (tmp_path / "zoo" / "tiny_pu").exists()
    # On purpose: record the trained architecture.
    add_preset("tiny_pu", inputs / "tiny_res.keras", inputs / "tiny_res_metrics.json",
               inputs / "tiny_res_recipe.json", registry_path=registry,
               zoo_dir=tmp_path / "zoo", update_architecture=True, log=lambda *_: None)
    updated = registry_lib.load_registry(registry).get("tiny_pu")
    assert updated.class_name == "ResUNet" and updated.has_weights


def test_add_gate_records_a_validation_gate_and_its_test_metrics(
        zoo_presets, tmp_path, monkeypatch):
    from keras_pu.inference import find_gate
    from keras_pu.postprocess import PeakGate
    from tools.zoo.packaging import add_gate

    registry = zoo_presets.registry_copy(tmp_path / "registry.json")
    zoo_dir = tmp_path / "zoo"
    shutil.copytree(zoo_presets.zoo_dir, zoo_dir)
    gate_file, metrics_file = tmp_path / "gate.json", tmp_path / "metrics.json"
    kwargs = dict(registry_path=registry, zoo_dir=zoo_dir, log=lambda *_: None)
    # Chosen on test results: refused.
    PeakGate(0.9, calibration={"split": "test"}).save(gate_file)
    metrics_file.write_text(json.dumps(
        {"split": "test", "gate": 0.9, "num_images": 5, "dice": 0.7, "iou": 0.6,
         "empty_gt_false_positive_rate": 0.0}))
    with pytest.raises(ZooError, match="gate must be chosen on the val split"):
        add_gate("tiny_pu", gate_file, metrics_file, **kwargs)
    PeakGate(0.9, calibration={"split": "val", "num_images": 10,
                               "num_empty": 3}).save(gate_file)
    # Metrics measured without (or with another) gate: refused.
    metrics_file.write_text(json.dumps({"split": "test", "gate": None, "dice": 0.7}))
    with pytest.raises(ZooError, match="measured with gate 0.9"):
        add_gate("tiny_pu", gate_file, metrics_file, **kwargs)
    metrics_file.write_text(json.dumps(
        {"split": "test", "gate": 0.9, "num_images": 5, "dice": 0.7, "iou": 0.6,
         "empty_gt_false_positive_rate": 0.0}))
    card_before = (zoo_dir / "tiny_pu" / "README.md").read_text()
    add_gate("tiny_pu", gate_file, metrics_file, **kwargs)
    preset = registry_lib.load_registry(registry).get("tiny_pu")
    assert preset.postprocess["gate"]["min_peak_probability"] == 0.9
    assert preset.postprocess["test_metrics"]["values"]["dice"] == 0.7
    assert preset.revision is None  # the card changed: unpublished again
    card = (zoo_dir / "tiny_pu" / "README.md").read_text()
    assert card != card_before and "With the image-level gate" in card
    assert "below 0.9000" in card and "--gate model" in card
    assert integrity.file_record(zoo_dir / "tiny_pu" / "README.md") == \
        registry_lib.load_registry(registry).data["presets"]["tiny_pu"]["files"]["README.md"]
    # `--gate model` finds it by preset name or Hub handle.
    monkeypatch.setenv(registry_lib.REGISTRY_ENV, str(registry))
    assert find_gate("tiny_pu").min_peak_probability == 0.9
    assert find_gate(f"hf://{preset.repo_id}").min_peak_probability == 0.9
    assert find_gate("tiny_res") is None
    # A preset's folder (zoo/ or a download) is recognised by its weights.
    assert find_gate(zoo_dir / "tiny_pu").min_peak_probability == 0.9
    assert find_gate(zoo_dir / "tiny_res") is None
    assert zoo.info("tiny_pu")["postprocess"]["gate"]["min_peak_probability"] == 0.9
    # New weights (a retrained preset): the old weights' gate is dropped,
    # with a message, not refused and not kept.
    inputs = zoo_presets.root / "inputs"
    messages = []
    add_preset("tiny_pu", inputs / "tiny_pu.keras", inputs / "tiny_pu_metrics.json",
               inputs / "tiny_pu_recipe.json", registry_path=registry,
               zoo_dir=zoo_dir, log=messages.append)
    assert registry_lib.load_registry(registry).get("tiny_pu").postprocess is None
    assert "postprocess" not in json.loads(registry.read_text())["presets"]["tiny_pu"]
    assert any("dropped the image-level gate" in m for m in messages)


def test_add_preset_records_the_trained_input_size(zoo_presets, tmp_path):
    registry = zoo_presets.registry_copy(tmp_path / "registry.json")
    trained = tmp_path / "tiny_pu_48.keras"
    tiny = zoo_presets.models["tiny_pu"]
    bigger = keras_pu.models.PUUNet(**dict(tiny.get_config(), input_shape=(48, 48, 3)))
    bigger.set_weights(tiny.get_weights())
    bigger.save(trained)
    inputs = zoo_presets.root / "inputs"
    args = (trained, inputs / "tiny_pu_metrics.json", inputs / "tiny_pu_recipe.json")
    kwargs = dict(registry_path=registry, zoo_dir=tmp_path / "zoo", log=lambda *_: None)
    # A preset declared 32x32 but trained at 48x48 would be fed images at
    # the wrong scale: an error unless recorded on purpose.
    with pytest.raises(ZooError, match="trained at 48x48, registry input size 32x32"):
        add_preset("tiny_pu", *args, **kwargs)
    add_preset("tiny_pu", *args, update_architecture=True, **kwargs)
    preset = registry_lib.load_registry(registry).get("tiny_pu")
    assert list(preset.input_size) == [48, 48]
    assert preset.input_shape == (48, 48, 3)


def test_metrics_of_keras_pu_evaluate_include_the_false_positive_rates(tmp_path):
    from keras_pu.metrics import SegmentationEvaluator

    evaluator = SegmentationEvaluator(compute_hd95=False)
    lesion = np.zeros((8, 8), bool)
    lesion[2:6, 2:6] = True
    empty = np.zeros((8, 8), bool)
    evaluator.add("a", lesion, lesion, metadata={"class": "benign"})
    evaluator.add("b", lesion, empty, metadata={"class": "normal"})  # false positive
    evaluator.add("c", empty, empty, metadata={"class": "normal"})
    path = tmp_path / "metrics.json"
    evaluator.write_json(path, extra={"split": "test"})
    summary = summarize_metrics(json.loads(path.read_text()), path)
    assert summary["values"]["fpr_empty"] == pytest.approx(0.5)
    assert summary["values"]["fpr_normal"] == pytest.approx(0.5)
    assert summary["num_images"] == 3 and summary["split"] == "test"


def test_cards_compare_presets_experiments_and_the_paper(zoo_presets, tmp_path):
    shutil.copytree(zoo_presets.zoo_dir, tmp_path / "zoo")
    registry_path = zoo_presets.registry_copy(tmp_path / "registry.json")
    registry = registry_lib.load_registry(registry_path)
    registry.update_dataset("kvasir_seg", experiments=[{
        "label": "PU-UNet + SelfReg", "runs": "3 (seeds 1, 2, 3)", "note": "Seeds differ.",
        "metrics": {"dice": {"mean": 0.8123, "std": 0.0211}},
    }])
    registry.update_preset("tiny_pu", training={
        "hardware": "2 CPU cores", "backend": "jax", "precision": "mixed_bfloat16",
        "image_size": [32, 32], "epochs": 3, "seed": 7, "wall_minutes": 2.0})
    registry.update_preset("tiny_pu", hub={"repo_id": "keras-pu-test/tiny_pu", "revision": "a" * 40})
    registry.save()
    old = registry.get("tiny_pu").files["README.md"]
    tiny = ["tiny_pu", "tiny_res"]
    changed = refresh_cards(registry_path, tmp_path / "zoo", None, log=lambda *_: None, names=tiny)
    assert sorted(changed) == ["tiny_pu", "tiny_res"]
    refreshed = registry_lib.load_registry(registry_path).get("tiny_pu")
    text = (tmp_path / "zoo" / "tiny_pu" / "README.md").read_text()
    assert "| `tiny_pu` (this model) | 1 (seed 7) | 0.830 |" in text
    assert "| `tiny_res` | 1 | 0.830 |" in text
    assert "| PU-UNet + SelfReg | 3 (seeds 1, 2, 3) | 0.812 ± 0.021 |" in text
    assert "| PU-UNet paper (arXiv 2606.20035), Kvasir-SEG | — | 0.959 |" in text
    assert "with the jax backend, in mixed_bfloat16, for 3 epochs at 32x32" in text
    # The card is a file of the preset: its checksum follows, and the old
    # pinned revision no longer holds these files.
    assert refreshed.files["README.md"] != old
    card = integrity.file_record(tmp_path / "zoo" / "tiny_pu" / "README.md")
    assert refreshed.files["README.md"].sha256 == card["sha256"]
    assert refreshed.revision is None
    assert refresh_cards(registry_path, tmp_path / "zoo", None, log=lambda *_: None, names=tiny) == []


def test_add_preset_tool_names_a_bad_training_file(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("add_preset_tool", REPO_ROOT / "zoo" / "add_preset.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    bad = tmp_path / "training.json"
    bad.write_text("{not json")
    argv = ["pu_unet_kvasir", "--model", "m.keras", "--metrics", "m.json",
            "--training", str(bad), "--readme", ""]
    assert tool.main(argv) == 1
    assert f"cannot read the --training file {bad}" in capsys.readouterr().err
    bad.write_text("[1, 2]")
    assert tool.main(argv) == 1
    assert "must hold a JSON object" in capsys.readouterr().err


# -- phantoms ----------------------------------------------------------------


@pytest.mark.parametrize("kind", phantoms.KINDS)
def test_phantoms_are_deterministic_images_with_known_masks(kind):
    image, mask = phantoms.generate(kind, size=64, seed=3)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert mask.shape == (64, 64) and mask.dtype == bool
    assert 0.02 < mask.mean() < 0.5
    again, mask_again = phantoms.generate(kind, size=64, seed=3)
    np.testing.assert_array_equal(image, again)
    np.testing.assert_array_equal(mask, mask_again)
    other, _ = phantoms.generate(kind, size=64, seed=4)
    assert np.any(other != image)
    # The lesion differs visibly from its surroundings.
    grey = image.astype(float).mean(-1)
    ring = (np.abs(np.gradient(mask.astype(float))[0]) + np.abs(np.gradient(mask.astype(float))[1])) > 0
    inside, outside = grey[mask].mean(), grey[~mask & ~ring].mean()
    if kind == "polyp":
        assert inside > outside + 10  # a lit, raised polyp
    else:
        assert inside < outside - 20  # pigmented lesion / hypoechoic mass


def test_phantom_arguments_are_checked():
    with pytest.raises(ValueError, match="Unknown phantom 'tumor'"):
        phantoms.generate("tumor")
    with pytest.raises(ValueError, match="size must be an integer >= 32"):
        phantoms.generate("polyp", size=16)
    from keras_pu.cli.demo import PHANTOM_KINDS

    assert PHANTOM_KINDS == phantoms.KINDS


def test_a_key_a_config_lacks_counts_as_the_class_default():
    """A registry entry written before a constructor argument existed (here
    deep_supervision) describes the model built with its default; a
    different value is still a different architecture."""
    registered = registry_lib.load_registry().get("pu_unet_kvasir").architecture
    assert "deep_supervision" not in registered["config"]
    model = keras_pu.models.PUUNet(
        **dict(registered["config"], deep_supervision=False))
    config = keras.saving.serialize_keras_object(model)
    assert config["config"]["deep_supervision"] is False
    assert registry_lib.architecture_differences(config, registered) == []
    config["config"]["deep_supervision"] = True
    assert registry_lib.architecture_differences(config, registered) == [
        "deep_supervision=True instead of False"]
    # A class this version does not know is compared as written.
    unknown = {"class_name": "FutureNet", "config": {"a": 1}}
    assert registry_lib.architecture_differences(
        {"class_name": "FutureNet", "config": {}}, unknown) == ["a='<missing>' instead of 1"]
