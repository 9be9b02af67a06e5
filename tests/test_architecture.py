"""The house rules that keep terrmap easy to change: the layer contract, imports at the top, lint clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: it is in requirements.txt (./run test installs it)")
    return found


def test_layer_contract_holds():
    """pyproject.toml's import-linter contracts: layers only import downwards, only terrmap.app
    imports Streamlit/folium, and no package has an import cycle among its modules."""
    run = subprocess.run([_tool("lint-imports"), "--no-cache", "--config", "pyproject.toml"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_ruff_is_clean():
    run = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def _function_imports(tree: ast.AST):
    """Import statements inside function bodies, outside ``if TYPE_CHECKING:`` blocks."""
    def walk(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            yield from walk(child, inner)

    yield from walk(tree, False)


def function_imports_without_reason(path: Path, root: Path = ROOT) -> list[str]:
    lines = path.read_text().splitlines()
    bad = []
    for node in _function_imports(ast.parse(path.read_text())):
        # The reason may sit on the import's line or above the group of imports it belongs to.
        i = node.lineno - 1
        while i > 0 and lines[i - 1].strip().startswith(("from ", "import ")) and "#" not in lines[i]:
            i -= 1
        said = "#" in lines[i] or (i > 0 and lines[i - 1].strip().startswith("#"))
        if not said:
            bad.append(f"{path.relative_to(root)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return bad


def test_imports_inside_functions_say_why():
    """An import inside a function (a heavy optional dependency, a slow start avoided) carries a
    comment saying so; everything else imports at the top of the module."""
    bad = [b for path in sorted((ROOT / "terrmap").rglob("*.py")) for b in function_imports_without_reason(path)]
    assert not bad, "imports inside functions without a reason:\n" + "\n".join(bad)


def test_the_import_rule_detects_a_silent_function_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import json\n    return json\n\n\ndef g():\n    # heavy: 2 s to import\n"
                      "    import json\n    import os\n    return json\n\n\nif True:\n    from typing import TYPE_CHECKING\n")
    assert function_imports_without_reason(sample, tmp_path) == ["sample.py:2: import json"]
