"""The architecture of docs/architecture.md, enforced: import layers, no cycles, no hidden imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

from hvla_platform_tests.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "hvla_platform"
LIB_PACKAGES = ["core", "formats", "sim", "ingest", "processing", "dataset", "training", "serving", "evaluation",
                "lineage", "ops", "web"]


def test_import_layer_contracts_are_kept() -> None:
    """``lint-imports`` (import-linter, contracts in pyproject.toml): cli > definitions > defs > lib;
    lib's packages in lifecycle order; lib never imports Dagster."""
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 kept, 0 broken" in proc.stdout, proc.stdout


def test_layer_contract_lists_every_lib_package() -> None:
    """A new lib/ package must be placed in the lifecycle order (the contract is ``exhaustive``)."""
    found = sorted(p.name for p in (PACKAGE / "lib").iterdir() if (p / "__init__.py").exists())
    assert found == sorted(LIB_PACKAGES)
    text = (REPO_ROOT / "pyproject.toml").read_text()
    order = [text.index(f'  "{name}",') for name in reversed(LIB_PACKAGES)]
    assert order == sorted(order), "pyproject's layer list is not in lifecycle order (top = ops, bottom = core)"


def _cycles(graph: grimp.ImportGraph, modules: list[str]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    adj = {m: [n for n in graph.find_modules_directly_imported_by(m) if n in graph.modules and n.startswith("hvla_platform")]
           for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in modules:
        if m not in index:
            visit(m)
    return out


def test_no_import_cycle_between_modules() -> None:
    """No module of the package imports itself back through any chain (function bodies included)."""
    graph = grimp.build_graph("hvla_platform")
    modules = sorted(m for m in graph.modules if m.startswith("hvla_platform"))
    assert len(modules) > 50
    assert _cycles(graph, modules) == []


def _inner_imports(path: Path) -> list[tuple[int, str, str]]:
    """First-party imports inside function bodies: (line, module, the comment lines above/on it)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("hvla_platform"):
                module = inner.module or ""
            elif isinstance(inner, ast.Import) and any(a.name.startswith("hvla_platform") for a in inner.names):
                module = inner.names[0].name
            else:
                continue
            # the reason: a "# deferred: ..." comment in the block of comment/import/blank lines above
            i = inner.lineno - 1
            context = [lines[i]]
            while i > 0 and (not lines[i - 1].strip() or lines[i - 1].strip().startswith(("#", "from ", "import "))):
                i -= 1
                context.append(lines[i])
            out.append((inner.lineno, module, "\n".join(context)))
    return out


def test_first_party_imports_inside_functions_state_why() -> None:
    """Imports of our own modules sit at module top, so the dependency graph is visible; the only
    exception defers a heavy third-party import (dagster, jax, mujoco) and says so in a
    ``# deferred: <reason>`` comment."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, module, context in _inner_imports(path):
            if "# deferred:" not in context:
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {module} inside a function")
    assert offenders == []


def test_product_code_never_imports_the_tests() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(REPO_ROOT)}:{node.lineno}" for n in names if n.startswith("hvla_platform_tests")]
    assert offenders == []


def test_the_checker_sees_an_unexplained_inner_import(tmp_path: Path) -> None:
    """The inner-import rule would catch a violation (so the test above can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from hvla_platform.lib.core import keys\n    return keys\n")
    good = tmp_path / "good.py"
    good.write_text("def f():\n    # deferred: jax is heavy\n    from hvla_platform.lib.training import model  # noqa\n    return model\n")
    assert [c for *_, c in _inner_imports(bad) if "# deferred:" not in c]
    assert not [c for *_, c in _inner_imports(good) if "# deferred:" not in c]
