"""Placing leads: coordinates, H3 cell and region ZIP of every staged row, vectorized.

Every lead gets coordinates (given, else its ZIP's centroid), its H3 cell at
:data:`~terrmap.data.store.BASE_H3_RES` (h3ronpy, vectorized, in chunks on every core; rows at a
ZIP's centroid take that ZIP's cell) and its region ZIP (``zips.region_zip`` of its postal ZIP;
from the coordinates with :func:`~terrmap.geo.zipdata.nearest_region_zip` when no usable ZIP is
given): numpy arrays read straight from the staged Arrow table. :data:`US_BOXES` says which
coordinates count as inside the United States.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import pyarrow as pa

from terrmap.data.lead_import import zip_reference
from terrmap.data.store import BASE_H3_RES
from terrmap.geo.h3layer import index_points
from terrmap.geo.zipdata import nearest_region_zip

# Generous boxes (lat_min, lat_max, lon_min, lon_max) around US states and territories.
US_BOXES: dict[str, tuple[float, float, float, float]] = {
    "contiguous US": (23.5, 50.0, -125.5, -66.0),
    "Alaska": (50.5, 72.0, -180.0, -129.0),
    "Alaska (Aleutians west of 180°)": (50.5, 54.0, 172.0, 180.0),
    "Hawaii": (18.0, 23.0, -161.0, -154.0),
    "Puerto Rico and US Virgin Islands": (17.5, 19.0, -68.0, -64.3),
    "Guam and Northern Mariana Islands": (13.0, 21.0, 144.0, 146.5),
    "American Samoa": (-14.9, -13.9, -171.2, -168.0),
}


def inside_us_sql(lat: str, lon: str) -> str:
    """SQL: whether the point (lat, lon) lies in one of the :data:`US_BOXES`."""
    # CASE, not OR: DuckDB tests a box only on the rows that no earlier box holds (most rows are in the
    # first), where an OR evaluates every box on every row. A missing coordinate is in no box.
    whens = " ".join(f"WHEN {lat} BETWEEN {a} AND {b} AND {lon} BETWEEN {c} AND {d} THEN true"
                     for a, b, c, d in US_BOXES.values())
    return f"(CASE {whens} ELSE false END)"


def zip_lookup(cur) -> dict[str, np.ndarray]:
    """Arrays indexed by the ZIP as an integer (0..99999): centroid and region ZIP (-1: none)."""
    ref = zip_reference(cur)
    z = np.asarray(ref["z"], dtype=np.int64)
    lat = np.full(100_000, np.nan)
    lon = np.full(100_000, np.nan)
    region = np.full(100_000, -1, dtype=np.int32)
    lat[z] = np.ma.filled(ref["lat"], np.nan) if np.ma.isMaskedArray(ref["lat"]) else ref["lat"]
    lon[z] = np.ma.filled(ref["lon"], np.nan) if np.ma.isMaskedArray(ref["lon"]) else ref["lon"]
    region[z] = np.asarray(ref["region"], dtype=np.int32)
    region[np.isnan(lat)] = -1
    cell = np.zeros(100_000, dtype=np.uint64)
    located = ~np.isnan(lat)
    cell[located] = index_points(lat[located], lon[located], BASE_H3_RES)
    return {"lat": lat, "lon": lon, "region": region, "cell": cell}


@lru_cache(maxsize=1)
def zip_text() -> pa.Array:
    """'00000'..'99999': the dictionary of the region ZIP column (indices are the ZIPs as integers)."""
    return pa.array([f"{z:05d}" for z in range(100_000)], type=pa.string())


def cells_of(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """H3 cells at BASE_H3_RES. h3ronpy releases the GIL, so large inputs are indexed in chunks on every core."""
    workers = min(os.cpu_count() or 1, 8)
    if workers == 1 or len(lat) < 100_000:  # (under 50 ms: threads would gain little)
        return index_points(lat, lon, BASE_H3_RES)
    cells = np.empty(len(lat), dtype=np.uint64)
    bounds = np.linspace(0, len(lat), workers + 1).astype(np.int64)

    def run(a: int, b: int) -> None:
        cells[a:b] = index_points(lat[a:b], lon[a:b], BASE_H3_RES)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, bounds[:-1], bounds[1:]))  # list(): re-raise a worker's exception here
    return cells


def locate(table: pa.Table, ref: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    """Coordinates, H3 cell and region ZIP of every staged row, in file order (``ref``: :func:`zip_lookup`).

    The columns are read from the Arrow table itself (no query, so no question of order, and no use of
    the DuckDB cursor: this runs in a thread beside the validation). The results are meaningful once
    validation has passed, which ensures e.g. that latitude and longitude are both given or both missing.
    """

    def column(name: str) -> np.ndarray:
        values = table.column(name).to_numpy()  # a missing float becomes NaN
        return values if values.flags.writeable else values.copy()

    # In place and on the few rows concerned where possible: at 10M rows every full-size temporary counts.
    lat, lon, zipi = column("lat"), column("lon"), column("zip_i")
    has_zip = zipi >= 0
    np.maximum(zipi, 0, out=zipi)
    at_centroid = has_zip & (np.isnan(lat) | np.isnan(lon))
    centroid_zip = zipi[at_centroid]
    lat[at_centroid] = ref["lat"][centroid_zip]
    lon[at_centroid] = ref["lon"][centroid_zip]
    region = ref["region"][zipi]
    region[~has_zip] = -1
    need = region < 0
    if need.any():
        region[need] = np.asarray(nearest_region_zip(lat[need], lon[need]), dtype="U5").astype(np.int32)
    # Rows placed at their ZIP's centroid share that ZIP's cell; index only the given coordinates.
    cells = ref["cell"][zipi]
    given = ~at_centroid
    if given.any():
        cells[given] = cells_of(lat[given], lon[given])
    return {
        "x_lat": pa.array(lat),
        "x_lon": pa.array(lon),
        "x_cell": pa.array(cells, type=pa.uint64()),
        # Dictionary-encoded (ZIP number -> text): no string to format per row, and DuckDB stores it faster.
        "x_zip": pa.DictionaryArray.from_arrays(pa.array(region), zip_text()),
    }
