"""Segmentation metrics of keras-pu.

- Training-time Keras metrics (`Dice`, `IoU`, `Precision`, `Recall`) for
  `model.compile(metrics=...)`: keras.ops only, any backend.
- `keras_pu.metrics.evaluation`: the numpy/scipy evaluator used by
  `keras-pu evaluate`, with per-image results, HD95 and the image-level
  false-positive rate on images whose ground truth is empty.
"""

from keras_pu.metrics.overlap import IoU
from keras_pu.metrics.overlap import Dice
from keras_pu.metrics.overlap import Precision
from keras_pu.metrics.overlap import Recall
from keras_pu.metrics.evaluation import SegmentationEvaluator
from keras_pu.metrics.evaluation import hd95
from keras_pu.metrics.evaluation import overlap_scores

__all__ = [
    "Dice",
    "IoU",
    "Precision",
    "Recall",
    "SegmentationEvaluator",
    "hd95",
    "overlap_scores",
]
