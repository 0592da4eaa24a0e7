"""`keras-pu train`: train a segmentation model from a recipe and/or flags."""

import argparse
import json
import pathlib

EXAMPLES = """\
examples:
  keras-pu train --recipe pu_unet_kvasir --data data/Kvasir-SEG --output runs/pu_kvasir
  keras-pu train --resume --output runs/pu_kvasir
  keras-pu train --model resunet --data my_data --image-size 256 --epochs 40
  torchrun --nproc_per_node 8 -m keras_pu.cli --backend torch train --recipe pu_unet_busi --data data/BUSI --distribute data-parallel

Recipes: the JSON format is described in keras_pu/training/recipe.py; print
the complete recipe a command would run with --print-recipe.
"""


class _RegistryHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Fills the dataset names into the help when it is printed, from the
    files that declare them (a module per dataset, a split file per
    committed split): `--help` must not import keras_pu's modules, which
    import Keras and a backend. Model names live on classes, so the help
    names the lookup instead of listing them."""

    def _get_help_string(self, action):
        text = super()._get_help_string(action)
        data_dir = pathlib.Path(__file__).resolve().parents[1] / "data"
        if "{layouts}" in text:
            names = sorted(
                p.stem.replace("_", "-")
                for p in (data_dir / "layouts").glob("*.py")
                if not p.stem.startswith("_")
            )
            text = text.replace("{layouts}", ", ".join(names))
        if "{splits}" in text:
            names = sorted(p.stem for p in (data_dir / "splits").glob("*.json"))
            text = text.replace("{splits}", ", ".join(names))
        return text


def _image_size(text):
    try:
        parts = [int(p) for p in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"image size must be N or HxW (e.g. 256 or 192x256), got {text!r}"
        ) from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(
            f"image size must be N or HxW with positive sizes, got {text!r}"
        )
    return parts


def _model_class(text):
    """The registered class name for a --model spelling (class name or
    alias, see keras_pu.models.registry)."""
    from keras_pu.models.registry import UnknownModelError
    from keras_pu.models.registry import get_model_spec

    try:
        return get_model_spec(text).name
    except UnknownModelError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _setting(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(
            f"--set takes KEY=VALUE (e.g. model.config.widths=8), got {text!r}"
        )
    try:
        value = json.loads(value)
    except json.JSONDecodeError:
        pass  # a bare string, e.g. optimizer.name=adam
    return key, value


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train a model from a recipe and/or flags",
        description="Train a segmentation model. Start from a recipe "
        "(--recipe: a preset recipe name or a JSON file) and/or flags; flags "
        "override the recipe. Checkpoints, CSV log and the final model go to "
        "--output; --resume continues an interrupted run exactly.",
        epilog=EXAMPLES,
        formatter_class=_RegistryHelpFormatter,
    )
    p.add_argument("--recipe", help="preset recipe name (e.g. pu_unet_kvasir) "
                   "or path of a recipe JSON file")
    p.add_argument("--model", type=_model_class,
                   help="model (replaces the recipe's): a registered "
                   "architecture, e.g. PUUNet (pu_unet) or ResUNet "
                   "(resunet); all: keras_pu.models.list_models()")
    p.add_argument("--data", metavar="PATH",
                   help="dataset folder in its official layout (Kvasir-SEG, "
                   "BUSI, ISIC 2017/2018) or images/ + masks/")
    p.add_argument("--layout", help="dataset layout (default: the recipe's, "
                   "else auto-detected): {layouts}, auto")
    p.add_argument("--split", metavar="NAME",
                   help="committed split name ({splits}), or 'random' "
                   "for a seeded random split")
    p.add_argument("--image-size", type=_image_size, metavar="N|HxW")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=("adamw", "adam", "sgd"))
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--selfreg", action=argparse.BooleanOptionalAction,
                   default=None, help="SelfReg self-distillation on/off")
    p.add_argument("--deep-supervision", action=argparse.BooleanOptionalAction,
                   default=None, help="auxiliary heads on the coarser decoder "
                   "stages, trained against downsampled masks (nnU-Net's "
                   "deep supervision; training only): sets "
                   "model.config.deep_supervision")
    p.add_argument("--seed", type=int)
    p.add_argument("--patience", type=int,
                   help="early-stopping patience in epochs")
    p.add_argument("--no-early-stopping", action="store_true")
    p.add_argument("--precision",
                   choices=("auto", "float32", "bfloat16", "float16"),
                   help="compute precision (default: the recipe's, 'auto' "
                   "in the shipped recipes: bf16 where the GPU, TPU or CPU "
                   "(AVX512-BF16/AMX with oneDNN) runs it fast, float32 "
                   "otherwise; the choice is printed)")
    p.add_argument("--dtype-policy",
                   choices=("auto", "float32", "mixed_float16",
                            "mixed_bfloat16"),
                   help="the Keras dtype policy itself (as --precision)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads of the backend (default: the "
                   "backend's, usually one per core)")
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--set", type=_setting, action="append", default=[],
                   metavar="KEY=VALUE", dest="settings",
                   help="set any recipe key, e.g. --set model.config.widths=8 "
                   "(VALUE is JSON; repeatable)")
    p.add_argument("--output", "-o", metavar="DIR",
                   help="run folder (default: runs/<recipe name>)")
    p.add_argument("--overwrite", action="store_true",
                   help="let a new run replace a model.keras already in "
                   "--output")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output from its last "
                   "checkpoint")
    p.add_argument("--distribute", choices=("none", "data-parallel", "auto"),
                   default="none", help="data-parallel: every device of "
                   "every process the launcher started, on the backend's "
                   "own engine (JAX keras.distribution, TensorFlow "
                   "tf.distribute, PyTorch torch.distributed under "
                   "torchrun); --batch-size is the global batch. auto: "
                   "data-parallel when launched as several processes or "
                   "several accelerators are visible. See "
                   "docs/distributed.md")
    p.add_argument("--limit", type=int, metavar="N",
                   help="use only the first N images of each split (smoke "
                   "runs)")
    p.add_argument("--cache", default="memory", metavar="memory|none|DIR",
                   help="decode and resize each image once per run into "
                   "memory (default), into memory-mapped files in DIR "
                   "(reused by later runs and resumes), or not at all "
                   "('none': decode every batch)")
    p.add_argument("--workers", type=int,
                   help="input-pipeline worker threads")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                   help="Keras fit verbosity (default: progress bars)")
    p.add_argument("--print-recipe", action="store_true",
                   help="print the complete recipe and exit")
    p.set_defaults(run=run)
    return p


def build_recipe(args):
    """The recipe a `train` command line asks for (None: resume only)."""
    from keras_pu.training.recipe import Recipe
    from keras_pu.training.recipe import RecipeError

    if args.recipe:
        recipe = Recipe.load(args.recipe)
    elif args.model:
        recipe = Recipe.from_dict(
            {
                "name": args.model.lower(),
                "model": {"class": args.model},
                # --image-size is applied below, with --set (model depth).
                "data": {"image_size": [256, 256], "split": "auto"},
            },
            source="command line",
        )
    elif args.resume and args.output and (
        pathlib.Path(args.output) / "recipe.json"
    ).is_file():
        # Flags given with --resume are checked against the run's recipe
        # (the trainer refuses any change but the data path).
        recipe = Recipe.from_file(pathlib.Path(args.output) / "recipe.json")
    else:
        return None
    changes = []  # (flag, recipe key, value)
    if args.model:
        changes.append(("--model", "model.class", args.model))
    if args.data:
        changes.append(("--data", "data.path", args.data))
    if args.layout:
        changes.append(("--layout", "data.layout", args.layout))
    if args.split:
        changes.append(("--split", "data.split",
                        None if args.split == "random" else args.split))
    if args.image_size:
        changes.append(("--image-size", "data.image_size", args.image_size))
    for flag, key in (
        ("epochs", "training.epochs"),
        ("batch_size", "training.batch_size"),
        ("seed", "training.seed"),
        ("dtype_policy", "training.dtype_policy"),
        ("steps_per_epoch", "training.steps_per_epoch"),
        ("optimizer", "optimizer.name"),
        ("learning_rate", "optimizer.learning_rate"),
        ("selfreg", "selfreg.enabled"),
        ("patience", "early_stopping.patience"),
    ):
        value = getattr(args, flag)
        if value is not None:
            changes.append((f"--{flag.replace('_', '-')}", key, value))
    if args.precision is not None:
        from keras_pu.hardware import dtype_policy_for

        changes.append(("--precision", "training.dtype_policy",
                        "auto" if args.precision == "auto"
                        else dtype_policy_for(args.precision)))
    if args.no_early_stopping:
        changes.append(("--no-early-stopping", "early_stopping.enabled",
                        False))
    if args.deep_supervision is not None:
        changes.append(("--deep-supervision", *_setting_change(
            recipe, changes, "model.config.deep_supervision",
            args.deep_supervision)))
    # One validated replace for the flags and every --set, so that checks
    # across keys (image size vs model depth) see all of them at once.
    for key, value in args.settings:
        changes.append((f"--set {key}", *_setting_change(recipe, changes, key,
                                                          value)))
    if changes:
        try:
            recipe = recipe.replace({key: value for _, key, value in changes})
        except RecipeError as e:
            # Name the flag when one flag's value is the problem.
            for flag, key, value in changes:
                if f"'{key}" in str(e):
                    label = flag if flag.startswith("--set") else f"{flag} {value}"
                    raise RecipeError(f"{label}: {e}") from None
            raise
    return recipe


def _setting_change(recipe, changes, key, value):
    """(recipe key, value) of one --set KEY=VALUE. model.config.* and
    augmentation.* are free-form objects: the key sets one entry of it."""
    for prefix in ("model.config.", "augmentation."):
        if key.startswith(prefix):
            section = prefix[:-1]
            current = next(
                (dict(v) for _, k, v in reversed(changes) if k == section),
                None,
            )
            if current is None:
                current = dict(recipe.get(section) or {})
            current[key[len(prefix):]] = value
            return section, current
    return key, value


def run(args):
    import sys

    from keras_pu.data import DatasetError
    from keras_pu.training.recipe import RecipeError
    from keras_pu.training.trainer import TrainingError
    from keras_pu.training.trainer import train

    try:
        if args.threads is not None:
            from keras_pu.hardware import set_threads

            try:
                set_threads(args.threads)
            except ValueError as e:
                raise TrainingError(f"--threads: {e}") from None
        recipe = build_recipe(args)
        if args.print_recipe:
            if recipe is None:
                raise TrainingError("Nothing to print: give --recipe or --model.")
            print(json.dumps(recipe.to_dict(), indent=2))
            return 0
        if recipe is None and not args.resume:
            raise TrainingError(
                "Give --recipe (a preset recipe name or a JSON file) or "
                "--model, or --resume with --output."
            )
        train(
            recipe,
            data_path=args.data,
            output_dir=args.output,
            resume=args.resume,
            distribute=args.distribute,
            verbose="auto" if args.verbose is None else args.verbose,
            limit=args.limit,
            workers=args.workers,
            cache=None if args.cache == "none" else args.cache,
            overwrite=args.overwrite,
        )
    except (RecipeError, TrainingError, DatasetError) as e:
        print(f"keras-pu train: error: {e}", file=sys.stderr)
        return 2
    return 0
