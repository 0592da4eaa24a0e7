#!/usr/bin/env python
"""Input pipeline delivery rate vs PU-UNet training-step rate, per backend.

    python benchmarks/bench_pipeline.py [--backends tensorflow,torch,jax]
        [--dataset kvasir-seg] [--batches 12] [--steps 4]

For each backend (one subprocess each, since Keras fixes its backend at
import), in the same process one after the other:

- pipeline: `SegmentationSequence` over the dataset's committed train split,
  256x256, batch 8, shuffled, default `SegmentationAugmentation` (the
  settings `keras-pu train` uses), batches fetched in the main thread
  (workers=1) and by 2 threads (workers=2, what PyDataset does with
  workers=2); images per second delivered; and once more with the
  augmentation layers on the active backend (what a user without TensorFlow
  gets; few batches, it is slow on torch);
- training: `keras_pu.models.PUUNet(input_shape=(256, 256, 3))`, Adam,
  binary cross-entropy, `train_on_batch` on batch 8 after 2 warm-up steps;
  images per second.

Prints one table with the ratio pipeline / training (target >= 3).
The data come from $KERAS_PU_DATA (default ../shared/data); without it a
synthetic Kvasir-like set (JPEGs of 600x530) is written to a temporary
folder.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = {"kvasir-seg": "Kvasir-SEG", "busi": "BUSI", "isic2017": "ISIC2017"}


def worker(args):
    sys.path.insert(0, str(ROOT))
    from concurrent.futures import ThreadPoolExecutor

    import keras

    import keras_pu
    from keras_pu.data import SegmentationAugmentation
    from keras_pu.data import SegmentationSequence
    from keras_pu.data import apply_split
    from keras_pu.data import load_dataset

    data = pathlib.Path(os.environ.get("KERAS_PU_DATA", ROOT.parent / "shared" / "data"))
    folder = data / FOLDERS[args.dataset]
    if folder.is_dir():
        dataset = apply_split(load_dataset(args.dataset, folder), "train")
        source = f"{dataset.name}, {len(dataset)} images"
    else:
        from tests.dataset_factory import disk_pair, save_image, save_mask

        tmp = pathlib.Path(tempfile.mkdtemp())
        for i in range(64):
            image, mask = disk_pair((530, 600), seed=i)
            save_image(image, tmp / "images" / f"{i}.jpg")
            save_mask(mask, tmp / "masks" / f"{i}.jpg")
        dataset = load_dataset("folder", tmp)
        source = "synthetic 600x530 JPEGs (no real data found)"

    augment = SegmentationAugmentation(seed=0)
    sequence = SegmentationSequence(
        dataset, image_size=256, batch_size=8, shuffle=True, seed=0,
        augmentation=augment,
    )
    n = min(args.batches, len(sequence))
    sequence[0]  # warm-up (imports, first compilation on JAX)
    start = time.perf_counter()
    for i in range(1, n):
        sequence[i]
    single = 8 * (n - 1) / (time.perf_counter() - start)
    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(sequence.__getitem__, range(1, n)))
    threaded = 8 * (n - 1) / (time.perf_counter() - start)

    # Without TensorFlow installed, augmentation runs on the active backend.
    native = SegmentationSequence(
        dataset, image_size=256, batch_size=8, shuffle=True, seed=0,
        augmentation=SegmentationAugmentation(seed=0, backend=keras.backend.backend()),
    )
    m = min(args.native_batches + 1, len(native))
    native[0]
    start = time.perf_counter()
    for i in range(1, m):
        native[i]
    native_rate = 8 * (m - 1) / (time.perf_counter() - start)

    model = keras_pu.models.PUUNet(input_shape=(256, 256, 3))
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    images, masks = sequence[0]
    for _ in range(2):
        model.train_on_batch(images, masks)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = model.train_on_batch(images, masks)
    keras.ops.convert_to_numpy(loss)
    train = 8 * args.steps / (time.perf_counter() - start)
    print("RESULT " + json.dumps(dict(
        backend=keras.backend.backend(), compute=augment.compute_backend,
        source=source, pipeline=single, pipeline_2=threaded, train=train,
        native=native_rate,
    )), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,torch,jax")
    parser.add_argument("--dataset", default="kvasir-seg", choices=list(FOLDERS))
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--native-batches", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    rows = []
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run(
            [sys.executable, __file__, "--worker", "--dataset", args.dataset,
             "--batches", str(args.batches), "--steps", str(args.steps),
             "--native-batches", str(args.native_batches)],
            env=env, capture_output=True, text=True,
        )
        lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if not lines:
            print(f"{backend}: failed\n{out.stderr[-2000:]}")
            continue
        rows.append(json.loads(lines[0][7:]))
    if not rows:
        return 1
    print(f"\ndata: {rows[0]['source']}; 256x256, batch 8, default augmentation; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'backend':>10} {'aug on':>10} {'pipeline img/s':>15} {'2 threads':>10} "
          f"{'PU-UNet train img/s':>20} {'ratio':>6} {'ratio 2 thr':>11} "
          f"{'aug on active backend img/s':>28} {'ratio':>6}")
    for r in rows:
        print(f"{r['backend']:>10} {r['compute']:>10} {r['pipeline']:>15.1f} "
              f"{r['pipeline_2']:>10.1f} {r['train']:>20.2f} "
              f"{r['pipeline'] / r['train']:>6.1f} {r['pipeline_2'] / r['train']:>11.1f} "
              f"{r['native']:>28.1f} {r['native'] / r['train']:>6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
