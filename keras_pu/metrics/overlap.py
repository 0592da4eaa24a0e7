"""Training-time overlap metrics for binary segmentation logits: Dice, IoU,
precision and recall, averaged per image.

Conventions (shared with `keras_pu.metrics.evaluation`, so the validation
Dice seen during training and the Dice of `keras-pu evaluate` mean the same
thing, up to the image size they are computed at):

- `y_pred` are logits (keras-pu models output one logit per pixel and
  class); a pixel is foreground when `sigmoid(logit) > threshold`.
  `from_logits=False` takes probabilities instead. `y_true` is foreground
  where it is > 0.5.
- Each image gets its own score from its true positives (TP), false
  positives (FP) and false negatives (FN); the metric is the mean over all
  images seen (`per_image=True`, the default). That is how segmentation
  results are reported (science.md section 3): every image counts the same,
  whatever the size of its lesion. `per_image=False` accumulates TP/FP/FN
  over all pixels of all images instead ("global" or "micro" scores),
  which large lesions dominate.
- A 0/0 ratio is 1 when prediction and ground truth are both empty (a
  correct "no lesion"), else 0: an empty prediction on an image with a
  lesion scores Dice = IoU = precision = recall = 0, and any prediction on a
  lesion-free image scores 0 on all four.
"""

import math

import keras
from keras import ops


def _prepare(y_true, y_pred, from_logits, threshold):
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(y_pred.shape) - 1 and y_pred.shape[-1] == 1:
        y_true = ops.expand_dims(y_true, -1)
    if len(y_true.shape) != len(y_pred.shape):
        raise ValueError(
            "Segmentation metric: y_true and y_pred must have the same rank. "
            f"Received y_true.shape={tuple(y_true.shape)}, y_pred.shape="
            f"{tuple(y_pred.shape)}."
        )
    y_pred = ops.cast(y_pred, "float32")
    if from_logits:
        # sigmoid(x) > t  <=>  x > log(t / (1 - t)); comparing logits avoids
        # sigmoid rounding to exactly t in float32 for logits near the cut.
        cut = math.log(threshold / (1.0 - threshold))
    else:
        cut = threshold
    pred = ops.cast(y_pred > cut, "float32")
    true = ops.cast(ops.cast(y_true, "float32") > 0.5, "float32")
    return true, pred


def confusion_per_image(true, pred):
    """TP, FP and FN of each image (float32 tensors of shape (batch,))."""
    axes = tuple(range(1, len(pred.shape)))
    tp = ops.sum(true * pred, axis=axes)
    fp = ops.sum((1.0 - true) * pred, axis=axes)
    fn = ops.sum(true * (1.0 - pred), axis=axes)
    return tp, fp, fn


def _ratio(numerator, denominator, both_empty):
    """numerator / denominator, with 0/0 -> 1 where both_empty else 0."""
    numerator = ops.convert_to_tensor(numerator)
    denominator = ops.convert_to_tensor(denominator)
    safe = ops.where(denominator > 0, denominator, ops.ones_like(denominator))
    fallback = ops.cast(both_empty, "float32")
    return ops.where(denominator > 0, numerator / safe, fallback)


def dice_from_counts(tp, fp, fn):
    return _ratio(2.0 * tp, 2.0 * tp + fp + fn, (tp + fp + fn) == 0)


def iou_from_counts(tp, fp, fn):
    return _ratio(tp, tp + fp + fn, (tp + fp + fn) == 0)


def precision_from_counts(tp, fp, fn):
    return _ratio(tp, tp + fp, (tp + fp + fn) == 0)


def recall_from_counts(tp, fp, fn):
    return _ratio(tp, tp + fn, (tp + fp + fn) == 0)


