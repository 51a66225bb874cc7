"""Imports run one way between the top-level packages (README "Layout").

Walks every import statement of the package sources with `ast`, function-level imports
included, and fails on:

- a cycle between layers: the base layer (`deepsense.data`, `deepsense.errors`,
  `deepsense.config`, the `deepsense` package itself), `deepsense` (model, training,
  evaluation, export), `rdeepsense`, `deepiot`, `edge` and `gateway`; `deepsense.cli` is
  the composition root, which may import anything and which nothing imports;
- `edge` or `gateway` importing TensorFlow or Keras, directly or through any module they
  import; `edge` importing paho-mqtt.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("deepsense", "rdeepsense", "deepiot", "edge", "gateway")
ROOT = "deepsense.cli"
DATA_LAYER = "deepsense.data"
TENSORFLOW = {"tensorflow", "keras", "tf_keras", "tensorboard"}
#: External top-level modules each NumPy-only package must not reach.
FORBIDDEN = {"edge": TENSORFLOW | {"paho"}, "gateway": TENSORFLOW}


def package_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> source file, for every .py file of `packages` under `root`."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def module_imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> every module it imports anywhere in its source (functions included).

    ``from a.b import c`` counts as importing ``a.b.c`` when that is one of `modules`,
    else ``a.b``; relative imports are resolved against the importing module.
    """
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in modules else base)
        graph[name] = found - {"__future__"}
    return graph


def with_parents(module: str) -> list[str]:
    """`a.b.c` -> [a, a.b, a.b.c]: importing a module runs its packages' __init__ first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def layer_of(module: str) -> str:
    """The layer a module belongs to (a top-level package, with `deepsense` split in three)."""
    top = module.split(".")[0]
    if top != "deepsense":
        return top
    if module == ROOT or module.startswith(f"{ROOT}."):
        return ROOT
    data = module in ("deepsense", "deepsense.errors", "deepsense.config", DATA_LAYER)
    return DATA_LAYER if data or module.startswith(f"{DATA_LAYER}.") else "deepsense"


def layer_graph(imports: dict[str, set[str]]) -> dict[str, dict[str, list[str]]]:
    """Layer -> imported layer -> the "importer -> imported" module pairs behind the edge."""
    graph: dict[str, dict[str, list[str]]] = {}
    for module, imported in imports.items():
        for target in imported:
            for reached in with_parents(target):
                if reached in imports and layer_of(reached) != layer_of(module):
                    graph.setdefault(layer_of(module), {}).setdefault(
                        layer_of(reached), []).append(f"{module} -> {reached}")
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of the layer graph as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def reached_externals(start: str, imports: dict[str, set[str]]) -> dict[str, list[str]]:
    """External top-level module -> one import chain from `start` that reaches it."""
    chains = {start: [start]}
    queue = deque([start])
    found: dict[str, list[str]] = {}
    while queue:
        module = queue.popleft()
        for target in sorted(imports[module]):
            if target.split(".")[0] not in imports:  # not one of our packages
                found.setdefault(target.split(".")[0], chains[module] + [target])
                continue
            for reached in with_parents(target):
                if reached in imports and reached not in chains:
                    chains[reached] = chains[module] + [reached]
                    queue.append(reached)
    return found


@pytest.fixture(scope="module")
def imports() -> dict[str, set[str]]:
    return module_imports(package_modules(REPO, PACKAGES))


def test_no_cycle_between_packages(imports):
    graph = layer_graph({m: i for m, i in imports.items() if layer_of(m) != ROOT})
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle) + "\n" + \
        "\n".join(f"  {a} -> {b}: {graph[a][b][:3]}" for a, b in zip(cycle, cycle[1:]))


def test_only_the_cli_wires_packages(imports):
    importers = [m for m, i in imports.items() for t in i if layer_of(t) == ROOT
                 and layer_of(m) != ROOT]
    assert importers == [], f"{ROOT} is the composition root; imported by {importers}"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_edge_side_never_imports_tensorflow(package, imports):
    problems = [" -> ".join(chain)
                for module in imports if layer_of(module) == package
                for name, chain in reached_externals(module, imports).items()
                if name in FORBIDDEN[package]]
    assert problems == [], f"{package} must not import {sorted(FORBIDDEN[package])}:\n" + \
        "\n".join(problems)


def test_the_checks_see_cycles_and_function_level_imports(tmp_path):
    for name, source in {"a/__init__.py": "", "a/one.py": "def f():\n    from b import two\n",
                         "b/__init__.py": "", "b/two.py": "import keras\nfrom a import one\n"
                         }.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(source)
    fake = module_imports(package_modules(tmp_path, ("a", "b")))
    assert fake["a.one"] == {"b.two"} and fake["b.two"] == {"keras", "a.one"}
    assert find_cycle(layer_graph(fake)) == ["a", "b", "a"]
    assert reached_externals("a.one", fake)["keras"] == ["a.one", "b.two", "keras"]
