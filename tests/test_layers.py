"""The package's layers: imports run one way (no module imports from a layer above it) and no cycles.

    core (0) <- model (1) <- serve (2) <- research (3) <- notebook (4) <- cloud app/CLI (5) <- cli (6)

``cloud.settings`` (names, no modal import) sits with core; ``cloud.backend`` (starting Modal
containers, the client side) sits with serve, which offers it as the ``modal`` backend.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jmoshi_nb"
LAYERS = {  # module prefix -> layer; the longest matching prefix wins
    "jmoshi_nb.core": 0,
    "jmoshi_nb.cloud.settings": 0,
    "jmoshi_nb.model": 1,
    "jmoshi_nb.serve": 2,
    "jmoshi_nb.cloud.backend": 2,
    "jmoshi_nb.research": 3,
    "jmoshi_nb.notebook": 4,
    "jmoshi_nb.cloud": 5,
    "jmoshi_nb.cli": 6,
    "jmoshi_nb": 7,  # the package's lazy public names
}
# Deferred (inside a function) upward imports the architecture accepts, each with its reason.
ALLOWED_UPWARD = {
    # Recording.save_textgrid: the IPU tiers come from turn-taking analysis (research).
    ("jmoshi_nb.core.recording", "jmoshi_nb.research.textgrid"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def run_at_import(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements that run when the module is imported (not under ``if TYPE_CHECKING:``)."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            out += run_at_import(node.body) + run_at_import(node.orelse)
        elif isinstance(node, ast.Try):
            out += run_at_import(node.body) + run_at_import(node.orelse) + run_at_import(node.finalbody)
            for handler in node.handlers:
                out += run_at_import(handler.body)
    return out


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every jmoshi_nb import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    top_level = {id(n) for n in run_at_import(tree.body)}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("jmoshi_nb") and (PACKAGE.parent / (name.replace(".", "/") + ".py")).exists() or (
                name.startswith("jmoshi_nb") and (PACKAGE.parent / name.replace(".", "/")).is_dir()
            ):
                out.append((name, id(node) in top_level))
    return out


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above_it(path: Path) -> None:
    me = module_name(path)
    if me == "jmoshi_nb":
        return  # the lazy public names point everywhere by design
    wrong = [
        name
        for name, _ in imports(path)
        if layer(name) > layer(me) and (me, name) not in ALLOWED_UPWARD and name != "jmoshi_nb"
    ]
    assert not wrong, f"{me} (layer {layer(me)}) imports from above: {wrong}"


def test_no_import_cycles_at_module_level() -> None:
    graph = {module_name(p): {n for n, top in imports(p) if top and n != module_name(p)} for p in FILES}
    graph = {k: {n for n in v if n in graph} for k, v in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_public_names_are_what_the_readme_calls() -> None:
    import inspect

    import jmoshi_nb

    assert inspect.isfunction(jmoshi_nb.turn_taking) and inspect.isfunction(jmoshi_nb.sweep)
    assert inspect.ismodule(jmoshi_nb.bench) and callable(jmoshi_nb.bench.run) and callable(jmoshi_nb.bench.score)
    for name in jmoshi_nb.__all__:
        assert getattr(jmoshi_nb, name) is not None
