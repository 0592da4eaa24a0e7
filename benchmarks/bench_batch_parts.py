#!/usr/bin/env python
"""Input-pipeline work of one data-parallel process: a whole global batch
against the process's part of it.

    python benchmarks/bench_batch_parts.py [--dataset kvasir-seg]
        [--global-batch 32] [--parts 4] [--batches 6] [--cache none|memory]

Under data parallelism each of N processes trains on 1/N of every global
batch. `SegmentationSequence.batch_part` decodes and augments only that
part (the augmentation drawn for the whole batch, then cut); before, every
process built the whole global batch and kept its slice. This script times,
in one process and interleaved (this machine is noisy), `sequence[i]` (the
whole batch) and `sequence.batch_part(i, 0, N)` (one process's part) over
the same batches, with the augmentation of the dataset's ImageNet-encoder
recipe at its image size, and prints seconds per global batch and the
ratio. `--cache none` includes decoding the files; `memory` decodes once
first (what `keras-pu train` does by default).

The data come from $KERAS_PU_DATA (default ../shared/data), the committed
train split; without it, synthetic Kvasir-like JPEGs in a temporary folder.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = {"kvasir-seg": "Kvasir-SEG", "busi": "BUSI", "isic2017": "ISIC2017"}
RECIPES = {"kvasir-seg": "pu_unet_efficientnet_lite0_kvasir",
           "busi": "pu_unet_efficientnet_lite0_busi",
           "isic2017": "pu_unet_efficientnet_lite0_isic"}


def dataset_for(name, count):
    from keras_pu.data import apply_split
    from keras_pu.data import load_dataset

    data = pathlib.Path(os.environ.get("KERAS_PU_DATA",
                                       ROOT.parent / "shared" / "data"))
    folder = data / FOLDERS[name]
    if folder.is_dir():
        dataset = apply_split(load_dataset(name, folder), "train")
        return dataset, f"{dataset.name} train split, {len(dataset)} images"
    sys.path.insert(0, str(ROOT))
    from tests.dataset_factory import make_kvasir

    fake = make_kvasir(pathlib.Path(tempfile.mkdtemp()), n=count)
    return (load_dataset("kvasir-seg", fake.root),
            f"synthetic Kvasir-like set, {count} images")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="kvasir-seg", choices=list(FOLDERS))
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--cache", default="none", choices=["none", "memory"])
    args = parser.parse_args()
    if args.global_batch % args.parts:
        parser.error("--global-batch must be a multiple of --parts")

    sys.path.insert(0, str(ROOT))
    import keras

    from keras_pu.data import SegmentationSequence
    from keras_pu.training import Recipe
    from keras_pu.training.pipeline import make_augmentation

    recipe = Recipe.load(RECIPES[args.dataset])
    dataset, source = dataset_for(args.dataset,
                                  args.global_batch * (args.batches + 1))
    sequence = SegmentationSequence(
        dataset, image_size=tuple(recipe.get("data.image_size")),
        batch_size=args.global_batch, augmentation=make_augmentation(recipe),
        shuffle=True, seed=0, drop_remainder=True, cache=args.cache)
    batches = min(args.batches, len(sequence) - 1)
    sequence[len(sequence) - 1]                   # warm-up: imports, kernels
    sequence.batch_part(len(sequence) - 1, 0, args.parts)
    whole = part = 0.0
    for index in range(batches):
        start = time.perf_counter()
        sequence[index]
        whole += time.perf_counter() - start
        start = time.perf_counter()
        sequence.batch_part(index, 0, args.parts)
        part += time.perf_counter() - start
    print(f"{source}; recipe {recipe['name']} augmentation at "
          f"{recipe.get('data.image_size')}; Keras backend "
          f"{keras.backend.backend()}; cache {args.cache}; {batches} global "
          f"batches of {args.global_batch}")
    print(f"whole global batch (every process before): {whole / batches:.3f} s")
    print(f"one part of {args.parts} (each process now):  {part / batches:.3f} s")
    print(f"ratio whole / part: {whole / part:.2f} (ideal {args.parts})")


if __name__ == "__main__":
    main()
