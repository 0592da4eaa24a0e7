"""The training driver behind `keras-pu train`: trains a model from a
`Recipe`, with fixed seeds, checkpoints, exact resume, early stopping, CSV
logs and optional data parallelism on each backend's own engine
(`keras_pu.training.distributed`: JAX `keras.distribution`, TensorFlow
`tf.distribute`, PyTorch `torch.distributed` under torchrun).

A run folder holds:

```
recipe.json            the complete recipe (defaults filled in)
run.json               backend, versions, devices, data, split sizes, sessions
                       (each: when it started and last finished an epoch)
history.csv            one row per epoch (losses, metrics, learning rate)
training_state.json    epochs completed, best value, early-stopping counters
checkpoints/last.keras full model + optimizer state + run state after the
                       last epoch (renaming it into place commits the epoch)
checkpoints/best.keras full model + optimizer state at the best val Dice
model.keras            the final model: best weights, no optimizer state
```

Under data parallelism every process trains on its slice of each global
batch and only the chief (process 0) writes the run folder; the others
read the recipe, state and checkpoints the chief resolved.

Epochs are numbered from 1 in the console, training_state.json and the
summary (`best_epoch`); history.csv keeps Keras's 0-based `epoch` column.
`--limit` is recorded in the run state and reused on resume.
"""

import contextlib
import csv
import datetime
import difflib
import inspect
import json
import math
import pathlib
import platform
import sys

import keras

from keras_pu import atomic_files
from keras_pu.hardware import choose_precision
from keras_pu.hardware import tensorflow_onednn_advice
from keras_pu.training.callbacks import BEST_CHECKPOINT
from keras_pu.training.callbacks import LAST_CHECKPOINT
from keras_pu.training.callbacks import LearningRateLogger
from keras_pu.training.callbacks import ResumableEarlyStopping
from keras_pu.training.callbacks import RunCheckpoint
from keras_pu.training.callbacks import SessionClock
from keras_pu.training.callbacks import atomic_save_model
from keras_pu.training.callbacks import committed_state
from keras_pu.training.callbacks import monitor_mode
from keras_pu.training.callbacks import read_state
from keras_pu.training.callbacks import write_run_info
from keras_pu.training.pipeline import EpochSync
from keras_pu.training.recipe import Recipe
from keras_pu.training.recipe import RecipeError
from keras_pu.training.schedules import WarmupPolynomialDecay
from keras_pu.data.recipe_splits import load_recipe_dataset
from keras_pu.data.recipe_splits import split_dataset

RECIPE_FILE = "recipe.json"
RUN_FILE = "run.json"
HISTORY_FILE = "history.csv"
FINAL_MODEL = "model.keras"
DISTRIBUTE_MODES = ("none", "data-parallel", "auto")
# Parameters that get no weight decay: biases and normalisation scales and
# offsets (the usual AdamW practice).
NO_WEIGHT_DECAY = ("bias", "gamma", "beta")


class TrainingError(RuntimeError):
    """A run cannot start or continue; the message says why and what to do."""


