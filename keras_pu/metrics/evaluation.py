"""Evaluation of binary segmentations with numpy and scipy: per-image
results and their means.

This is what `keras-pu evaluate` reports. Each image is scored on its own
(at whatever size the caller gives; the CLI resizes predictions back to the
image's original size first), then the scores are averaged over images
(science.md section 3).

Per image, from the thresholded prediction P (`probability > threshold`)
and the ground truth G:

- Dice `2|P∩G| / (|P|+|G|)`, IoU `|P∩G| / |P∪G|`, precision `|P∩G| / |P|`,
  recall `|P∩G| / |G|`. A 0/0 ratio is 1 when P and G are both empty (a
  correct "no lesion"), else 0: an empty prediction on an image with a
  lesion gets 0 on all four, and so does any prediction on a lesion-free
  image. (The same rule as the training-time metrics.)
- HD95: the 95th percentile of the distances from each boundary pixel of P
  to the boundary of G and from each boundary pixel of G to the boundary of
  P, pooled (the convention of medpy's `hd95`, used by TransUNet and
  SelfReg-UNet). Boundary = the mask minus its erosion by the 4-connected
  cross; distances are Euclidean, from `scipy.ndimage.distance_transform_edt`,
  in pixels or, with `spacing`, in physical units. Both empty: 0. Exactly
  one empty: undefined. `hd95_one_empty="nan"` (default) records NaN,
  leaves the image out of the HD95 mean and counts it in
  `hd95_undefined_images`; `"diagonal"` records the image diagonal (the
  largest possible distance) instead, which penalises a missed or
  hallucinated lesion.
- Image-level false positive: on an image whose ground truth is empty, any
  predicted foreground pixel. The false-positive rate is the fraction of
  such images with one; it is `None` when the set has no empty-ground-truth
  image.
"""

import csv
import json
import math

import numpy as np

HD95_ONE_EMPTY = ("nan", "diagonal")

SUMMARY_KEYS = ("dice", "iou", "precision", "recall")


def _as_bool_mask(x, name):
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D mask (height, width) or (height, width, "
            f"1); received an array of shape {x.shape}."
        )
    return x if x.dtype == bool else x > 0.5


def confusion_counts(prediction, ground_truth):
    """Returns (TP, FP, FN) pixel counts of two boolean masks."""
    tp = int(np.count_nonzero(prediction & ground_truth))
    fp = int(np.count_nonzero(prediction & ~ground_truth))
    fn = int(np.count_nonzero(~prediction & ground_truth))
    return tp, fp, fn


def _ratio(numerator, denominator, both_empty):
    if denominator > 0:
        return numerator / denominator
    return 1.0 if both_empty else 0.0


def overlap_scores(prediction, ground_truth):
    """Dice, IoU, precision and recall of one image.

    Args:
        prediction: boolean (or 0/1) mask of shape (H, W) or (H, W, 1).
        ground_truth: boolean (or 0/1) mask of the same shape.

    Returns:
        A dict with `dice`, `iou`, `precision`, `recall` (floats), following
        the module's empty-mask rule.

    Example:

    ```python
    import numpy as np
    from keras_pu.metrics import overlap_scores

    gt = np.zeros((8, 8), bool); gt[2:6, 2:6] = True
    overlap_scores(gt, gt)["dice"]  # 1.0
    ```
    """
    p = _as_bool_mask(prediction, "prediction")
    g = _as_bool_mask(ground_truth, "ground_truth")
    _check_same_shape(p, g)
    tp, fp, fn = confusion_counts(p, g)
    both_empty = tp + fp + fn == 0
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "precision": _ratio(tp, tp + fp, both_empty),
        "recall": _ratio(tp, tp + fn, both_empty),
    }


def _check_same_shape(p, g):
    if p.shape != g.shape:
        raise ValueError(
            f"Prediction and ground truth differ in size: {p.shape} vs "
            f"{g.shape}. Resize the prediction to the ground truth's size "
            "before scoring."
        )


def _boundary(mask):
    from scipy import ndimage

    cross = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=cross, iterations=1)


