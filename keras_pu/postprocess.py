"""From probability maps to masks: the threshold, and an optional image-level
gate chosen on validation images.

A segmentation model answers "which pixels are the target" even on an image
that has none: on lesion-free breast ultrasound (BUSI's normal images) the
keras-pu presets mark a region on most of them, because dark normal tissue
looks like a tumour *locally*. What tells those images apart is how sure
the model is anywhere in the image: on images with a lesion the highest
pixel probability is almost always close to 1, on normal images it is
often lower. `PeakGate` turns that into a decision per image:

    the mask is empty when max(probabilities) < min_peak_probability,
    otherwise it is probabilities > threshold as usual.

The gate value is a hyper-parameter, so it is chosen on the validation
split, never on the test split: `choose_peak_gate` takes the per-image
results of a validation run (`keras-pu evaluate --split val` records each
image's peak probability and Dice) and picks the value that maximises the
mean Dice over all validation images, counting an empty prediction on an
empty ground truth as Dice 1 (the evaluator's convention). The gate costs
nothing at inference and leaves the model untouched; it travels as a small
JSON file (`postprocess.json`) next to a run's model, and as the
`postprocess` entry of a preset in the zoo registry.

The price is lesions the model is unsure of: an image whose lesion gets a
peak probability below the gate loses its (correct) mask. Results with the
gate are reported next to those without it, never instead of them.
"""

import csv
import json
import math
import pathlib

import numpy as np

GATE_FILE = "postprocess.json"
GATE_FORMAT = "keras_pu.peak_gate/1"


class GateError(ValueError):
    """An unusable gate file or calibration input; the message says which
    and what to do."""


def peak_probability(probabilities):
    """The highest probability of one map (0.0 for an empty map)."""
    probabilities = np.asarray(probabilities)
    return float(probabilities.max()) if probabilities.size else 0.0


class PeakGate:
    """Empties the predicted mask of an image whose highest pixel probability
    is below `min_peak_probability`.

    Args:
        min_peak_probability: the gate, in [0, 1]. `0` never empties a mask.
        threshold: foreground where probability > threshold (after the
            gate keeps the image). Defaults to `0.5`.
        tta: the test-time augmentation the gate was chosen with (the
            probabilities it expects). Defaults to `"none"`.
        calibration: optional dict recording how the value was chosen
            (split, image counts, validation Dice before and after).

    Example:

    ```python
    import numpy as np
    from keras_pu.postprocess import PeakGate

    gate = PeakGate(min_peak_probability=0.97)
    probabilities = np.full((64, 64), 0.8, "float32")  # unsure everywhere
    gate.mask(probabilities).any()  # False: nothing above 0.97
    ```
    """

    def __init__(self, min_peak_probability, threshold=0.5, tta="none",
                 calibration=None):
        for name, value in (("min_peak_probability", min_peak_probability),
                            ("threshold", threshold)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not 0.0 <= value <= 1.0
            ):
                raise GateError(f"{name} must be a number in [0, 1]; got {value!r}.")
        if calibration is not None and not isinstance(calibration, dict):
            raise GateError("calibration must be a dict or None.")
        self.min_peak_probability = float(min_peak_probability)
        self.threshold = float(threshold)
        self.tta = str(tta)
        self.calibration = calibration

    def keeps(self, probabilities):
        """Whether the image keeps its mask (its peak reaches the gate)."""
        return peak_probability(probabilities) >= self.min_peak_probability

    def apply(self, probabilities):
        """The probability map, or zeros of its shape where the gate empties
        the image (so any later `> threshold` gives an empty mask)."""
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if self.keeps(probabilities):
            return probabilities
        return np.zeros_like(probabilities)

    def mask(self, probabilities):
        """The boolean mask: empty where gated, else probabilities >
        threshold."""
        return self.apply(probabilities) > self.threshold

    def get_config(self):
        return {
            "format": GATE_FORMAT,
            "min_peak_probability": self.min_peak_probability,
            "threshold": self.threshold,
            "tta": self.tta,
            "calibration": self.calibration,
        }

    @classmethod
    def from_config(cls, config, source="the gate"):
        if not isinstance(config, dict) or config.get("format") != GATE_FORMAT:
            raise GateError(
                f"{source} is not a keras-pu peak gate (expected a JSON object "
                f"with \"format\": \"{GATE_FORMAT}\"). Write it with `keras-pu "
                "calibrate`."
            )
        try:
            return cls(
                config["min_peak_probability"],
                threshold=config.get("threshold", 0.5),
                tta=config.get("tta", "none"),
                calibration=config.get("calibration"),
            )
        except KeyError:
            raise GateError(f"{source} has no min_peak_probability.") from None
        except GateError as e:
            raise GateError(f"{source}: {e}") from None

    def save(self, path):
        """Writes the gate as JSON (atomically)."""
        from keras_pu.atomic_files import write_text

        write_text(path, json.dumps(self.get_config(), indent=2) + "\n")

    @classmethod
    def load(cls, path):
        """Reads a gate file written by `save` (or `keras-pu calibrate`)."""
        path = pathlib.Path(path)
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise GateError(f"No gate file at '{path}'.") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise GateError(
                f"'{path}' is not valid JSON ({e}); rerun `keras-pu calibrate`."
            ) from None
        return cls.from_config(config, source=f"'{path}'")

    def __repr__(self):
        return (
            f"PeakGate(min_peak_probability={self.min_peak_probability:.4f}, "
            f"threshold={self.threshold}, tta={self.tta!r})"
        )


