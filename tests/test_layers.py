"""The package's layers: imports run one way (no module imports from a layer above it) and no circles.

    core (0) <- model (1) <- serve (2) <- remote (3) <- research (4) <- notebook (5) <- cloud (6) <- cli (7)

A module's layer is its folder; nothing is relabelled. Every import counts, wherever it is written: at
module level, inside a function, in a ``try``. The one exception is an import under
``if TYPE_CHECKING:`` (it never runs). A lazy package's ``_EXPORTS`` table (``lazy_getattr``) counts as
imports too. So a function may load a heavy optional package late (torch, moshi, modal, silero,
playwright), but never a module of a layer above its own.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jmoshi_nb"
LAYERS = {  # folder -> layer
    "jmoshi_nb.core": 0,
    "jmoshi_nb.model": 1,
    "jmoshi_nb.serve": 2,
    "jmoshi_nb.remote": 3,
    "jmoshi_nb.research": 4,
    "jmoshi_nb.notebook": 5,
    "jmoshi_nb.cloud": 6,
    "jmoshi_nb.cli": 7,
    "jmoshi_nb": 8,  # the package's lazy public names
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _type_checking_blocks(tree: ast.Module) -> set[int]:
    """ids of every node under ``if TYPE_CHECKING:`` (those imports never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name | ast.Attribute):
            name = node.test.id if isinstance(node.test, ast.Name) else node.test.attr
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    skipped |= {id(n) for n in ast.walk(stmt)}
    return skipped


def _inside_function(tree: ast.Module) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inside |= {id(n) for n in ast.walk(node) if n is not node}
    return inside


def _lazy_exports(tree: ast.Module, package: str) -> list[str]:
    """The modules a ``lazy_getattr`` package's ``_EXPORTS`` table points to."""
    out = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            assert isinstance(node.value, ast.Dict)
            for value in node.value.values:
                assert isinstance(value, ast.Constant) and isinstance(value.value, str)
                out.append(f"{package}.{value.value}")
    return out


def imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported name, inside a function?, line) for every import in ``path`` that runs."""
    return imports_in(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def imports_in(source: str, me: str, is_package: bool) -> list[tuple[str, bool, int]]:
    """``imports`` for the text of module ``me``: a ``from X import y`` gives ``X`` and, where ``X.y`` is a
    module, ``X.y``."""
    tree = ast.parse(source)
    package = me if is_package else me.rpartition(".")[0]
    skipped, in_function = _type_checking_blocks(tree), _inside_function(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
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
            names = [mod] + [f"{mod}.{a.name}" for a in node.names if is_module(f"{mod}.{a.name}")]
        out += [(name, id(node) in in_function, getattr(node, "lineno", 0)) for name in names]
    if "lazy_getattr" in source:
        out += [(name, True, 0) for name in _lazy_exports(tree, package)]
    return out


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p): p for p in FILES}


def package_edges() -> dict[str, set[str]]:
    """module -> the package modules importing it runs (its imports and their parent packages)."""
    graph: dict[str, set[str]] = {}
    for me, path in MODULES.items():
        targets = set()
        for name, _, _ in imports(path):
            if not name.startswith("jmoshi_nb"):
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                prefix = ".".join(parts[:i])
                if prefix in MODULES and prefix != me and not me.startswith(prefix + "."):
                    targets.add(prefix)
        graph[me] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above_it(path: Path) -> None:
    me = module_name(path)
    wrong = [
        f"{name} (line {line})"
        for name, _, line in imports(path)
        if name.startswith("jmoshi_nb") and is_module(name) and layer(name) > layer(me)
    ]
    assert not wrong, f"{me} (layer {layer(me)}) imports from above: {wrong}"


def test_no_import_circles_counting_imports_inside_functions() -> None:
    found = circles(package_edges())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_checker_sees_imports_inside_functions_and_circles() -> None:
    source = "def f():\n    from ..research import sweeps\n    import scipy\nif TYPE_CHECKING:\n    import pandas\n"
    found = imports_in(source, "jmoshi_nb.core.probe", is_package=False)
    assert ("jmoshi_nb.research", True, 2) in found and ("jmoshi_nb.research.sweeps", True, 2) in found
    assert ("scipy", True, 3) in found and all(name != "pandas" for name, _, _ in found)
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_public_names_are_what_the_readme_calls() -> None:
    import inspect

    import jmoshi_nb

    assert inspect.isfunction(jmoshi_nb.turn_taking) and inspect.isfunction(jmoshi_nb.sweep)
    assert inspect.ismodule(jmoshi_nb.bench) and callable(jmoshi_nb.bench.run) and callable(jmoshi_nb.bench.score)
    for name in jmoshi_nb.__all__:
        assert getattr(jmoshi_nb, name) is not None


def test_session_is_a_deprecated_name_for_the_client() -> None:
    import jmoshi_nb
    from jmoshi_nb.notebook.session import NotebookSession
    from jmoshi_nb.serve.client import ChatClient

    assert "Session" not in jmoshi_nb.__all__ and jmoshi_nb.NotebookSession is NotebookSession
    with pytest.warns(DeprecationWarning, match=r"jmoshi_nb\.Session is deprecated.*ChatClient"):
        assert jmoshi_nb.Session is ChatClient
    with pytest.warns(DeprecationWarning):  # every use warns (the name is never cached on the package)
        _ = jmoshi_nb.Session


def test_the_public_places_offer_what_the_notebooks_call() -> None:
    import jmoshi_nb
    from jmoshi_nb import bench, listening

    for name in ("plot_items", "plot_latency_distributions", "plot_task_bars", "format_scores", "load_scores"):
        assert callable(getattr(bench, name)), name
    assert callable(listening.ListeningWidget) and callable(listening.ListeningTest.create)
    for name in ("speech_wav", "dialogue_wav", "replay", "side_by_side", "save_textgrid", "export_textgrids",
                 "iter_recordings", "run_metrics", "plot_recording"):  # fmt: skip
        assert callable(getattr(jmoshi_nb, name)), name