def _constructor_arguments(cls):
    """Argument names of `cls.__init__`, and of the keras-pu base classes
    that its `**kwargs` are passed on to (e.g. EncoderPUUNet -> EncoderUNet).
    """
    names = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        if not klass.__module__.startswith("keras_pu"):
            break
        parameters = inspect.signature(klass.__init__).parameters.values()
        names += [p.name for p in parameters
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                  and p.name != "self" and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names


def build_model(recipe):
    """The recipe's model (uncompiled), with input_shape from image_size."""
    from keras_pu.models.registry import get_model_class

    model_section = recipe["model"]
    cls = get_model_class(model_section["class"])
    height, width = recipe.get("data.image_size")
    config = dict(model_section["config"])
    # Keras models take **kwargs and ignore unknown ones: check the names.
    accepted = _constructor_arguments(cls)
    for key in config:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            raise RecipeError(
                f"{recipe.source}: unknown recipe key 'model.config.{key}': "
                f"{model_section['class']} takes no argument {key!r}."
                f"{f' Did you mean {close[0]!r}?' if close else ''} "
                f"Arguments: {sorted(a for a in accepted if a not in ('input_shape', 'name', 'dtype'))}."
            )
    config["input_shape"] = (height, width, 3)
    try:
        return cls(**config)
    except TypeError as e:
        raise RecipeError(
            f"{recipe.source}: 'model.config' does not fit "
            f"{model_section['class']}: {e}"
        ) from None
    except ValueError as e:
        raise RecipeError(f"{recipe.source}: 'model.config': {e}") from None


def build_schedule(recipe, steps_per_epoch):
    """The learning-rate schedule: linear warm-up, then cosine, poly or
    constant."""
    lr = recipe.get("optimizer.learning_rate")
    schedule = recipe["schedule"]
    epochs = recipe.get("training.epochs")
    total = max(1, epochs * steps_per_epoch)
    # A run shortened below its warm-up (e.g. --epochs 1 for a smoke test)
    # warms up over all but its last step.
    warmup = min(schedule["warmup_epochs"] * steps_per_epoch, total - 1)
    if schedule["name"] == "poly":
        return WarmupPolynomialDecay(
            lr,
            decay_steps=max(1, total - warmup),
            warmup_steps=warmup,
            end_learning_rate=lr * min(1.0, schedule["min_lr_ratio"]),
        )
    alpha = schedule["min_lr_ratio"] if schedule["name"] == "cosine" else 1.0
    if schedule["name"] == "constant" and not warmup:
        return lr
    if warmup:
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=lr / warmup,
            decay_steps=max(1, total - warmup),
            alpha=alpha,
            warmup_target=lr,
            warmup_steps=warmup,
        )
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr, decay_steps=total, alpha=alpha
    )


def build_optimizer(recipe, steps_per_epoch):
    opt = recipe["optimizer"]
    lr = build_schedule(recipe, steps_per_epoch)
    common = dict(learning_rate=lr, clipnorm=opt["clipnorm"])
    if opt["name"] == "adamw":
        optimizer = keras.optimizers.AdamW(
            weight_decay=opt["weight_decay"], beta_1=opt["beta_1"],
            beta_2=opt["beta_2"], **common)
    elif opt["name"] == "adam":
        optimizer = keras.optimizers.Adam(
            beta_1=opt["beta_1"], beta_2=opt["beta_2"], **common)
    else:
        optimizer = keras.optimizers.SGD(
            momentum=opt["momentum"],
            weight_decay=opt["weight_decay"] or None, **common)
    _exclude_from_weight_decay(optimizer)
    return optimizer


def _exclude_from_weight_decay(optimizer):
    # Not part of the optimizer's saved config: applied again on resume.
    if getattr(optimizer, "weight_decay", None):
        optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))


def compile_model(model, recipe, steps_per_epoch):
    from keras_pu.losses import BCEDiceLoss
    from keras_pu.metrics import Dice
    from keras_pu.metrics import IoU
    from keras_pu.metrics import Precision
    from keras_pu.metrics import Recall

    loss = recipe["loss"]
    threshold = recipe.get("training.threshold")
    model.compile(
        optimizer=build_optimizer(recipe, steps_per_epoch),
        loss=BCEDiceLoss(
            bce_weight=loss["bce_weight"],
            dice_weight=loss["dice_weight"],
            smooth=loss["smooth"],
            # The mean over the images with weight 1: the zero-weight
            # padding of a data-parallel validation batch (PaddedBatches)
            # does not count. Without weights it is the plain batch mean.
            reduction="mean_with_sample_weight",
        ),
        metrics=[
            Dice(threshold=threshold),
            IoU(threshold=threshold),
            Precision(threshold=threshold),
            Recall(threshold=threshold),
        ],
    )
    return model


def selfreg_callback(recipe, initial_state=None):
    selfreg = recipe["selfreg"]
    try:
        from keras_pu.callbacks import SelfRegDistillation
    except ImportError:
        raise TrainingError(
            "SelfReg is switched on (recipe key 'selfreg.enabled', CLI "
            "--selfreg), but this keras-pu has no "
            "keras_pu.callbacks.SelfRegDistillation. Update keras-pu, or "
            "train without it (--no-selfreg)."
        ) from None
    return SelfRegDistillation(
        lambda_scr=selfreg["lambda_scr"],
        lambda_ifd=selfreg["lambda_ifd"],
        warmup_epochs=selfreg["warmup_epochs"],
        seed=recipe.get("training.seed"),
        initial_state=initial_state,
    )


