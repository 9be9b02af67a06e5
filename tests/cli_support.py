"""The command line run in the test's own process (``terrmap.cli.main``): what ``python -m terrmap`` runs, without
a second interpreter's ~1.5 s start-up per call. One test (tests/test_assign.py) runs the real ``python -m
terrmap`` in a subprocess."""

from __future__ import annotations

from dataclasses import dataclass

from terrmap import cli
from terrmap.data.store import close_store, resolve_db_path


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(capsys, *args: str, db=None) -> CliResult:
    """``python -m terrmap ARGS [--db DB]``: exit code, stdout and stderr. The command's database is closed
    afterwards, as the process's exit would."""
    argv = [*map(str, args), *(["--db", str(db)] if db is not None else [])]
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse and parser.exit
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        close_store(resolve_db_path(argv[argv.index("--db") + 1] if "--db" in argv else None))
    said = capsys.readouterr()
    return CliResult(code, said.out, said.err)