def hd95(prediction, ground_truth, spacing=None, one_empty="nan"):
    """95th-percentile symmetric Hausdorff distance between two masks.

    Pooled convention (medpy): the 95th percentile (linear interpolation)
    of the boundary-to-boundary distances in both directions together.

    Args:
        prediction: boolean (or 0/1) mask of shape (H, W) or (H, W, 1).
        ground_truth: mask of the same shape.
        spacing: pixel size `(row, column)` or one number; distances are
            then in those units. Defaults to `None` (pixels).
        one_empty: value when exactly one mask is empty: `"nan"` (default)
            or `"diagonal"` (the image diagonal, in the same units).

    Returns:
        A float: 0 when both masks are empty.

    Example:

    ```python
    import numpy as np
    from keras_pu.metrics import hd95

    a = np.zeros((9, 9), bool); a[4, 1] = True
    b = np.zeros((9, 9), bool); b[4, 5] = True
    hd95(a, b)  # 4.0
    ```
    """
    from scipy import ndimage

    if one_empty not in HD95_ONE_EMPTY:
        raise ValueError(
            f"hd95: `one_empty` must be one of {HD95_ONE_EMPTY}. Received: "
            f"one_empty={one_empty!r}"
        )
    p = _as_bool_mask(prediction, "prediction")
    g = _as_bool_mask(ground_truth, "ground_truth")
    _check_same_shape(p, g)
    spacing = _check_spacing(spacing, p.ndim)
    p_any, g_any = bool(p.any()), bool(g.any())
    if not p_any and not g_any:
        return 0.0
    if p_any != g_any:
        if one_empty == "nan":
            return math.nan
        extent = np.asarray(p.shape, float) * (
            1.0 if spacing is None else np.asarray(spacing, float)
        )
        return float(np.sqrt(np.sum(extent**2)))
    bp, bg = _boundary(p), _boundary(g)
    to_g = ndimage.distance_transform_edt(~bg, sampling=spacing)
    to_p = ndimage.distance_transform_edt(~bp, sampling=spacing)
    distances = np.concatenate([to_g[bp], to_p[bg]])
    return float(np.percentile(distances, 95))


def _check_spacing(spacing, ndim):
    if spacing is None:
        return None
    values = np.broadcast_to(np.asarray(spacing, float), (ndim,))
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            f"`spacing` must be positive numbers (one per axis); received "
            f"spacing={spacing!r}."
        )
    return tuple(float(v) for v in values)


def _mean(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else None


def _std(values):
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.std(values)) if values else None