def make_distribution(mode, batch_size):
    """The data-parallel engine for `mode` ("none", "data-parallel" or
    "auto"; see `keras_pu.training.distributed.setup`), or None for a
    single replica. Raises TrainingError when it cannot start."""
    from keras_pu.training import distributed

    if mode in (None, "none"):
        return None
    try:
        engine = distributed.setup(mode, batch_size)
    except (distributed.DistributedError, RuntimeError, ValueError) as e:
        raise TrainingError(str(e)) from None
    return engine if engine.active else None


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy while the model is built or loaded
    (its layers keep it), and only then: the input pipeline's augmentation
    layers, the loss and the metrics stay float32."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def device_names():
    """The devices Keras computes on, as strings (empty where the backend's
    distribution library does not list them)."""
    try:
        return [str(d) for d in keras.distribution.list_devices()]
    except (AttributeError, NotImplementedError, RuntimeError):
        return []


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )


def _environment():
    import numpy as np

    info = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        from keras_pu.version import __version__

        info["keras_pu"] = __version__
    except ImportError:
        pass
    return info


def _truncate_history(path, epochs_completed):
    """Keeps the CSV rows of completed epochs only (a run killed between
    writing the log and the checkpoint would otherwise repeat an epoch)."""
    path = pathlib.Path(path)
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    keep = [r for r in body if r and int(r[0]) < epochs_completed]
    with atomic_files.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(keep)


def _resolve_run(recipe, run_dir, resume, data_path, overwrite=False):
    """Checks the run folder; returns (recipe, state, run_info, data_path)."""
    recipe_file = run_dir / RECIPE_FILE
    # Resuming repairs what a kill after the last commit left behind;
    # otherwise the folder is only looked at.
    state = committed_state(run_dir) if resume else read_state(run_dir)
    run_info = {}
    if (run_dir / RUN_FILE).is_file():
        run_info = json.loads((run_dir / RUN_FILE).read_text())
    if not resume:
        if recipe_file.exists() or state is not None:
            raise TrainingError(
                f"'{run_dir}' already holds a training run. Continue it with "
                "--resume, or choose another --output folder."
            )
        if (run_dir / FINAL_MODEL).exists() and not overwrite:
            raise TrainingError(
                f"'{run_dir / FINAL_MODEL}' already exists and a new run would "
                "replace it. Pass --overwrite to replace it, or choose "
                "another --output folder."
            )
        if recipe is None:
            raise TrainingError("No recipe: give --recipe or --model.")
        return recipe, None, {}, data_path
    # A killed run (SIGKILL) may have left a half-written temporary file.
    for folder in (run_dir, run_dir / "checkpoints"):
        atomic_files.remove_stale_temporaries(folder)
    if not recipe_file.is_file():
        raise TrainingError(
            f"Nothing to resume in '{run_dir}': it has no {RECIPE_FILE}. "
            "Check --output, or start the run without --resume."
        )
    saved = Recipe.from_file(recipe_file)
    if recipe is not None and recipe["training"]["dtype_policy"] == "auto":
        # The run picked its precision when it started: keep it.
        recipe = recipe.replace(
            {"training.dtype_policy": saved["training"]["dtype_policy"]}
        )
    if recipe is not None:
        changed = saved.differences(recipe, ignore=("name", "description",
                                                    "data"))
        changed += [
            k for k in saved.differences(recipe, ignore=())
            if k.startswith("data.") and k != "data.path"
        ]
        if changed:
            raise TrainingError(
                f"The recipe given differs from the one of the run in "
                f"'{run_dir}' in {sorted(changed)}. A run resumes with its "
                "own recipe: drop the flags/--recipe, or start a new run in "
                "another --output folder."
            )
    if data_path is None:
        data_path = saved.get("data.path") or run_info.get("data", {}).get(
            "path"
        )
    return saved, state, run_info, data_path


