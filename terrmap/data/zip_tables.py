"""The ZIP geography's tables: ``zips`` (the census reference and each ZIP's region ZIP), ``zip_shapes``
(the polygons, GeoJSON text), ``zip_shape_edges`` / ``zip_shape_sizes`` (their shared borders and sizes).

terrmap.geo computes the geometry and holds no SQL; it sits below this layer, so it does not import this
module but reaches it through the store it is given (``store.zip_tables``, see :class:`terrmap.data.store.Store`).
Functions taking ``tx`` run inside the caller's transaction.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from terrmap.data.insert import insert_frame, replace_rows
from terrmap.data.rollup import refresh_rollup
from terrmap.geo.zipdata import reference_table

if TYPE_CHECKING:
    from terrmap.data.store import Store

_UPSERT_META = "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


# -- zips ------------------------------------------------------------------------------------------------------------
def load_zip_reference(store: Store) -> None:
    """Fill the ``zips`` table (done once, when a database is created)."""
    insert_frame(store.cursor(), "zips", reference_table())


def region_points(store: Store) -> pd.DataFrame:
    """The region ZIPs (standard ZIPs with a centroid): zip, state, lat, lon."""
    return store.cursor().execute(
        """
        SELECT zip, state, lat, lon FROM zips
        WHERE zip = region_zip AND lat IS NOT NULL AND lon IS NOT NULL AND state IS NOT NULL
        ORDER BY state, zip
        """
    ).df()


def region_centroids(store: Store, zips: list[str]) -> dict[str, tuple[float, float]]:
    """(lat, lon) of each of ``zips`` that is a region ZIP with a centroid."""
    rows = store.cursor().execute(
        "SELECT zip, lat, lon FROM zips WHERE zip IN (SELECT unnest(?::VARCHAR[])) AND zip = region_zip "
        "AND lat IS NOT NULL",
        [list(zips)],
    ).fetchall()
    return {z: (float(lat), float(lon)) for z, lat, lon in rows}


def region_zip_map(store: Store) -> pd.DataFrame:
    """zip, region_zip of every ZIP as stored now."""
    return store.cursor().execute("SELECT zip, region_zip FROM zips").df()


def located_non_region_zips(store: Store) -> pd.DataFrame:
    """zip, state, lat, lon, region_zip of the located ZIPs that are not regions themselves (PO box, unique, ...)."""
    return store.cursor().execute(
        """
        SELECT zip, state, lat, lon, region_zip FROM zips
        WHERE lat IS NOT NULL AND lon IS NOT NULL AND zip IS DISTINCT FROM region_zip
        ORDER BY zip
        """
    ).df()


def apply_region_zips(tx: duckdb.DuckDBPyConnection, mapping: pd.DataFrame) -> dict:
    """Write zips.region_zip from ``mapping`` (zip, region_zip); move the leads that followed the old mapping.

    Returns the counts: zips_remapped, leads_moved.
    """
    tx.register("new_region_zips", mapping)
    try:
        tx.execute("DROP TABLE IF EXISTS temp.region_zip_changes")
        tx.execute(
            """
            CREATE TEMP TABLE region_zip_changes AS
            SELECT z.zip, z.region_zip AS old_region, n.region_zip AS new_region
            FROM zips z JOIN new_region_zips n ON n.zip = z.zip
            WHERE z.region_zip IS DISTINCT FROM n.region_zip
            """
        )
    finally:
        tx.unregister("new_region_zips")
    changed = tx.execute("SELECT count(*) FROM region_zip_changes").fetchall()[0][0]
    tx.execute("UPDATE zips SET region_zip = c.new_region FROM region_zip_changes c WHERE zips.zip = c.zip")
    leads = tx.execute(
        """
        SELECT count(*) FROM leads l JOIN region_zip_changes c
          ON l.postal_zip = c.zip AND l.zip IS NOT DISTINCT FROM c.old_region
        """
    ).fetchall()[0][0]
    tx.execute(
        """
        UPDATE leads SET zip = c.new_region FROM region_zip_changes c
        WHERE leads.postal_zip = c.zip AND leads.zip IS NOT DISTINCT FROM c.old_region
        """
    )
    tx.execute("DROP TABLE region_zip_changes")
    if leads:
        refresh_rollup(tx)
    return {"zips_remapped": int(changed), "leads_moved": int(leads)}


# -- zip_shapes ------------------------------------------------------------------------------------------------------
def has_shapes(store: Store) -> bool:
    """Whether ``zip_shapes`` holds any polygon."""
    return bool(store.scalar("SELECT count(*) > 0 FROM zip_shapes"))


def has_shapes_in(tx: duckdb.DuckDBPyConnection) -> bool:
    """:func:`has_shapes`, asked again inside a transaction (another thread may have filled the table)."""
    return bool(tx.execute("SELECT count(*) > 0 FROM zip_shapes").fetchall()[0][0])


def write_shapes(tx: duckdb.DuckDBPyConnection, rows: pd.DataFrame, edges: pd.DataFrame | None = None,
                 sizes: pd.DataFrame | None = None) -> None:
    """Replace ``zip_shapes`` with ``rows`` (zip, state, source, area_km2, geojson) and the adjacency with
    ``edges`` (a, b, length_km) and ``sizes`` (zip, area_km2, perimeter_km) of the new shapes; without them
    the old adjacency is dropped (recomputed from the new shapes when next needed)."""
    # Only the polygons that changed are written (a ZCTA load changes a state's few hundred; see replace_rows).
    replace_rows(tx, "zip_shapes", rows, "zip, state, source, area_km2, geojson", ["zip"])
    tx.execute(f"INSERT INTO meta SELECT '{_STAMP_KEY}', {_STAMP_SQL} FROM zip_shapes "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
    tx.execute("DELETE FROM zip_shape_edges")
    if edges is not None and sizes is not None:
        insert_frame(tx, "zip_shape_edges", edges, "a, b, length_km")
        replace_rows(tx, "zip_shape_sizes", sizes, "zip, area_km2, perimeter_km", ["zip"])
    else:  # The adjacency belongs to the geometry: recomputed from the new shapes when next needed.
        tx.execute("DELETE FROM zip_shape_sizes")


def _insert_adjacency(tx: duckdb.DuckDBPyConnection, edges: pd.DataFrame, sizes: pd.DataFrame) -> None:
    insert_frame(tx, "zip_shape_edges", edges, "a, b, length_km")
    insert_frame(tx, "zip_shape_sizes", sizes, "zip, area_km2, perimeter_km")


def write_meta(tx: duckdb.DuckDBPyConnection, items: list[tuple[str, str]]) -> None:
    """Upsert (key, value) pairs into ``meta`` inside the caller's transaction."""
    for key, value in items:
        tx.execute(_UPSERT_META, [key, value])


