"""Training-time metrics (every backend) and the numpy/scipy evaluator,
on hand-computed cases including empty prediction and empty ground truth."""

import csv
import json
import math

import keras
import numpy as np
import pytest

from keras_pu.metrics import Dice
from keras_pu.metrics import IoU
from keras_pu.metrics import Precision
from keras_pu.metrics import Recall
from keras_pu.metrics import SegmentationEvaluator
from keras_pu.metrics import hd95
from keras_pu.metrics import overlap_scores
from tests._backend_utils import to_numpy


def _batch():
    """Three 4x4 images with hand-countable overlaps.

    0: GT 4 px, prediction 3 of them + 1 extra -> TP 3, FP 1, FN 1
    1: GT empty, prediction empty             -> both empty
    2: GT 2 px, prediction empty              -> missed lesion
    """
    y = np.zeros((3, 4, 4, 1), "float32")
    p = np.zeros((3, 4, 4, 1), "float32")
    y[0, 0, :4] = 1
    p[0, 0, :3] = 1
    p[0, 3, 3] = 1
    y[2, 1, 1:3] = 1
    logits = np.where(p > 0, 5.0, -5.0).astype("float32")
    return y, logits


EXPECTED_PER_IMAGE = {
    Dice: (2 * 3 / (2 * 3 + 1 + 1), 1.0, 0.0),
    IoU: (3 / 5, 1.0, 0.0),
    Precision: (3 / 4, 1.0, 0.0),
    Recall: (3 / 4, 1.0, 0.0),
}


@pytest.mark.parametrize("cls", [Dice, IoU, Precision, Recall])
def test_training_metrics_per_image_mean(cls):
    y, logits = _batch()
    metric = cls()
    metric.update_state(y, logits)
    expected = np.mean(EXPECTED_PER_IMAGE[cls])
    assert float(to_numpy(metric.result())) == pytest.approx(expected, 1e-6)
    # Accumulates over batches; image weights weigh images.
    metric.update_state(y[:1], logits[:1])
    assert float(to_numpy(metric.result())) == pytest.approx(
        (3 * expected + EXPECTED_PER_IMAGE[cls][0]) / 4, 1e-6
    )
    metric.reset_state()
    metric.update_state(y, logits, sample_weight=np.array([1.0, 0.0, 0.0]))
    assert float(to_numpy(metric.result())) == pytest.approx(
        EXPECTED_PER_IMAGE[cls][0], 1e-6
    )


def test_training_metrics_global_mode():
    y, logits = _batch()
    # All pixels together: TP 3, FP 1, FN 1 + 2.
    expected = {Dice: 6 / 10, IoU: 3 / 7, Precision: 3 / 4, Recall: 3 / 6}
    for cls, value in expected.items():
        metric = cls(per_image=False)
        metric.update_state(y, logits)
        assert float(to_numpy(metric.result())) == pytest.approx(value, 1e-6)


def test_threshold_and_probabilities():
    y = np.ones((1, 1, 2, 1), "float32")
    probabilities = np.array([0.6, 0.8], "float32").reshape(1, 1, 2, 1)
    strict = Recall(threshold=0.7, from_logits=False)
    strict.update_state(y, probabilities)
    assert float(to_numpy(strict.result())) == pytest.approx(0.5)
    logits = np.log(probabilities / (1 - probabilities))
    strict_logits = Recall(threshold=0.7)
    strict_logits.update_state(y, logits)
    assert float(to_numpy(strict_logits.result())) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="threshold"):
        Dice(threshold=1.5)


def test_metrics_serialize_and_compile():
    metric = Dice(threshold=0.3, per_image=False, name="d")
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(restored, Dice)
    assert restored.get_config() == metric.get_config()


# --- evaluator --------------------------------------------------------------


def test_overlap_scores_hand_computed():
    gt = np.zeros((4, 4), bool)
    gt[0, :4] = True
    pred = np.zeros((4, 4), bool)
    pred[0, :3] = True
    pred[3, 3] = True
    scores = overlap_scores(pred, gt)
    assert scores == pytest.approx(
        {"dice": 0.75, "iou": 0.6, "precision": 0.75, "recall": 0.75}
    )


