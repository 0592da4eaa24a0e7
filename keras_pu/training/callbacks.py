"""Callbacks of the training driver: run checkpoints that make `--resume`
exact, early stopping that survives a resume, and learning-rate logging.

One commit point per epoch. The run's state (epochs completed, best value
and epoch, early-stopping counters) is stored *inside* `last.keras` (an
extra entry of the .keras zip archive, which Keras ignores when loading),
and `last.keras` is renamed into place atomically. That rename is the
commit: a run killed at any instant resumes from the state of the
checkpoint it resumes from, never from a state file that is one epoch
behind or ahead of it. `best.keras` and `training_state.json` are written
after the commit and repaired on resume (`committed_state`) when a kill
came in between.

Epochs are numbered from 1 wherever they are reported: Keras's console
("Epoch 3/10"), `best_epoch` in `training_state.json` and in the summary of
`train`. (history.csv keeps Keras's own 0-based `epoch` column: the row of
epoch N has `epoch` N - 1.)
"""

import json
import math
import pathlib
import shutil
import zipfile

import keras

from keras_pu import atomic_files

STATE_FILE = "training_state.json"
LAST_CHECKPOINT = "last.keras"
BEST_CHECKPOINT = "best.keras"
# The entry of a checkpoint's zip archive that holds the run state.
STATE_ENTRY = "keras_pu_training_state.json"
# State files written before epochs were numbered from 1 lack this key;
# their best_epoch is 0-based.
NUMBERING_KEY = "epochs_numbered_from"


def monitor_mode(monitor):
    """'min' for losses, 'max' for scores (Dice, IoU, ...)."""
    return "min" if monitor.endswith("loss") else "max"


def atomic_write_text(path, text):
    """Writes `text` beside `path`, then renames it into place."""
    atomic_files.write_text(path, text)


def atomic_save_model(model, path):
    """Saves a .keras file so that a crash mid-write never leaves a broken
    checkpoint: write beside it, then rename (atomic on POSIX); the
    temporary file is removed if saving fails (e.g. a full disk)."""
    with atomic_files.atomic_path(path) as tmp:
        model.save(tmp)


def save_checkpoint(model, path, state):
    """Saves `model` to the .keras file `path` with `state` inside it, and
    renames it into place: the run's commit point."""
    with atomic_files.atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(STATE_ENTRY, json.dumps(state, indent=2))