class SegmentationEvaluator:
    """Scores binary segmentations image by image and averages them.

    Add one image at a time with `add`; `per_image` holds one dict per image
    and `summary()` the means. See the module docstring for the exact
    definitions and the empty-mask rules.

    Args:
        threshold: a pixel of a probability map is foreground when its
            probability is `> threshold`. Boolean predictions are used as
            they are. Defaults to `0.5`.
        spacing: pixel size (`(row, column)` or one number) for HD95.
            Defaults to `None` (pixels).
        compute_hd95: compute HD95 (needs scipy). Defaults to `True`.
        hd95_one_empty: HD95 when exactly one of prediction and ground
            truth is empty: `"nan"` (left out of the mean and counted) or
            `"diagonal"`. Defaults to `"nan"`.
        group_key: metadata key whose value groups images in the summary
            (e.g. BUSI's `"class"`: benign, malignant, normal). Defaults to
            `"class"`; images without it are only in the overall figures.

    Example:

    ```python
    import numpy as np
    from keras_pu.metrics import SegmentationEvaluator

    evaluator = SegmentationEvaluator()
    gt = np.zeros((16, 16), bool); gt[4:12, 4:12] = True
    evaluator.add("a", np.where(gt, 0.9, 0.1), gt)
    evaluator.add("b", np.full((16, 16), 0.2), np.zeros((16, 16), bool))
    evaluator.summary()["dice"]  # 1.0
    ```
    """

    def __init__(
        self,
        threshold=0.5,
        spacing=None,
        compute_hd95=True,
        hd95_one_empty="nan",
        group_key="class",
    ):
        if not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
            raise ValueError(
                "SegmentationEvaluator: `threshold` must be a probability in "
                f"[0, 1). Received: threshold={threshold!r}"
            )
        if hd95_one_empty not in HD95_ONE_EMPTY:
            raise ValueError(
                "SegmentationEvaluator: `hd95_one_empty` must be one of "
                f"{HD95_ONE_EMPTY}. Received: hd95_one_empty={hd95_one_empty!r}"
            )
        if compute_hd95:
            try:
                import scipy  # noqa: F401
            except ImportError:
                raise ImportError(
                    "HD95 needs scipy: `pip install scipy` (or "
                    "`pip install 'keras-pu[eval]'`), or pass "
                    "compute_hd95=False."
                ) from None
        self.threshold = float(threshold)
        self.spacing = spacing
        self.compute_hd95 = bool(compute_hd95)
        self.hd95_one_empty = hd95_one_empty
        self.group_key = group_key
        self.per_image = []

    def add(self, image_id, prediction, ground_truth, metadata=None,
            spacing=None):
        """Scores one image and records it.

        Args:
            image_id: the image's id (a string), first column of the CSV.
            prediction: probabilities (float, thresholded at `threshold`)
                or a boolean mask, shape (H, W) or (H, W, 1).
            ground_truth: boolean or 0/1 mask of the same shape (values
                > 0.5 are foreground).
            metadata: optional dict of extra columns (e.g. `{"class":
                "normal"}`).
            spacing: this image's pixel size, overriding the evaluator's.

        Returns:
            The image's result dict.
        """
        prediction = np.asarray(prediction)
        if prediction.dtype == bool:
            p = _as_bool_mask(prediction, f"prediction for '{image_id}'")
        else:
            if prediction.ndim == 3 and prediction.shape[-1] == 1:
                prediction = prediction[..., 0]
            if prediction.ndim != 2:
                raise ValueError(
                    f"prediction for '{image_id}' must be (H, W) or (H, W, "
                    f"1); received shape {prediction.shape}."
                )
            p = prediction > self.threshold
        g = _as_bool_mask(ground_truth, f"ground truth of '{image_id}'")
        if p.shape != g.shape:
            raise ValueError(
                f"Image '{image_id}': prediction {p.shape} and ground truth "
                f"{g.shape} differ in size. Resize the prediction to the "
                "ground truth's size before scoring."
            )
        tp, fp, fn = confusion_counts(p, g)
        row = {"id": str(image_id), "height": p.shape[0], "width": p.shape[1]}
        row.update(overlap_scores(p, g))
        if self.compute_hd95:
            row["hd95"] = hd95(
                p,
                g,
                spacing=self.spacing if spacing is None else spacing,
                one_empty=self.hd95_one_empty,
            )
        row.update(
            gt_pixels=tp + fn,
            pred_pixels=tp + fp,
            tp=tp,
            fp=fp,
            fn=fn,
            gt_empty=tp + fn == 0,
            pred_empty=tp + fp == 0,
        )
        for key, value in (metadata or {}).items():
            if key not in row and isinstance(value, (str, int, float, bool)):
                row[key] = value
        self.per_image.append(row)
        return row

    def summary(self):
        """Means over the images added so far (a JSON-ready dict).

        Keys: `num_images`, the mean and standard deviation of `dice`,
        `iou`, `precision`, `recall`; `hd95` (mean over the images where it
        is defined), `hd95_images`, `hd95_undefined_images`,
        `hd95_one_empty`; `empty_gt_images`,
        `empty_gt_false_positive_images`, `empty_gt_false_positive_rate`
        (`None` without empty-ground-truth images); `missed_lesion_images`
        (lesion present, nothing predicted); `threshold`; and `by_group`
        (the same figures per value of `group_key`) when images carry it.
        """
        result = self._summarize(self.per_image)
        groups = {}
        for row in self.per_image:
            if self.group_key and self.group_key in row:
                groups.setdefault(str(row[self.group_key]), []).append(row)
        if groups:
            result["by_group"] = {
                name: self._summarize(rows) for name, rows in sorted(groups.items())
            }
        return result

    def _summarize(self, rows):
        out = {"num_images": len(rows), "threshold": self.threshold}
        for key in SUMMARY_KEYS:
            values = [row[key] for row in rows]
            out[key] = _mean(values)
            out[f"{key}_std"] = _std(values)
        if self.compute_hd95:
            values = [row["hd95"] for row in rows]
            defined = [v for v in values if not math.isnan(v)]
            out["hd95"] = _mean(values)
            out["hd95_std"] = _std(values)
            out["hd95_images"] = len(defined)
            one_empty = sum(row["gt_empty"] != row["pred_empty"] for row in rows)
            out["hd95_one_empty_images"] = one_empty
            out["hd95_undefined_images"] = len(values) - len(defined)
            out["hd95_one_empty"] = self.hd95_one_empty
        empty_gt = [row for row in rows if row["gt_empty"]]
        false_positives = sum(not row["pred_empty"] for row in empty_gt)
        out["empty_gt_images"] = len(empty_gt)
        out["empty_gt_false_positive_images"] = false_positives
        out["empty_gt_false_positive_rate"] = (
            false_positives / len(empty_gt) if empty_gt else None
        )
        out["missed_lesion_images"] = sum(
            (not row["gt_empty"]) and row["pred_empty"] for row in rows
        )
        return out

    def write_csv(self, path):
        """Writes one row per image (NaN HD95 as an empty cell)."""
        columns = []
        for row in self.per_image:
            columns.extend(k for k in row if k not in columns)
        from keras_pu.atomic_files import atomic_path

        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in self.per_image:
                writer.writerow(
                    {k: _csv_value(row.get(k)) for k in columns}
                )

    def write_json(self, path, extra=None):
        """Writes `summary()` (plus `extra` keys) as JSON; NaN becomes null."""
        data = dict(extra or {})
        data.update(self.summary())
        from keras_pu.atomic_files import write_text

        write_text(path, json.dumps(_json_safe(data), indent=2,
                                    allow_nan=False) + "\n")


def _csv_value(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value