def train(
    recipe=None,
    data_path=None,
    output_dir=None,
    resume=False,
    distribute="none",
    verbose="auto",
    limit=None,
    workers=None,
    callbacks=None,
    cache="memory",
    overwrite=False,
):
    """Trains a model from a recipe; returns a summary dict.

    Args:
        recipe: a `Recipe` (or `None` with `resume=True`: the run's own).
        data_path: the dataset folder (overrides the recipe's `data.path`).
        output_dir: the run folder. Defaults to `runs/<recipe name>`.
        resume: continue the run in `output_dir` from its last checkpoint
            (same epoch, optimizer state, learning-rate schedule, best value
            and early-stopping counters).
        distribute: `"none"`, `"data-parallel"` or `"auto"`: data
            parallelism on the backend's own engine over every device of
            every process the launcher started (JAX `keras.distribution`,
            TensorFlow `tf.distribute`, PyTorch `torch.distributed` under
            torchrun; see docs/distributed.md). `training.batch_size` is the
            global batch. "auto": data-parallel when launched as several
            processes or several accelerators are visible.
        verbose: `fit` verbosity (`"auto"`, 0, 1 or 2).
        limit: use only the first `limit` images of each split (smoke runs).
        workers: input-pipeline worker threads (default: the pipeline's).
        callbacks: extra Keras callbacks, run after the run's own (the
            checkpoint of an epoch is written before they see it).
        cache: where the decoded, resized images live: `"memory"` (the
            default: each file is decoded once per run), a folder
            (memory-mapped files, reused across runs and resumes) or
            `None` (decode every batch; for datasets larger than memory).
        overwrite: allow a new run to replace a `model.keras` already in
            `output_dir` (a folder holding another run still needs
            `resume` or another folder).

    Returns:
        dict with `output_dir`, `model_path`, `epochs_completed`, `best`
        (best monitored value), `best_epoch` (1-based), `monitor`,
        `stopped_early`, `history` (path of the CSV log).

    Raises:
        RecipeError, TrainingError, keras_pu.data.DatasetError: with a
        message that names the problem and what to do.
    """
    if recipe is not None and not isinstance(recipe, Recipe):
        raise TypeError(f"`recipe` must be a Recipe, got {type(recipe)}")
    if output_dir is None:
        if recipe is None:
            raise TrainingError("Give the run folder (--output) to resume.")
        output_dir = pathlib.Path("runs") / (recipe.get("name") or "run")
    run_dir = pathlib.Path(output_dir)
    engine = _start_engine(distribute)
    outcome = _on_chief(engine, lambda: _resolve_on_chief(
        recipe, run_dir, resume, data_path, overwrite))
    recipe = Recipe.from_dict(outcome["recipe"], source=outcome["source"])
    state, run_info = outcome["state"], outcome["run_info"]
    data_path = outcome["data_path"]
    if state is not None and state.get("finished"):
        if engine.is_chief:
            if not (run_dir / FINAL_MODEL).is_file():
                # Finished by an older keras-pu that marked the run finished
                # before writing the final model, and killed in between.
                _write_final_model(run_dir)
                print(f"Wrote the missing final model {run_dir / FINAL_MODEL}.")
            print(
                f"The run in '{run_dir}' has already finished "
                f"({state['epochs_completed']} epochs); nothing to do."
            )
        engine.barrier()
        return _summary(run_dir, state)
    limit = _resolve_limit(limit, state, run_info, engine.is_chief)
    data_path = pathlib.Path(data_path)

    training = recipe["training"]
    if training["batch_size"] % engine.batch_multiple:
        raise TrainingError(
            f"Data parallelism over {engine.replicas} replicas needs a "
            "global batch size divisible by "
            f"{engine.batch_multiple}; the batch size is "
            f"{training['batch_size']}. Change --batch-size (or "
            "training.batch_size, the global batch)."
        )
    keras.utils.set_random_seed(training["seed"])
    with engine.scope():
        outcome = _train(recipe, run_dir, state, run_info, data_path, resume,
                         distribute, verbose, limit, workers, callbacks or [],
                         cache, engine)
    return _finish(run_dir, engine, *outcome)


def _start_engine(distribute):
    """The data-parallel engine of `distribute` (the single-process one for
    "none" or when "auto" finds nothing to distribute over)."""
    from keras_pu.training import distributed

    engine = make_distribution(distribute, None)
    return engine if engine is not None else distributed.SingleProcess()