class _OverlapMetric(keras.metrics.Metric):
    """Base class: per-image (or global) score from TP/FP/FN counts."""

    score_fn = None

    def __init__(
        self,
        threshold=0.5,
        from_logits=True,
        per_image=True,
        name=None,
        dtype="float32",
    ):
        super().__init__(name=name, dtype=dtype)
        cls_name = type(self).__name__
        if not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
            raise ValueError(
                f"{cls_name}: `threshold` is a probability and must be in "
                f"(0, 1). Received: threshold={threshold!r}"
            )
        self.threshold = float(threshold)
        self.from_logits = bool(from_logits)
        self.per_image = bool(per_image)
        if self.per_image:
            self.score_sum = self.add_variable(
                (), "zeros", dtype="float32", name="score_sum"
            )
            self.weight_sum = self.add_variable(
                (), "zeros", dtype="float32", name="weight_sum"
            )
        else:
            self.tp = self.add_variable((), "zeros", dtype="float32", name="tp")
            self.fp = self.add_variable((), "zeros", dtype="float32", name="fp")
            self.fn = self.add_variable((), "zeros", dtype="float32", name="fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true, pred = _prepare(y_true, y_pred, self.from_logits, self.threshold)
        tp, fp, fn = confusion_per_image(true, pred)
        if sample_weight is None:
            weight = ops.ones_like(tp)
        else:
            weight = ops.cast(sample_weight, "float32")
            if len(weight.shape) > 1:
                # One weight per image: pixel weights are averaged.
                weight = ops.mean(weight, axis=tuple(range(1, len(weight.shape))))
            weight = ops.broadcast_to(weight, ops.shape(tp))
        if self.per_image:
            score = type(self).score_fn(tp, fp, fn)
            self.score_sum.assign_add(ops.sum(score * weight))
            self.weight_sum.assign_add(ops.sum(weight))
        else:
            self.tp.assign_add(ops.sum(tp * weight))
            self.fp.assign_add(ops.sum(fp * weight))
            self.fn.assign_add(ops.sum(fn * weight))

    def result(self):
        if self.per_image:
            return _ratio(self.score_sum, self.weight_sum, False)
        return type(self).score_fn(self.tp, self.fp, self.fn)

    def get_config(self):
        config = super().get_config()
        config.update(
            threshold=self.threshold,
            from_logits=self.from_logits,
            per_image=self.per_image,
        )
        return config


_DOC = """{title} of binary segmentation logits, {formula}, averaged per image.

    See the module docstring for the conventions: logits thresholded at
    `sigmoid > threshold`, one score per image then the mean over images
    (`per_image=True`) or one score from all pixels (`per_image=False`),
    0/0 = 1 when prediction and ground truth are both empty, else 0.

    Args:
        threshold: probability above which a pixel is foreground, in
            (0, 1). Defaults to `0.5`.
        from_logits: `True` if `y_pred` are logits (keras-pu models),
            `False` for probabilities. Defaults to `True`.
        per_image: mean of per-image scores (`True`) or one global score
            over all pixels (`False`). Defaults to `True`.
        name: metric name (the key in the training logs). Defaults to
            `"{name}"`.
        dtype: dtype of the result. Defaults to `"float32"`.

    Example:

    ```python
    import numpy as np
    import keras_pu

    metric = keras_pu.metrics.{cls}()
    y_true = np.zeros((2, 8, 8, 1), "float32")
    y_true[:, 2:6, 2:6] = 1
    logits = np.where(y_true > 0, 4.0, -4.0).astype("float32")
    metric.update_state(y_true, logits)
    float(metric.result())  # 1.0
    ```
    """


@keras.saving.register_keras_serializable(package="keras_pu")
class Dice(_OverlapMetric):
    score_fn = staticmethod(dice_from_counts)

    def __init__(self, threshold=0.5, from_logits=True, per_image=True,
                 name="dice", dtype="float32"):
        super().__init__(threshold, from_logits, per_image, name, dtype)


@keras.saving.register_keras_serializable(package="keras_pu")
class IoU(_OverlapMetric):
    score_fn = staticmethod(iou_from_counts)

    def __init__(self, threshold=0.5, from_logits=True, per_image=True,
                 name="iou", dtype="float32"):
        super().__init__(threshold, from_logits, per_image, name, dtype)


@keras.saving.register_keras_serializable(package="keras_pu")
class Precision(_OverlapMetric):
    score_fn = staticmethod(precision_from_counts)

    def __init__(self, threshold=0.5, from_logits=True, per_image=True,
                 name="precision", dtype="float32"):
        super().__init__(threshold, from_logits, per_image, name, dtype)


@keras.saving.register_keras_serializable(package="keras_pu")
class Recall(_OverlapMetric):
    score_fn = staticmethod(recall_from_counts)

    def __init__(self, threshold=0.5, from_logits=True, per_image=True,
                 name="recall", dtype="float32"):
        super().__init__(threshold, from_logits, per_image, name, dtype)


Dice.__doc__ = _DOC.format(
    title="Dice coefficient", formula="`2 TP / (2 TP + FP + FN)`",
    name="dice", cls="Dice")
IoU.__doc__ = _DOC.format(
    title="Intersection over union (Jaccard index)",
    formula="`TP / (TP + FP + FN)`", name="iou", cls="IoU")
Precision.__doc__ = _DOC.format(
    title="Pixel precision", formula="`TP / (TP + FP)`",
    name="precision", cls="Precision")
Recall.__doc__ = _DOC.format(
    title="Pixel recall (sensitivity)", formula="`TP / (TP + FN)`",
    name="recall", cls="Recall")
