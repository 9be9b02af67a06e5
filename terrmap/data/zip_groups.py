"""States and counties as groupings of regions, for selecting many regions at once and for roll-ups.

* ZIP layer: a region ZIP's state and county are its own (``zips`` table).
  Every region ZIP is listed, with or without leads.
* H3 layers: a cell's state and county are those of the ZIP region holding
  most of its leads (ties: the smallest ZIP), computed in SQL from ``leads``
  grouped by the layer's region key. Cells without leads are not listed.

Roll-up: ``stats.merge(region_groups(store, layer), on="region_id")`` then
group by ``state`` or ``county_fips``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from terrmap.geo.base import Layer
from terrmap.geo.ziplayer import ZipLayer

if TYPE_CHECKING:
    from terrmap.data.store import Store

GROUP_COLUMNS = ["region_id", "state", "county_fips", "county"]


def _zip_groups_sql() -> str:
    return """
        SELECT zip AS region_id, state, county_fips, county FROM zips
        WHERE zip = region_zip AND lat IS NOT NULL AND state IS NOT NULL
    """


def _lead_groups_sql(layer: Layer) -> str:
    key = layer.region_key_sql("l")
    return f"""
        WITH per_zip AS (
            SELECT {key} AS k, l.zip, count(*) AS n
            FROM leads l WHERE l.zip IS NOT NULL
            GROUP BY ALL
        ), top AS (
            SELECT k, arg_min(zip, (-n, zip)) AS zip FROM per_zip GROUP BY k
        )
        SELECT {layer.region_id_sql('top.k')} AS region_id, z.state, z.county_fips, z.county
        FROM top JOIN zips z ON z.zip = top.zip
    """


def region_groups(store: Store, layer: Layer) -> pd.DataFrame:
    """region_id, state, county_fips, county for every region of ``layer`` (see the module doc), sorted."""
    sql = _zip_groups_sql() if isinstance(layer, ZipLayer) else _lead_groups_sql(layer)
    df = store.cursor().execute(f"SELECT * FROM ({sql}) ORDER BY region_id").df()
    return df[GROUP_COLUMNS].reset_index(drop=True)


def _as_list(values: str | Iterable[str] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        return [values]
    return [str(v) for v in values]


def regions_in(
    store: Store,
    layer: Layer,
    states: str | Iterable[str] | None = None,
    county_fips: str | Iterable[str] | None = None,
) -> list[str]:
    """Region ids of ``layer`` in any of ``states`` or any of the counties ``county_fips`` (sorted).

    Both given: the union (these states plus these counties). Neither given:
    every region of the layer. State abbreviations are matched case-insensitively.
    """
    states_l = _as_list(states)
    counties = _as_list(county_fips)
    sql = _zip_groups_sql() if isinstance(layer, ZipLayer) else _lead_groups_sql(layer)
    if states_l is None and counties is None:
        where, params = "true", []
    else:
        where = "(state IN (SELECT unnest(?::VARCHAR[])) OR county_fips IN (SELECT unnest(?::VARCHAR[])))"
        params = [[s.upper() for s in states_l or []], counties or []]
    rows = store.cursor().execute(f"SELECT region_id FROM ({sql}) WHERE {where} ORDER BY region_id", params).fetchall()
    return [r[0] for r in rows]


def county_choices(store: Store, states: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Counties (county_fips, county, state, regions = region ZIP count) for a picker, optionally of some states."""
    states_l = _as_list(states)
    where, params = ("true", []) if states_l is None else (
        "state IN (SELECT unnest(?::VARCHAR[]))", [[s.upper() for s in states_l]])
    return store.cursor().execute(
        f"""
        SELECT county_fips, any_value(county) AS county, any_value(state) AS state, count(*) AS regions
        FROM ({_zip_groups_sql()}) WHERE county_fips IS NOT NULL AND {where}
        GROUP BY county_fips ORDER BY state, county
        """,
        params,
    ).df()


__all__ = ["region_groups", "regions_in", "county_choices", "GROUP_COLUMNS"]
