"""`keras-pu demo`: segment synthetic example images with a preset and write
overlay PNGs.

    keras-pu demo                          # every modality that has a preset with weights
    keras-pu demo --preset pu_unet_kvasir  # one preset, on its modality's phantom
    keras-pu demo --preset hf://org/repo --phantoms polyp,skin_lesion

The images are synthetic phantoms made by `keras_pu.data.phantoms` (a skin
lesion, a polyp, a breast-ultrasound tumour, with known masks): the real
datasets cannot be redistributed, and the demo needs nothing but the
preset's weights. For each image it writes, in --out:

    <phantom>_image.png                 the input
    <model>_<phantom>_mask.png          predicted mask (white = lesion)
    <model>_<phantom>_overlay.png       prediction (green) and the phantom's
                                        true outline (yellow) on the image

and prints the Dice between prediction and the phantom's mask.
"""

import pathlib
import re
import sys

DEFAULT_OUT = "keras-pu-demo"


# Same names as keras_pu.data.phantoms.KINDS, written out so that building
# the parser does not import Keras (a test checks they agree).
PHANTOM_KINDS = ("skin_lesion", "polyp", "ultrasound_tumour")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="segment synthetic example images with a preset; write overlays",
        description="Segments synthetic phantoms (skin lesion, polyp, "
        "ultrasound tumour; no patient data) with pretrained presets and "
        "writes overlay PNGs.",
    )
    parser.add_argument(
        "--preset",
        help="preset name, hf://org/repo[@revision] or model folder (default:"
        " for each modality, the first preset that has weights)",
    )
    parser.add_argument(
        "--phantoms",
        help=f"comma-separated phantoms among {', '.join(PHANTOM_KINDS)} (default: "
        "the preset's modality; all for a handle or folder)",
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT,
        help=f"output folder (default: ./{DEFAULT_OUT})",
    )
    parser.add_argument("--seed", type=int, default=0, help="phantom seed")
    parser.add_argument(
        "--quiet", action="store_true", help="no loading/progress messages"
    )
    parser.set_defaults(run=run)


def run(args):
    from keras_pu.zoo.errors import ZooError

    try:
        return _run(args)
    except (ZooError, ValueError) as e:
        print(f"keras-pu demo: error: {e}", file=sys.stderr)
        return 2


def _run(args):
    from keras_pu.data import phantoms
    from keras_pu.zoo import registry as registry_lib

    registry = registry_lib.load_registry()
    kinds = _parse_phantoms(args.phantoms, phantoms.KINDS)
    if args.preset:
        if args.preset in registry:
            default = [registry.get(args.preset).dataset.phantom]
        else:
            default = list(phantoms.KINDS)
        jobs = [(args.preset, kinds or default)]
    else:
        jobs = _default_jobs(registry, kinds, phantoms.KINDS)

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        "keras-pu demo: the images are SYNTHETIC phantoms from "
        "keras_pu.data.phantoms (no patient data); Dice on them shows the "
        "pipeline works, not clinical accuracy.\n"
    )
    written = 0
    for handle, job_kinds in jobs:
        written += _segment(handle, job_kinds, registry, out, args)
    print(f"\n{written} overlays in {out.resolve()}")
    return 0


def _parse_phantoms(text, known):
    if not text:
        return None
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in known]
    if unknown:
        raise ValueError(
            f"Unknown phantom(s) {unknown}; choose among {', '.join(known)}."
        )
    return kinds


def _default_jobs(registry, kinds, all_kinds):
    """For each wanted phantom, the first preset of that modality with
    weights this installation can load (PU-UNet first: registry order)."""
    from keras_pu.zoo import sources

    usable = [
        p for p in registry.presets.values()
        if p.is_published
        or (p.has_weights and sources.find_preset_folder(p.name) is not None)
    ]
    jobs, missing = [], []
    for kind in kinds or all_kinds:
        match = next((p for p in usable if p.dataset.phantom == kind), None)
        if match is None:
            missing.append(kind)
        else:
            jobs.append((match.name, [kind]))
    if not jobs:
        from keras_pu.zoo.errors import ZooError

        statuses = ", ".join(f"{p.name} ({p.status})" for p in registry.presets.values())
        raise ZooError(
            "No preset with trained weights is available to this "
            f"installation, so there is nothing to run the demo with: "
            f"{statuses}; {sources.searched_text('<preset>')}. Get the "
            f"trained presets with {sources.COMPANION_INSTALL} (the "
            f"{sources.COMPANION_DISTRIBUTION} package, also installable "
            f"offline from its wheel; see docs/install.md), or set "
            f"KERAS_PU_ZOO_DIR to a folder of <preset>/ folders (e.g. zoo/ of"
            " a keras-pu source checkout), or from the Hugging Face Hub once "
            "they are published. Or run the demo on a model of your own: "
            "`keras-pu demo --preset ./my_model_folder` or `--preset "
            "hf://org/repo`."
        )
    for kind in missing:
        print(f"keras-pu demo: no preset with weights for the {kind} phantom; skipped.")
    return jobs


def _segment(handle, kinds, registry, out, args):
    import numpy as np

    from keras_pu.inference import overlay
    from keras_pu.data import phantoms
    from keras_pu.zoo.loading import load

    model = load(handle, progress=not args.quiet)
    preset = registry.presets.get(handle)
    pixel_range = preset.preprocessing["pixel_range"] if preset else (0.0, 1.0)
    size = model.input_shape[1] or (preset.input_size[0] if preset else 256)
    tag = _slug(handle)
    written = 0
    for kind in kinds:
        image, truth = phantoms.generate(kind, size=size, seed=args.seed)
        lo, hi = pixel_range
        x = image[None].astype("float32") / 255.0 * (hi - lo) + lo
        logits = np.asarray(model.predict(x, verbose=0))[0]
        if logits.shape[-1] == 1:
            predicted = logits[..., 0] > 0.0  # sigmoid(logit) > 0.5
        else:
            predicted = np.argmax(logits, axis=-1) > 0  # class 0 = background
        dice = _dice(predicted, truth)
        _save(image, out / f"{kind}_image.png")
        _save((predicted * 255).astype("uint8"), out / f"{tag}_{kind}_mask.png")
        overlay_path = out / f"{tag}_{kind}_overlay.png"
        _save(overlay(
            image, predicted, truth=truth, color=(40, 220, 60),
            caption=[f"{handle}: synthetic {kind.replace('_', ' ')}",
                     "green: prediction  yellow: true outline"],
        ), overlay_path)
        print(
            f"{handle} on the synthetic {kind.replace('_', ' ')}: Dice "
            f"{dice:.3f} against the phantom's mask -> {overlay_path}"
        )
        written += 1
    return written


def _dice(predicted, truth):
    total = predicted.sum() + truth.sum()
    if total == 0:
        return 1.0
    return float(2.0 * (predicted & truth).sum() / total)


def _save(array, path):
    from PIL import Image

    Image.fromarray(array).save(path)


def _slug(handle):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(handle).replace("hf://", "")).strip("_.")
