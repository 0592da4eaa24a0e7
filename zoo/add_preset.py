#!/usr/bin/env python
"""Adds a trained preset to the zoo: one command from a trained model to
`zoo/<preset>/` and an updated registry.

    python zoo/add_preset.py pu_unet_kvasir \\
        --model runs/pu_unet_kvasir/model.keras \\
        --metrics runs/pu_unet_kvasir/eval_test/metrics.json \\
        --recipe runs/pu_unet_kvasir/recipe.json \\
        [--training runs/pu_unet_kvasir/training_summary.json]

(`scripts/train_preset.py` trains, evaluates and runs this in one go.)

Writes zoo/<preset>/ (config.json, metadata.json, model.weights.h5 as
Keras's saving code writes them; README.md model card; metrics.json;
recipe.json), records every file's sha256 and size, the metrics and the
parameter count in keras_pu/zoo/registry.json, resets the pinned revision
(the new files are unpublished) and regenerates the presets table in
README.md. Then review `git diff`, commit, and publish with
`python zoo/publish.py <preset>`.

Run it with the backend you like (`KERAS_BACKEND=...`): the files are the
same under every backend.
"""

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's keras_pu, not an installed one


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("preset", help="preset name in the registry")
    parser.add_argument("--model", required=True, help="trained .keras model")
    parser.add_argument(
        "--metrics", required=True, help="metrics JSON of `keras-pu evaluate`"
    )
    parser.add_argument(
        "--recipe",
        help="training recipe JSON (default: "
        "keras_pu/training/recipes/<preset>.json)",
    )
    parser.add_argument(
        "--update-architecture",
        action="store_true",
        help="record the trained model's architecture if it differs from "
        "the registry's (otherwise that is an error)",
    )
    parser.add_argument(
        "--training",
        help="JSON file describing how the weights were trained (hardware, "
        "backend, image_size, epochs, seed, wall_minutes, note), for the card; "
        "scripts/summarize_runs.py writes one per run",
    )
    parser.add_argument("--registry", help="registry JSON (default: the checkout's)")
    parser.add_argument("--zoo-dir", help="preset folders (default: zoo/)")
    parser.add_argument(
        "--readme", default=str(ROOT / "README.md"),
        help="README whose presets table is regenerated ('' to skip)",
    )
    args = parser.parse_args(argv)

    from keras_pu.zoo.errors import ZooError
    from tools.zoo.packaging import add_preset

    import json

    training = None
    if args.training:
        try:
            training = json.loads(pathlib.Path(args.training).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            print(f"add_preset: error: cannot read the --training file "
                  f"{args.training}: {e}", file=sys.stderr)
            return 1
        if not isinstance(training, dict):
            print(f"add_preset: error: {args.training} must hold a JSON object "
                  "(hardware, backend, image_size, epochs, ...)", file=sys.stderr)
            return 1
    recipe = args.recipe or ROOT / "keras_pu" / "training" / "recipes" / f"{args.preset}.json"
    try:
        add_preset(
            args.preset,
            args.model,
            args.metrics,
            recipe,
            registry_path=args.registry,
            zoo_dir=args.zoo_dir or ROOT / "zoo",
            readme_path=args.readme or None,
            update_architecture=args.update_architecture,
            training=training,
        )
    except ZooError as e:
        print(f"add_preset: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
