"""The model registry and the reusable U-Net builder."""

import keras
import numpy as np
import pytest

from keras_pu.layers import ResidualBlock
from keras_pu.models import PUUNet
from keras_pu.models import SegmentationModel
from keras_pu.models import registry
from keras_pu.models import unet_builder
from keras_pu.training import Recipe
from keras_pu.training import RecipeError
from tests._backend_utils import to_numpy


def test_the_architectures_are_registered_with_names_and_aliases():
    assert {"ResidualUNet", "ResUNet", "PUUNet"} <= set(registry.list_models())
    assert registry.get_model_class("pu-unet") is PUUNet
    assert registry.get_model_spec("RES_UNET").name == "ResUNet"
    spec = registry.get_model_spec("PUUNet")
    assert spec.display_name == "PU-UNet"
    assert spec.registered_name == "keras_pu>PUUNet"
    assert spec.module == "keras_pu.models.residual_unet"
    assert spec.input_size_multiple({"widths": 4, "depth": 2}) == 4
    # The class's own defaults (widths 16, depth 4), not a copy of them.
    assert spec.input_size_multiple({}) == 16
    with pytest.raises(registry.UnknownModelError, match="Did you mean 'PUUNet'"):
        registry.get_model_spec("PUUNe")


def test_a_name_cannot_be_registered_twice(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    with pytest.raises(ValueError, match="already a name of PUUNet"):

        @registry.register_model(aliases=("pu_unet",))
        class Other(SegmentationModel):
            pass


@pytest.fixture
def tiny_custom_model(monkeypatch):
    """A new architecture, registered for this test only."""
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @registry.register_model(display_name="Tiny", aliases=("tiny",))
    class TinyCustomNet(SegmentationModel):
        @classmethod
        def input_size_multiple(cls, config):
            return 8

    return TinyCustomNet


def test_recipe_and_cli_ask_the_registry(tiny_custom_model):
    from keras_pu.cli.train import _model_class

    recipe = Recipe.from_dict(
        {"model": {"class": "TinyCustomNet"}, "data": {"image_size": [16, 16]}}
    )
    assert recipe.get("model.class") == "TinyCustomNet"
    with pytest.raises(RecipeError, match="multiples of 8"):
        Recipe.from_dict(
            {"model": {"class": "TinyCustomNet"}, "data": {"image_size": [12, 12]}}
        )
    assert _model_class("tiny") == "TinyCustomNet"
    # The trainer builds what the registry names, exported or not.
    from keras_pu.training import build_model

    with pytest.raises(RecipeError, match="TinyCustomNet takes no argument 'widths'"):
        build_model(recipe.replace({"model.config": {"widths": 4}}))


def test_zoo_rebuilds_registered_architectures_only():
    from keras_pu.zoo.loading import is_resizable

    assert is_resizable({"registered_name": "keras_pu>ResUNet"})
    assert not is_resizable({"registered_name": "Functional"})


def _plain_block(filters, level, strides, name):
    return ResidualBlock(filters, strides=strides, name=name)


def test_builder_takes_a_plugged_in_encoder():
    """Any callable returning skip features (full resolution first) is an
    encoder: here three strided convolutions, as a pretrained backbone's
    stages would be."""

    def encoder(x):
        skips = []
        for level, filters in enumerate((4, 8, 8)):
            x = keras.layers.Conv2D(
                filters, 3, strides=1 if level == 0 else 2, padding="same",
                name=unet_builder.encoder_stage_name(level),
            )(x)
            skips.append(x)
        return skips

    image = keras.Input((16, 16, 3))
    x = unet_builder.unet_decoder(encoder(image), (4, 8), _plain_block,
                                  upsampling="bilinear")
    model = SegmentationModel(image, unet_builder.segmentation_head(x, 2))
    logits = to_numpy(model(np.zeros((1, 16, 16, 3), "float32")))
    assert logits.shape == (1, 16, 16, 2)
    roles = unet_builder.unet_feature_layers(3, 2)
    assert roles == {
        "encoder": ["encoder_stage_0", "encoder_stage_1", "encoder_stage_2"],
        "decoder": ["decoder_stage_1"],
        "teacher": "decoder_stage_0",
    }
    for name in roles["encoder"] + roles["decoder"] + [roles["teacher"]]:
        model.get_layer(name)  # every role names a layer of the graph
    with pytest.raises(ValueError, match="3 skips need 2 decoder widths"):
        unet_builder.unet_decoder(encoder(image), (4,), _plain_block)


def test_pu_unet_is_built_by_the_builder():
    model = PUUNet(input_shape=(32, 32, 3), widths=4, depth=2)
    assert model.feature_layers == unet_builder.unet_feature_layers(3, 2)
    assert model.get_layer(unet_builder.HEAD_LAYER).dtype == "float32"
