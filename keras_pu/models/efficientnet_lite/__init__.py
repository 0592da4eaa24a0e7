"""EfficientNet-Lite0 with ImageNet weights, as a classifier and as a
multi-scale encoder for U-Nets.

    from keras_pu.models.efficientnet_lite import EfficientNetLite0
    model = EfficientNetLite0(weights="imagenet")          # 1000 classes
    encoder = EfficientNetLite0(input_shape=(256, 256, 3), include_top=False,
                                weights="imagenet", input_scale=1.0)

    unet = EncoderPUUNet(input_shape=(256, 256, 3))       # ImageNet encoder

The weights are the zoo backbone `efficientnet_lite0_imagenet` (Apache-2.0),
converted once by `scripts/convert_efficientnet_lite0.py`.
"""

from keras_pu.models.efficientnet_lite.model import PYRAMID_CHANNELS
from keras_pu.models.efficientnet_lite.model import EfficientNetLite0
from keras_pu.models.efficientnet_lite.model import block_specs
from keras_pu.models.efficientnet_lite.model import (
    build_efficientnet_lite0_features,
)
from keras_pu.models.efficientnet_lite.model import pyramid_layer_names
from keras_pu.models.efficientnet_lite.unet import EncoderPUUNet
from keras_pu.models.efficientnet_lite.unet import EncoderResUNet
from keras_pu.models.efficientnet_lite.unet import EncoderUNet
from keras_pu.models.efficientnet_lite.unet import UnfreezeEncoder
from keras_pu.models.efficientnet_lite.model import load_weights_by_name

__all__ = [
    "EfficientNetLite0",
    "EncoderUNet",
    "EncoderPUUNet",
    "EncoderResUNet",
    "UnfreezeEncoder",
    "build_efficientnet_lite0_features",
    "pyramid_layer_names",
    "block_specs",
    "PYRAMID_CHANNELS",
    "load_weights_by_name",
]
