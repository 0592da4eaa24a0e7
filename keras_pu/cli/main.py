"""The `keras-pu` command (launched through `keras_pu_cli`, which sets the
backend before Keras is imported).

Each subcommand lives in its own module `keras_pu.cli.<name>` with two
functions: `add_parser(subparsers)` (registers its arguments) and
`run(args) -> int` (does the work). Importing `keras_pu` already imports Keras, so
`--backend` is applied by the launcher; here it is only checked.
"""

import argparse
import importlib
import sys

# Order shown in --help. A subcommand's module is imported only to register
# its arguments; the heavy imports happen inside run().
SUBCOMMANDS = ("train", "evaluate", "calibrate", "compare", "predict", "zoo", "demo", "export")
BACKENDS = ("tensorflow", "torch", "jax")


def build_parser():
    from keras_pu.version import __version__

    parser = argparse.ArgumentParser(
        prog="keras-pu",
        description="Train, evaluate and run keras-pu segmentation models "
        "on TensorFlow, PyTorch or JAX.",
    )
    parser.add_argument(
        "--version", action="version", version=f"keras-pu {__version__}"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="Keras backend (default: $KERAS_BACKEND, else the backend in "
        "~/.keras/keras.json if installed, else the first installed of "
        "tensorflow, jax, torch).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"keras_pu.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"keras_pu.cli.{name}":
                raise
            continue  # subcommand not part of this build
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return run_parsed(parser, args)


def run_parsed(parser, args):
    """Runs the subcommand of parsed `args` (the launcher `keras_pu_cli`
    parses before Keras is imported, then calls this)."""
    if args.backend:
        import keras

        if keras.backend.backend() != args.backend:
            parser.error(
                f"--backend {args.backend}: Keras was already imported with "
                f"the {keras.backend.backend()} backend. Use the `keras-pu` "
                "command, or set KERAS_BACKEND before starting Python."
            )
    from keras_pu.cli.errors import run_command

    return run_command(args.command, args.run, args)


if __name__ == "__main__":
    sys.exit(main())
