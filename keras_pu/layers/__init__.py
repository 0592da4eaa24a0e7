"""Keras layers of keras-pu (backend-agnostic, registered serializable)."""

from keras_pu.layers.product_unit import ProductUnit2D
from keras_pu.layers.residual_block import ProductUnitResidualBlock
from keras_pu.layers.residual_block import ResidualBlock

__all__ = ["ProductUnit2D", "ResidualBlock", "ProductUnitResidualBlock"]
