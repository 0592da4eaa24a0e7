"""Launcher of the `keras-pu` console script.

It lives outside the `keras_pu` package on purpose: importing `keras_pu`
imports Keras (to register its serializable classes), and Keras fixes its
backend on first import. This module reads `--backend` first, sets
KERAS_BACKEND, and only then imports the real command line.
"""

import argparse
import os
import sys

BACKENDS = ("tensorflow", "torch", "jax")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", choices=BACKENDS, default=None)
    known, _ = pre.parse_known_args(argv)
    if known.backend:
        os.environ["KERAS_BACKEND"] = known.backend
    from keras_pu.cli.main import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
