"""The package's import graph, read from the source with `ast`: no cycle,
and no arrow from a lower layer up to a higher one.

Every import counts, also those inside functions: a deferred import is
still a dependency, and deferring one is how a cycle or an upward arrow
usually hides.
"""

import ast
import pathlib

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "keras_pu"

# Lower numbers are lower layers. A module may import its own subpackage
# and any subpackage of a strictly lower layer, nothing else. Siblings in
# one layer are independent of each other.
LAYERS = {
    "version": 0,
    "hardware": 0,  # precision and threads for the machine: keras only
    "platform_safety": 0,  # native-library workarounds: keras only
    "atomic_files": 0,  # temp-then-rename writes: the standard library only
    "replicas": 0,  # cross-replica sum hook, set by training.distributed
    "layers": 1,
    "losses": 1,
    "metrics": 1,
    "postprocess": 1,  # probability maps to masks: numpy only
    "data": 1,
    "models": 2,
    "selfreg": 3,  # its callback attaches to a models.SegmentationModel
    "zoo": 3,
    "callbacks": 4,
    "inference": 4,
    "training": 5,
    "export": 5,
    "notebook_utils": 5,  # device discovery for the notebooks
    "cli": 6,
}


def module_name(path):
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules():
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def imported_modules(path, modules):
    """The keras_pu modules `path` imports."""
    return imports_in_source(
        path.read_text(encoding="utf-8"), module_name(path),
        path.name == "__init__.py", modules,
    )


def imports_in_source(text, this, is_package, modules):
    """The keras_pu modules source `text` of module `this` imports, at any
    depth (a `from X import Y` of a submodule Y counts as importing X.Y)."""
    tree = ast.parse(text)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = this.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            # `from X import Y`: the module X.Y when Y is a submodule (X is
            # its parent package, initialised first in any case), else X.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name in modules and name != this:
                found.add(name)
    return found


def graph():
    modules = all_modules()
    return {name: imported_modules(path, modules) for name, path in modules.items()}


def layer_of(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_subpackage_has_a_layer():
    unknown = {layer_of(m) for m in all_modules()} - set(LAYERS) - {None}
    assert not unknown, f"give these subpackages a layer in LAYERS: {unknown}"


def arrows_against_layering(edges):
    bad = []
    for module, targets in edges.items():
        source = layer_of(module)
        if source is None:
            continue  # keras_pu/__init__.py gathers everything
        for target in targets:
            dest = layer_of(target)
            if dest == source:
                continue
            if dest is None or LAYERS[dest] >= LAYERS[source]:
                bad.append(f"{module} -> {target}")
    return sorted(bad)


def test_no_upward_or_sideways_arrow():
    bad = arrows_against_layering(graph())
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def find_cycle(edges):
    """One cycle (a list of modules) or None, by depth-first search."""
    state = {}  # module -> "open" while on the stack, "done" after

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    "edges, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ],
)
def test_the_cycle_finder_finds_cycles(edges, expected):
    assert find_cycle(edges) == expected


def test_the_checker_catches_deferred_upward_imports():
    modules = all_modules()
    text = (
        "import keras\n"
        "from . import overlay_helpers\n"
        "def load():\n"
        "    from keras_pu.training.recipe import Recipe\n"
        "    import keras_pu\n"
    )
    found = imports_in_source(text, "keras_pu.inference", False, modules)
    assert found == {"keras_pu.training.recipe", "keras_pu"}
    assert arrows_against_layering({"keras_pu.inference": found}) == [
        "keras_pu.inference -> keras_pu",
        "keras_pu.inference -> keras_pu.training.recipe",
    ]
    # A relative import resolves against the package.
    found = imports_in_source(
        "from .registry import get_model_spec\n", "keras_pu.models.residual_unet",
        False, modules,
    )
    assert found == {"keras_pu.models.registry"}
    # Layers must not reach up to models.
    assert arrows_against_layering(
        {"keras_pu.layers.product_unit": {"keras_pu.models.registry"}}
    ) == ["keras_pu.layers.product_unit -> keras_pu.models.registry"]


def test_the_package_never_imports_the_maintainer_tools():
    """tools/ (registry, cards and README writers, publishing) exists only in
    a source checkout; the installed package must not need it."""
    users = []
    for name, path in all_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            if any(n == "tools" or n.startswith("tools.") for n in names):
                users.append(name)
    assert not users, f"keras_pu modules importing tools/: {users}"