def checkpoint_state(path):
    """The run state stored in a checkpoint, or None (no file, a checkpoint
    from before states were stored in them, or not a zip archive)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if STATE_ENTRY not in archive.namelist():
                return None
            return _numbered_from_one(json.loads(archive.read(STATE_ENTRY)))
    except (OSError, zipfile.BadZipFile, json.JSONDecodeError):
        return None


def _copy_checkpoint(source, destination):
    with atomic_files.atomic_path(destination) as tmp:
        shutil.copyfile(source, tmp)


def _numbered_from_one(state):
    if state is not None and NUMBERING_KEY not in state:
        if state.get("best_epoch") is not None:
            state["best_epoch"] = int(state["best_epoch"]) + 1
        state[NUMBERING_KEY] = 1
    return state


def read_state(run_dir):
    """The run's training_state.json as a dict, or None if there is none."""
    path = pathlib.Path(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return _numbered_from_one(json.loads(path.read_text()))
    except json.JSONDecodeError as e:
        raise ValueError(
            f"'{path}' is not valid JSON ({e}); the run cannot be resumed "
            "from it. Restore it or start a new run in another folder."
        ) from None


def committed_state(run_dir):
    """The state of the run as of its last committed checkpoint.

    Repairs what a kill between the commit (`last.keras` renamed into
    place) and the writes after it left behind: `training_state.json` one
    epoch behind, or `best.keras` not yet replaced by the new best epoch.
    Returns None when the run has no state."""
    run_dir = pathlib.Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    state = read_state(run_dir)
    committed = checkpoint_state(checkpoints / LAST_CHECKPOINT)
    if committed is not None and (
        state is None
        or state.get("epochs_completed") != committed["epochs_completed"]
    ):
        state = committed
        atomic_write_text(run_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")
    if state is not None and state.get("best_epoch") is not None and (
        state["best_epoch"] == state.get("epochs_completed")
        and (checkpoints / LAST_CHECKPOINT).is_file()
    ):
        best = checkpoint_state(checkpoints / BEST_CHECKPOINT)
        if best is None or best.get("epochs_completed") != state["best_epoch"]:
            _copy_checkpoint(checkpoints / LAST_CHECKPOINT,
                             checkpoints / BEST_CHECKPOINT)
    return state


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


def write_run_info(path, run_info):
    """Writes run.json (atomically)."""
    atomic_write_text(path, json.dumps(run_info, indent=2) + "\n")


class SessionClock(keras.callbacks.Callback):
    """Records in run.json when this training session last finished an
    epoch (`sessions[-1]["last_epoch_ended"]`, UTC, and
    `sessions[-1]["epochs_completed"]`), so that the time a run trained is
    the sum of its sessions' spans, whatever the gaps between an
    interruption and `--resume`.

    Args:
        run_file: the run's run.json path.
        run_info: the dict written there; its last session is this one.
        now: a function returning the current time as an ISO string.
    """

    def __init__(self, run_file, run_info, now):
        super().__init__()
        self.run_file = run_file
        self.run_info = run_info
        self.now = now

    def on_epoch_end(self, epoch, logs=None):
        session = self.run_info["sessions"][-1]
        session["last_epoch_ended"] = self.now()
        session["epochs_completed"] = epoch + 1
        write_run_info(self.run_file, self.run_info)


class RunCheckpoint(keras.callbacks.Callback):
    """Writes the run's checkpoints after every epoch.

    - `checkpoints/last.keras`: the full model with its optimizer state
      (iterations, moments, learning-rate schedule) and the run state, for
      `--resume`; renaming it into place commits the epoch;
    - `checkpoints/best.keras`: a copy of it at the best value of
      `monitor` so far;
    - `training_state.json`: a readable copy of the state: epochs
      completed, best value and epoch (numbered from 1), the
      early-stopping counters, and whether the run has finished.

    Every file is written beside its destination and renamed into place,
    so an interrupted run always leaves a consistent last checkpoint (see
    the module docstring and `committed_state`).

    Args:
        run_dir: the run's output folder.
        monitor: the log entry that defines "best" (e.g. `"val_dice"`).
        best: best value of an interrupted run being resumed, or `None`.
        best_epoch: its epoch (numbered from 1), or `None`.
        early_stopping: the run's `ResumableEarlyStopping` (its counters are
            saved), or `None`.
        extra_state: dict stored in the state as it is.
        writer: whether this process writes the files (data parallelism:
            the chief only; the others keep the same state in memory).
        state_sources: `{key: function}`: each function's JSON value is
            stored in the state under `key` at every epoch (e.g. SelfReg's
            random state).
        collective_save: a process that does not write still saves the
            model, into a scratch folder deleted at once (saving is a
            collective operation under TensorFlow's
            MultiWorkerMirroredStrategy).
    """

    def __init__(self, run_dir, monitor, best=None, best_epoch=None,
                 early_stopping=None, extra_state=None, writer=True,
                 collective_save=False, state_sources=None):
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.monitor = monitor
        self.mode = monitor_mode(monitor)
        self.best = best
        self.best_epoch = best_epoch
        self.early_stopping = early_stopping
        self.extra_state = dict(extra_state or {})
        self.writer = writer
        self.state_sources = dict(state_sources or {})
        self.collective_save = collective_save

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
        improved = math.isfinite(value) and self._improved(value)
        if improved:
            self.best, self.best_epoch = value, epoch + 1
        state = self.state(epochs_completed=epoch + 1, finished=False)
        if not self.writer:
            if self.collective_save:
                import tempfile

                with tempfile.TemporaryDirectory() as scratch:
                    self.model.save(pathlib.Path(scratch) / LAST_CHECKPOINT)
            self.last_state = state
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        last = self.checkpoint_dir / LAST_CHECKPOINT
        save_checkpoint(self.model, last, state)  # the commit point
        if improved:
            _copy_checkpoint(last, self.checkpoint_dir / BEST_CHECKPOINT)
        self._write_state_file(state)

    def state(self, epochs_completed, finished):
        state = dict(self.extra_state)
        for key, source in self.state_sources.items():
            state[key] = source()
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
        state[NUMBERING_KEY] = 1
        return state

    def write_state(self, epochs_completed, finished):
        """Writes training_state.json (e.g. `finished=True` at the end)."""
        self._write_state_file(self.state(epochs_completed, finished))

    def _write_state_file(self, state):
        if not self.writer:
            self.last_state = state
            return
        atomic_write_text(
            self.run_dir / STATE_FILE, json.dumps(state, indent=2) + "\n"
        )
        self.last_state = state
