"""The package's shape, kept by tests: no import loops (function-local imports included), stage 2's rooms import
one way (inputs <- fit <- after), function-local imports of the package's own modules only with a stated
reason, and no function longer than a screen and a half."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"sercache": "sercache", "extract": "sercache.extract", "cache": "sercache.cache",
            "heads": "sercache.heads"}
MAX_FUNCTION_LINES = 80
MAX_LOCAL_IMPORTS = 5
LAZY_MARK = "# lazy:"  # a function-local import of the package's own modules says why on its line or the one above


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [PACKAGES[rel.parts[0]], *rel.parts[1:]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_files() -> dict[str, Path]:
    return {module_name(p): p for folder in PACKAGES for p in sorted((ROOT / folder).rglob("*.py"))}


def imported(node: ast.ImportFrom | ast.Import, module: str, is_package: bool) -> list[str]:
    """Absolute names an import statement refers to (modules, and module.attribute for `from m import a`)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target, *(f"{target}.{a.name}" for a in node.names)]


def function_imports(tree: ast.AST) -> set[int]:
    return {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}


def import_graph(files: dict[str, Path], root: Path = ROOT) -> tuple[dict[str, set[str]], list[str]]:
    """module -> the package's modules it imports (anywhere in the file); and the function-local ones
    ('file:line') that carry no reason."""
    edges: dict[str, set[str]] = {m: set() for m in files}
    unexplained = []
    for module, path in files.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        local = function_imports(tree)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            hits = {t for t in imported(node, module, path.name == "__init__.py") if t in files and t != module}
            edges[module] |= hits
            explained = any(LAZY_MARK in lines[i] for i in (node.lineno - 1, node.lineno - 2))
            if hits and id(node) in local and not explained:
                unexplained.append(f"{path.relative_to(root)}:{node.lineno}")
    return edges, unexplained


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_loop_through_a_function_local_import(tmp_path):
    files = {"sercache.a": tmp_path / "a.py", "sercache.b": tmp_path / "b.py"}
    files["sercache.a"].write_text("from sercache.b import x\n")
    files["sercache.b"].write_text("def f():\n    from sercache.a import y\n")
    edges, unexplained = import_graph(files, tmp_path)
    assert cycles(edges) == [["sercache.a", "sercache.b"]] and unexplained == ["b.py:2"]
    files["sercache.b"].write_text("def f():\n    from sercache.a import y  # lazy: a test\n")
    assert import_graph(files, tmp_path)[1] == []


def test_the_package_has_no_import_loop():
    edges, _ = import_graph(package_files())
    assert cycles(edges) == []


def test_function_local_imports_of_the_package_are_few_and_explained():
    _, unexplained = import_graph(package_files())
    assert unexplained == []
    local = sum(1 for path in package_files().values() for line in path.read_text().splitlines()
                if LAZY_MARK in line)
    assert local <= MAX_LOCAL_IMPORTS


@pytest.mark.parametrize("room, forbidden", [("sercache.heads.inputs", ("sercache.heads.fit", "sercache.heads.after")),
                                             ("sercache.heads.fit", ("sercache.heads.after",))])
def test_stage_two_rooms_import_one_way(room, forbidden):
    edges, _ = import_graph(package_files())
    wrong = sorted(f"{m} -> {t}" for m, targets in edges.items() if m.startswith(room)
                   for t in targets if t.startswith(forbidden))
    assert wrong == []


def test_stage_two_does_not_import_the_cross_stage_package():
    edges, _ = import_graph(package_files())
    allowed = ("sercache.errors", "sercache.command", "sercache.dataclass_cli", "sercache")  # error root, CLI parts
    wrong = sorted(f"{m} -> {t}" for m, targets in edges.items() if m.startswith("sercache.heads")
                   for t in targets if not t.startswith(("sercache.heads", "sercache.cache", "sercache.extract"))
                   and t not in allowed)
    assert wrong == []


def test_no_function_is_longer_than_80_lines():
    files = [*package_files().values(), *sorted((ROOT / "tests").glob("*.py"))]
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in files for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
