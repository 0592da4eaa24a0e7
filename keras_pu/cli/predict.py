"""`keras-pu predict`: segment images of any size and format; writes mask
PNGs and overlay PNGs at each image's original size."""

import argparse

from keras_pu.cli.calibrate import add_gate_argument
from keras_pu.cli.calibrate import resolve_gate
from keras_pu.cli.train import _image_size

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif",
                    ".webp", ".ppm", ".pgm", ".jp2")

EXAMPLES = """\
examples:
  keras-pu predict runs/pu_kvasir polyp.jpg --output out/
  keras-pu predict model.keras scans/ --output out/ --tta flip --recursive
  keras-pu predict resunet_efficientnet_lite0_busi scans/ -o out/ --gate model

For each image NAME.EXT: NAME_mask.png (0/255 grayscale) and
NAME_overlay.png (the mask tinted over the image), both at the image's
original size. RGB, grayscale, RGBA (alpha composited on black) and 16-bit
images are accepted. Unreadable files are reported and skipped; the exit
code is 1 if any image failed. Existing files are never replaced unless
--overwrite is given (input files never are); every file is written to a
temporary name and renamed into place. Any other failure (model, disk full,
read-only --output) is one line on stderr and exit code 2.
"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "predict",
        help="segment images or folders: mask and overlay PNGs",
        description="Segment images with a model. MODEL is a .keras file, a "
        "training run folder, a Keras model folder (preset folder) or a "
        "preset name; INPUT is image files and/or folders.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("inputs", metavar="INPUT", nargs="+")
    p.add_argument("--output", "-o", metavar="DIR", required=True)
    p.add_argument("--tta", choices=("none", "hflip", "vflip", "flip"),
                   default="none", help="test-time flip augmentation "
                   "(flip: identity + both flips, averaged)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="foreground when probability > threshold (0.5)")
    add_gate_argument(p)
    p.add_argument("--recursive", "-r", action="store_true",
                   help="look for images in sub-folders too")
    p.add_argument("--no-overlay", action="store_true",
                   help="write masks only")
    p.add_argument("--save-probabilities", action="store_true",
                   help="also write NAME_prob.png (probability x 255)")
    p.add_argument("--image-size", metavar="N|HxW", type=_image_size,
                   help="model input size (default: the model's)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--overwrite", action="store_true",
                   help="replace output files that already exist")
    p.set_defaults(run=run)
    return p


def collect_inputs(inputs, recursive):
    """[(path, output name stem)], missing inputs as errors [(path, why)]."""
    import pathlib

    found, errors = [], []
    for text in inputs:
        path = pathlib.Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(
                f for f in path.glob(pattern)
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                and not f.name.startswith(".")
            )
            if not files:
                errors.append((path, "no image files in this folder"
                               + ("" if recursive else
                                  " (use --recursive for sub-folders)")))
            for f in files:
                rel = f.relative_to(path).with_suffix("")
                found.append((f, str(rel)))
        elif path.is_file():
            found.append((path, path.stem))
        else:
            errors.append((path, "no such file or folder"))
    # Two inputs with the same name stem (a.png, a.jpg) keep their extension.
    counts = {}
    for _, name in found:
        counts[name] = counts.get(name, 0) + 1
    found = [
        (f, f"{name}_{f.suffix.lstrip('.').lower()}" if counts[name] > 1
         else name)
        for f, name in found
    ]
    return found, errors


def run(args):
    import pathlib
    import sys

    import keras

    from keras_pu.data import ImageReadError
    from keras_pu.inference import ModelLoadError
    from keras_pu.inference import Segmenter
    from keras_pu.inference import load_segmentation_model
    from keras_pu.postprocess import GateError

    def fail(message):
        print(f"keras-pu predict: error: {message}", file=sys.stderr)
        return 2

    if not 0 <= args.threshold < 1:
        return fail(f"--threshold must be in [0, 1), got {args.threshold}")
    try:
        image_size = args.image_size
        args.peak_gate = resolve_gate(args.gate, args.model, args.threshold)
        model, recipe = load_segmentation_model(args.model)
        segmenter = Segmenter(model, image_size=image_size, recipe=recipe,
                              tta=args.tta, batch_size=args.batch_size)
    except (ModelLoadError, ValueError, GateError) as e:
        return fail(str(e))

    files, failures = collect_inputs(args.inputs, args.recursive)
    out_dir = pathlib.Path(args.output)
    conflict = existing_outputs(files, out_dir, args)
    if conflict:
        return fail(conflict)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"keras-pu predict: {len(files)} image(s) with {args.model} (input "
        f"{segmenter.height}x{segmenter.width}, TTA {args.tta}, "
        + ("" if args.peak_gate is None else
           f"gate {args.peak_gate.min_peak_probability:.4f}, ")
        + f"backend {keras.backend.backend()}) -> {out_dir}",
        flush=True,
    )
    progress = keras.utils.Progbar(max(1, len(files)), unit_name="image")
    written = 0
    for first in range(0, len(files), args.batch_size):
        chunk = []
        for path, name in files[first:first + args.batch_size]:
            try:
                pixels, size = segmenter.read(path)
                chunk.append((path, name, pixels, size))
            except (ImageReadError, OSError, ValueError) as e:
                failures.append((path, getattr(e, "cause", str(e))))
        if chunk:
            probabilities = segmenter.predict_arrays(
                [c[2] for c in chunk], [c[3] for c in chunk]
            )
            for (path, name, _, _), prob in zip(chunk, probabilities):
                # A write error (full disk, read-only folder) ends the run:
                # keras_pu.cli.errors reports it in one line.
                try:
                    _write(out_dir, name, path, prob, args)
                    written += 1
                except ImageReadError as e:  # the image changed since
                    failures.append((path, e.cause))
        progress.add(len(files[first:first + args.batch_size]))

    print(f"wrote masks{'' if args.no_overlay else ' and overlays'} of "
          f"{written} image(s) to {out_dir}")
    if failures:
        print(f"{len(failures)} input(s) failed and were skipped:",
              file=sys.stderr)
        for path, why in failures:
            print(f"  {path}: {why}", file=sys.stderr)
        return 1
    return 0


def output_names(name, args):
    """The files `predict` writes for the image whose stem is `name`."""
    names = [f"{name}_mask.png"]
    if args.save_probabilities:
        names.append(f"{name}_prob.png")
    if not args.no_overlay:
        names.append(f"{name}_overlay.png")
    return names


def existing_outputs(files, out_dir, args):
    """Why the outputs cannot be written (an input file would be replaced,
    or files exist and --overwrite is not given), or None."""
    import os

    inputs = {os.path.realpath(path) for path, _ in files}
    existing = []
    for _, name in files:
        for target in output_names(name, args):
            target = out_dir / target
            if os.path.realpath(target) in inputs:
                return (
                    f"the output '{target}' would replace an input image; "
                    "choose another --output folder"
                )
            if os.path.lexists(target):
                existing.append(target)
    if existing and not args.overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        return (
            f"'{existing[0]}'{more} already exist(s) (ground-truth masks "
            "are named *_mask.png too); pass --overwrite to replace them, or "
            "choose another --output folder"
        )
    return None


def _save_png(image, target):
    from keras_pu.atomic_files import atomic_path

    with atomic_path(target) as tmp:
        image.save(tmp, format="PNG")


def _write(out_dir, name, path, prob, args):
    """Writes the mask (and overlay, probabilities) of one image."""
    import numpy as np
    from PIL import Image

    from keras_pu.data import read_image
    from keras_pu.inference import overlay

    gate = getattr(args, "peak_gate", None)
    mask = prob > args.threshold if gate is None else gate.mask(prob)
    target = out_dir / f"{name}_mask.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    _save_png(Image.fromarray(mask.astype(np.uint8) * 255, "L"), target)
    if args.save_probabilities:
        _save_png(
            Image.fromarray(np.round(prob * 255).astype(np.uint8), "L"),
            out_dir / f"{name}_prob.png",
        )
    if not args.no_overlay:
        original = read_image(path)
        _save_png(Image.fromarray(overlay(original, mask), "RGB"),
                  out_dir / f"{name}_overlay.png")