def test_overlap_scores_empty_cases():
    empty = np.zeros((4, 4), bool)
    lesion = empty.copy()
    lesion[1, 1] = True
    assert overlap_scores(empty, empty) == {
        "dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0}
    assert overlap_scores(empty, lesion) == {  # missed lesion
        "dice": 0.0, "iou": 0.0, "precision": 0.0, "recall": 0.0}
    assert overlap_scores(lesion, empty) == {  # false positive
        "dice": 0.0, "iou": 0.0, "precision": 0.0, "recall": 0.0}


def test_hd95_hand_computed():
    a = np.zeros((9, 9), bool)
    b = np.zeros((9, 9), bool)
    a[4, 1] = True
    b[4, 5] = True
    assert hd95(a, b) == 4.0
    assert hd95(a, b, spacing=(1.0, 0.5)) == 2.0
    assert hd95(a, a) == 0.0
    # A 3-pixel vertical bar vs one of its end pixels: distances from the
    # bar's pixels to the point are 0, 1, 2 and from the point to the bar 0.
    bar = np.zeros((9, 9), bool)
    bar[2:5, 4] = True
    point = np.zeros((9, 9), bool)
    point[2, 4] = True
    # Pooled distances [0, 1, 2, 0] -> 95th percentile by linear
    # interpolation: sorted [0, 0, 1, 2], position 0.95 * 3 = 2.85 -> 1.85.
    assert hd95(bar, point) == pytest.approx(1.85)


def test_hd95_uses_boundaries_only():
    # Two concentric filled squares: interior pixels do not count. Outer
    # 7x7 boundary vs inner 3x3 boundary are exactly 2 apart (Chebyshev
    # ring), farther at the corners: distance from an outer corner to the
    # nearest inner corner is sqrt(8).
    outer = np.zeros((11, 11), bool)
    outer[2:9, 2:9] = True
    inner = np.zeros((11, 11), bool)
    inner[4:7, 4:7] = True
    value = hd95(outer, inner)
    brute = _brute_force_hd95(outer, inner)
    assert value == pytest.approx(brute)
    assert 2.0 <= value <= math.sqrt(8)


def _brute_force_hd95(a, b):
    def boundary(m):
        out = np.zeros_like(m)
        for i, j in zip(*np.nonzero(m)):
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ii, jj = i + di, j + dj
                if not (0 <= ii < m.shape[0] and 0 <= jj < m.shape[1]) or not m[ii, jj]:
                    out[i, j] = True
        return out

    pa = np.argwhere(boundary(a)).astype(float)
    pb = np.argwhere(boundary(b)).astype(float)
    d = np.sqrt(((pa[:, None] - pb[None]) ** 2).sum(-1))
    return np.percentile(np.concatenate([d.min(1), d.min(0)]), 95)


def test_hd95_matches_brute_force_on_random_blobs():
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = rng.random((20, 24)) > 0.7
        b = rng.random((20, 24)) > 0.6
        assert hd95(a, b) == pytest.approx(_brute_force_hd95(a, b))


def test_hd95_empty_cases():
    empty = np.zeros((3, 4), bool)
    lesion = empty.copy()
    lesion[1, 1] = True
    assert hd95(empty, empty) == 0.0
    assert math.isnan(hd95(empty, lesion))
    assert math.isnan(hd95(lesion, empty))
    assert hd95(lesion, empty, one_empty="diagonal") == pytest.approx(5.0)
    with pytest.raises(ValueError, match="one_empty"):
        hd95(lesion, empty, one_empty="zero")


def test_evaluator_summary_per_image_and_files(tmp_path):
    ev = SegmentationEvaluator()
    gt = np.zeros((4, 4), bool)
    gt[0, :4] = True
    probs = np.full((4, 4), 0.2)
    probs[0, :3] = 0.9
    probs[3, 3] = 0.51
    ev.add("partial", probs, gt, metadata={"class": "benign"})
    ev.add("both_empty", np.zeros((4, 4)), np.zeros((4, 4)),
           metadata={"class": "normal"})
    fp = np.zeros((4, 4))
    fp[2, 2] = 0.7
    ev.add("false_positive", fp, np.zeros((4, 4)),
           metadata={"class": "normal"})
    ev.add("missed", np.zeros((4, 4)), gt, metadata={"class": "benign"})
    # Exactly 0.5 is not > 0.5: background.
    ev.add("at_threshold", np.where(gt, 0.5, 0.0), gt)

    s = ev.summary()
    assert s["num_images"] == 5
    assert s["dice"] == pytest.approx((0.75 + 1 + 0 + 0 + 0) / 5)
    assert s["iou"] == pytest.approx((0.6 + 1) / 5)
    assert s["empty_gt_images"] == 2
    assert s["empty_gt_false_positive_images"] == 1
    assert s["empty_gt_false_positive_rate"] == 0.5
    assert s["missed_lesion_images"] == 2
    # HD95: defined for "partial" and "both_empty" (0); three images have
    # exactly one empty mask and are left out of the mean.
    partial_hd95 = ev.per_image[0]["hd95"]
    assert partial_hd95 == pytest.approx(
        _brute_force_hd95(probs > 0.5, gt)
    )
    assert s["hd95"] == pytest.approx(partial_hd95 / 2)
    assert s["hd95_images"] == 2
    assert s["hd95_undefined_images"] == 3
    assert s["by_group"]["normal"]["empty_gt_false_positive_rate"] == 0.5
    assert s["by_group"]["benign"]["num_images"] == 2

    ev.write_csv(tmp_path / "per_image.csv")
    ev.write_json(tmp_path / "metrics.json", extra={"model": "m"})
    rows = list(csv.DictReader(open(tmp_path / "per_image.csv")))
    assert [r["id"] for r in rows] == [
        "partial", "both_empty", "false_positive", "missed", "at_threshold"]
    assert rows[2]["hd95"] == ""  # NaN
    assert rows[0]["class"] == "benign"
    data = json.load(open(tmp_path / "metrics.json"))
    assert data["model"] == "m"
    assert data["dice"] == pytest.approx(s["dice"])


def test_evaluator_diagonal_mode_and_errors():
    ev = SegmentationEvaluator(hd95_one_empty="diagonal")
    lesion = np.zeros((6, 8), bool)
    lesion[2, 2] = True
    ev.add("fp", lesion, np.zeros((6, 8), bool))
    assert ev.summary()["hd95"] == pytest.approx(10.0)
    assert ev.summary()["hd95_undefined_images"] == 0
    assert ev.summary()["hd95_one_empty_images"] == 1
    with pytest.raises(ValueError, match="differ in size"):
        ev.add("bad", np.zeros((4, 4)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="hd95_one_empty"):
        SegmentationEvaluator(hd95_one_empty="max")
    assert SegmentationEvaluator().summary()["empty_gt_false_positive_rate"] is None
