"""The image-level peak gate (keras_pu.postprocess): the choice on
validation results, applying it, and its file."""

import json

import numpy as np
import pytest

from keras_pu.postprocess import GateError
from keras_pu.postprocess import PeakGate
from keras_pu.postprocess import choose_peak_gate
from keras_pu.postprocess import peak_probability
from keras_pu.postprocess import read_calibration_csv


def brute_force_best_mean_dice(peaks, dice, empty):
    """The best mean Dice over every set of images a gate value can keep:
    those whose peak reaches it (images with equal peaks go together;
    gating all needs a highest peak below 1)."""
    peaks = np.asarray(peaks, dtype=float)
    best = -1.0
    gates = [0.0] + sorted(set(peaks)) + ([1.0 + 1e-9] if peaks.max() < 1 else [])
    for gate in gates:
        gated = peaks < gate
        scores = np.array(dice, dtype=float)
        scores[gated] = np.asarray(empty, dtype=float)[gated]
        best = max(best, scores.mean())
    return best


def test_the_gate_empties_unsure_normal_images_and_keeps_sure_lesions():
    # Normal images (empty truth) predicted with moderate confidence; lesion
    # images with a peak near 1 (one unsure lesion at 0.65).
    peaks = [0.60, 0.70, 0.99, 0.98, 0.65, 1.00]
    dice = [0.00, 0.00, 0.80, 0.90, 0.30, 0.85]
    empty = [True, True, False, False, False, False]
    choice = choose_peak_gate(peaks, dice, empty)
    # Gating below 0.84 (the midpoint of 0.70 and 0.98) turns both normal
    # images into Dice 1 and costs the unsure lesion its 0.30.
    assert choice["min_peak_probability"] == pytest.approx(0.84)
    assert choice["dice_before"] == pytest.approx(np.mean(dice))
    assert choice["dice_after"] == pytest.approx((1 + 1 + 0.8 + 0.9 + 0 + 0.85) / 6)
    assert choice["dice_after"] == pytest.approx(
        brute_force_best_mean_dice(peaks, dice, empty))
    assert choice["false_positive_rate_before"] == 1.0
    assert choice["false_positive_rate_after"] == 0.0
    assert choice["lesion_images_gated"] == 1
    assert choice["num_images"] == 6 and choice["num_empty"] == 2


def test_the_choice_is_optimal_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        peaks = np.round(rng.uniform(0, 1, n), 2)
        empty = rng.uniform(size=n) < 0.4
        dice = np.where(empty, rng.uniform(size=n) < 0.5, rng.uniform(0, 1, n))
        dice = dice.astype(float)
        choice = choose_peak_gate(peaks, dice, empty)
        assert choice["dice_after"] == pytest.approx(
            brute_force_best_mean_dice(peaks, dice, empty))
        assert choice["dice_after"] >= choice["dice_before"] - 1e-12
        kept = peaks >= choice["min_peak_probability"]
        expected = np.where(kept, dice, empty.astype(float)).mean()
        assert choice["dice_after"] == pytest.approx(expected)


def test_without_images_to_gain_no_gate_is_chosen():
    # Every image has a lesion: gating can only lose, the smallest
    # candidate (0, no gate) wins.
    choice = choose_peak_gate([0.3, 0.9, 0.95], [0.2, 0.9, 0.7], [False] * 3)
    assert choice["min_peak_probability"] == 0.0
    assert choice["false_positive_rate_before"] is None
    # Ties go to the smallest gate: the empty image predicted empty
    # already (Dice 1) gains nothing from gating.
    choice = choose_peak_gate([0.1, 0.9], [1.0, 0.8], [True, False])
    assert choice["min_peak_probability"] == 0.0


@pytest.mark.parametrize("peaks,dice,empty,message", [
    ([], [], [], "No calibration images"),
    ([0.5], [0.5, 0.4], [False, True], "one length"),
    ([1.5], [0.5], [False], "in \\[0, 1\\]"),
    ([np.nan], [0.5], [False], "finite"),
])
def test_bad_calibration_input(peaks, dice, empty, message):
    with pytest.raises(GateError, match=message):
        choose_peak_gate(peaks, dice, empty)


def test_applying_the_gate():
    gate = PeakGate(0.9, threshold=0.5)
    unsure = np.full((4, 5), 0.8, np.float32)
    sure = unsure.copy()
    sure[1, 2] = 0.95
    assert peak_probability(sure) == pytest.approx(0.95)
    assert not gate.keeps(unsure) and gate.keeps(sure)
    assert not gate.mask(unsure).any()
    assert np.array_equal(gate.mask(sure), sure > 0.5)
    assert np.array_equal(gate.apply(unsure), np.zeros_like(unsure))
    assert gate.apply(sure) is not None and gate.apply(sure).max() == pytest.approx(0.95)
    # A gate of 0 never empties a mask.
    assert np.array_equal(PeakGate(0.0).mask(unsure), unsure > 0.5)
    assert peak_probability(np.zeros((0, 3))) == 0.0


def test_gate_file_round_trip_and_bad_files(tmp_path):
    gate = PeakGate(0.97, threshold=0.4, tta="flip",
                    calibration={"split": "val", "num_images": 80})
    path = tmp_path / "postprocess.json"
    gate.save(path)
    loaded = PeakGate.load(path)
    assert loaded.get_config() == gate.get_config()
    assert "0.97" in repr(loaded)
    with pytest.raises(GateError, match="No gate file"):
        PeakGate.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(GateError, match="not valid JSON"):
        PeakGate.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"threshold": 0.5}))
    with pytest.raises(GateError, match="not a keras-pu peak gate"):
        PeakGate.load(tmp_path / "other.json")
    config = gate.get_config()
    config["min_peak_probability"] = 2.0
    (tmp_path / "range.json").write_text(json.dumps(config))
    with pytest.raises(GateError, match="min_peak_probability must be"):
        PeakGate.load(tmp_path / "range.json")
    for bad in (-0.1, 1.1, float("nan"), True, "0.5"):
        with pytest.raises(GateError):
            PeakGate(bad)


def test_reading_calibration_results(tmp_path):
    path = tmp_path / "per_image.csv"
    path.write_text("id,dice,gt_empty,peak_probability\n"
                    "a,0.5,False,0.9\nb,1.0,True,0.2\n")
    ids, peaks, dice, empty = read_calibration_csv(path)
    assert ids == ["a", "b"] and peaks == [0.9, 0.2]
    assert dice == [0.5, 1.0] and empty == [False, True]
    (tmp_path / "old.csv").write_text("id,dice,gt_empty\na,0.5,False\n")
    with pytest.raises(GateError, match="peak_probability"):
        read_calibration_csv(tmp_path / "old.csv")
    with pytest.raises(GateError, match="No per-image results"):
        read_calibration_csv(tmp_path / "none.csv")