def _on_chief(engine, function):
    """Runs `function` on the chief and returns its (JSON) result on every
    process; an error on the chief is raised on every process."""
    if engine.world_size == 1:
        return function()
    outcome = None
    if engine.is_chief:
        try:
            outcome = {"value": function()}
        except Exception as e:  # re-raised below, after the others know
            error = e
            outcome = {"error": str(e)}
    outcome = engine.broadcast_json(outcome)
    if "error" in outcome:
        if engine.is_chief:
            raise error
        raise TrainingError(f"(on the chief process) {outcome['error']}")
    return outcome["value"]


def _resolve_on_chief(recipe, run_dir, resume, data_path, overwrite):
    """Checks (and on resume repairs) the run folder and settles the
    recipe, state, data folder and precision; returns them as JSON."""
    recipe, state, run_info, data_path = _resolve_run(
        recipe, run_dir, resume, data_path, overwrite
    )
    if not (state is not None and state.get("finished")):
        if data_path is None:
            data_path = recipe.get("data.path")
        if data_path is None:
            raise TrainingError(
                "No dataset folder: give --data PATH (or set 'data.path' in "
                "the recipe)."
            )
        data_path = pathlib.Path(data_path).expanduser().resolve()
        if recipe["training"]["dtype_policy"] == "auto":
            from keras_pu.models.registry import get_model_spec

            spec = get_model_spec(recipe.get("model.class"))
            choice = choose_precision(depthwise=spec.depthwise)
            recipe = recipe.replace({"training.dtype_policy": choice.policy})
            print(
                f"Precision: {choice.policy} (auto: {choice.reason}). "
                "Override with --precision.",
                flush=True,
            )
    return {
        "recipe": recipe.to_dict(),
        "source": recipe.source,
        "state": state,
        "run_info": run_info,
        "data_path": None if data_path is None else str(data_path),
    }


def _resolve_limit(limit, state, run_info, chief=True):
    """The --limit of a run: recorded in its state (and in run.json, for a
    run killed before its first checkpoint), reused on resume; a different
    value is an error (the run would change data mid-way)."""
    if state is not None and "limit" in state:
        recorded = state["limit"]
    elif run_info.get("sessions"):
        recorded = run_info["sessions"][0].get("limit")
    else:  # a new run
        return limit
    if limit is None or limit == recorded:
        if recorded is not None and chief:
            print(f"Resuming with --limit {recorded}, as the run started.")
        return recorded
    raise TrainingError(
        f"--limit {limit} differs from the --limit "
        f"{'(none)' if recorded is None else recorded} the run started with; "
        "a resumed run keeps its data. Drop --limit, or start a new run in "
        "another --output folder."
    )