def shape_geojson(store: Store, zips: list[str]) -> dict[str, dict]:
    """zip -> GeoJSON geometry (parsed) of each of ``zips`` that has a polygon."""
    rows = store.cursor().execute(
        "SELECT zip, geojson FROM zip_shapes WHERE zip IN (SELECT unnest(?::VARCHAR[]))", [list(zips)]
    ).fetchall()
    return {z: json.loads(g) for z, g in rows}


def shape_table(store: Store, zips=None, states=None) -> pd.DataFrame:
    """zip, state, source, area_km2, geojson of the stored polygons (all, or those of ``zips``, or of
    ``states``), by zip."""
    where, params = "true", []
    if zips is not None:
        where, params = "zip IN (SELECT unnest(?::VARCHAR[]))", [list(zips)]
    elif states is not None:
        where, params = "state IN (SELECT unnest(?::VARCHAR[]))", [list(states)]
    return store.cursor().execute(
        f"SELECT zip, state, source, area_km2, geojson FROM zip_shapes WHERE {where} ORDER BY zip", params
    ).df()


def land_area_by_state(store: Store) -> dict[str, float]:
    """km² of ZIP polygons per state: the land of each state (see terrmap.geo.land)."""
    return dict(store.cursor().execute(
        "SELECT state, sum(area_km2) FROM zip_shapes WHERE state IS NOT NULL GROUP BY state").fetchall())


