"""The area of a plan as regions: every region ZIP of its states, or every H3 cell on their land.

A complete plan assigns each of these (DESIGN.md, "Alignment (complete)"); regions without leads weigh zero
in every measure but shape the territories. What counts as land is said in :mod:`terrmap.geo.land`.

* ZIP layer: the region ZIPs of the states (standard ZIPs with a centroid; PO boxes and unique ZIPs are
  points filed under the region ZIP that holds them), each with its own state and county.
* H3 layers: the cells whose centre lies on the states' land, each with the state and county of the ZIP
  polygon holding its centre; plus any cell that holds leads of those states although its centre lies off
  land (a pier, a barrier island thinner than a cell), so every lead has an owner.

Per state and resolution the cells are computed once per geometry (:func:`terrmap.data.zip_tables.shapes_stamp`)
and kept in memory: about 0.1 s for Texas at level 6 (17k cells), 1 s for the lower 48 (210k cells).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import h3
import numpy as np
import pandas as pd

from terrmap.data import zip_groups, zip_tables
from terrmap.frames import member
from terrmap.geo import H3Layer, Layer, ZipLayer
from terrmap.geo.land import MAX_AREA_CELLS, containing_zip, land_cells, state_lands
from terrmap.geo.memo import LoadCache, disk_key, read_cached, write_cached
from terrmap.geo.zipdata import nearest_region_zip
from terrmap.geo.zipshapes import ensure_zip_shapes, zip_shape_geoms

if TYPE_CHECKING:
    from terrmap.data.store import Store

AREA_COLUMNS = zip_groups.GROUP_COLUMNS  # region_id, state, county_fips, county

_ZIP = ZipLayer()
_STATES: LoadCache[dict] = LoadCache(max_entries=4)
_LANDS: LoadCache[tuple] = LoadCache(max_entries=128)
_CELLS: LoadCache[pd.DataFrame] = LoadCache(max_entries=256)


class AreaTooLarge(ValueError):
    """A complete plan of this area would hold more regions than terrmap can edit or optimise."""


def _stamp(store: Store) -> tuple[str]:
    """The content of the ZIP polygons: databases with the same geometry share the cached land and cells."""
    ensure_zip_shapes(store)
    return (zip_tables.shapes_stamp(store),)


def land_areas(store: Store, stamp: tuple[str] | None = None) -> dict[str, float]:
    """km² of land per state that has ZIP polygons (the states a plan of the whole country covers)."""
    return _STATES.get(stamp or _stamp(store), lambda: zip_tables.land_area_by_state(store))


def area_states(store: Store) -> list[str]:
    """Every state (and territory) that has ZIP polygons: the area of a plan of the whole country."""
    return sorted(land_areas(store))


def _state_lands(store: Store, stamp: tuple[str], states: list[str]) -> dict[str, tuple]:
    """state -> (its land, its ZIP polygons: zip, state, geometry), once per geometry and state; the states not
    cached yet are read in one query."""
    missing = [s for s in states if (*stamp, s) not in _LANDS]
    if missing:
        shapes = zip_shape_geoms(store, states=missing)[["zip", "state", "geometry"]]
        lands = state_lands(shapes)
        for state, group in shapes.groupby("state"):
            _LANDS.get((*stamp, state), lambda g=group, st=state: (lands.get(st), g.reset_index(drop=True)))
    return {s: _LANDS.get((*stamp, s), lambda: (None, pd.DataFrame(columns=["zip", "state", "geometry"])))
            for s in states}


def _state_cells(store: Store, stamp: tuple[str], res: int, states: list[str]) -> list[pd.DataFrame]:
    """Per state, its land cells at ``res`` (region_id, state, zip holding the centre): kept in memory and on
    disk (:func:`terrmap.geo.memo.disk_memo`, keyed by the geometry's stamp, the resolution, the state and
    this module's code), so a new process reads them instead of parsing the state's ZIP polygons (0.6 s for
    Texas)."""
    todo = [s for s in states if (*stamp, res, s) not in _CELLS]
    stored = {s: read_cached(_CELLS_ON_DISK, _cells_key(stamp, res, s)) for s in todo}
    lands = _state_lands(store, stamp, [s for s in todo if stored[s] is None])

    def load(state: str) -> pd.DataFrame:
        if stored.get(state) is not None:
            return stored[state]
        cells = compute(state)
        write_cached(_CELLS_ON_DISK, _cells_key(stamp, res, state), cells)
        return cells

    def compute(state: str) -> pd.DataFrame:
        land, shapes = lands[state]
        cells = land_cells({state: land}, res) if land is not None else pd.DataFrame()
        if cells.empty:
            return pd.DataFrame(columns=["region_id", "state", "zip"])
        centres = np.array([h3.cell_to_latlng(c) for c in cells["region_id"]])
        cells["zip"] = containing_zip(centres[:, 0], centres[:, 1], shapes)
        return cells

    return [_CELLS.get((*stamp, res, s), lambda st=s: load(st)) for s in states]


_CELLS_ON_DISK = "terrmap.data.area._state_cells"


@cache
def _code_digest() -> str:
    """This module's source: how the cells of a state are chosen (the geometry code has its own digest)."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def _cells_key(stamp: tuple[str], res: int, state: str) -> str:
    return disk_key(_code_digest(), h3.__version__, *stamp, res, state)


def _normalise(states: Iterable[str] | None, known: list[str]) -> list[str]:
    if states is None:
        return known
    wanted = sorted({s.strip().upper() for s in states if s and s.strip()})
    return [s for s in wanted if s in set(known)]


def area_regions(store: Store, layer: Layer, states: Iterable[str] | None = None) -> pd.DataFrame:
    """region_id, state, county_fips, county of every region of ``layer`` in ``states`` (None: every state
    with ZIP polygons), sorted by region_id. Raises :class:`AreaTooLarge` for an H3 area of more than
    :data:`~terrmap.geo.land.MAX_AREA_CELLS` cells."""
    stamp = _stamp(store)
    if not isinstance(layer, H3Layer):
        # The region ZIPs change only with the geometry (a ZCTA file re-files PO boxes), so keyed on it.
        groups = _CELLS.get((*stamp, "zip"), lambda: zip_groups.region_groups(store, layer))
        if states is not None:
            groups = groups[groups["state"].isin(_normalise(states, sorted(groups["state"].unique())))]
        return groups.reset_index(drop=True)
    areas = land_areas(store, stamp)
    wanted = _normalise(states, sorted(areas))
    estimate = sum(areas[s] for s in wanted) / h3.average_hexagon_area(layer.res, "km^2")
    if estimate > MAX_AREA_CELLS:
        raise AreaTooLarge(
            f"a complete plan of {len(wanted)} state(s) at H3 level {layer.res} would hold about {estimate:,.0f} "
            f"cells (at most {MAX_AREA_CELLS:,}): choose fewer states or a coarser level")
    parts = _state_cells(store, stamp, layer.res, wanted)
    cells = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["region_id", "state", "zip"])
    cells = cells.drop_duplicates("region_id")
    # Cells holding leads of these states whose centre lies off land: in the area too (every lead has an owner).
    populated = zip_groups.region_groups(store, layer)
    extra = populated[populated["state"].isin(wanted) & ~member(populated["region_id"], cells["region_id"])]
    zips = _CELLS.get((*stamp, "zip"), lambda: zip_groups.region_groups(store, _ZIP))
    counties = zips[["region_id", "county_fips", "county"]].rename(
        columns={"region_id": "zip"})
    land = cells.merge(counties, on="zip", how="left")[AREA_COLUMNS]
    out = pd.concat([land, extra[AREA_COLUMNS]], ignore_index=True)
    return out.sort_values("region_id", kind="stable").reset_index(drop=True)


def regions_states(store: Store, layer: Layer, region_ids: Iterable[str]) -> list[str]:
    """The states holding ``region_ids`` (ZIP: each region ZIP's state; H3: the state of the region ZIP nearest
    each cell's centre, and of most of its leads): how a plan made before plans had an area gets one."""
    # a Series as a list first: iterating Arrow strings one by one costs ~1 s per 100k
    ids = list(dict.fromkeys(region_ids.tolist() if isinstance(region_ids, pd.Series) else region_ids))
    if not ids:
        return []
    zips = area_regions(store, _ZIP)  # every region ZIP with its state (cached per geometry)
    if not isinstance(layer, H3Layer):
        return sorted(zips.loc[member(zips["region_id"], ids), "state"].dropna().unique())
    valid = [c for c in ids if h3.is_valid_cell(c)]
    centres = np.array([h3.cell_to_latlng(c) for c in valid]).reshape(-1, 2)
    zip_state = zips.set_index("region_id")["state"]
    states = set(zip_state.reindex(nearest_region_zip(centres[:, 0], centres[:, 1])).dropna())
    populated = zip_groups.region_groups(store, layer)
    states |= set(populated.loc[member(populated["region_id"], valid), "state"].dropna())
    return sorted(states)
