"""The house rules that keep terrmap easy to change: the layer contract, imports at the top, lint clean."""

from __future__ import annotations

import ast
import re
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


# A string constant (or f-string, its placeholders read as "{}") that opens like a statement sent to DuckDB.
# Shapes, not bare keywords, so user-facing texts such as "Delete territory" or "Create scenario" pass.
SQL_STATEMENT = re.compile(
    r"\s*(SELECT\b(?=.*\bFROM\b)|SELECT\s+\w+\s*\(|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b"
    r"|CREATE\s+(OR\s+REPLACE\s+)?(TEMP\s+|TEMPORARY\s+)?(TABLE|VIEW|INDEX|SEQUENCE|MACRO)\b"
    r"|WITH\s+(RECURSIVE\s+)?(\w+\s+AS\s*\(|\{\}))",
    re.IGNORECASE | re.DOTALL,
)

# Modules outside terrmap/data/ that may still hold SQL, and why. Everything else asks terrmap/data/.
SQL_ALLOWED = {
    # The importer's SQL reads the user's file itself (read_csv/read_parquet) and its temporary staging
    # tables, whose columns io.read names: the file's shape, not the store's schema. progress.py only
    # reads a DuckDB setting (current_setting), no table.
    "terrmap/io/read.py": "io: SQL over the file being imported",
    "terrmap/io/validate.py": "io: SQL over the staged rows of the file being imported",
    "terrmap/io/progress.py": "io: a DuckDB setting, no table",
}


def _string_texts(tree: ast.AST):
    """(line, text) of every string constant and f-string (placeholders as "{}") in ``tree``."""
    in_fstring = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            yield node.lineno, text
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in in_fstring:
            yield node.lineno, node.value


def sql_statements(path: Path, root: Path = ROOT) -> list[str]:
    """``path:line: start of the statement`` for each SQL statement written in the module at ``path``."""
    return [f"{path.relative_to(root)}:{line}: {' '.join(text.split())[:70]}"
            for line, text in sorted(_string_texts(ast.parse(path.read_text()))) if SQL_STATEMENT.match(text)]


def _modules_outside_data() -> list[Path]:
    terrmap = [p for p in sorted((ROOT / "terrmap").rglob("*.py")) if (ROOT / "terrmap" / "data") not in p.parents]
    return terrmap + sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]


def test_only_terrmap_data_writes_sql():
    """terrmap/data/ is the only code that knows the schema: pages, the app, the rep view, scoring, the
    optimizer ... call its functions and send no SQL of their own (except :data:`SQL_ALLOWED`, with reasons)."""
    bad = [s for path in _modules_outside_data() if path.relative_to(ROOT).as_posix() not in SQL_ALLOWED
           for s in sql_statements(path)]
    assert not bad, "SQL outside terrmap/data/ (move it into a terrmap/data/ function):\n" + "\n".join(bad)


def test_the_sql_allow_list_has_no_stale_entries():
    stale = [p for p in SQL_ALLOWED if not (ROOT / p).exists() or not sql_statements(ROOT / p)]
    assert not stale, f"allowed to hold SQL but hold none (drop them from SQL_ALLOWED): {stale}"


def test_the_sql_rule_detects_statements_not_texts(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        'A = "SELECT a FROM t"\n'
        'B = st.button("Delete territory")\n'
        'C = f"""\n    with w AS (SELECT 1) SELECT * FROM w WHERE x = {x}"""\n'
        'D = "Create scenario"\n'
        'E = f"UPDATE leads SET score = {s}"\n'
        'F = "Select the plan to compare"\n'
        'G = "SELECT count(*)" " FROM leads"\n'
        'H = ("insert into reps " + "VALUES (1)")\n'
        'I = f"WITH {ctes} UPDATE leads SET score = 0"\n'
    )
    found = sorted(int(s.split(":")[1]) for s in sql_statements(sample, tmp_path))
    assert found == [1, 3, 6, 8, 9, 10]


def test_no_table_shows_money_without_thousands_separators():
    """Issue 14.13: a printf money format ("$%.0f") shows $183245195; tables use Streamlit's "compact" or "dollar"
    number formats (with separators) like every other page."""
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in [*ROOT.glob("pages/*.py"), *ROOT.glob("terrmap/app/*.py")]
                 for n, line in enumerate(path.read_text().splitlines(), start=1) if re.search(r"format=\"\$%", line)]
    assert not offenders, offenders