# A fingerprint of the polygons' content (databases with the same geometry share cached land and cells), taken
# when they are written: hashing every polygon again costs 8 ms, and every area and graph lookup asks for it.
_STAMP_KEY = "zip_shapes_stamp"
_STAMP_SQL = "count(*)::VARCHAR || ':' || coalesce(sum(hash(zip, geojson)), 0)::VARCHAR"


# Schema migration 6: the stamp of shapes written before stamps existed, once, instead of on every read.
BACKFILL_STAMP_SQL = (f"INSERT INTO meta SELECT '{_STAMP_KEY}', {_STAMP_SQL} FROM zip_shapes HAVING count(*) > 0 "
                      "ON CONFLICT (key) DO NOTHING")


def shapes_stamp(store: Store) -> str:
    """A fingerprint of the stored polygons: what caches of anything computed from them key on."""
    cur = store.cursor()
    row = cur.execute("SELECT value FROM meta WHERE key = ?", [_STAMP_KEY]).fetchall()
    if row:
        return row[0][0]
    # a database opened read-only before migration 6 wrote its stamp
    return cur.execute(f"SELECT {_STAMP_SQL} FROM zip_shapes").fetchall()[0][0]


def all_shape_geojson(store: Store) -> pd.DataFrame:
    """zip, geojson of every stored polygon, by zip."""
    return store.cursor().execute("SELECT zip, geojson FROM zip_shapes ORDER BY zip").df()


# -- zip_shape_edges / zip_shape_sizes ---------------------------------------------------------------------------
def has_adjacency(store: Store) -> bool:
    """Whether the borders and sizes of the current polygons are stored."""
    return bool(store.scalar("SELECT count(*) > 0 FROM zip_shape_sizes"))


def adjacency_tables(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All stored borders (a, b, length_km) and sizes (zip, area_km2, perimeter_km)."""
    cur = store.cursor()
    return (cur.execute("SELECT a, b, length_km FROM zip_shape_edges ORDER BY a, b").df(),
            cur.execute("SELECT zip, area_km2, perimeter_km FROM zip_shape_sizes ORDER BY zip").df())


def shape_sizes(store: Store, zips: list[str]) -> dict[str, tuple[float, float]]:
    """zip -> (area_km2, perimeter_km) of each of ``zips`` with a stored size."""
    rows = store.cursor().execute(
        "SELECT zip, area_km2, perimeter_km FROM zip_shape_sizes WHERE zip IN (SELECT unnest(?::VARCHAR[]))",
        [list(zips)],
    ).fetchall()
    return {z: (a, p) for z, a, p in rows}


def shape_edges_among(store: Store, zips: list[str]) -> list[tuple[str, str, float]]:
    """(a, b, length_km) of the stored borders between two of ``zips``."""
    return store.cursor().execute(
        """
        WITH wanted AS (SELECT unnest(?::VARCHAR[]) AS zip)
        SELECT a, b, length_km FROM zip_shape_edges
        WHERE a IN (SELECT zip FROM wanted) AND b IN (SELECT zip FROM wanted)
        """,
        [list(zips)],
    ).fetchall()


def write_adjacency(store: Store, edges: pd.DataFrame, sizes: pd.DataFrame) -> None:
    """Fill zip_shape_edges (a, b, length_km) and zip_shape_sizes (zip, area_km2, perimeter_km) in one
    transaction, unless another thread filled them first."""
    with store.transaction() as tx:
        if tx.execute("SELECT count(*) > 0 FROM zip_shape_sizes").fetchall()[0][0]:
            return  # another thread got there first
        _insert_adjacency(tx, edges, sizes)