def _train(recipe, run_dir, state, run_info, data_path, resume, distribute,
           verbose, limit, workers, extra_callbacks, cache, engine):
    from keras_pu.training.pipeline import make_sequences

    training = recipe["training"]
    monitor = training["monitor"]
    seed = training["seed"]

    dataset = load_recipe_dataset(recipe["data"], data_path)
    splits = split_dataset(dataset, recipe["data"], seed, ("train", "val"))
    if limit:
        splits = {k: v.subset(v.ids[:limit]) for k, v in splits.items()}
    for name, split in splits.items():
        if len(split) == 0:
            raise TrainingError(
                f"The {name} split of {dataset.name} at '{data_path}' is "
                "empty; check the dataset folder and 'data.split'."
            )
    chief = engine.is_chief
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
    last = run_dir / "checkpoints" / LAST_CHECKPOINT
    resuming = bool(engine.broadcast_json(state is not None and last.is_file()))
    initial_epoch = int(state["epochs_completed"]) if resuming else 0
    train_seq, val_seq = make_sequences(
        recipe, splits["train"], splits["val"], workers=workers,
        initial_epoch=initial_epoch,
        cache=cache,
        batch_multiple=engine.batch_multiple,
    )
    steps_per_epoch = training["steps_per_epoch"] or len(train_seq)

    if resuming:
        with dtype_policy(training["dtype_policy"]):
            model = keras.saving.load_model(last)
        _exclude_from_weight_decay(model.optimizer)
        iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        if chief:
            print(
                f"Resuming '{run_dir}' after epoch {initial_epoch} "
                f"(optimizer step {iterations})."
            )
    else:
        if resume and chief:
            print(f"'{run_dir}' has no checkpoint yet: starting from epoch 1.")
        state = None
        with dtype_policy(training["dtype_policy"]):
            # compile() wraps the optimizer for loss scaling when the
            # model's policy is mixed_float16.
            model = compile_model(build_model(recipe), recipe,
                                  steps_per_epoch)
    engine.prepare_model(model)
    fit_train, fit_val = engine.prepare_data(train_seq, val_seq)

    sessions = run_info.get("sessions", [])
    session = {
        "started": _now(),
        "initial_epoch": initial_epoch,
        "argv": sys.argv,
        "distribute": distribute,
        "devices": device_names(),
        "limit": limit,
    }
    if engine.active:
        session["data_parallel"] = engine.describe()
    sessions.append(session)
    run_info.update(
        environment=_environment(),
        data={
            "path": str(data_path),
            "layout": dataset.layout,
            "dataset": dataset.name,
            "split": recipe.get("data.split"),
            "sizes": {k: len(v) for k, v in splits.items()},
        },
        model={
            "class": recipe.get("model.class"),
            "parameters": int(model.count_params()),
        },
        steps_per_epoch=steps_per_epoch,
        sessions=sessions,
    )
    if chief:
        write_run_info(run_dir / RUN_FILE, run_info)

    callbacks = [EpochSync(train_seq)]
    freeze_epochs = training["freeze_encoder_epochs"]
    if freeze_epochs:
        if not hasattr(model, "set_encoder_trainable"):
            raise RecipeError(
                f"training.freeze_encoder_epochs is {freeze_epochs}, but "
                f"{recipe.get('model.class')} has no pretrained encoder to "
                "freeze. Set it to 0, or use a model with an ImageNet "
                "encoder (e.g. EncoderPUUNet)."
            )
        from keras_pu.models.efficientnet_lite import UnfreezeEncoder

        callbacks.append(UnfreezeEncoder(
            freeze_epochs, configure_optimizer=_exclude_from_weight_decay))
    state_sources = {}
    if recipe.get("selfreg.enabled"):
        selfreg = selfreg_callback(recipe, (state or {}).get("selfreg"))
        callbacks.append(selfreg)
        state_sources["selfreg"] = selfreg.state
    callbacks.append(LearningRateLogger())
    early = None
    if recipe.get("early_stopping.enabled"):
        early = ResumableEarlyStopping(
            monitor=monitor,
            mode=monitor_mode(monitor),
            patience=recipe.get("early_stopping.patience"),
            min_delta=recipe.get("early_stopping.min_delta"),
            initial_state=(state or {}).get("early_stopping"),
            verbose=1 if chief else 0,
        )
        callbacks.append(early)
    history_path = run_dir / HISTORY_FILE
    if state is not None and chief:
        _truncate_history(history_path, initial_epoch)
    if chief:
        # The CSV row is written before the checkpoint: see
        # _truncate_history. One writer: the chief.
        callbacks.append(keras.callbacks.CSVLogger(
            str(history_path), append=state is not None))
    checkpoint = RunCheckpoint(
        run_dir,
        monitor,
        best=(state or {}).get("best"),
        best_epoch=(state or {}).get("best_epoch"),
        early_stopping=early,
        extra_state={"limit": limit},
        writer=chief,
        collective_save=engine.collective_save,
        state_sources=state_sources,
    )
    callbacks.append(checkpoint)
    if chief:
        callbacks.append(SessionClock(run_dir / RUN_FILE, run_info, _now))
    if engine.world_size > 1:
        callbacks.append(SyncStop(engine))
    callbacks.append(keras.callbacks.TerminateOnNaN())
    callbacks.extend(extra_callbacks)

    if chief:
        _print_header(recipe, model, dataset, splits, steps_per_epoch,
                      run_dir)
    if state is None and chief:
        recipe.replace({"data.path": str(data_path)}).save(
            run_dir / RECIPE_FILE
        )
    engine.barrier()
    history = model.fit(
        fit_train,
        validation_data=fit_val,
        epochs=training["epochs"],
        initial_epoch=initial_epoch,
        steps_per_epoch=training["steps_per_epoch"],
        # The sequence shuffles its samples from (seed, epoch); Keras's own
        # batch shuffling draws from Python's global RNG, which a resumed
        # run cannot restore.
        shuffle=False,
        callbacks=callbacks,
        verbose=verbose if chief else 0,
    )
    losses = history.history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        raise TrainingError(
            f"Training diverged (loss {losses[-1]}) and was stopped. Lower "
            "the learning rate (optimizer.learning_rate), add warm-up "
            "(schedule.warmup_epochs) or gradient clipping "
            "(optimizer.clipnorm), and start a new run."
        )
    epochs_completed = initial_epoch + len(losses)
    stopped_early = bool(early is not None and early.stopped_epoch)
    checkpoint.extra_state["stopped_early"] = stopped_early
    return checkpoint, epochs_completed, stopped_early


