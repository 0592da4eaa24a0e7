#!/usr/bin/env python
"""Estimates how long a recipe takes to train on this machine.

Times, with the recipe's own pipeline, model, loss and optimizer:
- the input pipeline alone (batches/s, augmentation included);
- `fit` on a few training steps after a warm-up epoch (compilation excluded);
- validation (`evaluate`) on a few batches;
then prints images/s and the estimated time of one epoch and of the
recipe's `training.epochs` (an upper bound: early stopping may end sooner).

On a shared machine the wall-clock figures depend on the load, so the
process's CPU time is measured too: "idle estimate" is CPU seconds divided
by the number of cores, the wall time if this run had the machine to itself
and kept every core busy (an optimistic bound).

    KERAS_BACKEND=tensorflow python benchmarks/train_epoch_time.py \
        pu_unet_kvasir --data ../shared/data/Kvasir-SEG --steps 10
"""

import argparse
import os
import sys
import time


def _cpu():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from keras_pu.training import Recipe  # noqa: E402
from keras_pu.training.pipeline import make_sequences  # noqa: E402
from keras_pu.data.recipe_splits import load_recipe_dataset  # noqa: E402
from keras_pu.data.recipe_splits import split_dataset  # noqa: E402
from keras_pu.training.trainer import build_model  # noqa: E402
from keras_pu.training.trainer import compile_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="preset recipe name or JSON path")
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=10,
                        help="timed training steps (default 10)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--set", action="append", default=[],
                        metavar="KEY=JSON", help="recipe override")
    args = parser.parse_args()

    import json

    recipe = Recipe.load(args.recipe)
    for item in args.set:
        key, _, value = item.partition("=")
        recipe = recipe.replace({key: json.loads(value)})
    keras.utils.set_random_seed(recipe.get("training.seed"))
    keras.config.set_dtype_policy(recipe.get("training.dtype_policy"))
    dataset = load_recipe_dataset(recipe["data"], args.data)
    splits = split_dataset(dataset, recipe["data"], recipe.get("training.seed"),
                           ("train", "val"))
    train_seq, val_seq = make_sequences(recipe, splits["train"], splits["val"],
                                        workers=args.workers)
    batch = recipe.get("training.batch_size")
    steps = min(args.steps, len(train_seq))

    start = time.perf_counter()
    for i in range(steps):
        train_seq[i]
    data_s = (time.perf_counter() - start) / steps

    model = compile_model(build_model(recipe), recipe, len(train_seq))
    # Warm-up (tracing/compilation), then the timed steps.
    model.fit(train_seq, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    start, cpu_start = time.perf_counter(), _cpu()
    model.fit(train_seq, epochs=1, steps_per_epoch=steps, verbose=0,
              shuffle=False)
    step_s = (time.perf_counter() - start) / steps
    step_cpu = (_cpu() - cpu_start) / steps

    val_steps = min(steps, len(val_seq))
    model.evaluate(val_seq, steps=1, verbose=0)
    start, cpu_start = time.perf_counter(), _cpu()
    model.evaluate(val_seq, steps=val_steps, verbose=0)
    val_step_s = (time.perf_counter() - start) / val_steps
    val_cpu = (_cpu() - cpu_start) / val_steps

    epoch_s = len(train_seq) * step_s + len(val_seq) * val_step_s
    cores = os.cpu_count()
    idle_s = (len(train_seq) * step_cpu + len(val_seq) * val_cpu) / cores
    epochs = recipe.get("training.epochs")
    size = recipe.get("data.image_size")
    print(f"recipe {recipe.get('name')} ({recipe.get('model.class')}, "
          f"{model.count_params():,} params, {size[0]}x{size[1]}, batch "
          f"{batch}), backend {keras.backend.backend()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"  pipeline only : {batch / data_s:7.1f} img/s")
    print(f"  training step : {batch / step_s:7.1f} img/s (data + step)")
    print(f"  validation    : {batch / val_step_s:7.1f} img/s")
    print(f"  one epoch     : {epoch_s:7.1f} s wall ({len(train_seq)} train "
          f"+ {len(val_seq)} val batches); idle estimate {idle_s:.1f} s "
          f"({step_cpu * len(train_seq) + val_cpu * len(val_seq):.0f} "
          f"CPU-s / {cores} cores)")
    print(f"  {epochs} epochs     : {epochs * epoch_s / 60:7.1f} min wall, "
          f"idle estimate {epochs * idle_s / 60:.1f} min (upper bounds: "
          "early stopping may end sooner)")


if __name__ == "__main__":
    main()
