#!/usr/bin/env python
"""Strips outputs, execution counts and per-run metadata from notebooks, so
that git holds only what a person wrote.

    python scripts/strip_notebooks.py                  # notebooks/*.ipynb, in place
    python scripts/strip_notebooks.py a.ipynb b.ipynb  # these files, in place
    python scripts/strip_notebooks.py --check          # change nothing; list what
                                                       # would change, exit 1 if any

Removed: every output and execution count, empty cells, per-cell run
metadata (Jupyter's `execution`/`ExecuteTime`/`collapsed`/`scrolled`,
Colab's `colab`/`outputId`/`executionInfo`), widget state, and notebook
metadata other than the kernel, the language name and Colab's
`accelerator`/`gpuType` (which make Colab open the notebook on a GPU).
Cell tags (e.g. "parameters") and ids are kept.

As a pre-commit hook (https://pre-commit.com): `.pre-commit-config.yaml` at
the repository root runs this script on staged notebooks; `pre-commit
install` once. tests/test_notebooks.py fails if a committed notebook is not
stripped. Needs nbformat only.
"""

import argparse
import copy
import pathlib
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEPT_CELL_METADATA = ("tags",)
KEPT_COLAB_METADATA = ("gpuType",)


def strip(nb):
    """A stripped copy of notebook `nb` (a `nbformat.NotebookNode`)."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        if not "".join(cell.source).strip():
            continue  # an empty cell is a dead cell
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if "attachments" in cell and not cell.attachments:
            del cell["attachments"]
        cell.metadata = nbformat.NotebookNode(
            {k: v for k, v in cell.metadata.items() if k in KEPT_CELL_METADATA}
        )
        cells.append(cell)
    nb.cells = cells
    metadata = nbformat.NotebookNode()
    if "kernelspec" in nb.metadata:
        metadata.kernelspec = nb.metadata.kernelspec
    metadata.language_info = nbformat.NotebookNode(
        name=nb.metadata.get("language_info", {}).get("name", "python")
    )
    colab = nb.metadata.get("colab", {})
    metadata.colab = nbformat.NotebookNode(
        {"provenance": []},
        **{k: colab[k] for k in KEPT_COLAB_METADATA if k in colab},
    )
    if "accelerator" in nb.metadata:
        metadata.accelerator = nb.metadata.accelerator
    nb.metadata = metadata
    return nb


def problems(nb):
    """What `strip` would change in `nb`, as readable lines (empty: clean)."""
    found = []
    for index, cell in enumerate(nb.cells, start=1):
        where = f"cell {index} ({cell.get('id', 'no id')})"
        if not "".join(cell.source).strip():
            found.append(f"{where}: empty cell")
        if cell.cell_type == "code":
            if cell.get("outputs"):
                found.append(f"{where}: {len(cell.outputs)} output(s)")
            if cell.get("execution_count") is not None:
                found.append(f"{where}: execution count {cell.execution_count}")
        extra = sorted(k for k in cell.metadata if k not in KEPT_CELL_METADATA)
        if extra:
            found.append(f"{where}: cell metadata {extra}")
    if strip(nb).metadata != nb.metadata:
        found.append("notebook metadata beyond kernelspec, language name and Colab GPU settings")
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=pathlib.Path,
                        help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a notebook needs stripping")
    args = parser.parse_args(argv)
    paths = args.paths or sorted((ROOT / "notebooks").glob("*.ipynb"))
    dirty = 0
    for path in paths:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        found = problems(nb)
        if not found:
            continue
        dirty += 1
        if args.check:
            print(f"{path}: not stripped: " + "; ".join(found))
        else:
            nbformat.write(strip(nb), path)
            print(f"{path}: stripped ({len(found)} change(s))")
    if args.check and dirty:
        print(f"Run `python scripts/strip_notebooks.py` to strip {dirty} notebook(s).")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
