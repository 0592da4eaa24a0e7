"""Callbacks of the training driver: run checkpoints that make `--resume`
exact, early stopping that survives a resume, and learning-rate logging."""

import json
import math
import os
import pathlib

import keras

STATE_FILE = "training_state.json"
LAST_CHECKPOINT = "last.keras"
BEST_CHECKPOINT = "best.keras"


def monitor_mode(monitor):
    """'min' for losses, 'max' for scores (Dice, IoU, ...)."""
    return "min" if monitor.endswith("loss") else "max"


def atomic_write_text(path, text):
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save_model(model, path):
    """Saves a .keras file so that a crash mid-write never leaves a broken
    checkpoint: write beside it, then rename (atomic on POSIX)."""
    path = pathlib.Path(path)
    tmp = path.with_name(path.stem + ".partial.keras")
    model.save(tmp)
    os.replace(tmp, path)


def read_state(run_dir):
    """The run's training_state.json as a dict, or None if there is none."""
    path = pathlib.Path(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(
            f"'{path}' is not valid JSON ({e}); the run cannot be resumed "
            "from it. Restore it or start a new run in another folder."
        ) from None


def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` whose progress (epochs without
    improvement, best value) can be restored when a run is resumed.

    Args:
        initial_state: `{"wait", "best", "best_epoch"}` from `state()` of
            the interrupted run, or `None`.
        **kwargs: `keras.callbacks.EarlyStopping` arguments.
    """

    def __init__(self, initial_state=None, **kwargs):
        super().__init__(**kwargs)
        self.initial_state = initial_state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.initial_state:
            self.wait = int(self.initial_state.get("wait", 0))
            self.best = self.initial_state.get("best")
            self.best_epoch = int(self.initial_state.get("best_epoch", 0))

    def state(self):
        return {
            "wait": self.wait,
            "best": _finite_or_none(self.best),
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch or None,
        }


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs (so that
    it appears in the CSV log). Put it before `CSVLogger`."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.model.optimizer is not None:
            lr = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))


class RunCheckpoint(keras.callbacks.Callback):
    """Writes the run's checkpoints after every epoch.

    - `checkpoints/last.keras`: the full model with its optimizer state
      (iterations, moments, learning-rate schedule), for `--resume`;
    - `checkpoints/best.keras`: the same, for the best value of `monitor`
      so far;
    - `training_state.json`: epochs completed, best value and epoch, the
      early-stopping counters, and whether the run has finished.

    Every file is written beside its destination and renamed into place,
    so an interrupted run always leaves a consistent last checkpoint.

    Args:
        run_dir: the run's output folder.
        monitor: the log entry that defines "best" (e.g. `"val_dice"`).
        best: best value of an interrupted run being resumed, or `None`.
        best_epoch: its epoch (0-based), or `None`.
        early_stopping: the run's `ResumableEarlyStopping` (its counters are
            saved), or `None`.
        extra_state: dict stored in the state file as it is.
    """

    def __init__(self, run_dir, monitor, best=None, best_epoch=None,
                 early_stopping=None, extra_state=None):
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.monitor = monitor
        self.mode = monitor_mode(monitor)
        self.best = best
        self.best_epoch = best_epoch
        self.early_stopping = early_stopping
        self.extra_state = dict(extra_state or {})

    def _improved(self, value):
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            raise ValueError(
                f"The monitored value '{self.monitor}' (recipe key "
                f"'training.monitor') is not in the training logs. Available:"
                f" {sorted(logs)}. Fix the recipe."
            )
        value = float(value)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if math.isfinite(value) and self._improved(value):
            self.best, self.best_epoch = value, epoch
            atomic_save_model(self.model, self.checkpoint_dir / BEST_CHECKPOINT)
        atomic_save_model(self.model, self.checkpoint_dir / LAST_CHECKPOINT)
        self.write_state(epochs_completed=epoch + 1, finished=False)

    def write_state(self, epochs_completed, finished):
        state = dict(self.extra_state)
        state.update(
            epochs_completed=epochs_completed,
            monitor=self.monitor,
            best=_finite_or_none(self.best),
            best_epoch=self.best_epoch,
            early_stopping=(
                self.early_stopping.state() if self.early_stopping else None
            ),
            finished=finished,
        )
        atomic_write_text(
            self.run_dir / STATE_FILE, json.dumps(state, indent=2) + "\n"
        )
        self.last_state = state
