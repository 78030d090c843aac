"""The package's layering: every import runs downward, and no module imports itself back.

Imports are read from the source (module level and inside functions; ``if TYPE_CHECKING:``
blocks too, since they state a dependency). Each top-level part of the package has a rank; a
module may import from a strictly lower rank or from its own part. The module graph (a package
import is an edge to its ``__init__``) must have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mibpcert

ROOT = Path(mibpcert.__file__).parent

#: the layering, bottom first (README "Layout" and docs/methods.md print the same picture)
LAYERS: list[tuple[str, ...]] = [
    ("errors", "_version"),
    ("vocab",),
    ("config", "data", "domains"),
    ("threat",),
    ("ops",),
    ("model",),
    ("problem",),
    ("bounds",),
    ("encode",),
    ("parallel",),
    ("solvers",),
    ("attacks",),
    ("certify",),
    ("methods",),
    ("pipeline",),
    ("sweep",),
    ("cli",),
    ("__init__",),
]
RANK = {part: r for r, parts in enumerate(LAYERS) for part in parts}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = ["mibpcert", *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, modules: dict[str, Path], here: str) -> set[str]:
    """The mibpcert modules ``path`` imports (a submodule named in ``from P import m`` counts
    as the submodule, anything else as ``P``)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = here.split(".") if is_package else here.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            names = []
            for a in node.names:
                sub = f"{base}.{a.name}"
                names.append(sub if sub in modules else base)
        else:
            continue
        for name in names:
            if name == "mibpcert" or name.startswith("mibpcert."):
                while name not in modules and "." in name:
                    name = name.rsplit(".", 1)[0]
                found.add(name)
    found.discard(here)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(p, modules, m) for m, p in modules.items()}


def test_every_part_of_the_package_has_a_layer(graph):
    missing = sorted({_part(m) for m in graph} - set(RANK))
    assert not missing, f"give these parts a layer in LAYERS: {missing}"


def test_imports_run_down_the_layers(graph):
    upward = []
    for module, deps in graph.items():
        for dep in deps:
            a, b = _part(module), _part(dep)
            if a != b and RANK[b] >= RANK[a]:
                upward.append(f"{module} -> {dep}")
    assert not upward, "imports that run up (or across) the layering:\n" + "\n".join(upward)


def test_no_import_cycles(graph):
    """Depth-first search for a back edge; reports one cycle."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checker can fail: a bottom module that imports the pipeline is found."""
    modules = _modules()
    bad = tmp_path / "errors.py"
    bad.write_text("def f():\n    from mibpcert.pipeline import run\n")
    deps = _imports(bad, modules, "mibpcert.errors")
    assert "mibpcert.pipeline" in deps and RANK["pipeline"] > RANK["errors"]
