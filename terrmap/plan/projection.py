"""A plan seen on another layer: which of its territories owns each region of that layer.

A ZIP plan shown on hexagons (the map's default view), an H3 plan compared with a ZIP plan, an optimizer
seeded from a plan of another layer: every region of the other layer's area needs an owner, or the map shows
Swiss cheese where no lead sits today.

* A region holding leads goes to the territory holding most of their potential (lead count breaks ties:
  :func:`terrmap.data.plans.lead_majority_assignment`), so the projection agrees with where the money is.
* A region without leads goes to the territory of the plan's region under its centre: the ZIP polygon holding
  an H3 cell's centre (:func:`terrmap.geo.land.containing_zip`, the rule lead routing uses), or the cell of
  the plan's level holding a ZIP's centroid (filed through its level-9 cell, as the import files a lead).

The area is the plan's (:func:`terrmap.data.plans.plan_area`), optionally cut to some states. An H3 area
too large to list (:class:`terrmap.data.area.AreaTooLarge`: the whole country at level 7) keeps only the
regions holding leads; the map cannot draw that many regions anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from terrmap.data.area import AreaTooLarge, area_regions
from terrmap.data.plans import PlanInfo, lead_majority_assignment, load_assignment, plan_area
from terrmap.data.store import BASE_H3_RES
from terrmap.frames import member
from terrmap.geo import H3Layer, Layer, parse_layer
from terrmap.geo.h3layer import index_points, parent_int
from terrmap.geo.land import containing_zip
from terrmap.geo.zipshapes import zip_shape_geoms

if TYPE_CHECKING:
    from terrmap.data.store import Store

ASSIGNMENT_COLUMNS = ["region_id", "territory_id", "locked"]


def regions_under(store: Store, layer: Layer, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The region of ``layer`` under each point (object array; None where the point is off every ZIP
    polygon of a ZIP layer)."""
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    if isinstance(layer, H3Layer):
        cells = parent_int(index_points(lat, lon, BASE_H3_RES), layer.res)
        return np.array([f"{int(c):x}" for c in cells], dtype=object)
    return containing_zip(lat, lon, zip_shape_geoms(store))


def assignment_for_layer(store: Store, plan: PlanInfo, layer: Layer,
                         states: Iterable[str] | None = None) -> pd.DataFrame:
    """region_id, territory_id, locked for every region of ``layer`` in the plan's area (cut to ``states``
    if given); see the module doc for how regions of another layer are placed. Locks are the plan's own:
    on another layer nothing is locked."""
    by_leads = lead_majority_assignment(store, plan, layer)
    if plan.layer == layer.key:
        return by_leads
    area = plan_area(store, plan.plan_id)
    if states is not None:
        wanted = {s.strip().upper() for s in states}
        area = sorted(wanted if area is None else wanted & set(area))
    try:
        regions = area_regions(store, layer, area)
    except AreaTooLarge:
        return by_leads
    empty = regions.loc[~member(regions["region_id"], by_leads["region_id"]), "region_id"].tolist()
    if not empty:
        return by_leads
    centres = layer.region_centroids(store, empty)
    ids = [r for r in empty if r in centres]
    lat_lon = np.array([centres[r] for r in ids], dtype=float).reshape(-1, 2)
    under = regions_under(store, parse_layer(plan.layer), lat_lon[:, 0], lat_lon[:, 1])
    owner = load_assignment(store, plan.plan_id).set_index("region_id")["territory_id"]
    placed = pd.DataFrame({"region_id": ids, "territory_id": owner.reindex(under).to_numpy(), "locked": False})
    placed = placed[placed["territory_id"].notna()]
    if placed.empty:
        return by_leads
    out = pd.concat([by_leads[ASSIGNMENT_COLUMNS], placed[ASSIGNMENT_COLUMNS]], ignore_index=True)
    out["territory_id"] = out["territory_id"].astype(by_leads["territory_id"].dtype)
    return out.reset_index(drop=True)
