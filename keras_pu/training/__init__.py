"""Training recipes and the training driver used by `keras-pu train`."""

from keras_pu.training.recipe import Recipe
from keras_pu.training.recipe import RecipeError
from keras_pu.training.recipe import available_recipes
from keras_pu.training.recipe import describe_schema
from keras_pu.training.trainer import TrainingError
from keras_pu.training.trainer import build_model
from keras_pu.training.trainer import train

__all__ = [
    "Recipe",
    "RecipeError",
    "TrainingError",
    "available_recipes",
    "build_model",
    "describe_schema",
    "train",
]