def _finish(run_dir, engine, checkpoint, epochs_completed, stopped_early):
    """Writes the final model and marks the run finished (the chief, out of
    the engine's scope: loading a model there would create distributed
    variables, a collective operation); returns the summary."""
    chief = engine.is_chief
    # The final model is written before the run is marked finished: a kill
    # in between leaves an unfinished run whose resume writes it again.
    if chief:
        _write_final_model(run_dir)
    checkpoint.write_state(epochs_completed, finished=True)
    engine.barrier()
    summary = _summary(run_dir, checkpoint.last_state)
    best = summary["best"]
    monitor = summary["monitor"]
    if not chief:
        return summary
    print(
        f"Finished after {epochs_completed} epoch"
        f"{'' if epochs_completed == 1 else 's'}"
        f"{' (early stopping)' if stopped_early else ''}; best {monitor} = "
        f"{best if best is None else round(best, 4)} at epoch "
        f"{summary['best_epoch']}. Model: {run_dir / FINAL_MODEL}"
    )
    return summary


class SyncStop(keras.callbacks.Callback):
    """Every process stops at the chief's decision (early stopping,
    TerminateOnNaN): a process that stopped alone would leave the others
    waiting in a collective."""

    def __init__(self, engine):
        super().__init__()
        self.engine = engine

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = bool(
            self.engine.broadcast_json(bool(self.model.stop_training)))


def _write_final_model(run_dir):
    """Writes model.keras: the best checkpoint's model (the last one when
    nothing was monitored), without optimizer state."""
    checkpoints = run_dir / "checkpoints"
    best_path = checkpoints / BEST_CHECKPOINT
    source = best_path if best_path.is_file() else checkpoints / LAST_CHECKPOINT
    final = keras.saving.load_model(source, compile=False)
    atomic_save_model(final, run_dir / FINAL_MODEL)


def _summary(run_dir, state):
    best_epoch = state.get("best_epoch")
    return {
        "output_dir": str(run_dir),
        "model_path": str(run_dir / FINAL_MODEL),
        "epochs_completed": state.get("epochs_completed"),
        "best": state.get("best"),
        "best_epoch": best_epoch,  # numbered from 1, as in the state
        "monitor": state.get("monitor"),
        "stopped_early": state.get("stopped_early", False),
        "history": str(run_dir / HISTORY_FILE),
    }


def _print_header(recipe, model, dataset, splits, steps_per_epoch, run_dir):
    training = recipe["training"]
    size = recipe.get("data.image_size")
    lines = [
        f"keras-pu train: {recipe.get('name') or recipe.source}",
        f"  model    {recipe.get('model.class')} "
        f"{model.count_params():,} parameters, input {size[0]}x{size[1]}x3",
        f"  data     {dataset.name} ({dataset.layout}) at {dataset.root}: "
        + ", ".join(f"{k} {len(v)}" for k, v in splits.items()),
        f"  training {training['epochs']} epochs x {steps_per_epoch} steps, "
        f"batch {training['batch_size']}, seed {training['seed']}, "
        f"{recipe.get('optimizer.name')} lr {recipe.get('optimizer.learning_rate')}"
        f" ({recipe.get('schedule.name')}), "
        f"SelfReg {'on' if recipe.get('selfreg.enabled') else 'off'}, "
        f"{training['dtype_policy']}",
        f"  backend  {keras.backend.backend()}, devices: "
        f"{', '.join(device_names()) or 'default'}",
        f"  output   {run_dir}",
    ]
    advice = tensorflow_onednn_advice()
    if advice:
        lines.append(f"  note     {advice}")
    print("\n".join(lines), flush=True)
