"""The dataset registry: one module per dataset, one spelling of its key."""

import json

import pytest

from keras_pu.data import dataset_registry
from keras_pu.data import detect_layout
from keras_pu.data import load_dataset
from keras_pu.data import load_split
from keras_pu.data.splits import SPLIT_DATASETS
from keras_pu.data.splits import split_path
from keras_pu.training import Recipe
from keras_pu.zoo import registry as zoo_registry


def test_every_dataset_module_declares_a_complete_spec():
    keys = dataset_registry.layout_names()
    # A new dataset is one more module: these are the ones there must be.
    assert {"kvasir-seg", "busi", "isic2018", "isic2017", "folder"} <= set(keys)
    for spec in dataset_registry.list_datasets():
        assert callable(spec.scan)
        if spec.key != "folder":  # the user's own data has no source
            assert spec.display_name and spec.url and spec.citation
            assert spec.licence
    # Specific layouts are tried before the generic images/ + masks/.
    assert keys[-1] == "folder"


def test_committed_split_files_are_named_by_the_key():
    assert {"kvasir-seg", "busi", "isic2017"} <= set(SPLIT_DATASETS)
    assert "folder" not in SPLIT_DATASETS
    for key in SPLIT_DATASETS:
        assert split_path(key).name == f"{key}.json"
        assert split_path(key).is_file()
    # The legacy zoo spelling finds the same split.
    assert load_split("kvasir_seg", "test") == load_split("kvasir-seg", "test")
    with pytest.raises(ValueError, match="no committed split for 'folder'"):
        split_path("folder")


def test_unknown_key_suggests_a_close_one():
    with pytest.raises(KeyError, match="Did you mean 'busi'"):
        dataset_registry.get_dataset("bussi")


def test_zoo_registry_takes_names_and_terms_from_the_dataset_modules(tmp_path):
    registry = zoo_registry.load_registry()
    kvasir = registry.datasets["kvasir-seg"]
    spec = dataset_registry.get_dataset("kvasir-seg")
    assert kvasir.licence == spec.licence
    assert "research and education only" in kvasir.licence
    assert registry.datasets["busi"].name == "BUSI (Breast Ultrasound Images)"
    assert registry.get("pu_unet_kvasir").dataset.key == "kvasir-seg"
    # A registry file written with the old key still loads, under the new.
    data = json.loads(zoo_registry.BUILTIN_REGISTRY.read_text())
    data["datasets"]["kvasir_seg"] = data["datasets"].pop("kvasir-seg")
    for entry in data["presets"].values():
        if entry["dataset"] == "kvasir-seg":
            entry["dataset"] = "kvasir_seg"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    old = zoo_registry.load_registry(path)
    assert old.get("pu_unet_kvasir").dataset == registry.get("pu_unet_kvasir").dataset
    old.update_dataset("kvasir-seg", experiments=[])
    assert old.datasets["kvasir-seg"].experiments == ()


def test_recipe_layouts_come_from_the_registry():
    recipe = Recipe.from_dict({"model": {"class": "ResUNet"},
                               "data": {"image_size": [64, 64], "layout": "isic2018"}})
    assert recipe.get("data.layout") == "isic2018"


def test_detection_and_display_name_come_from_the_module(tmp_path):
    root = tmp_path / "Kvasir-SEG"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    assert detect_layout(root) == "kvasir-seg"
    other = tmp_path / "mine"
    (other / "images").mkdir(parents=True)
    (other / "masks").mkdir()
    assert detect_layout(other) == "folder"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(root / "images" / "a.jpg")
    Image.new("L", (8, 8)).save(root / "masks" / "a.jpg")
    dataset = load_dataset("kvasir_seg", root)  # the legacy spelling
    assert (dataset.name, dataset.layout) == ("Kvasir-SEG", "kvasir-seg")