def choose_peak_gate(peaks, dice, truth_empty):
    """The gate value that maximises the mean Dice over calibration images.

    Gating an image replaces its Dice by 1 if its ground truth is empty and
    by 0 otherwise. Candidates are 0 (no gate) and the midpoints between
    consecutive distinct peaks (and between the highest peak and 1); among
    equally good values the smallest wins (the least intervention).

    Args:
        peaks: each image's highest probability (1-D).
        dice: each image's Dice without the gate.
        truth_empty: whether each image's ground truth is empty.

    Returns:
        dict: `min_peak_probability`, `num_images`, `num_empty`,
        `dice_before`, `dice_after` (mean Dice over the images),
        `false_positive_rate_before` / `_after` (share of empty-truth
        images with a non-empty prediction; None without such images) and
        `lesion_images_gated` (images with a target the gate empties).

    Raises:
        GateError: mismatched lengths, no images, or values out of range.
    """
    peaks = np.asarray(peaks, dtype=np.float64)
    dice = np.asarray(dice, dtype=np.float64)
    empty = np.asarray(truth_empty, dtype=bool)
    if not (peaks.ndim == dice.ndim == empty.ndim == 1) or not (
        len(peaks) == len(dice) == len(empty)
    ):
        raise GateError("peaks, dice and truth_empty must be 1-D and of one length.")
    if len(peaks) == 0:
        raise GateError("No calibration images.")
    if not (np.all(np.isfinite(peaks)) and np.all(np.isfinite(dice))):
        raise GateError("peaks and dice must be finite.")
    if peaks.min() < 0 or peaks.max() > 1 or dice.min() < 0 or dice.max() > 1:
        raise GateError("peaks and dice must lie in [0, 1].")

    distinct = np.unique(peaks)
    # Above the highest peak (gating every image) only when that is below 1.
    edges = np.append(distinct, 1.0) if distinct[-1] < 1.0 else distinct
    candidates = np.concatenate([[0.0], (edges[:-1] + edges[1:]) / 2])
    gated_dice = empty.astype(np.float64)  # 1 on empty truth, 0 on a target

    def mean_dice(gate):
        kept = peaks >= gate
        return float(np.mean(np.where(kept, dice, gated_dice)))

    scores = np.array([mean_dice(c) for c in candidates])
    # The first (smallest) candidate of the best score; compared with a
    # tolerance so float summation order cannot pick a larger gate.
    best = candidates[int(np.argmax(scores >= scores.max() - 1e-12))]
    kept = peaks >= best

    # A non-empty prediction on an empty truth has Dice 0 (the evaluator's
    # 0/0 = 1 convention gives 1 only when both are empty).
    predicted_something = dice < 1.0

    def fpr(keep):
        if not empty.any():
            return None
        return float(np.mean((predicted_something & keep)[empty]))

    return {
        "min_peak_probability": float(best),
        "num_images": int(len(peaks)),
        "num_empty": int(empty.sum()),
        "dice_before": mean_dice(0.0),
        "dice_after": mean_dice(best),
        "false_positive_rate_before": fpr(np.ones_like(kept)),
        "false_positive_rate_after": fpr(kept),
        "lesion_images_gated": int(np.sum(~kept & ~empty)),
    }


def read_calibration_csv(path):
    """(ids, peaks, dice, truth_empty) from a `per_image.csv` of `keras-pu
    evaluate` (which records `peak_probability` per image)."""
    path = pathlib.Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise GateError(f"No per-image results at '{path}'.") from None
    if not rows:
        raise GateError(f"'{path}' has no images.")
    needed = {"id", "dice", "gt_empty", "peak_probability"}
    missing = needed - set(rows[0])
    if missing:
        raise GateError(
            f"'{path}' lacks the column(s) {sorted(missing)}: it was not "
            "written by this keras-pu's `keras-pu evaluate`. Evaluate the "
            "model on the validation split again."
        )
    try:
        ids = [r["id"] for r in rows]
        peaks = [float(r["peak_probability"]) for r in rows]
        dice = [float(r["dice"]) for r in rows]
        empty = [r["gt_empty"].strip().lower() in ("true", "1") for r in rows]
    except ValueError as e:
        raise GateError(f"'{path}' has a value that is not a number ({e}).") from None
    return ids, peaks, dice, empty

