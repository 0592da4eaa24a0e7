"""Trains narrow ResUNets for a few steps: the shapes that crash TensorFlow
and PyTorch natively through oneDNN's strided 1x1 backward-weights
convolution (see keras_pu/platform_safety.py). Run in a subprocess by
tests/test_platform_safety.py, so that a native crash fails the test instead
of killing pytest.

    KERAS_BACKEND=torch python -m tests.onednn_crash_worker \
        [--case float32:64:4,8] [--case mixed_bfloat16:128:8] \
        [--batch 4] [--steps 2] [--depth 2]

A case is `POLICY:SIZE:WIDTHS`. Prints `RESULT {json}`: the losses per case
and width. The default cases crash an unpatched oneDNN on an AVX-512 CPU:
float32 needs >= 64 px, bfloat16 (half the bytes) >= 128 px.
"""

import argparse
import json
import os

# One thread: the crash does not need more, and the test machine is shared.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def limit_threads(backend):
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif backend == "torch":
        import torch

        torch.set_num_threads(1)


DEFAULT_CASES = ("float32:64:4,8", "mixed_bfloat16:128:8")


def parse_case(text):
    policy, size, widths = text.split(":")
    return policy, int(size), [int(w) for w in widths.split(",")]


def train_narrow_resunets(widths, size, batch, steps, policy, depth):
    import keras
    import numpy as np

    import keras_pu

    keras.config.set_dtype_policy(policy)
    rng = np.random.default_rng(0)
    images = rng.random((batch, size, size, 3), dtype="float32")
    masks = (rng.random((batch, size, size, 1)) > 0.5).astype("float32")
    losses = {}
    for width in widths:
        keras.utils.set_random_seed(0)
        model = keras_pu.models.ResUNet(
            input_shape=(size, size, 3), widths=width, depth=depth
        )
        model.compile(
            optimizer="adam",
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            # Two steps: tracing a graph would cost more than the steps, and
            # the kernels are the same eagerly.
            run_eagerly=True,
        )
        losses[str(width)] = [
            float(model.train_on_batch(images, masks)) for _ in range(steps)
        ]
    return losses


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", action="append", type=parse_case)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--depth", type=int, default=2)
    args = parser.parse_args()
    import keras

    limit_threads(keras.backend.backend())
    results = {}
    for policy, size, widths in args.case or map(parse_case, DEFAULT_CASES):
        losses = train_narrow_resunets(
            widths, size, args.batch, args.steps, policy, args.depth
        )
        results[f"{policy}:{size}"] = losses
        # Printed as it goes: after a crash the log shows how far it got.
        print(f"done {policy} {size}px {losses}", flush=True)
    print("RESULT " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
