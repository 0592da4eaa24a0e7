"""Training recipes: the shipped presets validate and are matched pairs;
malformed recipes give errors that name the key."""

import json

import pytest

from keras_pu.training import Recipe
from keras_pu.training import RecipeError
from keras_pu.training import available_recipes
from keras_pu.training import build_model
from keras_pu.training import describe_schema

PRESETS = ("pu_unet_isic", "pu_unet_kvasir", "pu_unet_busi",
           "resunet_isic", "resunet_kvasir", "resunet_busi")
MINIMAL = {"model": {"class": "PUUNet"}, "data": {"image_size": [64, 64]}}


def test_every_shipped_recipe_is_complete_and_validates():
    # Every zoo preset has its recipe; encoder recipes ship ahead of presets.
    assert set(PRESETS) <= set(available_recipes())
    for name in available_recipes():
        recipe = Recipe.from_preset(name)
        assert recipe.get("name") == name
        # The shipped files are complete: loading adds no default.
        path = recipe.source
        assert json.loads(open(path).read()) == recipe.to_dict()
        assert recipe.get("data.path") is None  # given on the command line


@pytest.mark.parametrize("dataset", ["isic", "kvasir", "busi"])
def test_pu_and_resunet_recipes_differ_only_in_the_model_class(dataset):
    pu = Recipe.from_preset(f"pu_unet_{dataset}")
    res = Recipe.from_preset(f"resunet_{dataset}")
    assert pu.differences(res) == ["model.class"]
    assert (pu.get("model.class"), res.get("model.class")) == ("PUUNet",
                                                               "ResUNet")


def test_preset_models_fit_the_weight_budget():
    recipes = [Recipe.from_preset(name) for name in PRESETS]
    # All six share one architecture config and input size (so one model
    # per class stands for all of them).
    assert len({json.dumps([r.get("model.config"), r.get("data.image_size")])
                for r in recipes}) == 1
    for recipe in recipes[:1] + recipes[3:4]:  # PUUNet, ResUNet
        model = build_model(recipe)
        # float32 weights (+ BN statistics) must stay under 25 MB.
        assert model.count_params() * 4 < 25e6
        assert model.input_shape == (None, *recipe.get("data.image_size"), 3)


def test_defaults_are_filled_in_and_replace_validates():
    recipe = Recipe.from_dict(MINIMAL)
    assert recipe.get("optimizer.name") == "adamw"
    assert recipe.get("training.monitor") == "val_dice"
    assert recipe.get("data.split") == "auto"
    short = recipe.replace({"training.epochs": 2, "selfreg.enabled": True})
    assert short.get("training.epochs") == 2 and short.get("selfreg.enabled")
    assert recipe.get("training.epochs") == 50  # unchanged
    assert short.differences(recipe) == ["selfreg.enabled", "training.epochs"]
    with pytest.raises(RecipeError, match="training.epochs"):
        recipe.replace({"training.epochs": 0})
    assert "optimizer.learning_rate = 0.001" in describe_schema()


def test_load_by_name_or_path(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(MINIMAL))
    assert Recipe.load(str(path)).get("model.class") == "PUUNet"
    assert Recipe.load("pu_unet_kvasir").get("name") == "pu_unet_kvasir"
    with pytest.raises(RecipeError, match="no recipe named 'pu_unet_kvasr'.*"
                       "Did you mean 'pu_unet_kvasir'"):
        Recipe.load("pu_unet_kvasr")
    with pytest.raises(RecipeError, match="does not exist"):
        Recipe.load(str(tmp_path / "absent.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RecipeError, match="bad.json' is not valid JSON"):
        Recipe.load(str(bad))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"optimiser": {}}, r"unknown recipe key 'optimiser'.*Did you mean "
         r"'optimizer'"),
        ({"training": {"epoch": 3}}, r"unknown recipe key 'training.epoch'.*"
         r"Did you mean 'epochs'"),
        ({"training": {"epochs": "10"}}, r"'training.epochs' must be an "
         r"integer"),
        ({"training": {"batch_size": 2.5}}, r"'training.batch_size' must be "
         r"an integer"),
        ({"selfreg": {"enabled": "yes"}}, r"'selfreg.enabled' must be "
         r"true/false"),
        ({"optimizer": {"name": "adamm"}}, r"'optimizer.name' must be one of"
         r".*Did you mean 'adam'"),
        ({"optimizer": {"learning_rate": -1}}, r"'optimizer.learning_rate' "
         r"must be > 0"),
        ({"model": {"class": "UNet"}}, r"'model.class' must be one of"),
        ({"model": {"class": "PUUNet", "config": {"input_shape": [1]}}},
         r"'model.config.input_shape' is set from 'data.image_size'"),
        ({"data": {"image_size": [100, 100]}}, r"multiples of 16, the input size "
         r"multiple of model PUUNet"),
        ({"data": {"image_size": [64]}}, r"'data.image_size' must be "
         r"\[height, width\]"),
        ({"data": {"image_size": [64, 64], "layout": "kvasir"}},
         r"'data.layout' must be one of.*Did you mean 'kvasir-seg'"),
        ({"augmentation": {"rotate": 10}}, r"unknown recipe key "
         r"'augmentation.rotate'.*Did you mean 'rotation'"),
        ({"augmentation": {"seed": 1}}, r"'augmentation.seed' \(the seed is "
         r"'training.seed'\)"),
        ({"loss": {"bce_weight": 0, "dice_weight": 0}}, r"both 0"),
        ({"data": {"image_size": [64, 64], "split": None,
                   "val_fraction": 0.0}}, r"val_fraction"),
    ],
)
def test_bad_recipes_name_the_key(change, message):
    data = json.loads(json.dumps(MINIMAL))
    for section, value in change.items():
        if isinstance(value, dict) and isinstance(data.get(section), dict):
            data[section].update(value)
        else:
            data[section] = value
    with pytest.raises(RecipeError, match=message):
        Recipe.from_dict(data, source="my.json")


def test_missing_required_key_and_non_object():
    with pytest.raises(RecipeError, match="no 'model.class'"):
        Recipe.from_dict({"data": {"image_size": [64, 64]}})
    with pytest.raises(RecipeError, match="no 'data.image_size'"):
        Recipe.from_dict({"model": {"class": "ResUNet"}})
    with pytest.raises(RecipeError, match="'training' must be a JSON object"):
        Recipe.from_dict(dict(MINIMAL, training=[1]))


def test_model_config_errors_name_the_recipe():
    recipe = Recipe.from_dict(
        {"model": {"class": "ResUNet", "config": {"width": 8}},
         "data": {"image_size": [64, 64]}}, source="r.json")
    with pytest.raises(RecipeError, match="r.json: unknown recipe key "
                       "'model.config.width'.*Did you mean 'widths'"):
        build_model(recipe)
    recipe = Recipe.from_dict(
        {"model": {"class": "ResUNet", "config": {"widths": [8, 16],
                                                  "depth": 3}},
         "data": {"image_size": [64, 64]}}, source="r.json")
    with pytest.raises(RecipeError, match="r.json: 'model.config':.*widths"):
        build_model(recipe)
