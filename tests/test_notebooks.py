"""The Colab notebooks in notebooks/ run end to end, and are committed clean.

Each notebook runs in a fresh Jupyter kernel of this Python, with the
suite's backend in KERAS_BACKEND and KERAS_PU_SMOKE=1 (tiny synthetic data,
the tiny model, a couple of steps); the suite runs once per backend, so
every notebook is executed under TensorFlow, PyTorch and JAX. Any cell
error fails the test with the cell and its traceback. The kernel gets no
network: HTTP(S) goes to a closed local port and the Hugging Face Hub is
offline, so a smoke run that tries to download or install fails.
"""

import importlib.util
import json
import os
import sys
import time

import keras
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.conftest import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {"quickstart.ipynb", "finetune.ipynb", "train_from_scratch.ipynb"}
# Per cell; a smoke cell takes seconds, but this machine may be loaded.
CELL_TIMEOUT_S = 240
KERNEL_NAME = "keras-pu-test"
# Nothing listens here: any HTTP(S) request from the notebook fails at once.
NO_NETWORK_PROXY = "http://127.0.0.1:9"
# Code run right after a notebook's parameters cell, per backend. TensorFlow
# traces every model's train, test and predict steps into graphs, which
# costs 10-15 s per model on a loaded 2-core CPU for a run of a few steps;
# smoke runs execute them eagerly (3x faster here). The traced paths are the
# library's, and its own tests run them traced (test_selfreg, test_training).
SMOKE_SETUP = {
    "tensorflow": "import tensorflow as tf\n\ntf.config.run_functions_eagerly(True)",
}


def _strip_module():
    spec = importlib.util.spec_from_file_location(
        "strip_notebooks", REPO_ROOT / "scripts" / "strip_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kernel_manager(tmp_path):
    """A kernel manager for this interpreter (not whatever `python` is on
    PATH), through a kernelspec written to tmp_path."""
    kernel_dir = tmp_path / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                 "{connection_file}"],
        "display_name": "keras-pu test",
        "language": "python",
    }))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def _kernel_env(tmp_path):
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND=keras.backend.backend(),
        KERAS_PU_SMOKE="1",
        # The repository's keras_pu, whatever is installed.
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p
        ),
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf-home"),
        HTTP_PROXY=NO_NETWORK_PROXY,
        HTTPS_PROXY=NO_NETWORK_PROXY,
        http_proxy=NO_NETWORK_PROXY,
        https_proxy=NO_NETWORK_PROXY,
        NO_PROXY="",
        no_proxy="",
        PIP_NO_INDEX="1",
    )
    return env


def test_every_notebook_is_here():
    assert {p.name for p in NOTEBOOKS} == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_stripped(path):
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    found = _strip_module().problems(nb)
    assert not found, (
        f"{path.name} is not stripped ({'; '.join(found)}). Run "
        "`python scripts/strip_notebooks.py`."
    )


def test_strip_removes_outputs_and_counts():
    strip = _strip_module()
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": 1}})
    code = nbformat.v4.new_code_cell("print(1)", execution_count=3)
    code.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    code.metadata = {"tags": ["parameters"], "colab": {"height": 3}}
    nb.cells = [code, nbformat.v4.new_markdown_cell("  \n")]
    found = strip.problems(nb)
    assert any("output" in p for p in found)
    assert any("execution count" in p for p in found)
    assert any("empty cell" in p for p in found)
    clean = strip.strip(nb)
    assert strip.problems(clean) == []
    assert len(clean.cells) == 1
    cell = clean.cells[0]
    assert cell.outputs == [] and cell.execution_count is None
    assert dict(cell.metadata) == {"tags": ["parameters"]}
    assert "widgets" not in clean.metadata
    assert nb.cells[0].outputs, "strip() must not modify its argument"


def smoke_notebook(path, backend):
    """The notebook at `path` as the smoke test runs it: with the backend's
    SMOKE_SETUP after the cell tagged "parameters"."""
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells)
              if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: no single cell tagged 'parameters'"
    if backend in SMOKE_SETUP:
        cell = nbformat.v4.new_code_cell(SMOKE_SETUP[backend])
        cell.metadata["tags"] = ["injected-smoke-setup"]
        nb.cells.insert(tagged[0] + 1, cell)
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(path, tmp_path, record_property):
    nb = smoke_notebook(path, keras.backend.backend())
    work_dir = tmp_path / "work"  # the notebook's current folder
    work_dir.mkdir()
    km = _kernel_manager(tmp_path)
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(work_dir)}},
    )
    start = time.perf_counter()
    try:
        client.execute(env=_kernel_env(tmp_path))
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed under {keras.backend.backend()}:\n{error}",
                    pytrace=False)
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    seconds = time.perf_counter() - start
    record_property("seconds", round(seconds, 1))
    print(f"{path.name} ({keras.backend.backend()}): {seconds:.1f} s")
