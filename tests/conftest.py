"""Shared fixtures: small real demo databases (real DuckDB files, real ZIP geography)."""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager

import pytest
from hypothesis import settings

from terrmap.data.store import Store
from tests.db_support import built_demo, discard

SMALL_DEMO_LEADS = 20_000

# Property tests draw the same examples on every run and machine: a verdict must not depend on luck (a failure
# found once is kept as an @example beside its test). HYPOTHESIS_PROFILE=explore searches afresh.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config, items):
    """Browser tests carry the ``e2e`` mark, so ``-m "not e2e"`` is the fast loop."""
    for item in items:
        if item.path.name.startswith("test_e2e"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def demo_db_path(tmp_path_factory):
    """A demo database built once per test run; copy it before writing (see ``demo_store``)."""
    return built_demo(tmp_path_factory, "demo.duckdb", SMALL_DEMO_LEADS, seed=11)


@pytest.fixture
def demo_store(demo_db_path, tmp_path):
    """A private, writable copy of the session's demo database."""
    path = tmp_path / "demo.duckdb"
    shutil.copy(demo_db_path, path)
    store = Store(path)
    yield store
    discard(store)


@pytest.fixture(scope="module")
def module_demo_store(demo_db_path, tmp_path_factory):
    """One writable copy of the demo database for a whole test module (tests that leave it as they found it,
    or property tests whose examples each remove what they add)."""
    path = tmp_path_factory.mktemp("module") / "demo.duckdb"
    shutil.copy(demo_db_path, path)
    store = Store(path)
    yield store
    discard(store)


@pytest.fixture(scope="session")
def fresh_demo_store(demo_db_path, tmp_path_factory):
    """``with fresh_demo_store() as store:`` a private copy of the demo database, for one example of
    a property test (session-scoped, so hypothesis's function-scoped-fixture health check holds)."""
    folder = tmp_path_factory.mktemp("examples")

    @contextmanager
    def fresh():
        path = folder / f"{uuid.uuid4().hex}.duckdb"
        shutil.copy(demo_db_path, path)
        store = Store(path)
        try:
            yield store
        finally:
            discard(store)
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".wal").unlink(missing_ok=True)

    return fresh


@pytest.fixture
def empty_store(tmp_path):
    store = Store(tmp_path / "empty.duckdb")
    yield store
    discard(store)


# Browser fixtures (tests/e2e_support.py), registered here so every end-to-end module shares them.
from tests.e2e_support import app_url, browser, e2e_built, e2e_db, page  # noqa: E402,F401
