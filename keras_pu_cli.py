"""Launcher of the `keras-pu` console script.

It lives outside the `keras_pu` package on purpose: importing `keras_pu`
imports Keras (to register its serializable classes), and Keras fixes its
backend on first import. So this module

1. parses the command line with the `keras_pu.cli` modules loaded under a
   bare `keras_pu` package object whose `__init__` has not run: `--help`,
   `SUB --help` and argument errors never import Keras or a backend;
2. picks the backend (`keras_pu.cli.backend`: --backend, KERAS_BACKEND,
   keras.json, else the first installed) and sets KERAS_BACKEND;
3. asks TensorFlow for its oneDNN CPU kernels where it would not use them
   by itself (`keras_pu.hardware.prefer_tensorflow_onednn`: AVX2-only x86
   CPUs, unless TF_ENABLE_ONEDNN_OPTS is set);
4. only then imports the real package and runs the subcommand, with the
   console kept clean (`keras_pu.cli.console`: no ANSI codes in logs, no
   TensorFlow start-up INFO lines).
"""

import contextlib
import importlib.util
import os
import sys


@contextlib.contextmanager
def _package_without_keras():
    """Makes `import keras_pu.cli...` work without running
    `keras_pu/__init__.py` (which imports Keras). On exit the bare package
    object is removed again, so the next `import keras_pu` runs the real
    `__init__`; the `keras_pu.cli` modules loaded meanwhile stay valid (they
    import nothing from the rest of the package at module level)."""
    if "keras_pu" in sys.modules:  # already imported for real: nothing to avoid
        yield
        return
    spec = importlib.util.find_spec("keras_pu")
    bare = importlib.util.module_from_spec(spec)  # __path__ set, __init__ not run
    sys.modules["keras_pu"] = bare
    try:
        yield
    finally:
        if sys.modules.get("keras_pu") is bare:
            del sys.modules["keras_pu"]


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    with _package_without_keras():
        from keras_pu.cli import backend as backend_lib
        from keras_pu.cli import console
        from keras_pu.cli.main import build_parser
        from keras_pu.cli.main import run_parsed

        parser = build_parser()
        args = parser.parse_args(argv)  # --help and usage errors exit here
    if args.command is None:
        parser.print_help()
        return 2
    if "keras" in sys.modules:
        backend = None  # Keras is already up (in-process use); main checks it
    else:
        try:
            backend = backend_lib.select_backend(args.backend)
        except backend_lib.BackendError as e:
            print(f"keras-pu: error: {e}", file=sys.stderr)
            return 2
        os.environ["KERAS_BACKEND"] = backend
    if backend is not None:  # a process of its own: the console is ours
        console.quiet_tensorflow_info()
        # TensorFlow reads this once, on import; it also serves the
        # augmentation under torch and JAX models (keras_pu.data.augment).
        with _package_without_keras():
            from keras_pu.hardware import prefer_tensorflow_onednn

            prefer_tensorflow_onednn()
        if "keras_pu" not in sys.modules:
            # Loaded under the bare package: forget it, so that the real
            # package imports it again and gets its `hardware` attribute.
            sys.modules.pop("keras_pu.hardware", None)
    with console.plain_output_unless_terminal():
        return run_parsed(parser, args)


if __name__ == "__main__":
    sys.exit(main())
