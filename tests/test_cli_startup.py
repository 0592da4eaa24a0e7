"""The `keras-pu` command starts on any single installed backend: help
without importing Keras, the backend chosen before Keras is imported, a
one-line error when no backend is installed, the demo under PyTorch without
TensorFlow, and no stray output (ANSI codes in logs, TensorFlow's INFO
lines).

"Not installed" is simulated in a subprocess by `sys.modules[name] = None`:
`import name` then raises ModuleNotFoundError and
`importlib.util.find_spec(name)` returns None, exactly as for a package that
is absent.
"""

import io
import json
import os
import subprocess
import sys
import textwrap

import keras
import pytest

from keras_pu.cli import backend as backend_lib
from keras_pu.cli import console
from keras_pu.cli.main import SUBCOMMANDS
from tests.conftest import REPO_ROOT
from tests.conftest import once_per_suite

HEAVY_MODULES = ("keras", "tensorflow", "torch", "jax", "keras_pu.models")

LAUNCH = textwrap.dedent(
    """
    import json, sys
    blocked, argv = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    for name in blocked:
        sys.modules[name] = None  # as if not installed
    import keras_pu_cli
    try:
        code = keras_pu_cli.main(argv)
    except SystemExit as e:
        code = e.code
    loaded = [m for m in {heavy!r} if sys.modules.get(m) is not None]
    print("LOADED=" + json.dumps(loaded), flush=True)
    sys.exit(code)
    """
).format(heavy=HEAVY_MODULES)


def launch(argv, blocked=(), env=None, cwd=None, timeout=300):
    """Runs `keras-pu ARGV` in a fresh interpreter; returns (returncode,
    stdout without the LOADED line, stderr, modules loaded)."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    result = subprocess.run(
        [sys.executable, "-c", LAUNCH, json.dumps(list(blocked)),
         json.dumps([str(a) for a in argv])],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )
    lines = result.stdout.splitlines()
    loaded = [json.loads(line[len("LOADED="):]) for line in lines
              if line.startswith("LOADED=")]
    stdout = "\n".join(line for line in lines if not line.startswith("LOADED="))
    return result.returncode, stdout, result.stderr, loaded[0] if loaded else None


def env_without_backend_choice(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path / "keras_home")  # no keras.json
    return env


def test_help_of_every_command_imports_no_keras_and_no_backend(tmp_path):
    for argv in [["--help"]] + [[name, "--help"] for name in SUBCOMMANDS]:
        code, stdout, stderr, loaded = launch(argv, env=env_without_backend_choice(tmp_path))
        assert code == 0, (argv, stderr)
        assert "usage: keras-pu" in stdout, argv
        assert loaded == [], f"`keras-pu {' '.join(argv)}` imported {loaded}"


def test_no_backend_installed_is_one_clear_line_and_exit_2(tmp_path):
    blocked = ["tensorflow", "torch", "jax", "jaxlib"]
    env = env_without_backend_choice(tmp_path)
    code, stdout, stderr, loaded = launch(
        ["demo", "--out", tmp_path / "demo"], blocked=blocked, env=env
    )
    assert code == 2
    assert stderr.strip().count("\n") == 0, stderr
    assert stderr.startswith("keras-pu: error: no Keras backend is installed")
    assert 'pip install "keras-pu[jax]"' in stderr
    assert loaded == []
    # Help still works without any backend.
    code, stdout, _, _ = launch(["demo", "--help"], blocked=blocked, env=env)
    assert code == 0 and "usage: keras-pu demo" in stdout


def test_requested_backend_not_installed_names_the_fix(tmp_path):
    env = env_without_backend_choice(tmp_path)
    code, _, stderr, _ = launch(
        ["--backend", "jax", "zoo", "list"], blocked=["jax", "jaxlib"], env=env
    )
    assert code == 2
    assert "--backend jax: jax is not installed" in stderr
    assert 'pip install "keras-pu[jax]"' in stderr
    env["KERAS_BACKEND"] = "torch"
    code, _, stderr, _ = launch(["zoo", "list"], blocked=["torch"], env=env)
    assert code == 2
    assert "KERAS_BACKEND=torch, but torch is not installed" in stderr
    assert "unset KERAS_BACKEND" in stderr


def test_backend_order_flag_env_keras_json_then_installed(monkeypatch, tmp_path):
    installed = {"tensorflow": True, "torch": True, "jax": True}
    monkeypatch.setattr(backend_lib, "is_installed", lambda name: installed[name])
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert backend_lib.select_backend("torch", environ={"KERAS_BACKEND": "jax"}) == "torch"
    assert backend_lib.select_backend(None, environ={"KERAS_BACKEND": "jax"}) == "jax"
    assert backend_lib.select_backend(None, environ={}) == "tensorflow"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch"}))
    assert backend_lib.select_backend(None, environ={}) == "torch"
    installed["torch"] = False  # keras.json names a backend that is gone
    assert backend_lib.select_backend(None, environ={}) == "tensorflow"
    installed["tensorflow"] = False
    assert backend_lib.select_backend(None, environ={}) == "jax"
    installed["jax"] = False
    with pytest.raises(backend_lib.BackendError, match="no Keras backend"):
        backend_lib.select_backend(None, environ={})


def test_plain_text_stream_drops_ansi_codes_only():
    sink = io.StringIO()
    stream = console.PlainTextStream(sink)
    stream.write("\x1b[1m3/10\x1b[0m \x1b[32m━━\x1b[0m\x1b[37m━\x1b[0m loss: 0.5\n")
    assert sink.getvalue() == "3/10 ━━━ loss: 0.5\n"
    assert not console.colour_allowed(sink)


def test_keras_progress_bar_in_a_log_file_has_no_ansi_codes(tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        saved = sys.stdout
        sys.stdout = f
        try:
            with console.plain_output_unless_terminal():
                bar = keras.utils.Progbar(4)
                for _ in range(4):
                    bar.add(1, values=[("loss", 0.5)])
        finally:
            sys.stdout = saved
    text = log.read_text()
    assert "4/4" in text and "loss" in text
    assert "\x1b" not in text


@once_per_suite("runs its backend in a subprocess itself")
def test_demo_under_torch_without_tensorflow(tmp_path):
    env = env_without_backend_choice(tmp_path)
    env.pop("KERAS_PU_ZOO_DIR", None)
    out = tmp_path / "demo"
    code, stdout, stderr, loaded = launch(
        ["demo", "--preset", "pu_unet_kvasir", "--out", out, "--quiet"],
        blocked=["tensorflow", "jax", "jaxlib"], env=env,
    )
    assert code == 0, stderr
    assert "torch" in loaded and "tensorflow" not in loaded
    assert (out / "pu_unet_kvasir_polyp_overlay.png").is_file()
    assert "Traceback" not in stderr


@once_per_suite("imports TensorFlow in a subprocess (backend-independent)")
def test_tensorflow_info_lines_are_dropped():
    code = textwrap.dedent(
        """
        import keras_pu_cli
        with keras_pu_cli._package_without_keras():
            from keras_pu.cli import console
        console.quiet_tensorflow_info()
        import importlib.util
        # keras_pu.data.augment asks whether TensorFlow is installed first.
        assert importlib.util.find_spec("tensorflow") is not None
        import tensorflow as tf
        tf.zeros((2, 2)).numpy()
        import sys
        print("after import", file=sys.stderr)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "after import" in result.stderr
    for noise in ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard"):
        assert noise not in result.stderr, result.stderr
